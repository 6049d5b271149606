// The KV layout of S3's buckets (docs/s3.md, "Buckets"): a bucket made by CreateBucket (or by a
// write on an open cluster) is a marker `[BUCKETS_PREFIX, name]` → its creation time in
// milliseconds, beside the records. A bucket that holds keys exists without one; that rule, on
// the records, is the S3 front's (lib/s3/buckets.ts).

import { BUCKETS_PREFIX } from "./layout.ts";
import type { Store } from "./store.ts";

/** Whether `name` has a bucket marker. */
export async function hasBucketMarker(store: Store, name: string): Promise<boolean> {
  return (await store.kv.get([BUCKETS_PREFIX, name])).value !== null;
}

/** Sets the bucket's marker, created at `createdMs`. */
export async function markBucket(store: Store, name: string, createdMs: number): Promise<void> {
  await store.kv.set([BUCKETS_PREFIX, name], createdMs);
}

/** Removes the bucket's marker. */
export async function unmarkBucket(store: Store, name: string): Promise<void> {
  await store.kv.delete([BUCKETS_PREFIX, name]);
}

/** The marked buckets in name order, each with its creation time. */
export async function* markedBuckets(store: Store): AsyncGenerator<[string, number]> {
  for await (const entry of store.kv.list<number>({ prefix: [BUCKETS_PREFIX] })) {
    yield [entry.key[1] as string, entry.value];
  }
}
