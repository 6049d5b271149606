// The index's side of talking to volumes: bounded requests (every one has a timeout), streamed
// writes to all replicas at once with backpressure, and each volume's health, tracked by a probe
// in the background so that a GET never waits on a dead volume.

import { Http1Pool, splitHost } from "./http1.ts";
import { Md5 } from "./md5.ts";
import { keyToPath, locationHost } from "./placement.ts";

/** How often each volume is probed. */
const PROBE_INTERVAL_MS = 1000;
/** A replica write that makes no progress for this long is given up. */
const WRITE_STALL_MS = 30_000;
/** Values up to this size (with a Content-Length) are read whole, then sent to the replicas. */
const SMALL_VALUE_BYTES = 256 * 1024;
/** Bytes read from the client per chunk of a streamed value. */
const CHUNK_BYTES = 256 * 1024;
/** The head of a volume's answer to a PUT is at most this long. */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
/** A directory listing may take longer than a single file's answer. */
const LIST_TIMEOUT_MS = 10_000;
/** Idle connections kept per volume; as many as the requests in flight under load. */
const POOL_IDLE_PER_HOST = 256;

/** A volume failed or refused a request. `status` is the volume's answer, null if none came. */
export class VolumeError extends Error {
  override name = "VolumeError";
  constructor(readonly volume: string, readonly status: number | null, message: string) {
    super(message);
  }
}

/** The client's upload ended before the value was complete. */
export class UploadError extends Error {
  override name = "UploadError";
}

export interface VolumeEntry {
  name: string;
  type: "file" | "directory" | "other";
  /** Bytes, for files. */
  size?: number;
}

export interface PutResult {
  md5: string;
  sizeBytes: number;
}

function describe(volume: string, method: string, path: string, why: string): string {
  return `volume ${volume}: cannot ${method} ${JSON.stringify(path)}: ${why}`;
}

function reason(err: unknown): string {
  if (err instanceof DOMException && err.name === "TimeoutError") return "timed out";
  if (err instanceof Error) return err.message.split("\n")[0];
  return String(err);
}

/** Volume hosts (`host:port`), their health, and the requests the index makes to them. */
export class Volumes {
  readonly timeoutMs: number;
  #alive = new Map<string, boolean>();
  /** Streams (a GET's value, a listing) go through fetch; short requests through the pool. */
  #client = Deno.createHttpClient({ poolMaxIdlePerHost: POOL_IDLE_PER_HOST });
  #pool = new Http1Pool();
  #timer: ReturnType<typeof setInterval> | undefined;
  #log: (line: string) => void;

  constructor(options: { hosts: string[]; timeoutMs: number; log?: (line: string) => void }) {
    this.timeoutMs = options.timeoutMs;
    this.#log = options.log ?? ((line) => console.error(line));
    for (const host of options.hosts) this.#alive.set(host, true);
  }

  /** Adds hosts to the set that is probed (new volumes of a rebalance, say). */
  track(hosts: string[]): void {
    for (const host of hosts) if (!this.#alive.has(host)) this.#alive.set(host, true);
  }

  /** Whether the host of a location (`host:port` or `host:port/svXX`) answered its last probe. */
  isAlive(location: string): boolean {
    return this.#alive.get(locationHost(location)) ?? false;
  }

  hosts(): string[] {
    return [...this.#alive.keys()];
  }

  markDead(location: string, why: string): void {
    const host = locationHost(location);
    if (this.#alive.get(host) === false) return;
    this.#alive.set(host, false);
    this.#log(`volume ${host}: marked down: ${why}`);
  }

  #markAlive(host: string): void {
    if (this.#alive.get(host) === true) return;
    this.#alive.set(host, true);
    this.#log(`volume ${host}: up again`);
  }

  /** Probes every host once; then, with `start()`, every second. */
  async probeAll(): Promise<void> {
    await Promise.all(
      this.hosts().map(async (host) => {
        try {
          const status = await this.#pool.request(host, "HEAD", "/", { timeoutMs: this.timeoutMs });
          if (status >= 500) throw new Error(`status ${status}`);
          this.#markAlive(host);
        } catch (err) {
          this.markDead(host, `probe failed: ${reason(err)}`);
        }
      }),
    );
  }

  start(): void {
    if (this.#timer !== undefined) return;
    let running = false;
    this.#timer = setInterval(async () => {
      if (running) return;
      running = true;
      try {
        await this.probeAll();
      } finally {
        running = false;
      }
    }, PROBE_INTERVAL_MS);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#client.close();
    this.#pool.close();
  }

  /**
   * Opens an answer with a body to stream (a value, a listing) and returns it, for the caller to
   * read or cancel, if its status is in `accept`; else throws VolumeError. `timeoutMs` bounds the
   * wait for the answer's head, not the reading of its body.
   */
  async #open(
    location: string,
    path: string,
    method: string,
    options: { accept: number[]; timeoutMs?: number },
  ): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException("timed out", "TimeoutError")),
      options.timeoutMs ?? this.timeoutMs,
    );
    let response: Response;
    try {
      response = await fetch(`http://${location}${path}`, {
        method,
        client: this.#client,
        signal: controller.signal,
      });
    } catch (err) {
      throw new VolumeError(
        locationHost(location),
        null,
        describe(location, method, path, reason(err)),
      );
    } finally {
      clearTimeout(timer);
    }
    if (!options.accept.includes(response.status)) {
      await response.body?.cancel();
    }
    if (options.accept.includes(response.status)) return response;
    throw new VolumeError(
      locationHost(location),
      response.status,
      describe(location, method, path, `status ${response.status}`),
    );
  }

  /**
   * Sends a short request to a volume on a kept-alive socket and returns the answer's status if
   * it is in `accept`, else throws VolumeError; a volume that does not answer within `timeoutMs`
   * (or --voltimeout) is marked down.
   */
  async #ask(
    location: string,
    method: string,
    path: string,
    options: { accept: number[]; body?: Uint8Array; timeoutMs?: number },
  ): Promise<number> {
    const host = locationHost(location);
    let status: number;
    try {
      status = await this.#pool.request(host, method, location.slice(host.length) + path, {
        body: options.body,
        timeoutMs: options.timeoutMs ?? this.timeoutMs,
      });
    } catch (err) {
      this.markDead(location, reason(err));
      throw new VolumeError(host, null, describe(location, method, path, reason(err)));
    }
    if (options.accept.includes(status)) return status;
    throw new VolumeError(host, status, describe(location, method, path, `status ${status}`));
  }

  /** Whether the key's file is at `location`: true, false, or a VolumeError if it cannot tell. */
  async has(location: string, key: string): Promise<boolean> {
    return await this.#ask(location, "HEAD", keyToPath(key), { accept: [200, 404] }) === 200;
  }

  /** Removes the key's file at `location`; a file already gone counts as removed. */
  async delete(location: string, key: string): Promise<void> {
    const path = keyToPath(key);
    if (!this.isAlive(location)) {
      throw new VolumeError(
        locationHost(location),
        null,
        describe(location, "DELETE", path, "down"),
      );
    }
    await this.#ask(location, "DELETE", path, { accept: [200, 204, 404] });
  }

  /** Removes the key's file at every location at once; returns the failures (empty if none). */
  async deleteAll(locations: string[], key: string): Promise<VolumeError[]> {
    const results = await Promise.allSettled(locations.map((loc) => this.delete(loc, key)));
    const failures: VolumeError[] = [];
    for (const result of results) {
      if (result.status === "fulfilled") continue;
      if (!(result.reason instanceof VolumeError)) throw result.reason;
      failures.push(result.reason);
    }
    return failures;
  }

  /** Opens the key's file at `location` for reading; the caller consumes or cancels the body. */
  async get(location: string, key: string): Promise<Response> {
    return await this.#open(location, keyToPath(key), "GET", { accept: [200] });
  }

  /** The JSON listing of a directory on a volume (nginx autoindex); [] if it does not exist. */
  async list(location: string, dir: string): Promise<VolumeEntry[]> {
    const path = dir.endsWith("/") ? dir : `${dir}/`;
    const response = await this.#open(location, path, "GET", {
      accept: [200, 404],
      timeoutMs: Math.max(this.timeoutMs, LIST_TIMEOUT_MS),
    });
    if (response.status === 404) {
      await response.body?.cancel();
      return [];
    }
    try {
      return await response.json() as VolumeEntry[];
    } catch (err) {
      throw new VolumeError(
        locationHost(location),
        200,
        describe(location, "GET", path, `not a JSON listing: ${reason(err)}`),
      );
    }
  }

  /**
   * Writes `body` to the key's file at every location at once and returns its md5 and size.
   * A small value of known size is read whole, then sent to all replicas together. Any other is
   * streamed: each chunk is read into one reused buffer and written to every replica's socket
   * before the next is read, so memory stays at one chunk whatever the value's size. On any
   * failure every upload is cut off (nginx then discards its partial temp file) and the first
   * cause is thrown: UploadError if the client's body broke, VolumeError otherwise. The caller
   * removes whatever may have been written.
   */
  async putAll(
    locations: string[],
    key: string,
    body: ReadableStream<Uint8Array>,
    options: { sizeBytes?: number } = {},
  ): Promise<PutResult> {
    const size = options.sizeBytes;
    if (size !== undefined && size <= SMALL_VALUE_BYTES) {
      return await this.#putSmall(locations, key, body, size);
    }
    return await this.#putStream(locations, key, body, size);
  }

  async #putSmall(
    locations: string[],
    key: string,
    body: ReadableStream<Uint8Array>,
    sizeBytes: number,
  ): Promise<PutResult> {
    let value: Uint8Array;
    try {
      value = new Uint8Array(await new Response(body).arrayBuffer());
    } catch (err) {
      throw new UploadError(`upload interrupted: ${reason(err)}`);
    }
    if (value.length !== sizeBytes) {
      throw new UploadError(`upload ended after ${value.length} of ${sizeBytes} bytes`);
    }
    const path = keyToPath(key);
    const results = await Promise.allSettled(
      locations.map((location) =>
        this.#ask(location, "PUT", path, {
          accept: [201, 204],
          body: value,
          timeoutMs: Math.max(this.timeoutMs, WRITE_STALL_MS),
        })
      ),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    return { md5: new Md5().update(value).hex(), sizeBytes };
  }

  async #putStream(
    locations: string[],
    key: string,
    body: ReadableStream<Uint8Array>,
    sizeBytes: number | undefined,
  ): Promise<PutResult> {
    const path = keyToPath(key);
    const uploads = locations.map((location) =>
      new Upload({ location, path, sizeBytes, timeoutMs: this.timeoutMs })
    );
    let firstError: Error | null = null;
    const fail = (err: Error) => {
      firstError ??= err;
      for (const upload of uploads) upload.abort();
    };
    const hash = new Md5();
    let total = 0;
    let lastProgressMs = Date.now();
    // A replica that stops taking bytes is given up when its volume fails its health probe, or
    // at the latest after WRITE_STALL_MS without progress.
    const watchdog = setInterval(() => {
      const down = locations.find((location) => !this.isAlive(location));
      if (down !== undefined) {
        fail(new VolumeError(locationHost(down), null, describe(down, "PUT", path, "volume down")));
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
    }, 250);
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
        hash.update(chunk);
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
      await Promise.all(uploads.map((upload) => upload.finish()));
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      if (!firstError) {
        fail(
          err instanceof VolumeError || err instanceof UploadError
            ? err
            : await this.#cause(err, uploads),
        );
      }
      await chunks.cancel();
      throw firstError;
    } finally {
      clearInterval(watchdog);
    }
    return { md5: hash.hex(), sizeBytes: total };
  }

  /**
   * The VolumeError behind a socket error of one of the uploads: the volume's own answer if it
   * sent one before closing (then it is alive), else a failure that marks it down.
   */
  async #cause(err: Error, uploads: Upload[]): Promise<VolumeError> {
    const upload = uploads.find((u) => u.failed) ?? uploads[0];
    const status = await upload.answer(this.timeoutMs).catch(() => null);
    if (status === null) this.markDead(upload.location, reason(err));
    const why = status === null ? reason(err) : `status ${status}`;
    return new VolumeError(
      locationHost(upload.location),
      status,
      describe(upload.location, "PUT", upload.path, why),
    );
  }
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

const encoder = new TextEncoder();

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/**
 * One replica's PUT on a socket of its own: HTTP/1.1 by hand, so that each chunk is written
 * straight from the shared buffer and is out of it when `write` resolves. Framed by
 * Content-Length when the size is known, chunked otherwise; closing the socket early makes nginx
 * drop the partial upload.
 */
class Upload {
  readonly location: string;
  readonly path: string;
  failed = false;
  #sizeBytes: number | undefined;
  #timeoutMs: number;
  #conn: Deno.Conn | null = null;
  #closed = false;

  constructor(
    options: { location: string; path: string; sizeBytes: number | undefined; timeoutMs: number },
  ) {
    this.location = options.location;
    this.path = options.path;
    this.#sizeBytes = options.sizeBytes;
    this.#timeoutMs = options.timeoutMs;
  }

  async open(): Promise<void> {
    const host = locationHost(this.location);
    const { hostname, port } = splitHost(host);
    const sub = this.location.slice(host.length);
    try {
      this.#conn = await Deno.connect({
        hostname,
        port,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      if (this.#closed) this.#conn.close();
      const framing = this.#sizeBytes === undefined
        ? "Transfer-Encoding: chunked"
        : `Content-Length: ${this.#sizeBytes}`;
      await writeAll(
        this.#conn,
        encoder.encode(
          `PUT ${sub}${this.path} HTTP/1.1\r\nHost: ${host}\r\n${framing}\r\n` +
            `Connection: close\r\n\r\n`,
        ),
      );
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    try {
      if (this.#sizeBytes === undefined) {
        await writeAll(this.#conn!, encoder.encode(`${chunk.length.toString(16)}\r\n`));
        await writeAll(this.#conn!, chunk);
        await writeAll(this.#conn!, encoder.encode("\r\n"));
      } else {
        await writeAll(this.#conn!, chunk);
      }
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /** Ends the body and reads the volume's answer; throws VolumeError unless it stored it. */
  async finish(): Promise<void> {
    let status: number | null;
    try {
      if (this.#sizeBytes === undefined) await writeAll(this.#conn!, encoder.encode("0\r\n\r\n"));
      status = await this.answer(Math.max(this.#timeoutMs, WRITE_STALL_MS));
    } catch (err) {
      this.failed = true;
      throw err;
    } finally {
      this.abort();
    }
    if (status === 201 || status === 204) return;
    throw new VolumeError(
      locationHost(this.location),
      status,
      describe(this.location, "PUT", this.path, status ? `status ${status}` : "no answer"),
    );
  }

  /**
   * The status of the volume's answer, or null if none comes within `timeoutMs`. A volume that
   * refuses a value (a full disk, say) answers before it has read it all, then closes.
   */
  async answer(timeoutMs: number): Promise<number | null> {
    const conn = this.#conn;
    if (conn === null) return null;
    const buffer = new Uint8Array(MAX_RESPONSE_HEAD_BYTES);
    let length = 0;
    const timer = setTimeout(() => this.abort(), timeoutMs);
    try {
      while (length < buffer.length) {
        const n = await conn.read(buffer.subarray(length));
        if (n === null) break;
        length += n;
        const head = new TextDecoder().decode(buffer.subarray(0, length));
        const status = head.match(/^HTTP\/1\.[01] (\d{3}) /)?.[1];
        if (status !== undefined) return Number(status);
      }
      return null;
    } catch (err) {
      if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) {
        return null;
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the socket; safe to call at any time, and more than once. */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn?.close();
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) throw err;
    }
  }
}
