// The index's side of talking to volumes: bounded requests (every one has a timeout), streamed
// writes to all replicas at once with backpressure, and each volume's health, tracked by a probe
// in the background so that a GET never waits on a dead volume.

import { createHash } from "node:crypto";
import { keyToPath, locationHost } from "./placement.ts";

/** How often each volume is probed. */
const PROBE_INTERVAL_MS = 1000;
/** A replica write that makes no progress for this long is given up. */
const WRITE_STALL_MS = 30_000;
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
  #client = Deno.createHttpClient({ poolMaxIdlePerHost: POOL_IDLE_PER_HOST });
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
          const response = await fetch(`http://${host}/`, {
            method: "HEAD",
            client: this.#client,
            signal: AbortSignal.timeout(this.timeoutMs),
          });
          await response.body?.cancel();
          if (response.status >= 500) throw new Error(`status ${response.status}`);
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
  }

  /** Whether the key's file is at `location`: true, false, or a VolumeError if it cannot tell. */
  async has(location: string, key: string): Promise<boolean> {
    const path = keyToPath(key);
    let response: Response;
    try {
      response = await fetch(`http://${location}${path}`, {
        method: "HEAD",
        client: this.#client,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      this.markDead(location, reason(err));
      throw new VolumeError(
        locationHost(location),
        null,
        describe(location, "HEAD", path, reason(err)),
      );
    }
    await response.body?.cancel();
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw new VolumeError(
      locationHost(location),
      response.status,
      describe(location, "HEAD", path, `status ${response.status}`),
    );
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
    let response: Response;
    try {
      response = await fetch(`http://${location}${path}`, {
        method: "DELETE",
        client: this.#client,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      this.markDead(location, reason(err));
      throw new VolumeError(
        locationHost(location),
        null,
        describe(location, "DELETE", path, reason(err)),
      );
    }
    await response.body?.cancel();
    if (response.ok || response.status === 404) return;
    throw new VolumeError(
      locationHost(location),
      response.status,
      describe(location, "DELETE", path, `status ${response.status}`),
    );
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

  /**
   * Opens the key's file at `location` for reading; the caller consumes or cancels the body.
   * `timeoutMs` bounds the wait for the answer, not the transfer of the value.
   */
  async get(location: string, key: string): Promise<Response> {
    const path = keyToPath(key);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("timed out")), this.timeoutMs);
    let response: Response;
    try {
      response = await fetch(`http://${location}${path}`, {
        client: this.#client,
        signal: controller.signal,
      });
    } catch (err) {
      throw new VolumeError(
        locationHost(location),
        null,
        describe(location, "GET", path, reason(err)),
      );
    } finally {
      clearTimeout(timer);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new VolumeError(
        locationHost(location),
        response.status,
        describe(location, "GET", path, `status ${response.status}`),
      );
    }
    return response;
  }

  /** The JSON listing of a directory on a volume (nginx autoindex); [] if it does not exist. */
  async list(location: string, dir: string): Promise<VolumeEntry[]> {
    const path = dir.endsWith("/") ? dir : `${dir}/`;
    let response: Response;
    try {
      response = await fetch(`http://${location}${path}`, {
        client: this.#client,
        signal: AbortSignal.timeout(Math.max(this.timeoutMs, 10_000)),
      });
    } catch (err) {
      throw new VolumeError(
        locationHost(location),
        null,
        describe(location, "GET", path, reason(err)),
      );
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return [];
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new VolumeError(
        locationHost(location),
        response.status,
        describe(location, "GET", path, `status ${response.status}`),
      );
    }
    return await response.json() as VolumeEntry[];
  }

  /**
   * Streams `body` to the key's file at every location at once and returns its md5 and size.
   * Each chunk goes to all replicas before the next is read, so memory stays at a few chunks
   * whatever the value's size. On any failure every upload is aborted (nginx then discards its
   * partial temp file) and the first cause is thrown: UploadError if the client's body broke,
   * VolumeError otherwise. The caller removes whatever may have been written.
   */
  async putAll(
    locations: string[],
    key: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<PutResult> {
    const path = keyToPath(key);
    const controller = new AbortController();
    let firstError: Error | null = null;
    const fail = (err: Error) => {
      firstError ??= err;
      controller.abort(err);
    };
    const branches = locations.map((location) => {
      const stream = new TransformStream<Uint8Array, Uint8Array>();
      const response = fetch(`http://${location}${path}`, {
        method: "PUT",
        body: stream.readable,
        client: this.#client,
        signal: controller.signal,
      }).then(async (res) => {
        await res.body?.cancel();
        if (res.status !== 201 && res.status !== 204) {
          throw new VolumeError(
            locationHost(location),
            res.status,
            describe(location, "PUT", path, `status ${res.status}`),
          );
        }
      }, (err) => {
        if (firstError) throw firstError;
        this.markDead(location, reason(err));
        throw new VolumeError(
          locationHost(location),
          null,
          describe(location, "PUT", path, reason(err)),
        );
      });
      response.catch(fail);
      return { location, writer: stream.writable.getWriter(), response };
    });

    const hash = createHash("md5");
    let sizeBytes = 0;
    let lastProgressMs = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastProgressMs > WRITE_STALL_MS) {
        fail(
          new VolumeError(
            branches.map((b) => locationHost(b.location)).join(","),
            null,
            describe(locations.join(","), "PUT", path, "no progress for 30s"),
          ),
        );
      }
    }, 1000);
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(firstError));
    });
    aborted.catch(() => {});
    const reader = body.getReader();
    try {
      while (true) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await Promise.race([reader.read(), aborted]);
        } catch (err) {
          if (firstError) throw firstError;
          throw new UploadError(`upload interrupted: ${reason(err)}`);
        }
        if (chunk.done) break;
        hash.update(chunk.value);
        sizeBytes += chunk.value.byteLength;
        await Promise.race([
          Promise.all(branches.map((b) => b.writer.write(chunk.value))),
          aborted,
        ]);
        lastProgressMs = Date.now();
      }
      await Promise.race([Promise.all(branches.map((b) => b.writer.close())), aborted]);
      await Promise.race([Promise.all(branches.map((b) => b.response)), aborted]);
    } catch (err) {
      fail(err instanceof Error ? err : new Error(String(err)));
      const cause = firstError ?? err;
      await reader.cancel().catch(() => {});
      await Promise.allSettled(branches.map((b) => b.response));
      throw cause;
    } finally {
      clearInterval(watchdog);
      reader.releaseLock();
    }
    return { md5: hash.digest("hex"), sizeBytes };
  }
}
