// The index's side of the volumes, as the rest of the index sees it: the client that talks to
// every volume (requests with timeouts, streamed writes to all replicas, health), re-exported from
// the modules of this folder.
export { Volumes, type VolumeStats } from "./client.ts";
export { UploadError, VolumeError } from "./errors.ts";
export type { PutResult } from "./fanout.ts";
