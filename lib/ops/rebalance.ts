// rebalance: values to where the placement puts them. For each key not at its place it copies the
// value (streamed) to the new locations, checks the copy's md5, commits the new record, then
// removes the old copies. A key whose copy fails keeps its record and stays readable; it is safe to
// interrupt and run again (it copies over what an interruption left at the new places). The plan
// and the move of one key are the core's (lib/core/rebalance.ts), shared with `REBALANCE /key`.

import { firstLine } from "../errors.ts";
import { isBalanced, recordPath } from "../placement.ts";
import { LEFT_AS_EXTRA, moveReplicas, namesFile, planRebalance } from "../core/mod.ts";
import {
  BUSY_PAUSE_MS,
  BUSY_ROUNDS,
  forEachRecord,
  type OperationContext,
  type OperationFn,
  type OperationRun,
  sleep,
  withLockedRecord,
} from "./runner.ts";

/**
 * Online, the files a rebalance moved away from stay this long after the new record is committed,
 * so that a client following a redirect issued just before the commit still finds the value.
 */
const ONLINE_DELETE_GRACE_MS = 2000;

/**
 * Deletions of files a rebalance moved away from, done after a grace period (online), each under
 * its key's lock and only where the key's record no longer points.
 */
class DelayedDeletes {
  #queue: { key: string; version?: string; locations: string[]; dueMs: number }[] = [];
  #drainer: Promise<void> | null = null;

  constructor(
    readonly ctx: OperationContext,
    readonly run: OperationRun,
    readonly graceMs: number,
    readonly concurrency: number,
  ) {}

  /** Removes the files of `version` of the key's value (undefined: its plain file) later. */
  add(key: string, version: string | undefined, locations: string[]): void {
    this.#queue.push({ key, version, locations, dueMs: Date.now() + this.graceMs });
    this.#drainer ??= this.#drain().finally(() => {
      this.#drainer = null;
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const waitMs = this.#queue[0].dueMs - Date.now();
      if (waitMs > 0) await sleep(waitMs);
      const now = Date.now();
      let n = 0;
      while (n < this.#queue.length && n < this.concurrency && this.#queue[n].dueMs <= now) n++;
      await Promise.all(
        this.#queue.splice(0, n).map(async (item) => {
          try {
            await this.#delete(item);
          } catch (err) {
            // Nothing awaits the drainer until the end: a failure is reported, not thrown.
            await this.run.outcome("cleanup-failed", {
              key: item.key,
              detail: `${firstLine(err)}; the old files at ${item.locations} are ${LEFT_AS_EXTRA}`,
            });
          }
        }),
      );
    }
  }

  async #delete(item: { key: string; version?: string; locations: string[] }): Promise<void> {
    const { store, volumes } = this.ctx;
    let lock = store.lock(item.key);
    for (let round = 0; lock === null && round < BUSY_ROUNDS; round++) {
      await sleep(BUSY_PAUSE_MS);
      lock = store.lock(item.key);
    }
    if (lock === null) {
      await this.run.outcome("cleanup-failed", {
        key: item.key,
        detail:
          `a write kept the key locked; the old files at ${item.locations} are ${LEFT_AS_EXTRA}`,
      });
      return;
    }
    using _held = lock;
    const record = await store.get(item.key);
    const version = item.version;
    const drop = item.locations.filter((location) => !namesFile(record, { version, location }));
    const failures = await volumes.deleteAll(drop, recordPath(item.key, item));
    for (const failure of failures) {
      await this.run.outcome("cleanup-failed", {
        key: item.key,
        detail: `${failure.message}; ${LEFT_AS_EXTRA}`,
      });
    }
  }

  async finish(): Promise<void> {
    while (this.#drainer !== null) await this.#drainer;
  }
}

export const rebalance: OperationFn = async (ctx, request, run, signal) => {
  const { store, volumes } = ctx;
  const placement = request.placement;
  if (!request.dryRun) {
    // New PUTs go to the new placement from now on, so that none lands where it is not wanted.
    // It resolves once the writes under way (placed the old way) are committed, so that the
    // listing below sees them.
    await ctx.setPlacement?.(placement);
    volumes.track(placement.volumes);
  }
  const online = ctx.setPlacement !== undefined;
  const deletes = new DelayedDeletes(
    ctx,
    run,
    online ? ONLINE_DELETE_GRACE_MS : 0,
    request.concurrency,
  );
  await forEachRecord(run, store, request, signal, async ([key, listed]) => {
    if (isBalanced(key, listed.volumes, placement)) {
      await run.outcome("balanced");
      return "done";
    }
    let deleteFrom: string[] = [];
    let version: string | undefined;
    const result = await withLockedRecord(store, run, key, async (record) => {
      const plan = planRebalance(key, record, placement);
      if (plan.balanced) {
        await run.outcome("balanced");
        return;
      }
      if (request.dryRun) {
        await run.outcome("would-move", {
          key,
          detail: `${record.volumes.join(",")} -> ${plan.targets.join(",")}`,
        });
        return;
      }
      const moved = await moveReplicas(ctx, key, record, plan);
      if (!moved.ok) {
        await run.outcome("failed", { key, detail: moved.detail });
        return;
      }
      deleteFrom = moved.deleteFrom;
      version = record.version;
      await run.outcome("moved");
    });
    if (deleteFrom.length > 0) deletes.add(key, version, deleteFrom);
    return result;
  });
  await deletes.finish();
};
