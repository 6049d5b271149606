// rebuild: the index from the volumes' files. Every key found without a record becomes live on the
// volumes it sits on (placement order first), with its md5 computed unless --md5sum=false; of its
// versions (lib/placement.ts, versionPath) the newest found is taken as current, the others left
// for gc. A key with a record (live or unlinked) keeps it: a copy of the version the record names,
// found where the record does not point and holding the recorded value (by md5, or by length with
// --md5sum=false), is added to it; nothing else of the record changes, so a value written while the
// walk ran is never shortened or rewritten. Replicas whose contents differ are a conflict and the
// key is left out, never merged. Each key is judged under its lock, its files read again there,
// since the walk's listing may be stale; with --md5sum=false only a key whose record was removed
// since the walk began is asked for again, and no file is read. Keys are judged in key order once
// the walk is done (lib/ops/walk.ts), their records read and committed in groups (lib/ops/batch.ts)
// and small files read in batches per volume: at 10^5 keys and more, one KV call and one request
// per key were most of a rebuild's time.

import { firstLine } from "../errors.ts";
import {
  type KeyPath,
  keyToPath,
  keyToVolumes,
  type Placement,
  versionPath,
} from "../placement.ts";
import { type KeyRecord, needsSettling } from "../core/mod.ts";
import { VolumeError, type Volumes } from "../volumes/mod.ts";
import { type OperationContext, type OperationFn, type OperationRun, slots } from "./runner.ts";
import type { OperationRequest } from "./protocol.ts";
import { BATCH_RECORDS, HashBatch, RecordBatch, SMALL_FILE_BYTES } from "./batch.ts";
import { forEachOnVolumes, type FoundReplica, holdsValue } from "./walk.ts";

/** Replica locations in placement order: those `keyToVolumes` names first, then the rest sorted. */
export function orderByPlacement(key: string, locations: string[], placement: Placement): string[] {
  // One location is in order already: the placement's md5 of every volume is not worth computing.
  if (locations.length === 1) return [...locations];
  const wanted = keyToVolumes(key, placement);
  const present = new Set(locations);
  const first = wanted.filter((location) => present.has(location));
  const rest = [...present].filter((location) => !wanted.includes(location)).sort();
  return [...first, ...rest];
}

/**
 * The version of a key's value that rebuild takes as current among the files found: `named` (the
 * version its record names) if any file of it is there, else the newest (a file without a version
 * is the oldest). Undefined: the plain file.
 */
export function currentVersion(
  found: FoundReplica[],
  named?: { version?: string },
): string | undefined {
  if (named !== undefined && found.some((replica) => replica.version === named.version)) {
    return named.version;
  }
  let newest: string | undefined;
  for (const { version } of found) {
    if (version !== undefined && (newest === undefined || version > newest)) newest = version;
  }
  return newest;
}

export type RebuildVerdict =
  | { ok: true; volumes: string[]; md5: string }
  | { ok: false; detail: string };

/**
 * The record that the replicas found of a key make, or a conflict if their contents differ (in
 * size, or in md5 when read): then none is picked.
 */
export function rebuildVerdict(
  key: string,
  found: FoundReplica[],
  placement: Placement,
): RebuildVerdict {
  const sizes = new Set(found.map((replica) => replica.sizeBytes));
  const md5s = new Set(found.map((replica) => replica.md5 ?? ""));
  if (sizes.size > 1 || md5s.size > 1) {
    const each = found.map((r) =>
      `${r.location} ${r.sizeBytes} bytes${r.md5 ? ` md5 ${r.md5}` : ""}`
    );
    return { ok: false, detail: `replicas differ: ${each.join(", ")}` };
  }
  const volumes = orderByPlacement(key, found.map((replica) => replica.location), placement);
  return { ok: true, volumes, md5: [...md5s][0] };
}

/** What rebuild does with the files found of a key that has a live or unlinked record. */
export interface CopiesPlan {
  /** The record's locations, then the copies added. */
  volumes: string[];
  /** Copies of the recorded value where the record does not point, in placement order. */
  added: string[];
  /** Files where the record does not point that hold another value: gc removes them. */
  stale: FoundReplica[];
  /** Files that cannot be told from the value (its record has no md5 or size): left alone. */
  unsure: FoundReplica[];
}

/**
 * Which of the files found of a key join its record: those where it does not point that hold its
 * value. The record's own locations all stay, found or not (a missing replica is verify's to
 * report and repair), so a record is never shortened.
 */
export function planCopies(
  key: string,
  record: KeyRecord,
  found: FoundReplica[],
  placement: Placement,
): CopiesPlan {
  const elsewhere = found.filter((replica) => !record.volumes.includes(replica.location));
  const holding = elsewhere.filter((replica) => holdsValue(record, replica) === true);
  const added = orderByPlacement(key, holding.map((replica) => replica.location), placement);
  return {
    volumes: [...record.volumes, ...added],
    added,
    stale: elsewhere.filter((replica) => holdsValue(record, replica) === false),
    unsure: elsewhere.filter((replica) => holdsValue(record, replica) === "unknown"),
  };
}

/**
 * The replicas of `found` that are still there; with `rehash`, read again for their md5 (small
 * files in batches: `hashes`). A key's replicas are asked for at once.
 */
async function recheck(
  volumes: Volumes,
  hashes: HashBatch,
  path: KeyPath,
  found: FoundReplica[],
  rehash: boolean,
): Promise<FoundReplica[]> {
  const checked = await Promise.all(found.map(async (replica): Promise<FoundReplica | null> => {
    if (!rehash) return await volumes.has(replica.location, path) ? replica : null;
    if (replica.sizeBytes <= SMALL_FILE_BYTES) {
      const read = await hashes.hash(replica.location, path);
      return read === null ? null : { ...replica, ...read };
    }
    try {
      return { ...replica, ...await volumes.hash(replica.location, path) };
    } catch (err) {
      if (!(err instanceof VolumeError) || err.status !== 404) throw err;
      return null;
    }
  }));
  return checked.filter((replica) => replica !== null);
}

/**
 * Whether judging a key asks the volumes about its files (see addKey and addCopies), by its record
 * as read before the key's lock: so that it waits for a slot of --concurrency before the lock.
 * Reads of small files for their md5 go in batches (HashBatch), which take their own slots.
 */
function asksVolumes(
  request: OperationRequest,
  record: KeyRecord | null,
  item: { found: FoundReplica[]; mayBeRemoved: boolean },
): boolean {
  const batched = request.md5sum && (record === null || record.md5 !== "") &&
    item.found.every((replica) => replica.sizeBytes <= SMALL_FILE_BYTES);
  if (record === null) return (request.md5sum || item.mayBeRemoved) && !batched;
  if (needsSettling(record) || batched) return false;
  return item.found.some((replica) =>
    replica.version === record.version && !record.volumes.includes(replica.location)
  );
}

/**
 * A key found with no record: it becomes live where its files are, if they agree. With
 * --md5sum=false no file is read: the listing is trusted unless the key's record was removed
 * since the walk began (`mayBeRemoved`), as only the removal of a record removes a key's files
 * behind a listing; such a key's files are asked for again. `slot` is given back once they are.
 */
async function addKey(
  ctx: OperationContext,
  request: OperationRequest,
  run: OperationRun,
  batches: { records: RecordBatch; hashes: HashBatch },
  item: { key: string; found: FoundReplica[]; mayBeRemoved: boolean; slot: Disposable | null },
): Promise<void> {
  const { key } = item;
  const version = currentVersion(item.found);
  const found = item.found.filter((replica) => replica.version === version);
  let still = found;
  try {
    // Files of different lengths are a conflict already: not worth reading.
    const rehash = request.md5sum && new Set(found.map((r) => r.sizeBytes)).size === 1;
    if (rehash || item.mayBeRemoved) {
      const path = versionPath(keyToPath(key), version);
      still = await recheck(ctx.volumes, batches.hashes, path, found, rehash);
    }
  } catch (err) {
    if (!(err instanceof VolumeError)) throw err;
    await run.outcome("failed", { key, detail: firstLine(err) });
    return;
  } finally {
    item.slot?.[Symbol.dispose]();
  }
  if (still.length === 0) {
    await run.outcome("gone");
    return;
  }
  const verdict = rebuildVerdict(key, still, request.placement);
  if (!verdict.ok) {
    await run.outcome("conflict", { key, detail: verdict.detail });
    return;
  }
  // The time of a record is the rebuild's own (the volumes' listings give none in a form worth
  // trusting across hosts).
  await batches.records.set(key, {
    state: "live",
    volumes: verdict.volumes,
    md5: verdict.md5,
    ...(version !== undefined && { version }),
    info: { size: still[0].sizeBytes, mtime: Date.now() },
  });
  await run.outcome("added");
}

/**
 * A key found with a live or unlinked record: copies of its value found elsewhere (files of the
 * version it names) join it. Files of other versions are gc's to judge. `slot` is given back once
 * the copies are read.
 */
async function addCopies(
  ctx: OperationContext,
  request: OperationRequest,
  run: OperationRun,
  batches: { records: RecordBatch; hashes: HashBatch },
  item: { key: string; found: FoundReplica[]; record: KeyRecord; slot: Disposable | null },
): Promise<void> {
  const { key, record } = item;
  const elsewhere = item.found.filter((replica) =>
    replica.version === record.version && !record.volumes.includes(replica.location)
  );
  if (elsewhere.length === 0) {
    await run.outcome("unchanged");
    return;
  }
  let still: FoundReplica[];
  try {
    const rehash = request.md5sum && record.md5 !== "";
    still = await recheck(
      ctx.volumes,
      batches.hashes,
      versionPath(keyToPath(key), record.version),
      elsewhere,
      rehash,
    );
  } catch (err) {
    if (!(err instanceof VolumeError)) throw err;
    await run.outcome("failed", { key, detail: firstLine(err) });
    return;
  } finally {
    item.slot?.[Symbol.dispose]();
  }
  const plan = planCopies(key, record, still, request.placement);
  for (const replica of plan.stale) {
    await run.outcome("stale", {
      key,
      location: replica.location,
      detail: "not the recorded value, and the record does not point here; gc removes it",
    });
  }
  for (const replica of plan.unsure) {
    await run.outcome("extra", {
      key,
      location: replica.location,
      detail: "the record has no md5 or size to tell it by; left alone",
    });
  }
  if (plan.added.length === 0) {
    await run.outcome("unchanged");
    return;
  }
  await batches.records.set(key, { ...record, volumes: plan.volumes });
  await run.outcome("updated", { key, detail: `copies added at ${plan.added}` });
}

export const rebuild: OperationFn = async (ctx, request, run, signal) => {
  // Keys come in volume order, which would rewrite a key page per key: the pages are built once
  // the walk is done (or has failed), as the rebuild's last step.
  await using _pages = await ctx.store.suspendPages();
  // With --md5sum=false a key's work is its record's alone (see addKey).
  using removals = ctx.store.watchRemovals();
  // Keys are judged many at a time, so that many share the store's reads, and their records are
  // committed in groups (RecordBatch): two groups' worth, one filling while the other commits.
  // Those that ask the volumes take one of --concurrency slots for it, given back before their
  // commit (with one slot held to its commit, commits carried a few records each).
  const volumeSlot = slots(request.concurrency);
  const batches = {
    records: new RecordBatch(ctx.store),
    hashes: new HashBatch(ctx.volumes, request.concurrency),
  };
  const concurrency = Math.max(request.concurrency, 4 * BATCH_RECORDS);
  const walk = { ...request, concurrency };
  await forEachOnVolumes(run, ctx.volumes, walk, signal, async (item) => {
    if ("stray" in item) {
      await run.outcome("ignored", { location: item.stray, detail: "not a key's file" });
      return;
    }
    // The slot is taken before the key's lock, so that a key waiting for one does not hold it.
    const early = { ...item, mayBeRemoved: removals.mayBeRemoved(item.key) };
    using slot = asksVolumes(request, await ctx.store.get(item.key), early)
      ? await volumeSlot()
      : null;
    // Under the key's lock no write, delete or other operation changes its record or its files: the
    // files are read again here (see addKey). A key locked by a write in progress gets its record
    // from that write.
    using lock = ctx.store.lock(item.key);
    if (lock === null) {
      await run.outcome("in-progress", { key: item.key });
      return;
    }
    const record = await ctx.store.get(item.key);
    if (record === null) {
      const mayBeRemoved = removals.mayBeRemoved(item.key);
      await addKey(ctx, request, run, batches, { ...item, mayBeRemoved, slot });
    } else if (!needsSettling(record)) {
      await addCopies(ctx, request, run, batches, { ...item, record, slot });
    } else {
      await run.outcome("interrupted", {
        key: item.key,
        detail: "its record says an interrupted write or delete; gc settles it",
      });
    }
  }, { keyOrder: true, prefetch: (keys) => ctx.store.prefetch(keys) });
};
