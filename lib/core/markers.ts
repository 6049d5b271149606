// The markers of pending records in the KV (a write, a delete whose files are being removed, or a
// live value's overwrite: needsSettling), so that start-up and the sweep find them without a scan
// (lib/core/layout.ts, MARKERS): PendingMarkers keeps in memory which keys are pending and in
// which marker, and says what each commit must write.

import { decodeRecord, type KeyRecord, needsSettling } from "./record.ts";
import {
  GET_MANY,
  LEGACY_PENDING,
  LIST_BATCH,
  MARKER_DELETES,
  MARKER_PART_UNITS,
  MARKERS,
  RECORDS,
} from "./layout.ts";

/** What one commit does to the markers: made by `PendingMarkers.plan`, kept by `apply`. */
export interface MarkerPlan {
  /** The number of the new marker, whose parts hold the keys that became pending. */
  marker: number;
  parts: string[][];
  /** Keys that are pending no more. */
  settled: string[];
  /** Marker entries to remove, `[n, part]`, of markers none of whose keys is pending. */
  deletes: [number, number][];
}

/** `keys` in runs of at most MARKER_PART_UNITS UTF-16 units (a longer key has a run of its own). */
export function splitMarker(keys: string[]): string[][] {
  const parts: string[][] = [];
  let units = Infinity;
  for (const key of keys) {
    if (units + key.length > MARKER_PART_UNITS) {
      parts.push([]);
      units = 0;
    }
    parts.at(-1)!.push(key);
    units += key.length;
  }
  return parts;
}

/**
 * Which keys are pending and in which marker, kept in memory beside the markers in KV. Pure: the
 * store asks it what a commit must write (`plan`) and tells it once the commit is done (`apply`).
 */
export class PendingMarkers {
  /** The marker of each pending key. */
  #markerOf = new Map<string, number>();
  /** Pending keys per marker. */
  #keysIn = new Map<number, number>();
  /** Entries (parts) per marker. */
  #parts = new Map<number, number>();
  /** Markers none of whose keys is pending, in the order they emptied, still to be removed. */
  #empty: number[] = [];
  #next = 0;

  /** From the markers read on open and which of their keys are pending (their records say). */
  constructor(markers: Map<number, { parts: number; keys: string[] }>, pendingKeys: Set<string>) {
    for (const [marker, { parts, keys }] of markers) {
      this.#next = Math.max(this.#next, marker + 1);
      this.#parts.set(marker, parts);
      this.#keysIn.set(marker, 0);
      for (const key of keys) {
        if (!pendingKeys.has(key)) continue;
        const previous = this.#markerOf.get(key);
        if (previous !== undefined) this.#keysIn.set(previous, this.#keysIn.get(previous)! - 1);
        this.#markerOf.set(key, marker);
        this.#keysIn.set(marker, this.#keysIn.get(marker)! + 1);
      }
    }
    for (const [marker, count] of this.#keysIn) {
      if (count > 0) continue;
      this.#keysIn.delete(marker);
      this.#empty.push(marker);
    }
  }

  /** The pending keys, as of now. */
  keys(): string[] {
    return [...this.#markerOf.keys()];
  }

  /** What committing `batch` (in order; the last record of a key wins) does to the markers. */
  plan(batch: readonly { key: string; record: KeyRecord | null }[]): MarkerPlan {
    const last = new Map<string, boolean>();
    for (const { key, record } of batch) last.set(key, record !== null && needsSettling(record));
    const added: string[] = [];
    const settled: string[] = [];
    const left = new Map<number, number>();
    for (const [key, pending] of last) {
      const marker = this.#markerOf.get(key);
      if (pending && marker === undefined) added.push(key);
      if (pending || marker === undefined) continue;
      settled.push(key);
      left.set(marker, (left.get(marker) ?? this.#keysIn.get(marker)!) - 1);
    }
    const deletes: [number, number][] = [];
    const emptied = [...left].filter(([, count]) => count === 0).map(([marker]) => marker);
    for (const marker of [...this.#empty, ...emptied]) {
      const parts = this.#parts.get(marker)!;
      if (deletes.length + parts > MARKER_DELETES && deletes.length > 0) break;
      for (let part = 0; part < parts; part++) deletes.push([marker, part]);
    }
    return { marker: this.#next, parts: splitMarker(added), settled, deletes };
  }

  /** Records that the commit of `plan` is done. */
  apply(plan: MarkerPlan): void {
    if (plan.parts.length > 0) {
      this.#next = plan.marker + 1;
      this.#parts.set(plan.marker, plan.parts.length);
      this.#keysIn.set(plan.marker, 0);
      for (const key of plan.parts.flat()) this.#markerOf.set(key, plan.marker);
      this.#keysIn.set(plan.marker, plan.parts.flat().length);
    }
    for (const key of plan.settled) {
      const marker = this.#markerOf.get(key)!;
      this.#markerOf.delete(key);
      const count = this.#keysIn.get(marker)! - 1;
      if (count > 0) {
        this.#keysIn.set(marker, count);
        continue;
      }
      this.#keysIn.delete(marker);
      this.#empty.push(marker);
    }
    const removed = new Set(plan.deletes.map(([marker]) => marker));
    for (const marker of removed) this.#parts.delete(marker);
    this.#empty = this.#empty.filter((marker) => !removed.has(marker));
  }
}

/** The number of the last marker in `kv`, or -1 if it has none. */
async function lastMarker(kv: Deno.Kv): Promise<number> {
  for await (const entry of kv.list({ prefix: [MARKERS] }, { reverse: true, limit: 1 })) {
    return entry.key[1] as number;
  }
  return -1;
}

/** Turns the per-key markers of an index written by an earlier version into MARKERS. */
async function migrateLegacyMarkers(kv: Deno.Kv): Promise<void> {
  const legacy: string[] = [];
  for await (const entry of kv.list({ prefix: [LEGACY_PENDING] }, { batchSize: LIST_BATCH })) {
    legacy.push(entry.key[1] as string);
  }
  let marker = await lastMarker(kv) + 1;
  // 100 keys of at most 2 KiB, deleted and written again, stay within KV's bytes per commit.
  for (let from = 0; from < legacy.length; from += 100, marker++) {
    const keys = legacy.slice(from, from + 100);
    const op = kv.atomic();
    splitMarker(keys).forEach((part, i) => op.set([MARKERS, marker, i], part));
    for (const key of keys) op.delete([LEGACY_PENDING, key]);
    await op.commit();
  }
}

/** The markers in `kv`, and which of their keys are pending, as their records say. */
export async function loadMarkers(kv: Deno.Kv): Promise<PendingMarkers> {
  await migrateLegacyMarkers(kv);
  const markers = new Map<number, { parts: number; keys: string[] }>();
  for await (const entry of kv.list<string[]>({ prefix: [MARKERS] }, { batchSize: LIST_BATCH })) {
    const marker = entry.key[1] as number;
    const found = markers.get(marker) ?? { parts: 0, keys: [] };
    found.parts = Math.max(found.parts, (entry.key[2] as number) + 1);
    found.keys.push(...entry.value);
    markers.set(marker, found);
  }
  const keys = [...new Set([...markers.values()].flatMap((found) => found.keys))];
  const pending = new Set<string>();
  for (let from = 0; from < keys.length; from += GET_MANY) {
    const some = keys.slice(from, from + GET_MANY);
    const entries = await kv.getMany<string[]>(some.map((key) => [RECORDS, key]));
    entries.forEach((entry, i) => {
      if (entry.value !== null && needsSettling(decodeRecord(entry.value))) pending.add(some[i]);
    });
  }
  return new PendingMarkers(markers, pending);
}
