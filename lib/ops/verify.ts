// verify: every replica of every key exists; with --md5 each one is read and its md5 compared with
// the recorded one; --repair re-creates missing and corrupt replicas from a good one. A problem is
// only reported once it is confirmed under the key's lock.

import { firstLine } from "../errors.ts";
import { type KeyPath, recordPath } from "../placement.ts";
import type { KeyRecord } from "../core/mod.ts";
import { VolumeError, type Volumes } from "../volumes/mod.ts";
import { forEachRecord, type OperationFn, track, withLockedRecord } from "./runner.ts";

/** What verify saw of one replica: `md5` when it was read. */
export type ReplicaCheck =
  | { location: string; state: "present"; md5?: string }
  | { location: string; state: "missing" }
  | { location: string; state: "unreachable"; detail: string };

export interface ReplicaVerdict {
  /** Replicas holding the right value (any present one when there is no md5 to check). */
  good: string[];
  missing: string[];
  corrupt: string[];
  unreachable: string[];
  /** No md5 is recorded and the replicas read have different ones: no way to tell the good. */
  conflict: boolean;
}

/** Sorts a key's replicas by their state against the record's md5 ("" if none is recorded). */
export function classifyReplicas(expectedMd5: string, checks: ReplicaCheck[]): ReplicaVerdict {
  const verdict: ReplicaVerdict = {
    good: [],
    missing: [],
    corrupt: [],
    unreachable: [],
    conflict: false,
  };
  const readMd5s = new Set<string>();
  for (const check of checks) {
    if (check.state === "missing") verdict.missing.push(check.location);
    else if (check.state === "unreachable") verdict.unreachable.push(check.location);
    else if (expectedMd5 !== "" && check.md5 !== undefined && check.md5 !== expectedMd5) {
      verdict.corrupt.push(check.location);
    } else {
      verdict.good.push(check.location);
      if (check.md5 !== undefined) readMd5s.add(check.md5);
    }
  }
  if (expectedMd5 === "" && readMd5s.size > 1) {
    verdict.conflict = true;
    verdict.good = [];
  }
  return verdict;
}

/** Whether a verdict needs nothing done. */
function allGood(verdict: ReplicaVerdict): boolean {
  return verdict.missing.length === 0 && verdict.corrupt.length === 0 &&
    verdict.unreachable.length === 0 && !verdict.conflict;
}

async function checkReplicas(
  volumes: Volumes,
  path: KeyPath,
  record: KeyRecord,
  readMd5: boolean,
): Promise<ReplicaCheck[]> {
  return await Promise.all(record.volumes.map(async (location): Promise<ReplicaCheck> => {
    try {
      if (!readMd5) {
        return { location, state: await volumes.has(location, path) ? "present" : "missing" };
      }
      return { location, state: "present", md5: (await volumes.hash(location, path)).md5 };
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      if (err.status === 404) return { location, state: "missing" };
      return { location, state: "unreachable", detail: firstLine(err) };
    }
  }));
}

export const verify: OperationFn = async (ctx, request, run, signal) => {
  const { store, volumes } = ctx;
  await forEachRecord(run, store, request, signal, async ([key, listed]) => {
    track(volumes, listed.volumes);
    const first = classifyReplicas(
      listed.md5,
      await checkReplicas(volumes, recordPath(key, listed), listed, request.md5),
    );
    if (allGood(first)) {
      await run.outcome("ok");
      return "done";
    }
    // A problem is confirmed under the key's lock: a DELETE, say, may have changed the record.
    return await withLockedRecord(store, run, key, async (record) => {
      const path = recordPath(key, record);
      const checks = await checkReplicas(volumes, path, record, request.md5);
      const verdict = classifyReplicas(record.md5, checks);
      if (allGood(verdict)) {
        await run.outcome("ok");
        return;
      }
      for (const check of checks) {
        if (check.state === "unreachable") {
          await run.outcome("unreachable", { key, location: check.location, detail: check.detail });
        }
      }
      if (verdict.conflict) {
        const md5s = checks.map((c) => `${c.location} ${c.state === "present" ? c.md5 : c.state}`);
        await run.outcome("conflict", {
          key,
          detail: `no md5 recorded and the replicas differ: ${md5s.join(", ")}`,
        });
        return;
      }
      const bad = [
        ...verdict.missing.map((location) => ({ location, was: "missing" })),
        ...verdict.corrupt.map((location) => ({ location, was: "corrupt" })),
      ];
      if (verdict.good.length === 0 && bad.length > 0) {
        await run.outcome("lost", { key, detail: "no good replica is left" });
      }
      let repaired = false;
      if (request.repair && verdict.good.length > 0 && bad.length > 0) {
        const failure = await volumes.copy(path, {
          sources: verdict.good,
          targets: bad.map((b) => b.location),
          expectedMd5: record.md5,
        });
        repaired = failure === null;
        if (failure !== null) await run.outcome("failed", { key, detail: failure });
      }
      for (const { location, was } of bad) {
        if (repaired) {
          await run.outcome("repaired", { key, location, detail: `was ${was}` });
        } else {
          const detail = was === "corrupt" && record.md5 !== ""
            ? `md5 differs from ${record.md5}`
            : "";
          await run.outcome(was, { key, location, detail });
        }
      }
    });
  });
};
