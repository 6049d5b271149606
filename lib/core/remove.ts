// DELETE and UNLINK of a key: accepted once its record says `deleting` (or `unlinked`), its files
// removed then, in the background for a DELETE, or by the sweep if a volume cannot be reached.

import { firstLine } from "../errors.ts";
import { logEvent } from "../events.ts";
import { keyLocations, type KeyPath, keyToPath, keyToVolumes, recordPath } from "../placement.ts";
import { settle, settleFirst } from "./cleanup.ts";
import type { CoreContext, KeyResult } from "./context.ts";
import { keyBusy, lockKey } from "./locks.ts";
import { isPending, type KeyRecord } from "./record.ts";
import { retireNow } from "./retire.ts";

/** Where a deleted key's file may be besides its record's volumes, to remove it once. */
interface Elsewhere {
  locations: string[];
  path: KeyPath;
}

/**
 * Deletes a key (or with `unlink`, hides it, keeping its files) under its lock: accepted once
 * the record commits, its files removed now or by the sweep. `force` deletes a live key even
 * with --protect (the index's own keys: multipart parts). With `background` (DELETE, S3's
 * DeleteObject) it answers once the record says `deleting` and removes the files after;
 * without, once they are removed (the parts of an aborted or completed multipart upload).
 */
export async function remove(
  ctx: CoreContext,
  key: string,
  options: { unlink?: boolean; force?: boolean; background?: boolean } = {},
): Promise<KeyResult> {
  const lock = await lockKey(ctx, key);
  if (lock === null) return keyBusy(key);
  using held = new DisposableStack();
  held.use(lock);
  const path = keyToPath(key);
  const found = await ctx.store.get(key);
  const absent = { ok: false, status: 404, reason: `key ${key} not found` } as const;
  if (found === null || isPending(found)) return absent;
  // An overwrite interrupted by a crash is undone first: its files go with it.
  const settled = await settleFirst(ctx, key, path, found);
  if (!settled.ok) return settled;
  const record = settled.record;
  if (record === null || isPending(record)) return absent;
  if (options.unlink) {
    if (record.state !== "live") return absent;
    await ctx.store.set(key, { ...record, state: "unlinked" });
    return { ok: true };
  }
  if (ctx.options.protect && record.state === "live" && !options.force) {
    return { ok: false, status: 403, reason: `key ${key} is protected: UNLINK it before DELETE` };
  }
  // A value this one replaced is removed first: then no removal of the key's plain file is
  // left to run after a new value is written there.
  await retireNow(ctx, key);
  // Accepted once this commits: the key is gone for readers, and its files are the store's
  // to remove, now, or by the sweep if a volume cannot be reached (or after a crash). In the
  // background, the answer does not wait for them (bench/NOTES.md, "Write tail latency").
  // They are removed where the record points and where the placement puts the key, so that a
  // copy the record does not name never brings the key back at a rebuild. On the other volumes
  // of the placement (where a rebalance cut short may have left one) they are removed once, as
  // far as those volumes answer: a volume down there never holds the DELETE back.
  const placement = ctx.options.placement;
  const deleting: KeyRecord = {
    state: "deleting",
    volumes: [...new Set([...record.volumes, ...keyToVolumes(key, placement)])],
    md5: record.md5,
    ...(record.version !== undefined && { version: record.version }),
  };
  const elsewhere = keyLocations(key, placement).filter((location) =>
    !deleting.volumes.includes(location) && ctx.volumes.isAlive(location)
  );
  ctx.trace?.begin(key, "DELETE");
  await ctx.store.set(key, deleting);
  ctx.trace?.mark(key, "commit deleting");
  ctx.verified.delete(key);
  const also = { locations: elsewhere, path: recordPath(key, record) };
  if (options.background) removeLater(ctx, key, path, deleting, held.move(), also);
  else await settle(ctx, key, path, deleting).then(() => removeElsewhere(ctx, key, also));
  ctx.trace?.end(key, 204);
  return { ok: true };
}

/**
 * Removes the files and then the record of an accepted DELETE, after its answer, holding the
 * key's lock (`lock`) until done. What fails (a volume down, a commit) leaves the record
 * `deleting` for the sweep, as a crash does.
 */
function removeLater(
  ctx: CoreContext,
  key: string,
  path: KeyPath,
  record: KeyRecord,
  lock: Disposable,
  also: Elsewhere,
): void {
  // No caller is left to hand an error to, and the sweep retries whatever this leaves: every
  // failure is logged.
  const removal = settle(ctx, key, path, record).then(
    () => removeElsewhere(ctx, key, also),
  ).then(() => {}, (err) => {
    const reason = firstLine(err);
    logEvent("settle_failed", {
      msg: `index: key ${JSON.stringify(key)}: removal left for the sweep: ${reason}`,
      key,
      reason,
    });
  }).finally(() => {
    ctx.removals.delete(key);
    lock[Symbol.dispose]();
  });
  ctx.removals.set(key, removal);
}

/**
 * Removes a deleted key's file where neither its record nor the placement's targets put it
 * (see remove): once, whatever a volume answers; a failure is logged and left.
 */
async function removeElsewhere(ctx: CoreContext, key: string, also: Elsewhere): Promise<void> {
  for (const failure of await ctx.volumes.deleteAll(also.locations, also.path)) {
    if (failure.status === 404) continue;
    console.error(`index: key ${JSON.stringify(key)}: ${failure.message}; left as it is`);
  }
}
