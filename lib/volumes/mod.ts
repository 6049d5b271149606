// The volumes as the rest of the tree sees them: the index's client that talks to every volume
// (requests with timeouts, streamed writes to all replicas, health), the volume protocol (the
// paths a volume serves and where a request about a file goes), the volume secret, and what a
// volume runs beside its nginx (its disk figures, the removal of empty directories).
export { Volumes, type VolumeStats } from "./client.ts";
export { type DiskFigures, encodeDiskFigures } from "./statusvolume.ts";
export { UploadError, VolumeError } from "./errors.ts";
export type { PutResult } from "./fanout.ts";
export {
  DISK_STATUS_PATH,
  FROM_INDEX_HEADER,
  MISS_PREFIX,
  MISSES_HEADER,
  STUB_STATUS_PATH,
  target,
  VOLUME_OWN_DIR,
  WRITE_PROBE_PATH,
} from "./protocol.ts";
export { startPruner } from "./prune.ts";
export { readSecretFile, SecretError, validSecret } from "./signing.ts";
