// The index's side of talking to volumes: bounded requests (every one has a timeout), streamed
// writes to all replicas at once with backpressure, and each volume's health, tracked by a probe
// in the background so that a GET never waits on a dead volume. A slower poll reads each volume's
// own figures (disk space, nginx's request count) for the metrics and the status page.

import { firstLine } from "../errors.ts";
import { type EventLog, logEvent } from "../events.ts";
import { type ClientTls, Http1Pool, type StreamedRequest } from "./http1.ts";
import { Md5 } from "../md5.ts";
import { expiresIn, signVolumeUrl } from "./signing.ts";
import { type KeyPath, locationHost } from "../placement.ts";
import {
  DISK_STATUS_PATH,
  STUB_STATUS_PATH,
  target,
  volumeUrl,
  WRITE_PROBE_PATH,
} from "./protocol.ts";
import {
  type DiskFigures,
  parseDiskFigures,
  parseStubStatus,
  type StubStatus,
} from "./statusvolume.ts";

/** How often each volume is probed. */
const PROBE_INTERVAL_MS = 1000;
/** A replica write that makes no progress for this long is given up. */
const WRITE_STALL_MS = 30_000;
/** Values up to this size (with a Content-Length) are read whole, then sent to the replicas. */
const SMALL_VALUE_BYTES = 256 * 1024;
/** Bytes read from the client per chunk of a streamed value. */
const CHUNK_BYTES = 256 * 1024;
/** A directory listing may take longer than a single file's answer. */
const LIST_TIMEOUT_MS = 10_000;
/** Idle connections kept per volume; as many as the requests in flight under load. */
const POOL_IDLE_PER_HOST = 256;
/** How often a probe also checks that a volume can store a file. */
const WRITE_PROBE_INTERVAL_MS = 10_000;
/** How often each volume's own figures (lib/volumes/statusvolume.ts) are read. */
const FIGURES_INTERVAL_MS = 10_000;
/** The most bytes read of a volume's figures: both answers are a few lines. */
const FIGURES_MAX_BYTES = 4096;
/**
 * How long the signature of a request to a volume is good for (with a volume secret). Signed
 * when sent and checked by the volume on the request's head, so it only has to outlast clock
 * skew between the machines.
 */
const SIGNATURE_TTL_MS = 60_000;

const encoder = new TextEncoder();

/** A volume failed or refused a request. `status` is the volume's answer, null if none came. */
export class VolumeError extends Error {
  override name = "VolumeError";
  constructor(
    readonly volume: string,
    readonly status: number | null,
    message: string,
  ) {
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

/**
 * A volume's health, as its probe last found it. `up`: it answers and stores. `full`: it answers
 * reads and DELETEs but cannot store a file (its disk full or read-only): reads, deletes and the
 * operations' removals go on, so that space can be freed; writes placed on it are refused with
 * 507. `down`: it does not answer; nothing is sent to it until its probe succeeds again.
 */
export type VolumeHealth = "up" | "full" | "down";

/** A volume's state for the metrics and the status page. */
export interface VolumeStats {
  host: string;
  health: VolumeHealth;
  probeSeconds: number;
  /** Failed requests to it (probes included) since the index started. */
  errors: number;
  /** Its filesystem, as last read (absent until read, or from a volume without the file). */
  disk?: DiskFigures;
  /** Its nginx's connections and requests, as last read. */
  nginx?: StubStatus;
}

function describe(volume: string, method: string, path: string, why: string): string {
  return `volume ${volume}: cannot ${method} ${JSON.stringify(path)}: ${why}`;
}

function reason(err: unknown): string {
  if (err instanceof DOMException && err.name === "TimeoutError") return "timed out";
  return firstLine(err);
}

/**
 * Volume hosts (`host:port`), their health, and the requests the index makes to them. A key's
 * file is named by its path (`keyToPath(key)`), which the caller computes once per request.
 */
export class Volumes {
  readonly timeoutMs: number;
  /** How the volumes are spoken to, and what the index's redirects name: `http` or `https`. */
  readonly scheme: "http" | "https";
  #health = new Map<string, VolumeHealth>();
  /** Aborted when its host is marked down: every request in flight to it ends at once. */
  #down = new Map<string, AbortController>();
  /** When each host's write probe last ran. */
  #writeProbedMs = new Map<string, number>();
  /** How long each host's last probe took, in milliseconds. */
  #probeMs = new Map<string, number>();
  /** Failed requests per host (probes included), for the metrics. */
  #errors = new Map<string, number>();
  /** Hosts whose probe is running, so that a burst of failures probes once. */
  #probing = new Map<string, Promise<void>>();
  /**
   * Hosts that closed an idle pooled socket and whose probe, asked for at once, has not answered
   * yet: no read is sent to them meanwhile (isAlive), so that a volume that died is avoided
   * within milliseconds rather than at its next probe.
   */
  #suspect = new Set<string>();
  /** Each host's own figures, as last read by the slow poll. */
  #disk = new Map<string, DiskFigures>();
  #nginx = new Map<string, StubStatus>();
  #figuresTimer: ReturnType<typeof setInterval> | undefined;
  /** Ends the figures' requests in flight when the client closes. */
  #closing = new AbortController();
  /** Streams (a GET's value, a listing) go through fetch; short requests through the pool. */
  #client: Deno.HttpClient;
  #pool: Http1Pool;
  #timer: ReturnType<typeof setInterval> | undefined;
  #log: EventLog;
  #onUp: (host: string) => void;
  /** The volume secret (lib/volumes/signing.ts): every request to a volume is signed; "" for none. */
  #secret: string;

  constructor(
    options: {
      hosts: string[];
      timeoutMs: number;
      /**
       * Where volume down, full and up events go (lib/events.ts); stderr as JSON lines if absent.
       */
      log?: EventLog;
      /** Called when a volume that was down answers its probe again (up or full). */
      onUp?: (host: string) => void;
      /** The volume secret: every request is signed (`?md5=&expires=`); absent or "": none. */
      secret?: string;
      /** The volumes serve HTTPS (verified with these extra roots, if any); plain HTTP if absent. */
      tls?: ClientTls;
    },
  ) {
    this.timeoutMs = options.timeoutMs;
    this.scheme = options.tls ? "https" : "http";
    this.#client = Deno.createHttpClient({
      poolMaxIdlePerHost: POOL_IDLE_PER_HOST,
      ...(options.tls?.caCerts && { caCerts: options.tls.caCerts }),
    });
    this.#pool = new Http1Pool({
      tls: options.tls,
      onServerClose: (host) => this.#suspectDead(host),
    });
    this.#log = options.log ?? logEvent;
    this.#onUp = options.onUp ?? (() => {});
    this.#secret = options.secret ?? "";
    for (const host of options.hosts) this.#health.set(host, "up");
  }

  /**
   * The request target for `method` on `path` (`/svXX/...` included, as the volume sees it):
   * signed for `ttlMs` when there is a volume secret, `path` itself otherwise.
   */
  signed(method: string, path: string, ttlMs = SIGNATURE_TTL_MS): string {
    if (this.#secret === "") return path;
    return signVolumeUrl({ method, path, expiresAt: expiresIn(ttlMs), secret: this.#secret });
  }

  /**
   * The URL a client is redirected to for reading the key's file at `location` (`host:port` or
   * `host:port/svXX`): signed for GET and HEAD for `ttlMs` when given (private reads).
   */
  readUrl(location: string, path: KeyPath, ttlMs?: number): string {
    const to = target(location, path);
    const signed = ttlMs === undefined ? to.path : this.signed("GET", to.path, ttlMs);
    return volumeUrl({ host: to.host, path: signed }, this.scheme);
  }

  /** Adds hosts to the set that is probed (new volumes of a rebalance, say). */
  track(hosts: string[]): void {
    for (const host of hosts) if (!this.#health.has(host)) this.#health.set(host, "up");
  }

  /** The health of the host of a location (`host:port` or `host:port/svXX`); `down` if unknown. */
  health(location: string): VolumeHealth {
    return this.#health.get(locationHost(location)) ?? "down";
  }

  /**
   * Whether the host of a location answered its last probe, so that reads and DELETEs go to it:
   * a full volume does.
   */
  isAlive(location: string): boolean {
    return this.health(location) !== "down" && !this.#suspect.has(locationHost(location));
  }

  /**
   * Waits for the probes of those of `locations` whose volumes are suspect (they closed a socket
   * and are being probed), so that a key held only there is read once a volume proves alive
   * instead of being answered as lost.
   */
  async probed(locations: string[]): Promise<void> {
    const hosts = locations.map(locationHost).filter((host) => this.#suspect.has(host));
    await Promise.all(hosts.map((host) => this.#probing.get(host)));
  }

  /**
   * A volume closed an idle socket of the pool. nginx does so when it stops or dies (all its
   * sockets at once), and seldom otherwise (its keep-alive timeout is longer than the pool's): it
   * is probed at once, and read from again once it answers.
   */
  #suspectDead(host: string): void {
    if (this.health(host) === "down" || this.#suspect.has(host)) return;
    this.#suspect.add(host);
    this.probe(host).finally(() => this.#suspect.delete(host));
  }

  /**
   * The first of `locations` whose volume cannot take a write now (down or full) and its health,
   * or undefined if all can.
   */
  unwritable(locations: string[]): { location: string; health: VolumeHealth } | undefined {
    const location = locations.find((l) => this.health(l) !== "up");
    return location === undefined ? undefined : { location, health: this.health(location) };
  }

  hosts(): string[] {
    return [...this.#health.keys()];
  }

  /**
   * Each host's state for the metrics and the status page: up, its last probe's time, its failed
   * requests, and its own figures as last read.
   */
  stats(): VolumeStats[] {
    return this.hosts().map((host) => ({
      host,
      health: this.health(host),
      probeSeconds: (this.#probeMs.get(host) ?? 0) / 1000,
      errors: this.#errors.get(host) ?? 0,
      disk: this.#disk.get(host),
      nginx: this.#nginx.get(host),
    }));
  }

  /** Counts a failed request to `host`. */
  #failed(host: string): void {
    this.#errors.set(host, (this.#errors.get(host) ?? 0) + 1);
  }

  /** Marks a volume down and ends every request in flight to it (the probe's verdict). */
  markDead(location: string, why: string): void {
    const host = locationHost(location);
    if (this.health(host) === "down") return;
    this.#health.set(host, "down");
    this.#log("volume_down", {
      msg: `volume ${host}: marked down: ${why}`,
      volume: host,
      reason: why,
    });
    const reason = new VolumeError(host, null, `volume ${host}: down: ${why}`);
    this.#down.get(host)?.abort(reason);
    this.#down.delete(host);
  }

  #markUp(host: string): void {
    const was = this.health(host);
    if (was === "up") return;
    this.#health.set(host, "up");
    const msg = was === "full" ? `volume ${host}: takes writes again` : `volume ${host}: up again`;
    this.#log("volume_up", { msg, volume: host });
    if (was === "down") this.#onUp(host);
  }

  /**
   * Marks a volume full: it answers, but its write probe failed. Requests in flight go on (reads
   * and deletes work; a write fails by itself). A volume that was down answers reads again.
   */
  #markFull(host: string, why: string): void {
    const was = this.health(host);
    if (was === "full") return;
    this.#health.set(host, "full");
    const disk = this.#disk.get(host);
    const used = disk === undefined || disk.totalBytes === 0
      ? ""
      : ` (disk ${Math.round(100 * (1 - disk.freeBytes / disk.totalBytes))}% used)`;
    this.#log("volume_full", {
      msg: `volume ${host}: full: serves reads and deletes, refuses writes: ${why}${used}`,
      volume: host,
      reason: why,
    });
    if (was === "down") this.#onUp(host);
  }

  /** The signal that ends requests to `host` when it is marked down. */
  #downSignal(host: string): AbortSignal {
    let controller = this.#down.get(host);
    if (controller === undefined) {
      controller = new AbortController();
      this.#down.set(host, controller);
    }
    return controller.signal;
  }

  /** Probes every host once; then, with `start()`, every second. */
  async probeAll(): Promise<void> {
    await Promise.all(this.hosts().map((host) => this.probe(host)));
  }

  /**
   * Probes one host, on a fresh connection so that a stale pooled socket never judges it: a
   * `HEAD /`, and every WRITE_PROBE_INTERVAL_MS (every time while it is not up) a small PUT. A
   * volume that answers the HEAD but refuses the PUT with an error status cannot store (its disk
   * full or read-only): it is full, not down, and takes writes again once the PUT succeeds. No
   * answer to either is down. Concurrent calls for one host share one probe.
   */
  probe(host: string): Promise<void> {
    let running = this.#probing.get(host);
    if (running === undefined) {
      running = this.#probeOnce(host).finally(() => this.#probing.delete(host));
      this.#probing.set(host, running);
    }
    return running;
  }

  async #probeOnce(host: string): Promise<void> {
    const started = performance.now();
    try {
      const status = await this.#probeHead(host);
      if (status >= 500) throw new Error(`status ${status}`);
      const writeDue = this.health(host) !== "up" ||
        Date.now() - (this.#writeProbedMs.get(host) ?? 0) >= WRITE_PROBE_INTERVAL_MS;
      if (writeDue) {
        const status = await this.#pool.request(host, "PUT", this.signed("PUT", WRITE_PROBE_PATH), {
          body: encoder.encode(`${new Date().toISOString()}\n`),
          timeoutMs: this.timeoutMs,
          fresh: true,
        });
        this.#probeMs.set(host, performance.now() - started);
        // A volume that refuses the probe's path (4xx) is not one of ours: only 5xx counts.
        if (status >= 500) {
          // Counted once, when it turns full, not at each probe (every second) while full.
          if (this.health(host) !== "full") this.#failed(host);
          this.#markFull(host, `cannot write: PUT ${WRITE_PROBE_PATH}: status ${status}`);
          return;
        }
        this.#writeProbedMs.set(host, Date.now());
      }
      this.#probeMs.set(host, performance.now() - started);
      this.#markUp(host);
    } catch (err) {
      this.#probeMs.set(host, performance.now() - started);
      this.#failed(host);
      this.markDead(host, `probe failed: ${reason(err)}`);
    }
  }

  /**
   * The status of `HEAD /` on a fresh connection. A volume that is up gets a second try after a
   * timeout: on a machine short of CPU (the index's own event loop late, say) one probe can time
   * out with nothing wrong, and calling the volume down would fail every write to it. A hung
   * volume is so noticed after two timeouts instead of one.
   */
  async #probeHead(host: string): Promise<number> {
    const head = () =>
      this.#pool.request(host, "HEAD", this.signed("HEAD", "/"), {
        timeoutMs: this.timeoutMs,
        fresh: true,
      });
    try {
      return await head();
    } catch (err) {
      if (!(err instanceof DOMException && err.name === "TimeoutError") || !this.isAlive(host)) {
        throw err;
      }
      return await head();
    }
  }

  /**
   * Reads the figures of every host that is up (its disk file and nginx's stub_status), on the
   * client the streams use; a volume that does not serve them (an older one) simply has none.
   * Failures are not the volume's errors: the probe judges its health.
   */
  async readFigures(): Promise<void> {
    await Promise.all(
      this.hosts().filter((host) => this.isAlive(host)).map(async (host) => {
        const [disk, nginx] = await Promise.all([
          this.#readSmall(host, DISK_STATUS_PATH),
          this.#readSmall(host, STUB_STATUS_PATH),
        ]);
        const figures = disk === null ? null : parseDiskFigures(disk);
        if (figures !== null) this.#disk.set(host, figures);
        const counts = nginx === null ? null : parseStubStatus(nginx);
        if (counts !== null) this.#nginx.set(host, counts);
      }),
    );
  }

  /** The body of a small answer (`GET path` on `host`), or null on any failure. */
  async #readSmall(host: string, path: string): Promise<string | null> {
    try {
      const response = await fetch(
        volumeUrl({ host, path: this.signed("GET", path) }, this.scheme),
        {
          client: this.#client,
          signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.#closing.signal]),
        },
      );
      const length = Number(response.headers.get("content-length") ?? FIGURES_MAX_BYTES + 1);
      if (response.status !== 200 || !(length <= FIGURES_MAX_BYTES)) {
        await response.body?.cancel();
        return null;
      }
      return await response.text();
    } catch (err) {
      if (err instanceof TypeError || err instanceof DOMException) return null;
      throw err;
    }
  }

  start(): void {
    if (this.#timer !== undefined) return;
    let reading = false;
    const readFigures = async () => {
      if (reading) return;
      reading = true;
      try {
        await this.readFigures();
      } finally {
        reading = false;
      }
    };
    readFigures();
    this.#figuresTimer = setInterval(readFigures, FIGURES_INTERVAL_MS);
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
    clearInterval(this.#figuresTimer);
    this.#figuresTimer = undefined;
    this.#closing.abort();
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
    options: { accept: number[]; timeoutMs?: number; headers?: Record<string, string> },
  ): Promise<Response> {
    this.#refuseDown(location, method, path);
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException("timed out", "TimeoutError")),
      options.timeoutMs ?? this.timeoutMs,
    );
    let response: Response;
    try {
      const to = target(location, path);
      const signed = { host: to.host, path: this.signed(method, to.path) };
      response = await fetch(volumeUrl(signed, this.scheme), {
        method,
        headers: options.headers,
        client: this.#client,
        signal: AbortSignal.any([controller.signal, this.#downSignal(locationHost(location))]),
      });
    } catch (err) {
      this.#failed(locationHost(location));
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
    this.#failed(locationHost(location));
    throw new VolumeError(
      locationHost(location),
      response.status,
      describe(location, method, path, `status ${response.status}`),
    );
  }

  /**
   * Sends a short request to a volume on a kept-alive socket and returns the answer's status if
   * it is in `accept`, else throws VolumeError. A request that fails gets its volume probed at
   * once: the probe, not one request, says whether the volume is down. A volume marked down ends
   * the request at once.
   */
  async #ask(
    location: string,
    method: string,
    path: string,
    options: { accept: number[]; body?: Uint8Array; timeoutMs?: number },
  ): Promise<number> {
    const host = locationHost(location);
    this.#refuseDown(location, method, path);
    let status: number;
    try {
      status = await this.#pool.request(
        host,
        method,
        this.signed(method, target(location, path).path),
        {
          body: options.body,
          timeoutMs: options.timeoutMs ?? this.timeoutMs,
          signal: this.#downSignal(host),
        },
      );
    } catch (err) {
      // A VolumeError here is the abort of a volume marked down.
      const why = err instanceof VolumeError ? "volume down" : reason(err);
      this.#failed(host);
      if (!(err instanceof VolumeError)) this.probe(host);
      throw new VolumeError(host, null, describe(location, method, path, why));
    }
    if (options.accept.includes(status)) return status;
    this.#failed(host);
    throw new VolumeError(host, status, describe(location, method, path, `status ${status}`));
  }

  /**
   * Throws at once for a volume marked down: a request to it would wait out its timeout, and an
   * operation working through many keys would wait once per key. The probe brings it back.
   */
  #refuseDown(location: string, method: string, path: string): void {
    if (this.health(location) !== "down") return;
    throw new VolumeError(
      locationHost(location),
      null,
      describe(location, method, path, "volume down"),
    );
  }

  /** Whether the key's file is at `location`: true, false, or a VolumeError if it cannot tell. */
  async has(location: string, path: KeyPath): Promise<boolean> {
    return await this.#ask(location, "HEAD", path, { accept: [200, 404] }) === 200;
  }

  /**
   * Removes the key's file at `location`; a file already gone counts as removed. A full volume
   * is probed again after it: the space freed may let it take writes.
   */
  async delete(location: string, path: KeyPath): Promise<void> {
    await this.#ask(location, "DELETE", path, { accept: [200, 204, 404] });
    if (this.health(location) === "full") this.probe(locationHost(location));
  }

  /** Removes the key's file at every location at once; returns the failures (empty if none). */
  async deleteAll(locations: string[], path: KeyPath): Promise<VolumeError[]> {
    const results = await Promise.allSettled(locations.map((loc) => this.delete(loc, path)));
    const failures: VolumeError[] = [];
    for (const result of results) {
      if (result.status === "fulfilled") continue;
      if (!(result.reason instanceof VolumeError)) throw result.reason;
      failures.push(result.reason);
    }
    return failures;
  }

  /** Opens the key's file at `location` for reading; the caller consumes or cancels the body. */
  async get(
    location: string,
    path: KeyPath,
    options: { range?: { start: number; end: number } } = {},
  ): Promise<Response> {
    if (options.range === undefined) {
      return await this.#open(location, path, "GET", { accept: [200] });
    }
    const { start, end } = options.range;
    return await this.#open(location, path, "GET", {
      accept: [206],
      headers: { range: `bytes=${start}-${end}` },
    });
  }

  /** Reads the key's file at `location` through; its md5 and size, or a VolumeError. */
  async hash(location: string, path: KeyPath): Promise<PutResult> {
    const response = await this.get(location, path);
    const hash = new Md5();
    let sizeBytes = 0;
    try {
      for await (const chunk of response.body!) {
        hash.update(chunk);
        sizeBytes += chunk.byteLength;
      }
    } catch (err) {
      throw new VolumeError(
        locationHost(location),
        null,
        describe(location, "GET", path, reason(err)),
      );
    }
    return { md5: hash.hex(), sizeBytes };
  }

  /**
   * Copies a key's value from the first of `sources` that gives it whole to every one of
   * `targets`, streamed, and checks what was sent on the way: its md5 against `expectedMd5` when
   * one is recorded, its length against the source's Content-Length always. `targets` must be
   * locations that hold no good copy: after a failed attempt they are cleared, so that a bad or
   * partial copy never stays behind. Returns null on success, or why each source failed.
   */
  async copy(
    path: KeyPath,
    options: { sources: string[]; targets: string[]; expectedMd5: string },
  ): Promise<string | null> {
    const reasons: string[] = [];
    for (const source of options.sources) {
      let sent = false;
      try {
        const response = await this.get(source, path);
        sent = true;
        const length = response.headers.get("content-length");
        const sizeBytes = length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
        const result = await this.putAll(options.targets, path, response.body!, { sizeBytes });
        if (options.expectedMd5 === "" || result.md5 === options.expectedMd5) return null;
        reasons.push(`${source} has md5 ${result.md5}, the record says ${options.expectedMd5}`);
      } catch (err) {
        if (!(err instanceof VolumeError || err instanceof UploadError)) throw err;
        reasons.push(reason(err));
      }
      if (!sent) continue;
      const failures = await this.deleteAll(options.targets, path);
      reasons.push(...failures.map((failure) => `bad copy left: ${failure.message}`));
    }
    if (options.sources.length === 0) reasons.push("no replica to copy from");
    return reasons.join("; ");
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
   * removes whatever may have been written, at every location.
   */
  async putAll(
    locations: string[],
    path: KeyPath,
    body: ReadableStream<Uint8Array>,
    options: { sizeBytes?: number } = {},
  ): Promise<PutResult> {
    const size = options.sizeBytes;
    for (const location of locations) this.#refuseDown(location, "PUT", path);
    try {
      if (size !== undefined && size <= SMALL_VALUE_BYTES) {
        return await this.#putSmall(locations, path, body, size);
      }
      return await this.#putStream(locations, path, body, size);
    } catch (err) {
      throw await this.#fullOr(err, path, size);
    }
  }

  /**
   * `err`, or for a volume that refused a PUT with an error status and either is found full when
   * probed at once (its write probe) or, by its last disk figures, has less free space than the
   * value, a VolumeError with status 507 that says so: the answer a client gets for a write a
   * volume has no room for, rather than a 503 that suggests trying again soon.
   */
  async #fullOr(err: unknown, path: KeyPath, sizeBytes: number | undefined): Promise<unknown> {
    if (!(err instanceof VolumeError) || err.status === null || err.status < 500) return err;
    if (this.health(err.volume) === "up") {
      this.#writeProbedMs.delete(err.volume);
      await this.probe(err.volume);
    }
    const disk = this.#disk.get(err.volume);
    const why = this.health(err.volume) === "full"
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

  async #putSmall(
    locations: string[],
    path: KeyPath,
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
    path: KeyPath,
    body: ReadableStream<Uint8Array>,
    sizeBytes: number | undefined,
  ): Promise<PutResult> {
    const uploads = locations.map((location) =>
      new Upload({
        location,
        path,
        target: this.signed("PUT", target(location, path).path),
        sizeBytes,
        timeoutMs: this.timeoutMs,
        pool: this.#pool,
      })
    );
    let firstError: Error | null = null;
    const fail = (err: Error) => {
      firstError ??= err;
      for (const upload of uploads) upload.abort();
    };
    const hash = new Md5();
    let total = 0;
    let lastProgressMs = Date.now();
    // A replica that stops taking bytes is given up when its volume fails its health probe (down,
    // or full), or at the latest after WRITE_STALL_MS without progress.
    const watchdog = setInterval(() => {
      const refused = this.unwritable(locations);
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
            : await this.#cause(err, uploads),
        );
      }
      await chunks.cancel();
      const failure = firstError as Error | null;
      if (failure instanceof VolumeError) this.#failed(failure.volume);
      throw firstError;
    } finally {
      clearInterval(watchdog);
    }
    return { md5: hash.hex(), sizeBytes: total };
  }

  /**
   * The VolumeError behind a socket error of one of the uploads: the volume's own answer if it
   * sent one before closing (then it is alive), else a failure that gets the volume probed.
   */
  async #cause(err: Error, uploads: Upload[]): Promise<VolumeError> {
    const upload = uploads.find((u) => u.failed) ?? uploads[0];
    const status = await upload.answer(this.timeoutMs, { whole: false }).catch(() => null);
    if (status === null) this.probe(locationHost(upload.location));
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
  #pool: Http1Pool;
  #target: string;
  #request: StreamedRequest | null = null;
  #closed = false;

  constructor(
    options: {
      location: string;
      path: string;
      /** What the request line names: the path on the volume, signed if need be. */
      target: string;
      sizeBytes: number | undefined;
      timeoutMs: number;
      pool: Http1Pool;
    },
  ) {
    this.location = options.location;
    this.path = options.path;
    this.#target = options.target;
    this.#sizeBytes = options.sizeBytes;
    this.#timeoutMs = options.timeoutMs;
    this.#pool = options.pool;
  }

  async open(): Promise<void> {
    const host = locationHost(this.location);
    const framing = this.#sizeBytes === undefined
      ? "Transfer-Encoding: chunked"
      : `Content-Length: ${this.#sizeBytes}`;
    const head = encoder.encode(
      `PUT ${this.#target} HTTP/1.1\r\nHost: ${host}\r\n${framing}\r\n\r\n`,
    );
    try {
      this.#request = await this.#pool.open(host, head, { timeoutMs: this.#timeoutMs });
      if (this.#closed) this.#request.close();
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    try {
      if (this.#sizeBytes === undefined) {
        await this.#request!.write(encoder.encode(`${chunk.length.toString(16)}\r\n`));
        await this.#request!.write(chunk);
        await this.#request!.write(encoder.encode("\r\n"));
      } else {
        await this.#request!.write(chunk);
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
      if (this.#sizeBytes === undefined) await this.#request!.write(encoder.encode("0\r\n\r\n"));
      status = await this.answer(Math.max(this.#timeoutMs, WRITE_STALL_MS), { whole: true });
    } catch (err) {
      this.failed = true;
      this.abort();
      throw err;
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
   * refuses a value (a full disk, say) answers before it has read it all. The socket goes back to
   * the pool only after a keep-alive answer to a `whole` request (every byte of its body sent):
   * after a partial body the server may still be waiting for the rest.
   */
  async answer(timeoutMs: number, options: { whole: boolean }): Promise<number | null> {
    if (this.#request === null) return null;
    return await this.#request.answer("PUT", timeoutMs, { reuse: options.whole });
  }

  /** Closes the socket unless it went back to the pool; safe at any time, more than once. */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#request?.close();
  }
}
