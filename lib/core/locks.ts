// The write locks of keys as the core takes them: after an accepted DELETE of the key has removed
// its files, and, for writes that may wait (S3's), polled until a deadline.

import type { CoreContext } from "./context.ts";

/** How often a write that waits for its key's lock (`lockWaitMs`) looks again, at most. */
const LOCK_POLL_MAX_MS = 100;

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
