// gc: removes files that no key points to (left by failed writes and deletes, and the old versions
// of overwritten values) and settles interrupted writes (`writing` records whose write is not in
// progress, live records whose overwrite is) and deletes whose files remain. A file is a version of
// a key's value (lib/placement.ts, versionPath): it is kept if the key's record, or the write or
// the unlinked value the record keeps, names that version at that location. Any other file is
// removed only when it is not a copy of its key's value: one of the version the key's live or
// unlinked record names that holds that value (by md5, or by length if the record has no md5) is an
// extra copy, reported and kept. Each file is judged under its key's lock, with the record read
// again there; a write in progress holds the lock and is never touched. --dry-run only lists. Files
// whose names are not keys are reported and left alone.

import { firstLine } from "../errors.ts";
import { keyToPath, versionPath } from "../placement.ts";
import { isPending, type KeyRecord, namesFile, needsSettling, settlePending } from "../core/mod.ts";
import { VolumeError, type Volumes } from "../volumes/mod.ts";
import {
  limiter,
  type OperationFn,
  type OperationRun,
  RECORD_WORK_AT_ONCE,
  track,
} from "./runner.ts";
import { forEachOnVolumes, type FoundReplica, holdsValue } from "./walk.ts";

/**
 * Whether the key's file `found`, which `record` does not name, is to be kept: a copy of the key's
 * value (of the version the record names: "extra"), a file gone meanwhile, or one that cannot be
 * read ("failed") are reported and kept; false for an orphan. The caller holds the key's lock.
 */
async function keptAsCopy(
  ctx: { volumes: Volumes; run: OperationRun },
  key: string,
  record: KeyRecord | null,
  found: FoundReplica,
): Promise<boolean> {
  if (record === null || isPending(record) || found.version !== record.version) return false;
  const location = found.location;
  let file: FoundReplica;
  try {
    file = {
      ...found,
      ...await ctx.volumes.hash(location, versionPath(keyToPath(key), found.version)),
    };
  } catch (err) {
    if (!(err instanceof VolumeError)) throw err;
    if (err.status === 404) await ctx.run.outcome("gone");
    else await ctx.run.outcome("failed", { key, location, detail: firstLine(err) });
    return true;
  }
  const holds = holdsValue(record, file);
  if (holds === false) return false;
  await ctx.run.outcome("extra", {
    key,
    location,
    detail: holds === true
      ? "a copy of the key's value that its record does not name; kept (rebuild adds it)"
      : "its record has no md5 or size to tell a copy by; kept",
  });
  return true;
}

export const gc: OperationFn = async (ctx, request, run, signal) => {
  const { store, volumes } = ctx;
  // Pending records first (interrupted writes, deletes whose files remain): their records name
  // every place their files may be.
  for (const key of store.listPending()) {
    if (signal.aborted) return;
    using lock = store.lock(key);
    if (lock === null) {
      await run.outcome("in-progress", { key });
      continue;
    }
    const record = await store.get(key);
    if (record === null || !needsSettling(record)) continue;
    const doomed = record.next ?? record;
    track(volumes, doomed.volumes);
    const what = record.next !== undefined
      ? "an interrupted overwrite"
      : record.state === "writing"
      ? "an interrupted write"
      : "a delete";
    if (request.dryRun) {
      await run.outcome("interrupted", { key, detail: `${what}, files at ${doomed.volumes}` });
      continue;
    }
    const settled = await settlePending(ctx, key, record);
    await run.outcome(settled.outcome, { key, detail: `${what}: ${settled.detail}` });
  }
  const orphansOf = (record: KeyRecord | null, found: FoundReplica[]) =>
    found.filter((file) => !namesFile(record, file));
  // Most keys' work is the read of their record, read with its neighbours' in key order
  // (Store.prefetch); the removal of orphans, --concurrency at once.
  const onVolumes = limiter(request.concurrency);
  const concurrency = Math.max(request.concurrency, RECORD_WORK_AT_ONCE);
  const walk = { ...request, concurrency };
  await forEachOnVolumes(run, volumes, walk, signal, async (item) => {
    if ("stray" in item) {
      await run.outcome("ignored", {
        location: item.stray,
        detail: "not a key's file; left alone",
      });
      return;
    }
    const { key, found } = item;
    if (orphansOf(await store.get(key), found).length === 0) {
      for (const _ of found) await run.outcome("kept");
      return;
    }
    await onVolumes(() => collect(key, found));
  }, { keyOrder: true, prefetch: (keys) => store.prefetch(keys) });
  // Holding the key's lock, no write can start placing files while they are judged.
  async function collect(key: string, found: FoundReplica[]): Promise<void> {
    using lock = store.lock(key);
    if (lock === null) {
      await run.outcome("in-progress", { key });
      return;
    }
    const record = await store.get(key);
    // A value an overwrite just replaced is the server's to remove, once readers sent to it have
    // had their grace: removing it now could fail a read already redirected there.
    const orphans = ctx.retiring?.(key) ? [] : orphansOf(record, found);
    const path = keyToPath(key);
    for (let i = orphans.length; i < found.length; i++) await run.outcome("kept");
    for (const file of orphans) {
      if (await keptAsCopy({ volumes, run }, key, record, file)) continue;
      const { location, version } = file;
      const which = version === undefined ? "" : ` to version ${version}`;
      const why = record === null || version !== record.version
        ? `no record points here${which}`
        : "its record points elsewhere, and it holds another value";
      if (request.dryRun) {
        await run.outcome("orphan", { key, location, detail: why });
        continue;
      }
      try {
        await volumes.delete(location, versionPath(path, version));
        await run.outcome("removed", { key, location, detail: why });
      } catch (err) {
        if (!(err instanceof VolumeError)) throw err;
        await run.outcome("failed", { key, location, detail: firstLine(err) });
      }
    }
  }
};
