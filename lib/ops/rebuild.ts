// rebuild: the index from the volumes' files. Every key found becomes live on the volumes it sits
// on (placement order first), with its md5 recomputed unless --md5sum=false; keys already unlinked
// stay unlinked. Of a key's versions (lib/placement.ts, versionPath) the current one is the one
// its record names if any file of it is found, else the newest found; the others are left for gc.
// Replicas whose contents differ are a conflict and the key is left out, never merged. It only
// adds and updates records.

import { firstLine } from "../errors.ts";
import {
  type KeyPath,
  keyToPath,
  keyToVolumes,
  locationHost,
  type Placement,
  versionPath,
} from "../placement.ts";
import { type KeyRecord, needsSettling } from "../record.ts";
import { VolumeError, type Volumes } from "../volumes.ts";
import type { OperationFn } from "./runner.ts";
import { forEachOnVolumes, type FoundReplica } from "./walk.ts";

/** Replica locations in placement order: those `keyToVolumes` names first, then the rest sorted. */
export function orderByPlacement(key: string, locations: string[], placement: Placement): string[] {
  const wanted = keyToVolumes(key, placement);
  const present = new Set(locations);
  const first = wanted.filter((location) => present.has(location));
  const rest = [...present].filter((location) => !wanted.includes(location)).sort();
  return [...first, ...rest];
}

/**
 * The version of a key's value that rebuild takes as current among the files found: `named` (the
 * version its record names) if any file of it is there, else the newest (a file without a version
 * is the oldest). Undefined: the plain file.
 */
export function currentVersion(
  found: FoundReplica[],
  named?: { version?: string },
): string | undefined {
  if (named !== undefined && found.some((replica) => replica.version === named.version)) {
    return named.version;
  }
  let newest: string | undefined;
  for (const { version } of found) {
    if (version !== undefined && (newest === undefined || version > newest)) newest = version;
  }
  return newest;
}

export type RebuildVerdict =
  | { ok: true; volumes: string[]; md5: string }
  | { ok: false; detail: string };

/**
 * The record that the replicas found of a key make, or a conflict if their contents differ (in
 * size, or in md5 when read): then none is picked.
 */
export function rebuildVerdict(
  key: string,
  found: FoundReplica[],
  placement: Placement,
): RebuildVerdict {
  const sizes = new Set(found.map((replica) => replica.sizeBytes));
  const md5s = new Set(found.map((replica) => replica.md5 ?? ""));
  if (sizes.size > 1 || md5s.size > 1) {
    const each = found.map((r) =>
      `${r.location} ${r.sizeBytes} bytes${r.md5 ? ` md5 ${r.md5}` : ""}`
    );
    return { ok: false, detail: `replicas differ: ${each.join(", ")}` };
  }
  const volumes = orderByPlacement(key, found.map((replica) => replica.location), placement);
  return { ok: true, volumes, md5: [...md5s][0] };
}

function sameRecord(a: KeyRecord, b: KeyRecord): boolean {
  return a.state === b.state && a.md5 === b.md5 && a.version === b.version &&
    a.volumes.join(",") === b.volumes.join(",");
}

/** The replicas of `found` that are still there; with `rehash`, read again for their md5. */
async function recheck(
  volumes: Volumes,
  path: KeyPath,
  found: FoundReplica[],
  rehash: boolean,
): Promise<FoundReplica[]> {
  const still: FoundReplica[] = [];
  for (const replica of found) {
    if (!rehash) {
      if (await volumes.has(replica.location, path)) still.push(replica);
      continue;
    }
    try {
      still.push({
        location: replica.location,
        ...await volumes.hash(replica.location, path),
      });
    } catch (err) {
      if (!(err instanceof VolumeError) || err.status !== 404) throw err;
    }
  }
  return still;
}

export const rebuild: OperationFn = async (ctx, request, run, signal) => {
  const { store, volumes } = ctx;
  await forEachOnVolumes(run, volumes, request, signal, async (item) => {
    if ("stray" in item) {
      await run.outcome("ignored", { location: item.stray, detail: "not a key's file" });
      return;
    }
    const { key } = item;
    // Which version is current is judged again under the lock, with the record.
    const version = currentVersion(item.found, (await store.get(key)) ?? undefined);
    const found = item.found.filter((replica) => replica.version === version);
    const path = versionPath(keyToPath(key), version);
    if (request.md5sum && new Set(found.map((r) => r.sizeBytes)).size === 1) {
      for (const replica of found) {
        try {
          replica.md5 = (await volumes.hash(replica.location, path)).md5;
        } catch (err) {
          if (!(err instanceof VolumeError)) throw err;
          await run.outcome("failed", {
            key,
            location: replica.location,
            detail: firstLine(err),
          });
          return;
        }
      }
    }
    const verdict = rebuildVerdict(key, found, request.placement);
    if (!verdict.ok) {
      await run.outcome("conflict", { key, detail: verdict.detail });
      return;
    }
    // A key locked by a write in progress gets its record from that write.
    using lock = store.lock(key);
    if (lock === null) {
      await run.outcome("in-progress", { key });
      return;
    }
    const old = await store.get(key);
    // Its replicas on a volume that is down were not walked: the record is left as it is rather
    // than shortened to the replicas seen.
    const unwalked = old?.volumes.find((location) =>
      request.placement.volumes.includes(locationHost(location)) && !volumes.isAlive(location)
    );
    if (unwalked !== undefined) {
      await run.outcome("unreachable", {
        key,
        location: unwalked,
        detail: "its record names a volume that is down; left as it is",
      });
      return;
    }
    if (old !== null && needsSettling(old)) {
      await run.outcome("interrupted", {
        key,
        detail: "its record says an interrupted write; gc removes it",
      });
      return;
    }
    if (old !== null && currentVersion(item.found, old) !== version) {
      await run.outcome("in-progress", {
        key,
        detail: "a write changed its value during the walk",
      });
      return;
    }
    let next: KeyRecord = {
      state: old?.state === "unlinked" ? "unlinked" : "live",
      volumes: verdict.volumes,
      md5: verdict.md5,
      ...(version !== undefined && { version }),
    };
    if (old !== null && sameRecord(old, next)) {
      await run.outcome("unchanged");
      return;
    }
    // The files were seen before the lock was taken: a DELETE may have removed them since, or
    // a DELETE and a PUT replaced them (then the record changed, and they are read again).
    let still: FoundReplica[];
    try {
      still = await recheck(volumes, path, found, old !== null && request.md5sum);
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      await run.outcome("failed", { key, detail: firstLine(err) });
      return;
    }
    if (still.length === 0) {
      await run.outcome("gone");
      return;
    }
    const confirmed = rebuildVerdict(key, still, request.placement);
    if (!confirmed.ok) {
      await run.outcome("conflict", { key, detail: confirmed.detail });
      return;
    }
    // The size is the files'; the time of a record that had none is the rebuild's own (the
    // volumes' listings give none in a form worth trusting across hosts).
    const size = still[0].sizeBytes;
    const info = old?.info?.size === size ? old.info : { size, mtime: Date.now() };
    next = { ...next, volumes: confirmed.volumes, md5: confirmed.md5, info };
    if (old !== null && sameRecord(old, next)) {
      await run.outcome("unchanged");
      return;
    }
    await store.set(key, next);
    await run.outcome(old === null ? "added" : "updated");
  });
};
