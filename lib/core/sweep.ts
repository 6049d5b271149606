// The core's work in the background: the sweep of pending records (at start-up, every
// SWEEP_INTERVAL_MS and when a volume comes back) and the reaping of S3 multipart uploads past
// their age, every REAP_INTERVAL_MS, through the hook the front gives.

import { firstLine } from "../errors.ts";
import { logEvent } from "../events.ts";
import { settlePending } from "./cleanup.ts";
import type { CoreContext } from "./context.ts";
import { needsSettling } from "./record.ts";
import { retireNow } from "./retire.ts";

/** How often pending records (deletes and failed writes whose files remain) are swept. */
const SWEEP_INTERVAL_MS = 30_000;
/** How often S3 multipart uploads past --multipart-max-age are looked for. */
const REAP_INTERVAL_MS = 3_600_000;

/** Reaps what is past its age (S3 multipart uploads); resolves to how many it removed. */
export type Reaper = () => Promise<number>;

/** The sweeps and the reaper of one core, and their timers. */
export class Sweeps {
  readonly #ctx: CoreContext;
  #sweeping: Promise<number> | null = null;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #reaping: Promise<unknown> | null = null;
  #reapTimer: ReturnType<typeof setInterval> | undefined;

  constructor(ctx: CoreContext) {
    this.#ctx = ctx;
  }

  /**
   * Settles the records that need it and that no write holds: files of interrupted writes and of
   * deletes are removed, and the value an interrupted write would have replaced (live or
   * unlinked) stays as it was. One at a time. Returns how many were settled; those that cannot
   * be yet stay for the next sweep (or gc).
   */
  sweepPending(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = null;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    const store = this.#ctx.store;
    let settled = 0;
    let left = 0;
    for (const key of store.listPending()) {
      using lock = store.lock(key);
      if (lock === null) continue;
      const record = await store.get(key);
      if (record === null || !needsSettling(record)) continue;
      const result = await settlePending(this.#ctx, key, record);
      if (result.outcome !== "failed") settled++;
      else left++;
    }
    if (settled > 0) {
      logEvent("sweep", {
        msg: `index: sweep settled ${settled} pending records` +
          (left > 0 ? `; ${left} wait for their volumes` : ""),
        settled,
        left,
      });
    }
    return settled;
  }

  /** Sweeps pending records and reaps (with `reap`) now and at their intervals, until `stop`. */
  start(reap: Reaper): void {
    const sweep = () => {
      this.sweepPending().catch((err) => {
        logEvent("sweep_failed", {
          msg: `index: sweep of pending records failed: ${firstLine(err)}`,
          reason: firstLine(err),
        });
      });
    };
    sweep();
    this.#sweepTimer ??= setInterval(sweep, SWEEP_INTERVAL_MS);
    const reaped = () => {
      this.#reaping ??= reap().catch((err) => {
        logEvent("reap_failed", {
          msg: `index: reaping of S3 multipart uploads failed: ${firstLine(err)}`,
          reason: firstLine(err),
        });
      }).finally(() => {
        this.#reaping = null;
      });
    };
    reaped();
    this.#reapTimer ??= setInterval(reaped, REAP_INTERVAL_MS);
  }

  /**
   * Stops the timers; waits for a sweep or a reaping running and for the removals of accepted
   * DELETEs, and removes replaced values now.
   */
  async stop(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    clearInterval(this.#reapTimer);
    this.#reapTimer = undefined;
    await this.#reaping;
    await this.#sweeping?.catch(() => {});
    await Promise.allSettled(this.#ctx.removals.values());
    // Replaced values are removed now rather than after their grace: no redirect is followed
    // once the index stops answering.
    await retireNow(this.#ctx, null);
  }
}
