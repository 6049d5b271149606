// The cleanup of a record that needs settling, in one place for the server (a failed PUT, an
// accepted DELETE, the start-up and background sweeps) and for `gc`: remove the files no reader
// may see, and give back the value a failed write would have replaced (a live one under an
// interrupted overwrite, an unlinked one under an interrupted PUT), with its files. Nothing is
// ever written over a file a record names (lib/placement.ts, versionPath), so giving back is only
// committing the old record again. The caller holds the key's lock.

import { type KeyPath, keyToPath, versionPath } from "../placement.ts";
import { type KeyRecord, namesFile } from "./record.ts";
import type { Store } from "./store.ts";
import type { Volumes } from "../volumes/mod.ts";

export interface Settled {
  /**
   * `cleaned`: files and record removed. `restored`: the value a write would have replaced is
   * back (live or unlinked). `failed`: a volume could not be reached; the record stays as it was,
   * to be tried again.
   */
  outcome: "cleaned" | "restored" | "failed";
  detail: string;
}

/**
 * Settles a record that needs it (needsSettling): removes the files of an interrupted write or of
 * a delete, everywhere the record names, except a file that the record it gives back names (a
 * record left by an earlier version of mkv.ts may name the same file for both), and commits
 * what is left: nothing, the unlinked value, or the live value without its overwrite. `path` is
 * the key's file, `keyToPath(key)`, for a caller that has it already.
 */
export async function settlePending(
  ctx: { store: Store; volumes: Volumes },
  key: string,
  record: KeyRecord,
  path: KeyPath = keyToPath(key),
): Promise<Settled> {
  const { store, volumes } = ctx;
  const { next, previous, ...rest } = record;
  const doomed = next ?? rest;
  const kept = next !== undefined ? rest : previous ?? null;
  const version = doomed.version;
  const locations = doomed.volumes.filter((location) => !namesFile(kept, { version, location }));
  const failures = await volumes.deleteAll(locations, versionPath(path, version));
  if (failures.length > 0) {
    return { outcome: "failed", detail: failures.map((f) => f.message).join("; ") };
  }
  await store.set(key, kept);
  const where = `files removed at ${locations.join(",") || "none"}`;
  if (kept === null) return { outcome: "cleaned", detail: where };
  return { outcome: "restored", detail: `${where}; ${kept.state} again, at ${kept.volumes}` };
}
