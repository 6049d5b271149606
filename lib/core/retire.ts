// The removal of a value's files once a newer value replaced it: at once for an unlinked value,
// after RETIRE_GRACE_MS for a live one that an overwrite replaced (docs/design.md, "Overwrites").

import { firstLine } from "../errors.ts";
import { type KeyPath, versionPath } from "../placement.ts";
import type { CoreContext } from "./context.ts";
import { type KeyRecord, namesFile } from "./record.ts";

/**
 * How long the files of a value that an overwrite replaced stay after the new record is
 * committed, so that a client following a redirect issued just before still finds them.
 */
export const RETIRE_GRACE_MS = 2_000;

/**
 * Removes the files of `old`, a value that `current` replaced, except any that `current` names
 * too (a record left by an earlier version of mkv.ts may name the same file). What cannot be
 * removed now is logged: no record names it, so gc removes it.
 */
export async function removeReplaced(
  ctx: CoreContext,
  key: string,
  path: KeyPath,
  old: KeyRecord,
  current: KeyRecord | null,
): Promise<void> {
  const version = old.version;
  const stale = old.volumes.filter((location) => !namesFile(current, { version, location }));
  for (const failure of await ctx.volumes.deleteAll(stale, versionPath(path, version))) {
    console.error(`index: key ${JSON.stringify(key)}: old value left for gc: ${failure.message}`);
  }
}

/**
 * Removes the files of a live value that an overwrite replaced, after RETIRE_GRACE_MS: a client
 * sent there by a redirect just before the commit still finds them (once nginx opened a file, its
 * read goes on after the file is removed). Only where the key's record does not name the same
 * file again. It takes no lock, so that it never makes a write wait or fail: a version is never
 * given to a key again (nextVersion), and the plain file only is again after a DELETE, which
 * runs the key's removals first (retireNow), under its lock. One lost to a crash is left to gc.
 */
export function retireLater(ctx: CoreContext, key: string, path: KeyPath, old: KeyRecord): void {
  let wake = () => {};
  const timer = setTimeout(() => wake(), RETIRE_GRACE_MS);
  const done = new Promise<void>((resolve) => {
    wake = resolve;
  }).then(async () => {
    clearTimeout(timer);
    await removeReplaced(ctx, key, path, old, await ctx.store.get(key));
  }).catch((err) => {
    console.error(`index: key ${JSON.stringify(key)}: old value left for gc: ${firstLine(err)}`);
  }).finally(() => {
    const left = ctx.retiring.get(key)?.filter((retiring) => retiring.done !== done) ?? [];
    if (left.length > 0) ctx.retiring.set(key, left);
    else ctx.retiring.delete(key);
  });
  ctx.retiring.set(key, [...(ctx.retiring.get(key) ?? []), { wake, done }]);
}

/** Runs the key's removals of replaced values now (all keys' if `key` is null); waits for them. */
export async function retireNow(ctx: CoreContext, key: string | null): Promise<void> {
  const retiring = key === null ? [...ctx.retiring.values()].flat() : ctx.retiring.get(key) ?? [];
  for (const { wake } of retiring) wake();
  await Promise.allSettled(retiring.map(({ done }) => done));
}
