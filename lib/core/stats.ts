// The store's figures (StoreStats): keys and bytes by state, kept in the KV beside the records and
// changed in the same commits, so that the metrics and the status page never scan.

import { decodeRecord, type KeyRecord } from "./record.ts";
import { LIST_BATCH, RECORDS, STATS } from "./layout.ts";

/**
 * What the index holds, kept in step with the records (docs/monitoring.md, "Keys and bytes are
 * counted, never scanned"): the keys whose values are on the volumes, live or unlinked, and the
 * bytes of those values (a record written before sizes were kept, or made by rebuild, counts 0
 * bytes); and the pending records (a write in progress or interrupted, a delete whose files are
 * being removed), counted apart.
 */
export interface StoreStats {
  liveKeys: number;
  liveBytes: number;
  unlinkedKeys: number;
  unlinkedBytes: number;
  pending: number;
}

/** Figures of an empty index. */
export const NO_STATS: Readonly<StoreStats> = {
  liveKeys: 0,
  liveBytes: 0,
  unlinkedKeys: 0,
  unlinkedBytes: 0,
  pending: 0,
};

/** The figures `stats` become when a key's record `old` is replaced by `next` (null: none). Pure. */
export function shiftStats(
  stats: Readonly<StoreStats>,
  old: KeyRecord | null,
  next: KeyRecord | null,
): StoreStats {
  const out = { ...stats };
  for (const [record, sign] of [[old, -1], [next, 1]] as const) {
    if (record === null) continue;
    const bytes = sign * (record.info?.size ?? 0);
    if (record.state === "live") {
      out.liveKeys += sign;
      out.liveBytes += bytes;
    } else if (record.state === "unlinked") {
      out.unlinkedKeys += sign;
      out.unlinkedBytes += bytes;
    } else {
      out.pending += sign;
    }
  }
  return out;
}

/** Whether a value read from the figures' entry is figures (else the store counts again). */
function isStats(value: unknown): value is StoreStats {
  const v = value as Record<string, unknown> | null;
  return typeof v === "object" && v !== null &&
    Object.keys(NO_STATS).every((name) => Number.isSafeInteger(v[name]) && Number(v[name]) >= 0);
}

/**
 * The figures kept in `kv`; counted from the records (and kept) when there are none yet, as in an
 * index written before they were kept. Called on open, before anything writes.
 */
export async function loadStats(kv: Deno.Kv): Promise<StoreStats> {
  const entry = await kv.get(STATS);
  if (isStats(entry.value)) return entry.value;
  let stats: StoreStats = { ...NO_STATS };
  for await (const { value } of kv.list<string>({ prefix: [RECORDS] }, { batchSize: LIST_BATCH })) {
    stats = shiftStats(stats, null, decodeRecord(value));
  }
  await kv.set(STATS, stats);
  return stats;
}
