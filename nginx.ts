// What the volume and the index share: rendering nginx's configs and running nginx as a child
// safely, all of it in lib/nginx (its interface is lib/nginx/mod.ts, re-exported here). One thing
// is added here, above the folders: the index's locations answer a failed replica in S3's terms
// (lib/s3/replicaerrors.ts), which lib/nginx, below lib/s3, cannot import.
//
// Not an entry point: volume.ts and index.ts import it.

import {
  type ProxyLimits,
  type ProxyLocationOptions,
  renderProxyLocations as renderLocations,
} from "./lib/nginx/mod.ts";
import { renderReplicaErrorLocations, renderReplicaErrorPages } from "./lib/s3/replicaerrors.ts";

export * from "./lib/nginx/mod.ts";

/**
 * The index's locations (lib/nginx/proxyconf.ts) with S3's answers for a replica that fails, so
 * that every answer an S3 client gets is S3's XML. It takes the place of lib/nginx's function of
 * the same name among the exports above: a module's own export wins over `export *`.
 */
export function renderProxyLocations(
  limits: ProxyLimits = {},
  options: ProxyLocationOptions = {},
): string {
  return renderLocations(limits, {
    ...options,
    replicaErrors: { pages: renderReplicaErrorPages(), locations: renderReplicaErrorLocations() },
  });
}
