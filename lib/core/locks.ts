// The write locks of keys as the core takes them: after an accepted DELETE of the key has removed
// its files, and, for writes that may wait (S3's), polled until a deadline.

import type { CoreContext } from "./context.ts";

/** How often a write that waits for its key's lock (`lockWaitMs`) looks again, at most. */
const LOCK_POLL_MAX_MS = 100;

/**
 * The refusal of a request whose key's lock is held (a write or delete in progress): 409, the one
 * wording of it, with how long the request waited if it did.
 */
export function keyBusy(key: string, waitedMs = 0): { ok: false; status: 409; reason: string } {
  const reason = waitedMs > 0
    ? `a write to ${key} is still in progress after ${waitedMs} ms`
    : `a write to ${key} is in progress`;
  return { ok: false, status: 409, reason };
}

/**
 * The key's write lock (null if a write to it is in progress), taken once the removal of an
 * accepted DELETE of the key, if one is finishing, is done: so a PUT right after a DELETE
 * writes its files after the old ones are gone, never to have them removed under it.
 */
export async function lockKey(ctx: CoreContext, key: string): Promise<Disposable | null> {
  const removal = ctx.removals.get(key);
  if (removal !== undefined) await removal;
  return ctx.store.lock(key);
}

/**
 * The key's write lock, waiting up to `waitMs` for the write or delete that holds it to end:
 * null if it still does. Writes that wait take the lock in no set order; each then writes
 * whole, so the last to take it wins.
 */
export async function lockKeyWithin(
  ctx: CoreContext,
  key: string,
  waitMs: number,
): Promise<Disposable | null> {
  const deadlineMs = Date.now() + waitMs;
  for (let pauseMs = 5;; pauseMs = Math.min(pauseMs * 2, LOCK_POLL_MAX_MS)) {
    const lock = await lockKey(ctx, key);
    const leftMs = deadlineMs - Date.now();
    if (lock !== null || leftMs <= 0) return lock;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pauseMs, leftMs)));
  }
}
