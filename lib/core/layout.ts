// The layout of the index's Deno KV: which prefix holds what, and KV's limits the store keeps
// within. The store (lib/core/store.ts) and its parts read and write these entries; nothing
// outside lib/core does.

/** Keys of records live under this prefix in KV; other prefixes are free for metadata. */
export const RECORDS = "k";
/**
 * Markers of pending records (a write, a delete whose files are being removed, or a live
 * value's overwrite: needsSettling), so that
 * start-up and the cleanup in the background find them without a scan: `[MARKERS, n, part]` →
 * the keys that became pending in the commit numbered n. One entry per commit, at the end of the
 * key range, and not one per key: an entry per key cost a second B-tree page per record written
 * (bench/kvcommit.ts, random keys: a commit of 5 took 0.81 ms against 0.56 ms, of 20 3.3 ms
 * against 2.0 ms, as long as with no marker at all). A marker is
 * removed once none of its keys is pending; a key's record, not its marker, says whether it is.
 */
export const MARKERS = "p";
/** The per-key markers of earlier versions, `[LEGACY_PENDING, key]`, turned into MARKERS on open. */
export const LEGACY_PENDING = "w";
/** UTF-16 units of keys per marker entry: at 3 UTF-8 bytes each, within KV's 64 KiB per value. */
export const MARKER_PART_UNITS = 20_000;
/** Marker entries removed per commit at most, so that a commit stays within KV's 1000 mutations. */
export const MARKER_DELETES = 128;
/**
 * The key of the store's figures (StoreStats): one entry, rewritten by every commit that changes
 * records. A plain value and not KV `sum` counters: the store is the only writer and commits one
 * batch at a time, so it knows the figures and sets them exactly (a `sum` on `Deno.KvU64` would
 * need decrements written as additions modulo 2^64).
 */
export const STATS = ["stats"];
/**
 * The key pages (lib/core/pages.ts): `[PAGES, bound]` → the live keys from `bound` to the next
 * page's bound, so that a listing reads one entry per hundreds of keys. Changed in the same commit
 * as the records whose state they follow.
 */
export const PAGES = "kp";
/**
 * How far the key pages are built (PagesBuilt in lib/core/keypages.ts): one entry, absent in an
 * index made before the pages (then none is built). Written by every commit with STATS, so that
 * their versionstamps differ once a version before the pages has committed records: its records
 * are not in the pages, which are then built again.
 */
export const PAGES_BUILT = ["pagesbuilt"];
/**
 * Records read per step of a build of the key pages at most, each step one commit: fewer steps,
 * fewer fsyncs (a build of 100,000 keys in steps of 1,000 records took 8 s on a busy disk).
 */
export const BUILD_RECORDS = 10_000;
/** UTF-16 units of keys per build step at most, so that its commit stays within KV's 800 KiB. */
export const BUILD_UNITS = 150_000;
/** Pages left from an earlier build removed per step at most, within KV's 1000 mutations. */
export const BUILD_STALE_DELETES = 400;
/**
 * UTF-16 units of key pages one commit of records writes at most (two bytes a unit at most), so
 * that with its records it stays within KV's 800 KiB: a batch whose pages weigh more is committed
 * in halves.
 */
export const COMMIT_PAGE_UNITS = 200_000;
/** Page entries one commit of records writes or removes at most, within KV's 1000 mutations. */
export const COMMIT_PAGE_MUTATIONS = 400;
/** S3 buckets made by CreateBucket: `[BUCKETS_PREFIX, name]` → creation time (buckets.ts). */
export const BUCKETS_PREFIX = "s3bucket";
/** S3 multipart uploads in progress (lib/s3/multipart.ts): by id and by object key. */
export const UPLOADS_PREFIX = "u";
/** Mutations per atomic commit; KV allows 1000 and 800 KiB in all (one is the figures). */
export const MAX_BATCH = 256;
/** Keys per `getMany`, KV's limit. */
export const GET_MANY = 10;
/**
 * Entries read from KV per list round trip: KV's most. A round trip costs about as much as
 * decoding its entries, so fewer of them are most of what a listing can save.
 */
export const LIST_BATCH = 1000;

/** The path of the KV file inside the `--db` directory. */
export function kvPath(db: string): string {
  return `${db}/index.kv`;
}

/** The admin socket of a running server, inside the `--db` directory. */
export function adminSocketPath(db: string): string {
  return `${db}/admin.sock`;
}
