// GetObject, HeadObject and GetObjectAttributes (docs/s3.md, "Reads never pass through Deno"):
// the key located, its conditions and range checked against the record, then the body sent by
// the index's nginx, which the answer redirects (`X-Accel-Redirect`) to a location that proxies
// the chosen replica (lib/nginx/proxyconf.ts). Only a value with user metadata or an
// asked-for checksum is streamed by the index itself, since nginx passes on only headers of
// names it knows.

import {
  ACCEL_REDIRECT_HEADER,
  REPLICA_HEADERS as REPLICA,
  REPLICA_LOCATION,
} from "../nginx/contract.ts";
import type { KeyPath } from "../placement.ts";
import { target, VolumeError } from "../volumes/mod.ts";
import type { Core } from "../core/mod.ts";
import type { VolumeAddresses } from "./address.ts";
import { needBucket } from "./buckets.ts";
import { checkConditions, parseRange, rangeApplies } from "./conditions.ts";
import { S3Error } from "./error.ts";
import {
  checksumHeaders,
  etagOf,
  hasChecksumHeader,
  objectHeaders,
  responseOverrides,
} from "./headers.ts";
import { locateObject } from "./locate.ts";
import type { ObjectTarget } from "./request.ts";
import { s3Error, STORAGE_CLASS, xmlResponse } from "./xml.ts";

/** The entries of `headers` named in `names` that it has. */
function pick(headers: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(names.filter((name) => name in headers).map((n) => [n, headers[n]]));
}

/** `s3Error` with more headers (Content-Range of an InvalidRange). */
function s3ErrorWith(
  failure: S3Error,
  options: { method: string; headers: Record<string, string> },
): Response {
  const response = s3Error(failure, { method: options.method });
  for (const [name, value] of Object.entries(options.headers)) response.headers.set(name, value);
  return response;
}

/** GetObject and HeadObject (`GET`/`HEAD /bucket/key`). */
export async function getObject(
  core: Core,
  request: Request,
  options: { object: ObjectTarget; query: URLSearchParams; addresses: VolumeAddresses },
): Promise<Response> {
  const { object, query, addresses } = options;
  const { record, location, path } = await locateObject(core, object.key, {
    bucket: object.bucket,
  });
  const headers = { ...objectHeaders(record), ...responseOverrides(query) };
  const condition = checkConditions(request.headers, record);
  if (condition === 304) {
    return new Response(null, {
      status: 304,
      headers: { etag: headers.etag ?? "", "last-modified": headers["last-modified"] },
    });
  }
  if (condition === 412) {
    throw new S3Error(412, "PreconditionFailed", "At least one of the preconditions failed.");
  }
  const sizeBytes = record.info?.size ?? 0;
  const asked = rangeApplies(request.headers, record) ? request.headers.get("range") : null;
  const range = parseRange(asked, sizeBytes);
  if (range === "invalid") {
    return s3ErrorWith(
      new S3Error(416, "InvalidRange", "The requested range is not satisfiable", object.key),
      { method: request.method, headers: { "content-range": `bytes */${sizeBytes}` } },
    );
  }
  Object.assign(headers, checksumHeaders(request.headers, record, { ranged: range !== null }));
  if (request.method === "HEAD") {
    if (range !== null) {
      headers["content-range"] = `bytes ${range.start}-${range.end}/${sizeBytes}`;
      headers["content-length"] = String(range.end - range.start + 1);
    } else headers["content-length"] = String(sizeBytes);
    return new Response(null, { status: range === null ? 200 : 206, headers });
  }
  // nginx passes on only headers of names it knows: user metadata and a checksum come from here.
  if (Object.keys(record.info?.meta ?? {}).length > 0 || hasChecksumHeader(headers)) {
    return await streamObject(core, location, path, { headers, range, sizeBytes });
  }
  // The body comes from the replica through the index's nginx (lib/nginx/contract.ts,
  // REPLICA_LOCATION), which reads the REPLICA_HEADERS of this answer, and passes on Cache-Control,
  // Content-Disposition and Expires as they are.
  core.metrics.bodySent(range === null ? sizeBytes : range.end - range.start + 1);
  const { host, path: onVolume } = target(location, path);
  const signedPath = core.volumes.signed("GET", onVolume);
  return new Response(null, {
    headers: {
      [ACCEL_REDIRECT_HEADER]: REPLICA_LOCATION,
      [REPLICA.volume]: await addresses.resolve(host),
      [REPLICA.host]: host,
      [REPLICA.sni]: host.slice(0, host.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1"),
      [REPLICA.target]: signedPath,
      [REPLICA.etag]: headers.etag ?? "",
      [REPLICA.modified]: headers["last-modified"],
      [REPLICA.type]: headers["content-type"],
      [REPLICA.range]: range === null ? "" : `bytes=${range.start}-${range.end}`,
      [REPLICA.encoding]: headers["content-encoding"] ?? "",
      [REPLICA.language]: headers["content-language"] ?? "",
      ...pick(headers, ["cache-control", "content-disposition", "expires"]),
    },
  });
}

/**
 * GetObjectAttributes (`GET /bucket/key?attributes`): those of ETag, Checksum, ObjectSize and
 * StorageClass that `x-amz-object-attributes` names, from the key's record alone.
 */
export async function getObjectAttributes(
  core: Core,
  request: Request,
  object: ObjectTarget,
): Promise<Response> {
  const asked = new Set(
    (request.headers.get("x-amz-object-attributes") ?? "").split(",").map((name) => name.trim()),
  );
  const record = await core.store.get(object.key);
  if (record === null || record.state !== "live") {
    await needBucket(core, object.bucket);
    throw new S3Error(404, "NoSuchKey", "The specified key does not exist.", object.key);
  }
  const checksum = record.info?.checksum;
  const headers = objectHeaders(record);
  return xmlResponse("GetObjectAttributesResponse", {
    ETag: asked.has("ETag") ? etagOf(record).replaceAll('"', "") : undefined,
    Checksum: asked.has("Checksum") && checksum !== undefined
      ? { [`Checksum${checksum.algorithm.toUpperCase()}`]: checksum.base64 }
      : undefined,
    StorageClass: asked.has("StorageClass") ? STORAGE_CLASS : undefined,
    ObjectSize: asked.has("ObjectSize") ? record.info?.size ?? 0 : undefined,
  }, { headers: { "last-modified": headers["last-modified"] } });
}

/**
 * A GET of a value with user metadata, streamed by the index itself: nginx copies only headers
 * of fixed names from an X-Accel-Redirect answer, and S3 clients read `x-amz-meta-*` from the
 * GET. The body is passed through as the replica sends it (never held); a replica that fails
 * mid-way ends the connection short of the announced length, so no client takes it for the value.
 */
async function streamObject(
  core: Core,
  location: string,
  path: KeyPath,
  options: {
    headers: Record<string, string>;
    range: { start: number; end: number } | null;
    sizeBytes: number;
  },
): Promise<Response> {
  const { headers, range, sizeBytes } = options;
  let replica: Response;
  try {
    replica = await core.volumes.get(location, path, { range: range ?? undefined });
  } catch (err) {
    if (!(err instanceof VolumeError && err.status === 404)) throw err;
    // The file went after the index found it: a DELETE that raced this GET, or a replica lost.
    // The key's other replicas are checked (lib/core/miss.ts), and one that holds it is read.
    const to = target(location, path);
    const found = await core.miss(to.path, to.host);
    if (!found.ok && found.status === 410) {
      throw new S3Error(503, "ServiceUnavailable", found.reason);
    }
    if (!found.ok) throw new S3Error(404, "NoSuchKey", "The specified key does not exist.");
    replica = await core.volumes.get(found.location, found.path, { range: range ?? undefined });
  }
  const lengthBytes = range === null ? sizeBytes : range.end - range.start + 1;
  headers["content-length"] = String(lengthBytes);
  if (range !== null) headers["content-range"] = `bytes ${range.start}-${range.end}/${sizeBytes}`;
  core.metrics.bodySent(lengthBytes);
  return new Response(replica.body, { status: range === null ? 200 : 206, headers });
}
