// The cleanup of a pending record, in one place for the server (a failed PUT, an accepted DELETE,
// the start-up and background sweeps) and for `gc`: remove the files no reader may see, and give
// back the unlinked record that a failed write over it would have replaced, with its files. The
// caller holds the key's lock.

import { type KeyPath, keyToPath } from "./placement.ts";
import type { KeyRecord } from "./record.ts";
import type { Store } from "./store.ts";
import { VolumeError, type Volumes, type WriteOutcome } from "./volumes.ts";

export interface Settled {
  /**
   * `cleaned`: files and record removed. `restored`: the unlinked record is back. `lost`: the
   * unlinked value had been replaced on every replica by the failed write. `failed`: a volume
   * could not be reached or read; the record stays pending, to be tried again.
   */
  outcome: "cleaned" | "restored" | "lost" | "failed";
  detail: string;
}

/**
 * Settles a `writing` or `deleting` record. `written` says where the failed write stored its
 * value and where it may have, or is null when nothing is known (after a crash). A replica of the
 * unlinked value that the write stored over is replaced; one that it may have stored over, or any
 * after a crash, is replaced if its md5 differs from the recorded one, and, with no md5 recorded,
 * counts as intact (a volume stores only whole files, so it holds one value or the other).
 * `path` is the key's file, `keyToPath(key)`, for a caller that has it already.
 */
export async function settlePending(
  ctx: { store: Store; volumes: Volumes },
  key: string,
  record: KeyRecord,
  written: WriteOutcome | null,
  path: KeyPath = keyToPath(key),
): Promise<Settled> {
  const { store, volumes } = ctx;
  const previous = record.previous;
  if (previous === undefined) {
    const failures = await volumes.deleteAll(record.volumes, path);
    if (failures.length > 0) return failed(failures.map((f) => f.message));
    await store.set(key, null);
    return { outcome: "cleaned", detail: `files removed at ${record.volumes}` };
  }
  const replaced = await replacedReplicas(volumes, path, previous, written);
  if (typeof replaced === "string") return failed([replaced]);
  const intact = previous.volumes.filter((location) => !replaced.includes(location));
  let kept = previous.volumes;
  if (replaced.length > 0) {
    const failure = intact.length === 0
      ? "no intact replica"
      : await volumes.copy(path, { sources: intact, targets: replaced, expectedMd5: previous.md5 });
    if (failure !== null) {
      if (intact.length === 0) await volumes.deleteAll(replaced, path);
      kept = intact;
    }
  }
  const extra = record.volumes.filter((location) => !previous.volumes.includes(location));
  const failures = await volumes.deleteAll(extra, path);
  if (failures.length > 0) return failed(failures.map((f) => f.message));
  if (kept.length === 0) {
    await store.set(key, null);
    return {
      outcome: "lost",
      detail: "the failed write had replaced the unlinked value on every replica",
    };
  }
  await store.set(key, { ...previous, volumes: kept });
  return { outcome: "restored", detail: `unlinked again, at ${kept}` };
}

function failed(reasons: string[]): Settled {
  return { outcome: "failed", detail: reasons.join("; ") };
}

/**
 * The replicas of the unlinked value that the failed write may have replaced, or a reason why
 * they cannot be told (a volume that cannot be read).
 */
async function replacedReplicas(
  volumes: Volumes,
  path: KeyPath,
  previous: KeyRecord,
  written: WriteOutcome | null,
): Promise<string[] | string> {
  const replaced = previous.volumes.filter((location) => written?.stored.includes(location));
  const unsure = previous.volumes.filter((location) =>
    written === null || written.uncertain.includes(location)
  );
  if (previous.md5 === "") return replaced;
  for (const location of unsure) {
    try {
      if ((await volumes.hash(location, path)).md5 !== previous.md5) replaced.push(location);
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      if (err.status !== 404) return err.message;
      replaced.push(location);
    }
  }
  return replaced;
}
