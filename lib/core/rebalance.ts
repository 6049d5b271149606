// The rebalance of one key: its replicas moved to where the placement puts them. The plan and the
// move are shared by `REBALANCE /key` and the rebalance operation (lib/ops/rebalance.ts), which
// runs them over every key.

import { firstLine } from "../errors.ts";
import {
  isBalanced,
  keyToVolumes,
  locationHost,
  type Placement,
  recordPath,
} from "../placement.ts";
import { VolumeError } from "../volumes/mod.ts";
import type { CoreContext, KeyResult } from "./context.ts";
import { keyBusy, lockKey } from "./locks.ts";
import { isPending, type KeyRecord } from "./record.ts";

/**
 * What becomes of old copies that could not be removed: they hold the value, so gc keeps them as
 * extra copies; a rebuild adds them to the record, and a rebalance then removes them.
 */
export const LEFT_AS_EXTRA = "left as extra copies (a rebuild then a rebalance removes them)";

export interface RebalancePlan {
  balanced: boolean;
  /** Where the replicas go, in placement order. */
  targets: string[];
  /** Targets that lack the value (not in the record): copied to before the commit. */
  copyTo: string[];
  /** Record locations not among the targets: deleted after the commit. */
  deleteFrom: string[];
}

/** What a rebalance does to one key's record. */
export function planRebalance(key: string, record: KeyRecord, placement: Placement): RebalancePlan {
  const targets = keyToVolumes(key, placement);
  return {
    balanced: isBalanced(key, record.volumes, placement),
    targets,
    copyTo: targets.filter((location) => !record.volumes.includes(location)),
    deleteFrom: record.volumes.filter((location) => !targets.includes(location)),
  };
}

/**
 * Moves a key's replicas to `plan.targets` (the caller holds the key's lock): copies the value to
 * the targets that lack it (or whose file is missing), checks the copies, and commits the record
 * that points at the targets. Returns the locations to delete from once no reader is redirected
 * there, or why nothing changed. Shared by the rebalance operation and `REBALANCE /key`.
 */
export async function moveReplicas(
  ctx: Pick<CoreContext, "store" | "volumes">,
  key: string,
  record: KeyRecord,
  plan: RebalancePlan,
): Promise<{ ok: true; deleteFrom: string[] } | { ok: false; detail: string }> {
  const { store, volumes } = ctx;
  volumes.track(record.volumes.map(locationHost));
  const path = recordPath(key, record);
  // A target the record already names counts only if its file is there: a replica lost behind
  // the index's back is copied again, so that old copies are never removed while the new set is
  // short of one.
  const missing: string[] = [];
  for (const location of plan.targets.filter((target) => !plan.copyTo.includes(target))) {
    try {
      if (!await volumes.has(location, path)) missing.push(location);
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      return { ok: false, detail: `kept at ${record.volumes}: ${firstLine(err)}` };
    }
  }
  const copyTo = [...plan.copyTo, ...missing];
  if (copyTo.length > 0) {
    const sources = record.volumes.filter((location) => !missing.includes(location)).sort(
      (a, b) => Number(volumes.isAlive(b)) - Number(volumes.isAlive(a)),
    );
    const failed = await volumes.copy(path, {
      sources,
      targets: copyTo,
      expectedMd5: record.md5,
    });
    if (failed !== null) return { ok: false, detail: `kept at ${record.volumes}: ${failed}` };
  }
  await store.set(key, { ...record, volumes: plan.targets });
  return { ok: true, deleteFrom: plan.deleteFrom };
}

/**
 * `REBALANCE /key` (minikeyvalue's): moves the key's replicas to where the current placement
 * puts them, under its lock, as the rebalance operation does for every key (moveReplicas);
 * done once the new record is committed and the old copies removed, 404 if absent.
 */
export async function rebalanceKey(ctx: CoreContext, key: string): Promise<KeyResult> {
  using lock = await lockKey(ctx, key);
  if (lock === null) return keyBusy(key);
  const record = await ctx.store.get(key);
  if (record === null || isPending(record)) {
    return { ok: false, status: 404, reason: `key ${key} not found` };
  }
  const plan = planRebalance(key, record, ctx.options.placement);
  if (plan.balanced) return { ok: true };
  const moved = await moveReplicas(ctx, key, record, plan);
  if (!moved.ok) return { ok: false, status: 503, reason: `key ${key}: ${moved.detail}` };
  ctx.verified.delete(key);
  const failures = await ctx.volumes.deleteAll(moved.deleteFrom, recordPath(key, record));
  for (const failure of failures) {
    console.error(`index: REBALANCE ${JSON.stringify(key)}: ${failure.message}; ${LEFT_AS_EXTRA}`);
  }
  return { ok: true };
}
