// gc: removes files that no key points to (left by failed writes and deletes, and the old versions
// of overwritten values) and settles interrupted writes (`writing` records whose write is not in
// progress, live records whose overwrite is) and deletes whose files remain. A file is a version
// of a key's value (lib/placement.ts, versionPath): it is kept if the key's record, or the write
// or the unlinked value the record keeps, names that version at that location. A write in
// progress holds its key's lock and is never touched; --dry-run only lists. Files whose names are
// not keys are reported and left alone.

import { settlePending } from "../cleanup.ts";
import { firstLine } from "../errors.ts";
import { keyToPath, versionPath } from "../placement.ts";
import { type KeyRecord, namesFile, needsSettling } from "../record.ts";
import { VolumeError } from "../volumes.ts";
import { type OperationFn, track } from "./runner.ts";
import { forEachOnVolumes, type FoundReplica } from "./walk.ts";

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
  await forEachOnVolumes(run, volumes, request, signal, async (item) => {
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
    // Holding the key's lock, no write can start placing files while they are judged.
    using lock = store.lock(key);
    if (lock === null) {
      await run.outcome("in-progress", { key });
      return;
    }
    const orphans = orphansOf(await store.get(key), found);
    const path = keyToPath(key);
    for (let i = orphans.length; i < found.length; i++) await run.outcome("kept");
    for (const { location, version } of orphans) {
      if (request.dryRun) {
        const which = version === undefined ? "" : ` to version ${version}`;
        await run.outcome("orphan", { key, location, detail: `no record points here${which}` });
        continue;
      }
      try {
        await volumes.delete(location, versionPath(path, version));
        await run.outcome("removed", { key, location, detail: "no record pointed here" });
      } catch (err) {
        if (!(err instanceof VolumeError)) throw err;
        await run.outcome("failed", { key, location, detail: firstLine(err) });
      }
    }
  });
};
