// The index's side of a miss: a volume started with `--index` sends a client whose GET or HEAD
// found no file back to the index (`/-/miss/PATH?volume=HOST`, lib/nginx/volumeconf.ts). The path
// is mapped back to its key; the key's live replicas are checked (nothing a volume says is
// trusted: the request comes from any client), and the client is sent to one that holds the file,
// or answered 404 (no live record) or 410 (on no live volume). A replica found without its file
// is logged (at most once a second per volume), so that operators know; verify repairs it. Never
// a loop: the index redirects only to a replica it has just seen holding the file.

import { logEvent } from "../events.ts";
import { locationHost, parseFilePath } from "../placement.ts";
import { VolumeError } from "../volumes/mod.ts";
import type { CoreContext, Located } from "./context.ts";
import { redirectParts, setVerified } from "./locate.ts";

/**
 * At most one `replica_missing` event per volume per this long; the others are counted into the
 * next one (`suppressed`). A volume back with an empty disk would otherwise log each GET sent to it.
 */
const MISSING_EVENT_INTERVAL_MS = 1_000;

/** Per core, per volume host: when its last `replica_missing` was logged, and those left out since. */
const missingLogged = new WeakMap<CoreContext, Map<string, { atMs: number; suppressed: number }>>();

/** Logs that the replica at `location` lacks the key's file, within MISSING_EVENT_INTERVAL_MS. */
function logMissing(
  ctx: CoreContext,
  fields: { location: string; key: string; path: string; reporter: string },
): void {
  const host = locationHost(fields.location);
  let hosts = missingLogged.get(ctx);
  if (hosts === undefined) {
    hosts = new Map();
    missingLogged.set(ctx, hosts);
  }
  const last = hosts.get(host);
  const now = Date.now();
  if (last !== undefined && now - last.atMs < MISSING_EVENT_INTERVAL_MS) {
    last.suppressed++;
    return;
  }
  const suppressed = last?.suppressed ?? 0;
  hosts.set(host, { atMs: now, suppressed: 0 });
  const more = suppressed === 0 ? "" : ` (and ${suppressed} more since its last such event)`;
  logEvent("replica_missing", {
    msg: `volume ${host}: lost the file of key ${fields.key} (${fields.path})${more}; ` +
      `verify repairs it`,
    volume: host,
    location: fields.location,
    key: fields.key,
    path: fields.path,
    reportedBy: fields.reporter,
    suppressed,
  });
}

/** A file's path as a volume sees it: its subvolume's directory, if any, then the key's file. */
const VOLUME_PATH = /^(\/sv[0-9A-F]{2})?(\/.+)$/;

/** The key whose file is at `volumePath` (`/svXX` included, as the volume sees it), or null. */
export function missedKey(volumePath: string): string | null {
  const match = volumePath.match(VOLUME_PATH);
  if (match === null) return null;
  return parseFilePath(match[2])?.key ?? null;
}

/**
 * Where a client that a volume sent back (`reporter`, the volume as the client named it) reads
 * the file at `volumePath`: a live replica just seen holding it, another than the reporter's if
 * there is one; 404 if the path is no key's or the key has no live record, 410 if no live
 * replica holds it.
 */
export async function locateMiss(
  ctx: CoreContext,
  volumePath: string,
  reporter: string,
): Promise<Located> {
  const key = missedKey(volumePath);
  if (key === null) return { ok: false, status: 404, reason: `${volumePath} is no key's file` };
  const record = await ctx.store.get(key);
  if (record === null || record.state !== "live") {
    return { ok: false, status: 404, reason: `key ${key} not found` };
  }
  let live = record.volumes.filter((v) => ctx.volumes.isAlive(v));
  if (live.length === 0) {
    await ctx.volumes.probed(record.volumes);
    live = record.volumes.filter((v) => ctx.volumes.isAlive(v));
  }
  const path = redirectParts(ctx, key, record).path;
  const checks = await Promise.all(live.map(async (location) => {
    try {
      return await ctx.volumes.has(location, path) ? "present" : "missing";
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      return "unknown";
    }
  }));
  const holders = live.filter((_, i) => checks[i] === "present");
  for (const [i, location] of live.entries()) {
    if (checks[i] === "missing") logMissing(ctx, { location, key, path, reporter });
  }
  if (holders.length === 0) {
    return {
      ok: false,
      status: 410,
      reason: `key ${key}: not found on any live volume (${record.volumes.join(",")})`,
    };
  }
  setVerified(ctx, key, holders);
  const others = holders.filter((location) => locationHost(location) !== reporter);
  const pool = others.length > 0 ? others : holders;
  return { ok: true, record, location: pool[Math.floor(Math.random() * pool.length)], path };
}
