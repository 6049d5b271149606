// The volume protocol: what a volume serves besides the keys' files (the `/.mkv-*` paths that its
// nginx config answers and the index asks for), and where a request about a key's file goes.
// A replica location is `host:port` or `host:port/svXX`; the subvolume's directory is part of
// the path the volume sees, so that a volume knows nothing of subvolumes. Pure; the one place
// that joins a location and a path (target), for the index's requests, its redirects and the
// tests alike.

import { locationHost } from "../placement.ts";

/**
 * The one path outside the key layout that volumes take PUTs on: the file of the index's write
 * probe, which checks that a volume can still store.
 */
export const WRITE_PROBE_PATH = "/.mkv-probe";
/** Where a volume's nginx answers its `stub_status` (connections, requests), for the index. */
export const STUB_STATUS_PATH = "/.mkv-status";
/** Where a volume serves its filesystem's free and total bytes (lib/volumes/statusvolume.ts). */
export const DISK_STATUS_PATH = "/.mkv-disk";
/**
 * The volume's own directory inside its --dir, made by volume.ts (root's when root runs it, so
 * that nginx's workers, who own the rest, cannot plant a link there): nginx's upload spool
 * (`tmp/`) and the disk figures (`disk.json`), served at DISK_STATUS_PATH.
 */
export const VOLUME_OWN_DIR = "/.mkv";
/**
 * The header every request of the index to a volume carries: a volume started with `--index`
 * answers a GET or HEAD of a missing file with a 302 back to the index (MISS_PREFIX), except to
 * the index itself, which must see the 404 (its checks, verify, gc, copies).
 */
export const FROM_INDEX_HEADER = "X-Mkv-From-Index";
/**
 * The header a volume started with `--index URL` adds to its probe's answer (`HEAD /`), valued
 * URL: it sends misses back to that index, so a GET may be redirected there without a check.
 */
export const MISSES_HEADER = "X-Mkv-Misses";
/**
 * Where a volume sends a client whose GET or HEAD found no file: `URL/-/miss/PATH?volume=HOST`,
 * PATH the file's path on the volume (`/svXX/` included), HOST the volume as the client named it.
 */
export const MISS_PREFIX = "/-/miss";

/** Where a request goes: the volume's `host:port`, and the path (and query, once signed) there. */
export interface Target {
  host: string;
  path: string;
}

/**
 * Where a request about `path` (a key's file, a directory to list) at `location` goes: the
 * location's volume, and the path prefixed with the location's subvolume directory, e.g.
 * `localhost:3001/sv05` and `/5d/41/aGVsbG8=` → `localhost:3001` and `/sv05/5d/41/aGVsbG8=`.
 */
export function target(location: string, path: string): Target {
  const host = locationHost(location);
  return { host, path: location.slice(host.length) + path };
}

/** The URL of a target (`http://localhost:3001/sv05/5d/41/aGVsbG8=`), for fetch or a redirect. */
export function volumeUrl(to: Target, scheme: "http" | "https" = "http"): string {
  return `${scheme}://${to.host}${to.path}`;
}
