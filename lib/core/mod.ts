// The core's interface (lib/core/): the index without HTTP, its store and its record types.

export { Core } from "./core.ts";
export type {
  CoreMetrics,
  CoreOptions,
  KeyResult,
  Located,
  RedirectParts,
  WriteOptions,
  WriteResult,
} from "./context.ts";
export { failureStatus } from "./commit.ts";
export { VERIFIED_TTL_MS } from "./locate.ts";
export { missedKey } from "./miss.ts";
export { LEFT_AS_EXTRA, moveReplicas, planRebalance, type RebalancePlan } from "./rebalance.ts";
export { RETIRE_GRACE_MS } from "./retire.ts";
export type { Reaper } from "./sweep.ts";
export { type Settled, settlePending } from "./cleanup.ts";
export { isPending, type KeyRecord, namesFile, needsSettling, type ObjectInfo } from "./record.ts";
export {
  adminSocketPath,
  type ListOptions,
  NO_STATS,
  Store,
  StoreError,
  type StoreStats,
} from "./store.ts";
export { hasBucketMarker, markBucket, markedBuckets, unmarkBucket } from "./buckets.ts";
export {
  completedUpload,
  forgetUpload,
  hasUploads,
  type ListedUpload,
  recordCompleted,
  recordUpload,
  uploadExists,
  uploadsByAge,
  uploadsByKey,
  type UploadState,
  uploadState,
} from "./uploads.ts";
