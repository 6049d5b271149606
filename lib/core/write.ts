// The one write path of the index (its API, S3 and multipart uploads): a value is streamed to every
// replica under its key's lock and answered once its record is committed. A new key's value, or
// one written over an unlinked value, and the overwrite of a live value (docs/design.md,
// "Overwrites").

import { type KeyPath, keyToPath, versionPath } from "../placement.ts";
import { VolumeError } from "../volumes/mod.ts";
import { settle, settleFirst } from "./cleanup.ts";
import {
  commitWrite,
  keepsMd5,
  logWriteFailure,
  newVersion,
  putReplicas,
  targetsUp,
} from "./commit.ts";
import type { CoreContext, WriteOptions, WriteResult } from "./context.ts";
import { keyBusy, lockKeyWithin } from "./locks.ts";
import type { KeyRecord } from "./record.ts";
import { removeReplaced, retireLater } from "./retire.ts";

/** The key's path on a volume would end in `/`, which no file name can: base64 ending in `/`. */
function storable(path: KeyPath): boolean {
  return !path.endsWith("/");
}

/**
 * Writes a value under its key's lock: streamed to every replica, answered once the record is
 * committed. Refuses a live key unless `overwrite`; the body is always consumed or cancelled.
 */
export async function write(
  ctx: CoreContext,
  key: string,
  body: ReadableStream<Uint8Array> | null,
  options: WriteOptions = {},
): Promise<WriteResult> {
  const allowEmpty = options.allowEmpty === true || options.overwrite === true;
  if (!allowEmpty && (body === null || options.sizeBytes === 0)) {
    await body?.cancel();
    return { ok: false, status: 411, reason: "a value needs a body" };
  }
  body ??= new Blob([]).stream();
  const path = keyToPath(key);
  if (!storable(path)) {
    await body.cancel();
    return {
      ok: false,
      status: 400,
      reason: "key cannot be stored: its base64 form ends in / (minikeyvalue layout)",
    };
  }
  using lock = await lockKeyWithin(ctx, key, options.lockWaitMs ?? 0);
  if (lock === null) {
    await body.cancel();
    return keyBusy(key, options.lockWaitMs);
  }
  ctx.metrics.writeStarted();
  ctx.trace?.begin(key, "PUT");
  try {
    const writing = writeLocked(ctx, key, path, body, { ...options, allowEmpty });
    ctx.writes.add(writing);
    const result = await writing.finally(() => ctx.writes.delete(writing));
    ctx.trace?.end(key, result.ok ? 201 : result.status);
    return result;
  } finally {
    ctx.metrics.writeEnded();
  }
}

async function writeLocked(
  ctx: CoreContext,
  key: string,
  path: KeyPath,
  body: ReadableStream<Uint8Array>,
  options: WriteOptions,
): Promise<WriteResult> {
  const found = await settleFirst(ctx, key, path, await ctx.store.get(key));
  ctx.trace?.mark(key, "read");
  if (!found.ok) {
    await body.cancel();
    return found;
  }
  const old = found.record;
  const unmet = options.precondition?.(old?.state === "live" ? old : null) ?? null;
  if (unmet !== null) {
    await body.cancel();
    return { ok: false, ...unmet };
  }
  if (old !== null && old.state === "live") {
    if (options.overwrite && !ctx.options.protect) {
      return await overwrite(ctx, key, path, old, body, options);
    }
    await body.cancel();
    return {
      ok: false,
      status: 403,
      reason: ctx.options.protect && options.overwrite
        ? `key ${key} is protected (--protect): UNLINK it before replacing it`
        : `key ${key} exists; DELETE it first`,
    };
  }
  const where = await targetsUp(ctx, key, body);
  if ("status" in where) return where;
  const { placement, targets } = where;
  // A new key's value goes to its plain file, minikeyvalue's. One written over an unlinked
  // value goes to a new version's file: the unlinked value is kept, whole, in the record and on
  // its volumes until the new one is committed, so that a write that fails gives it back.
  const writing: KeyRecord = old === null ? { state: "writing", volumes: targets, md5: "" } : {
    state: "writing",
    volumes: targets,
    md5: "",
    version: newVersion(ctx, old.version),
    previous: old,
  };
  await ctx.store.set(key, writing);
  ctx.trace?.mark(key, "commit writing");
  ctx.verified.delete(key);
  const put = await putReplicas(ctx, targets, versionPath(path, writing.version), body, {
    sizeBytes: options.sizeBytes,
    md5: keepsMd5(ctx, options),
    undo: async (err) => {
      if (err instanceof VolumeError) logWriteFailure(key, err);
      await settle(ctx, key, path, writing);
    },
  });
  if (!put.ok) return put;
  ctx.trace?.mark(key, "volumes");
  if (put.result.sizeBytes === 0 && !options.allowEmpty) {
    await settle(ctx, key, path, writing);
    return { ok: false, status: 411, reason: "a value needs a body" };
  }
  const committed = await commitWrite(ctx, key, path, { placement, writing }, put.result, options);
  // No reader sees an unlinked value: its files go at once.
  if (old !== null) await removeReplaced(ctx, key, path, old, committed.record);
  return committed;
}

/**
 * Replaces a live value (docs/design.md, "Overwrites"). The new value goes to a new version's
 * file, which no reader and no committed value points at: first the record names it as the live
 * value's overwrite in progress (the old value stays live for readers), then the value streams to
 * it on every target, then the live record names it, and only then, once a read already sent to
 * the old files has had time to start, are those removed (retireLater). A crash at any instant
 * leaves the old value or the new one, each whole; a failed or cut-off upload removes the new
 * files and gives the old record back, untouched.
 */
async function overwrite(
  ctx: CoreContext,
  key: string,
  path: KeyPath,
  old: KeyRecord,
  body: ReadableStream<Uint8Array>,
  options: WriteOptions,
): Promise<WriteResult> {
  const where = await targetsUp(ctx, key, body);
  if ("status" in where) return where;
  const { placement, targets } = where;
  const writing: KeyRecord = {
    state: "writing",
    volumes: targets,
    md5: "",
    version: newVersion(ctx, old.version),
  };
  const pending: KeyRecord = { ...old, next: writing };
  await ctx.store.set(key, pending);
  ctx.trace?.mark(key, "commit writing");
  const put = await putReplicas(ctx, targets, versionPath(path, writing.version), body, {
    sizeBytes: options.sizeBytes,
    md5: keepsMd5(ctx, options),
    undo: async (err) => {
      if (err instanceof VolumeError) logWriteFailure(key, err);
      await settle(ctx, key, path, pending);
    },
  });
  if (!put.ok) return put;
  ctx.trace?.mark(key, "volumes");
  const committed = await commitWrite(ctx, key, path, { placement, writing }, put.result, options);
  retireLater(ctx, key, path, old);
  return committed;
}
