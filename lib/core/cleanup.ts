// The cleanup of a record that needs settling, in one place for the server (a failed PUT, an
// accepted DELETE, the start-up and background sweeps) and for `gc`: remove the files no reader
// may see, and give back the value a failed write would have replaced (a live one under an
// interrupted overwrite, an unlinked one under an interrupted PUT), with its files. Nothing is
// ever written over a file a record names (lib/placement.ts, versionPath), so giving back is only
// committing the old record again. The caller holds the key's lock.

import { logEvent } from "../events.ts";
import { type KeyPath, keyToPath, versionPath } from "../placement.ts";
import type { CoreContext, WriteResult } from "./context.ts";
import { type KeyRecord, namesFile, needsSettling } from "./record.ts";

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
  ctx: Pick<CoreContext, "store" | "volumes">,
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

/**
 * Settles a record that needs it under its key's lock; what cannot be done now (a volume down)
 * stays for the sweep.
 */
export async function settle(
  ctx: CoreContext,
  key: string,
  path: KeyPath,
  record: KeyRecord,
): Promise<Settled> {
  const settled = await settlePending(ctx, key, record, path);
  if (settled.outcome === "failed") {
    logEvent("settle_failed", {
      msg: `index: key ${JSON.stringify(key)}: failed: ${settled.detail}`,
      key,
      reason: settled.detail,
    });
  }
  return settled;
}

/**
 * The key's record once what an earlier write or delete left behind (after a crash, or with a
 * volume down) is settled, so that a new record never has to name those files too; or the 503
 * if a volume cannot settle it now. The caller holds the key's lock.
 */
export async function settleFirst(
  ctx: CoreContext,
  key: string,
  path: KeyPath,
  record: KeyRecord | null,
): Promise<{ ok: true; record: KeyRecord | null } | WriteResult & { ok: false }> {
  if (record === null || !needsSettling(record)) return { ok: true, record };
  const settled = await settle(ctx, key, path, record);
  if (settled.outcome === "failed") {
    return {
      ok: false,
      status: 503,
      reason: `key ${key}: an earlier write or delete is not cleaned up: ${settled.detail}`,
    };
  }
  return { ok: true, record: await ctx.store.get(key) };
}
