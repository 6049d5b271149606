// The steps every write takes, new value or overwrite alike: pick the key's targets under the
// placement, stream the value to each, and commit the live record that names them.

import { logEvent } from "../events.ts";
import {
  type KeyPath,
  keyToVolumes,
  locationHost,
  type Placement,
  versionPath,
} from "../placement.ts";
import { type PutResult, UploadError, VolumeError } from "../volumes/mod.ts";
import type { CoreContext, WriteOptions, WriteResult } from "./context.ts";
import { setVerified } from "./locate.ts";
import { type KeyRecord, nextVersion } from "./record.ts";
import { StoreError } from "./store.ts";

/** The status and reason of a failure of a volume, of the upload, or of the KV. */
export function failureStatus(
  err: VolumeError | UploadError | StoreError,
): { status: number; reason: string } {
  if (err instanceof UploadError) return { status: 400, reason: err.message };
  if (err instanceof StoreError) return { status: 500, reason: err.message };
  return { status: err.status === 507 ? 507 : 503, reason: err.message };
}

/** A write that a volume failed, in the event log (a client's broken upload is not logged). */
export function logWriteFailure(key: string, err: VolumeError): void {
  logEvent("write_failed", {
    msg: `index: key ${JSON.stringify(key)}: write failed: ${err.message}`,
    key,
    volume: err.volume,
    reason: err.message,
  });
}

/** A version for a value written over one of version `after`: newer than any this index made. */
export function newVersion(ctx: CoreContext, after: string | undefined): string {
  ctx.lastVersion = nextVersion(Date.now(), [ctx.lastVersion, after]);
  return ctx.lastVersion;
}

/**
 * The key's targets under the placement, or (the body cancelled) 503 if one is down, 507 if one
 * is full.
 */
export async function targetsUp(
  ctx: CoreContext,
  key: string,
  body: ReadableStream<Uint8Array>,
): Promise<{ placement: Placement; targets: string[] } | WriteResult & { ok: false }> {
  const placement = ctx.options.placement;
  const targets = keyToVolumes(key, placement);
  const refused = ctx.volumes.unwritable(targets);
  if (refused === undefined) return { placement, targets };
  await body.cancel();
  const { location, health } = refused;
  return {
    ok: false,
    status: health === "full" ? 507 : 503,
    reason: `volume ${locationHost(location)}: ${health}; cannot write ${key}`,
  };
}

/**
 * Whether a write's record keeps its value's md5: with --md5sum (minikeyvalue's default), and for
 * every S3 write, whose ETag it is (a multipart part's too) even without.
 */
export function keepsMd5(ctx: CoreContext, options: WriteOptions): boolean {
  return ctx.options.md5sum || options.attributes !== undefined;
}

/**
 * Streams `body` to `file` (a version of the key's file) on every target. On a failure of a
 * volume or of the client's upload, `undo` gets the error, and the failure is the answer.
 */
export async function putReplicas(
  ctx: CoreContext,
  targets: string[],
  file: KeyPath,
  body: ReadableStream<Uint8Array>,
  options: {
    sizeBytes?: number;
    /** Whether the record keeps the value's md5 (keepsMd5): if not, none is computed. */
    md5: boolean;
    undo: (err: VolumeError | UploadError) => Promise<void>;
  },
): Promise<{ ok: true; result: PutResult } | WriteResult & { ok: false }> {
  try {
    const result = await ctx.volumes.putAll(targets, file, body, {
      sizeBytes: options.sizeBytes,
      md5: options.md5,
    });
    return { ok: true, result };
  } catch (err) {
    if (!(err instanceof VolumeError || err instanceof UploadError)) throw err;
    await options.undo(err);
    return { ok: false, ...failureStatus(err) };
  }
}

/** Commits the live record of a value that `writing` names, now written whole on its targets. */
export async function commitWrite(
  ctx: CoreContext,
  key: string,
  path: KeyPath,
  where: { placement: Placement; writing: KeyRecord },
  result: { md5: string; sizeBytes: number },
  options: WriteOptions,
): Promise<WriteResult & { ok: true }> {
  const { placement, writing } = where;
  const targets = writing.volumes;
  const live: KeyRecord = {
    state: "live",
    volumes: targets,
    // S3 answers with the md5 as ETag: kept for S3 writes even without --md5sum.
    md5: keepsMd5(ctx, options) ? result.md5 : "",
    ...(writing.version !== undefined && { version: writing.version }),
    info: { size: result.sizeBytes, mtime: Date.now(), ...options.attributes },
  };
  await ctx.store.set(key, live);
  ctx.trace?.mark(key, "commit live");
  ctx.metrics.bodyReceived(result.sizeBytes);
  // The store hands this very record to the GETs that follow: they redirect without an md5.
  ctx.redirects.set(live, {
    placement,
    path: versionPath(path, live.version),
    volumes: targets.join(","),
    balance: "balanced",
  });
  setVerified(ctx, key, targets);
  return { ok: true, record: live, md5: result.md5, sizeBytes: result.sizeBytes };
}
