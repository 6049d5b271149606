// Where a key is read: its live record and a live replica that holds its file. A volume that
// sends misses back to the index (volume.ts --index, lib/core/miss.ts) is trusted as the record
// says, without a check: a client that finds no file there comes back and is sent to another
// replica. Other volumes (minikeyvalue's, ours without --index) are checked with a HEAD, except
// for replicas seen present (written by a PUT, or found by a check) in the last VERIFIED_TTL_MS,
// so that a hot key costs one check of a volume per period, not one per GET.

import { isBalanced, type KeyPath, recordPath } from "../placement.ts";
import type { KeyRecord } from "./record.ts";
import { VolumeError } from "../volumes/mod.ts";
import type { CoreContext, Located, RedirectParts } from "./context.ts";

/**
 * How long replicas seen present (just written by a PUT, or found by a GET's check) are trusted
 * before a GET checks a volume again. A hot key costs one check per this period, not one per GET;
 * a file lost behind the index's back is noticed (410) within it.
 */
export const VERIFIED_TTL_MS = 2_000;

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * The live replicas of `key` that its record names and that were seen present within
 * VERIFIED_TTL_MS: only these are trusted, so that one replica seen present never vouches for
 * another (which may have come back with an empty disk).
 */
function verifiedLive(ctx: CoreContext, key: string, record: KeyRecord): string[] {
  const seen = ctx.verified.get(key);
  if (seen === undefined || Date.now() - seen.atMs >= VERIFIED_TTL_MS) return [];
  return seen.locations.filter((location) =>
    record.volumes.includes(location) && ctx.volumes.isAlive(location)
  );
}

/** Trusts the key's replicas at `locations` for VERIFIED_TTL_MS from now. */
export function setVerified(ctx: CoreContext, key: string, locations: string[]): void {
  ctx.verified.set(key, { atMs: Date.now(), locations });
}

/** What a redirect to this record needs, computed once per record and placement. */
export function redirectParts(ctx: CoreContext, key: string, record: KeyRecord): RedirectParts {
  let parts = ctx.redirects.get(record);
  const placement = ctx.options.placement;
  if (parts === undefined || parts.placement !== placement) {
    parts = {
      placement,
      path: recordPath(key, record),
      volumes: record.volumes.join(","),
      balance: isBalanced(key, record.volumes, placement) ? "balanced" : "unbalanced",
    };
    ctx.redirects.set(record, parts);
  }
  return parts;
}

/** The first of `locations` that has the key's file; unreachable ones are skipped. */
async function findReplica(
  ctx: CoreContext,
  path: KeyPath,
  locations: string[],
): Promise<string | null> {
  for (const location of locations) {
    try {
      if (await ctx.volumes.has(location, path)) return location;
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
    }
  }
  return null;
}

/**
 * Where a GET of a key reads: its live record and a live replica that holds its file; 404 if
 * absent or unlinked, 410 if on no live volume. A replica seen present in the last
 * VERIFIED_TTL_MS comes first; then, unless `check`, one on a volume that sends misses back
 * (Volumes.sendsMisses), unchecked; then the first live one that a HEAD finds holding it. `check`
 * is for the S3 API's reads, whose bytes the index's nginx proxies: no client would come back.
 */
export async function locate(
  ctx: CoreContext,
  key: string,
  options: { check?: boolean } = {},
): Promise<Located> {
  const record = await ctx.store.get(key);
  if (record === null || record.state !== "live") {
    return { ok: false, status: 404, reason: `key ${key} not found` };
  }
  let live = shuffled(record.volumes.filter((v) => ctx.volumes.isAlive(v)));
  if (live.length === 0) {
    // A volume that closed its sockets is being probed: its answer, in milliseconds, decides.
    await ctx.volumes.probed(record.volumes);
    live = shuffled(record.volumes.filter((v) => ctx.volumes.isAlive(v)));
  }
  if (live.length === 0) {
    return {
      ok: false,
      status: 410,
      reason: `key ${key}: no live volume holds it (${record.volumes.join(",")})`,
    };
  }
  const path = redirectParts(ctx, key, record).path;
  let chosen: string | undefined = shuffled(verifiedLive(ctx, key, record))[0];
  if (chosen === undefined && options.check !== true) {
    chosen = live.find((location) => ctx.volumes.sendsMisses(location));
  }
  if (chosen === undefined) {
    const found = await findReplica(ctx, path, live);
    if (found === null) {
      return {
        ok: false,
        status: 410,
        reason: `key ${key}: not found on any live volume (${record.volumes.join(",")})`,
      };
    }
    chosen = found;
    setVerified(ctx, key, [found]);
  }
  return { ok: true, record, location: chosen, path };
}
