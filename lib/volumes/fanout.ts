// Writes of a value to all its replicas at once, with backpressure: a small value of known size
// is read whole and sent to every replica together; any other is streamed, each chunk read into
// one reused buffer and written to every replica's socket (lib/volumes/upload.ts) before the next
// is read, so that memory stays at one chunk whatever the value's size. A replica that stops
// taking bytes is given up when its volume fails its probe, or after WRITE_STALL_MS.

import { Md5 } from "../md5.ts";
import { type KeyPath, locationHost } from "../placement.ts";
import { describe, reason, UploadError, VolumeError } from "./errors.ts";
import type { Health } from "./health.ts";
import type { Http1Pool } from "./http1.ts";
import { target } from "./protocol.ts";
import type { DiskFigures } from "./statusvolume.ts";
import { Upload, WRITE_STALL_MS } from "./upload.ts";

/** Values up to this size (with a Content-Length) are read whole, then sent to the replicas. */
const SMALL_VALUE_BYTES = 256 * 1024;
/** Bytes read from the client per chunk of a streamed value. */
const CHUNK_BYTES = 256 * 1024;
/** How often a streamed write checks that its replicas' volumes can still take it. */
const WATCHDOG_INTERVAL_MS = 250;

export interface PutResult {
  /** The value's lower-case hex md5, or "" when not asked for (FanoutWrite.md5). */
  md5: string;
  sizeBytes: number;
}

/** A value to write: every replica's location, the key's file, the body and its length if known. */
export interface FanoutWrite {
  locations: string[];
  path: KeyPath;
  body: ReadableStream<Uint8Array>;
  /** The body's length (its Content-Length); undefined if unknown. */
  sizeBytes: number | undefined;
  /**
   * Whether to compute the value's md5: false skips it (about a third of the index's CPU per
   * MiB written) where nothing keeps it, as minikeyvalue's --md5sum=false does.
   */
  md5: boolean;
}

/** What a write to all replicas needs of the client (lib/volumes/client.ts). */
export interface FanoutContext {
  timeoutMs: number;
  pool: Http1Pool;
  health: Health;
  /** A volume's disk figures as last read (lib/volumes/figures.ts). */
  diskOf(host: string): DiskFigures | undefined;
  /** The request target for `method` on `path`, signed if the volumes want it. */
  signed(method: string, path: string): string;
  /** A short request to a volume (Volumes' own): its status if in `accept`, else VolumeError. */
  ask(
    location: string,
    method: string,
    path: string,
    options: { accept: number[]; body?: Uint8Array; timeoutMs?: number },
  ): Promise<number>;
}

/**
 * Writes `body` to the key's file at every location at once and returns its md5 and size. On any
 * failure every upload is cut off (nginx then discards its partial temp file) and the first cause
 * is thrown: UploadError if the client's body broke, VolumeError otherwise.
 */
export async function fanOut(ctx: FanoutContext, write: FanoutWrite): Promise<PutResult> {
  const sizeBytes = write.sizeBytes;
  try {
    if (sizeBytes !== undefined && sizeBytes <= SMALL_VALUE_BYTES) {
      return await putSmall(ctx, write, sizeBytes);
    }
    return await putStream(ctx, write);
  } catch (err) {
    throw await fullOr(ctx, err, write);
  }
}

/**
 * `err`, or for a volume that refused a PUT with an error status and either is found full when
 * probed at once (its write probe) or, by its last disk figures, has less free space than the
 * value, a VolumeError with status 507 that says so: the answer a client gets for a write a
 * volume has no room for, rather than a 503 that suggests trying again soon.
 */
async function fullOr(ctx: FanoutContext, err: unknown, write: FanoutWrite): Promise<unknown> {
  const { path, sizeBytes } = write;
  if (!(err instanceof VolumeError) || err.status === null || err.status < 500) return err;
  if (ctx.health.health(err.volume) === "up") await ctx.health.probeWrite(err.volume);
  const disk = ctx.diskOf(err.volume);
  const why = ctx.health.health(err.volume) === "full"
    ? "volume full"
    : sizeBytes !== undefined && disk !== undefined && disk.freeBytes < sizeBytes
    ? `not enough space: ${sizeBytes} bytes, ${disk.freeBytes} free`
    : null;
  if (why === null) return err;
  return new VolumeError(
    err.volume,
    507,
    describe(err.volume, "PUT", path, `${why} (status ${err.status})`),
  );
}

async function putSmall(
  ctx: FanoutContext,
  write: FanoutWrite,
  sizeBytes: number,
): Promise<PutResult> {
  const { locations, path, body } = write;
  let value: Uint8Array;
  try {
    value = new Uint8Array(await new Response(body).arrayBuffer());
  } catch (err) {
    throw new UploadError(`upload interrupted: ${reason(err)}`);
  }
  if (value.length !== sizeBytes) {
    throw new UploadError(`upload ended after ${value.length} of ${sizeBytes} bytes`);
  }
  const results = await Promise.allSettled(
    locations.map((location) =>
      ctx.ask(location, "PUT", path, {
        accept: [201, 204],
        body: value,
        timeoutMs: Math.max(ctx.timeoutMs, WRITE_STALL_MS),
      })
    ),
  );
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return { md5: write.md5 ? new Md5().update(value).hex() : "", sizeBytes };
}

async function putStream(ctx: FanoutContext, write: FanoutWrite): Promise<PutResult> {
  const { locations, path, body, sizeBytes } = write;
  const uploads = locations.map((location) =>
    new Upload({
      location,
      path,
      target: ctx.signed("PUT", target(location, path).path),
      sizeBytes,
      timeoutMs: ctx.timeoutMs,
      pool: ctx.pool,
    })
  );
  let firstError: Error | null = null;
  const fail = (err: Error) => {
    firstError ??= err;
    for (const upload of uploads) upload.abort();
  };
  const hash = write.md5 ? new Md5() : null;
  let total = 0;
  let lastProgressMs = Date.now();
  // A replica that stops taking bytes is given up when its volume fails its health probe (down,
  // or full), or at the latest after WRITE_STALL_MS without progress.
  const watchdog = setInterval(() => {
    const refused = ctx.health.unwritable(locations);
    if (refused !== undefined) {
      const { location, health } = refused;
      const full = health === "full";
      fail(
        new VolumeError(
          locationHost(location),
          full ? 507 : null,
          describe(location, "PUT", path, `volume ${health}`),
        ),
      );
    } else if (Date.now() - lastProgressMs > WRITE_STALL_MS) {
      const why = `no progress for ${WRITE_STALL_MS / 1000}s`;
      fail(
        new VolumeError(
          locationHost(locations[0]),
          null,
          describe(locations.join(","), "PUT", path, why),
        ),
      );
    }
  }, WATCHDOG_INTERVAL_MS);
  const chunks = readChunks(body);
  try {
    await Promise.all(uploads.map((upload) => upload.open()));
    while (true) {
      let chunk: Uint8Array | null;
      try {
        chunk = await chunks.next();
      } catch (err) {
        throw firstError ?? new UploadError(`upload interrupted: ${reason(err)}`);
      }
      if (firstError) throw firstError;
      if (chunk === null) break;
      hash?.update(chunk);
      total += chunk.length;
      if (sizeBytes !== undefined && total > sizeBytes) {
        throw new UploadError(`upload longer than its Content-Length ${sizeBytes}`);
      }
      await Promise.all(uploads.map((upload) => upload.write(chunk!)));
      chunks.release(chunk);
      lastProgressMs = Date.now();
    }
    if (sizeBytes !== undefined && total !== sizeBytes) {
      throw new UploadError(`upload ended after ${total} of ${sizeBytes} bytes`);
    }
    // Every replica has every byte: each gives its own answer, none is cut off by another's
    // failure (a replica stored whole is no harm: the caller removes it).
    const finished = await Promise.allSettled(uploads.map((upload) => upload.finish()));
    const failed = finished.find((result) => result.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    if (!firstError) {
      fail(
        err instanceof VolumeError || err instanceof UploadError
          ? err
          : await cause(ctx, err, uploads),
      );
    }
    await chunks.cancel();
    const failure = firstError as Error | null;
    if (failure instanceof VolumeError) ctx.health.failed(failure.volume);
    throw firstError;
  } finally {
    clearInterval(watchdog);
  }
  return { md5: hash?.hex() ?? "", sizeBytes: total };
}

/**
 * The VolumeError behind a socket error of one of the uploads: the volume's own answer if it
 * sent one before closing (then it is alive), else a failure that gets the volume probed.
 */
async function cause(ctx: FanoutContext, err: Error, uploads: Upload[]): Promise<VolumeError> {
  const upload = uploads.find((u) => u.failed) ?? uploads[0];
  const status = await upload.answer(ctx.timeoutMs, { whole: false }).catch(() => null);
  if (status === null) ctx.health.probe(locationHost(upload.location));
  const why = status === null ? reason(err) : `status ${status}`;
  return new VolumeError(
    locationHost(upload.location),
    status,
    describe(upload.location, "PUT", upload.path, why),
  );
}

/**
 * The chunks of a body, read with one reused buffer when the stream allows it (request bodies
 * do), so that a streamed gigabyte allocates one chunk, not sixteen thousand.
 */
function readChunks(body: ReadableStream<Uint8Array>) {
  let byob: ReadableStreamBYOBReader | null = null;
  let plain: ReadableStreamDefaultReader<Uint8Array> | null = null;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    plain = body.getReader();
  }
  let buffer = new Uint8Array(CHUNK_BYTES);
  return {
    async next(): Promise<Uint8Array | null> {
      if (byob) {
        const { done, value } = await byob.read(buffer);
        return done ? null : value;
      }
      const { done, value } = await plain!.read();
      return done ? null : value;
    },
    /** Gives back a chunk's buffer once every replica has taken the bytes. */
    release(chunk: Uint8Array): void {
      if (byob) buffer = new Uint8Array(chunk.buffer as ArrayBuffer);
    },
    async cancel(): Promise<void> {
      await (byob ?? plain)!.cancel().catch(() => {});
    },
  };
}
