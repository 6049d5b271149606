// The index's client for the volumes: bounded requests (every one has a timeout) to read, check,
// list, remove and copy keys' files, and writes to all replicas at once (lib/volumes/fanout.ts).
// Each volume's health (lib/volumes/health.ts) is tracked in the background so that a GET never
// waits on a dead volume, and a slower poll reads each volume's own figures
// (lib/volumes/figures.ts) for the metrics and the status page.

import { type EventLog, logEvent } from "../events.ts";
import { type KeyPath, locationHost } from "../placement.ts";
import { Md5 } from "../md5.ts";
import { copyReplica } from "./copy.ts";
import { describe, reason, VolumeError } from "./errors.ts";
import { fanOut, type FanoutContext, type PutResult } from "./fanout.ts";
import { Figures } from "./figures.ts";
import { Health, type VolumeHealth } from "./health.ts";
import { type BodySink, type ClientTls, Http1Pool } from "./http1.ts";
import { getPipelined, PipelinePool } from "./listings.ts";
import {
  type Ask,
  hashFile,
  listDirectory,
  MAX_LISTING_BYTES,
  type VolumeEntry,
} from "./readthrough.ts";
import { FROM_INDEX_HEADER, target, volumeUrl } from "./protocol.ts";
import { expiresIn, signVolumeUrl } from "./signing.ts";
import type { DiskFigures, StubStatus } from "./statusvolume.ts";

/** Idle connections kept per volume; as many as the requests in flight under load. */
const POOL_IDLE_PER_HOST = 256;
/**
 * How long the signature of a request to a volume is good for (with a volume secret). Signed
 * when sent and checked by the volume on the request's head, so it only has to outlast clock
 * skew between the machines.
 */
const SIGNATURE_TTL_MS = 60_000;
/** A listing may take longer than a single file's answer (as readthrough.ts's own listings). */
const LIST_TIMEOUT_MS = 10_000;

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

/**
 * Volume hosts (`host:port`), their health, and the requests the index makes to them. A key's
 * file is named by its path (`keyToPath(key)`), which the caller computes once per request.
 */
export class Volumes {
  readonly timeoutMs: number;
  /** How the volumes are spoken to, and what the index's redirects name: `http` or `https`. */
  readonly scheme: "http" | "https";
  #health: Health;
  #figures: Figures;
  /**
   * Streams (a GET's value) go through fetch; short requests and answers read through at once (a
   * listing, a value's md5) through the pool.
   */
  #client: Deno.HttpClient;
  #pool: Http1Pool;
  #fanout: FanoutContext;
  /** The volume secret (lib/volumes/signing.ts): every request to a volume is signed; "": none. */
  #secret: string;
  #tls: ClientTls | undefined;
  /** Connections kept between the batches of listMany and hashMany. */
  #pipelines = new PipelinePool();
  /** #ask, for the answers read through (lib/volumes/readthrough.ts). */
  #read: Ask = (location, method, path, options) => this.#ask(location, method, path, options);

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
      /** The volumes serve HTTPS (verified with these extra roots, if any); plain HTTP if not. */
      tls?: ClientTls;
    },
  ) {
    this.timeoutMs = options.timeoutMs;
    this.scheme = options.tls ? "https" : "http";
    this.#secret = options.secret ?? "";
    this.#tls = options.tls;
    this.#client = Deno.createHttpClient({
      poolMaxIdlePerHost: POOL_IDLE_PER_HOST,
      ...(options.tls?.caCerts && { caCerts: options.tls.caCerts }),
    });
    this.#pool = new Http1Pool({
      tls: options.tls,
      onServerClose: (host) => this.#health.suspectDead(host),
    });
    const signed = (method: string, path: string) => this.signed(method, path);
    this.#health = new Health({
      hosts: options.hosts,
      pool: this.#pool,
      timeoutMs: this.timeoutMs,
      log: options.log ?? logEvent,
      onUp: options.onUp ?? (() => {}),
      signed,
      diskOf: (host) => this.#figures.disk(host),
    });
    this.#figures = new Figures({
      client: this.#client,
      scheme: this.scheme,
      timeoutMs: this.timeoutMs,
      signed,
      liveHosts: () => this.hosts().filter((host) => this.isAlive(host)),
    });
    this.#fanout = {
      timeoutMs: this.timeoutMs,
      pool: this.#pool,
      health: this.#health,
      diskOf: (host) => this.#figures.disk(host),
      signed,
      ask: (location, method, path, options) => this.#ask(location, method, path, options),
    };
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
    this.#health.track(hosts);
  }

  /** The health of the host of a location (`host:port` or `host:port/svXX`); `down` if unknown. */
  health(location: string): VolumeHealth {
    return this.#health.health(location);
  }

  /**
   * Whether the host of a location answered its last probe, so that reads and DELETEs go to it:
   * a full volume does.
   */
  isAlive(location: string): boolean {
    return this.#health.isAlive(location);
  }

  /**
   * Whether the host of a location is alive and sends misses back to the index (Health), so that
   * a GET may be redirected there without a check.
   */
  sendsMisses(location: string): boolean {
    return this.#health.sendsMisses(location);
  }

  /** Waits for the probes of those of `locations` whose volumes are suspect (Health.probed). */
  async probed(locations: string[]): Promise<void> {
    await this.#health.probed(locations);
  }

  /**
   * The first of `locations` whose volume cannot take a write now (down or full) and its health,
   * or undefined if all can.
   */
  unwritable(locations: string[]): { location: string; health: VolumeHealth } | undefined {
    return this.#health.unwritable(locations);
  }

  hosts(): string[] {
    return this.#health.hosts();
  }

  /**
   * Each host's state for the metrics and the status page: up, its last probe's time, its failed
   * requests, and its own figures as last read.
   */
  stats(): VolumeStats[] {
    return this.hosts().map((host) => ({
      host,
      health: this.health(host),
      probeSeconds: this.#health.probeSeconds(host),
      errors: this.#health.errors(host),
      disk: this.#figures.disk(host),
      nginx: this.#figures.nginx(host),
    }));
  }

  /** Probes every host once; then, with `start()`, every second. */
  async probeAll(): Promise<void> {
    await this.#health.probeAll();
  }

  /** Probes one host (Health.probe); concurrent calls for one host share one probe. */
  probe(host: string): Promise<void> {
    return this.#health.probe(host);
  }

  /** Starts the figures' poll and the probes. */
  start(): void {
    this.#figures.start();
    this.#health.start();
  }

  close(): void {
    this.#health.close();
    this.#figures.close();
    this.#client.close();
    this.#pool.close();
    this.#pipelines.close();
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
        // As on the pool's requests: a missing file is a 404 for the index, not a redirect.
        headers: { ...options.headers, [FROM_INDEX_HEADER]: "1" },
        client: this.#client,
        signal: AbortSignal.any([
          controller.signal,
          this.#health.downSignal(locationHost(location)),
        ]),
      });
    } catch (err) {
      this.#health.failed(locationHost(location));
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
    this.#health.failed(locationHost(location));
    throw new VolumeError(
      locationHost(location),
      response.status,
      describe(location, method, path, `status ${response.status}`),
    );
  }

  /**
   * Sends a short request to a volume on a kept-alive socket and returns the answer's status if
   * it is in `accept`, else throws VolumeError; the answer's body goes to `sink` if one is given
   * (Http1Pool.request). A request that fails gets its volume probed at once: the probe, not one
   * request, says whether the volume is down. A volume marked down ends the request at once.
   */
  async #ask(
    location: string,
    method: string,
    path: string,
    options: { accept: number[]; body?: Uint8Array; timeoutMs?: number; sink?: BodySink },
  ): Promise<number> {
    const host = locationHost(location);
    this.#refuseDown(location, method, path);
    let status: number;
    try {
      const signed = this.signed(method, target(location, path).path);
      status = await this.#pool.request(host, method, signed, {
        body: options.body,
        sink: options.sink,
        timeoutMs: options.timeoutMs ?? this.timeoutMs,
        signal: this.#health.downSignal(host),
      });
    } catch (err) {
      // A VolumeError here is the abort of a volume marked down.
      const why = err instanceof VolumeError ? "volume down" : reason(err);
      this.#health.failed(host);
      if (!(err instanceof VolumeError)) this.probe(host);
      throw new VolumeError(host, null, describe(location, method, path, why));
    }
    if (options.accept.includes(status)) return status;
    this.#health.failed(host);
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
    return await hashFile(this.#read, location, path);
  }

  /**
   * Reads several small files at `location` through, asked for at once on one connection
   * (lib/volumes/listings.ts), for their md5 and size, in order; null for one that does not
   * exist. Each is held whole in memory: for files the caller knows to be at most `maxBytes`
   * (a longer one fails the call). A rebuild with md5 reads every file: one request each cost
   * what a listing did.
   */
  async hashMany(
    location: string,
    paths: KeyPath[],
    maxBytes: number,
  ): Promise<(PutResult | null)[]> {
    const bodies = await this.#getMany(location, paths, {
      timeoutMs: this.timeoutMs,
      maxBodyBytes: maxBytes,
    });
    return bodies.map((body) => {
      if (body === null) return null;
      const hash = new Md5();
      hash.update(body);
      return { md5: hash.hex(), sizeBytes: body.length };
    });
  }

  /**
   * Copies a key's value from the first of `sources` that gives it whole to every one of
   * `targets` (lib/volumes/copy.ts); null on success, or why each source failed.
   */
  async copy(
    path: KeyPath,
    options: { sources: string[]; targets: string[]; expectedMd5: string },
  ): Promise<string | null> {
    return await copyReplica(this, path, options);
  }

  /** The JSON listing of a directory on a volume (nginx autoindex); [] if it does not exist. */
  async list(location: string, dir: string): Promise<VolumeEntry[]> {
    return await listDirectory(this.#read, location, dir, this.timeoutMs);
  }

  /**
   * The JSON listings of several directories at `location`, asked for at once on one connection
   * (lib/volumes/listings.ts), in order; [] for one that does not exist. A walk of the volumes
   * lists thousands of directories: one request each cost most of its time.
   */
  async listMany(location: string, dirs: string[]): Promise<VolumeEntry[][]> {
    const paths = dirs.map((dir) => dir.endsWith("/") ? dir : `${dir}/`);
    const bodies = await this.#getMany(location, paths, {
      timeoutMs: Math.max(this.timeoutMs, LIST_TIMEOUT_MS),
      maxBodyBytes: MAX_LISTING_BYTES,
    });
    const decoder = new TextDecoder();
    return bodies.map((body, i) => {
      if (body === null) return [];
      try {
        return JSON.parse(decoder.decode(body)) as VolumeEntry[];
      } catch (err) {
        throw new VolumeError(
          locationHost(location),
          200,
          describe(location, "GET", paths[i], `not a JSON listing: ${reason(err)}`),
        );
      }
    });
  }

  /**
   * GETs of several `paths` at `location`, asked for at once on one pipelined connection
   * (lib/volumes/listings.ts): each body, in order, or null for a 404. Any other status, or a
   * connection that fails, fails the call with a VolumeError and counts against the volume.
   */
  async #getMany(
    location: string,
    paths: string[],
    options: { timeoutMs: number; maxBodyBytes: number },
  ): Promise<(Uint8Array | null)[]> {
    if (paths.length === 0) return [];
    const host = locationHost(location);
    this.#refuseDown(location, "GET", paths[0]);
    let answers;
    try {
      answers = await getPipelined(
        host,
        paths.map((path) => this.signed("GET", target(location, path).path)),
        {
          tls: this.#tls,
          timeoutMs: options.timeoutMs,
          maxBodyBytes: options.maxBodyBytes,
          signal: this.#health.downSignal(host),
          pool: this.#pipelines,
        },
      );
    } catch (err) {
      const why = err instanceof VolumeError ? "volume down" : reason(err);
      this.#health.failed(host);
      if (!(err instanceof VolumeError)) this.probe(host);
      throw new VolumeError(host, null, describe(location, "GET", paths[0], why));
    }
    return answers.map(({ status, body }, i) => {
      if (status === 404) return null;
      if (status !== 200) {
        this.#health.failed(host);
        throw new VolumeError(
          host,
          status,
          describe(location, "GET", paths[i], `status ${status}`),
        );
      }
      return body;
    });
  }

  /**
   * Writes `body` to the key's file at every location at once and returns its md5 and size
   * (lib/volumes/fanout.ts). On any failure every upload is cut off and the first cause is
   * thrown: UploadError if the client's body broke, VolumeError otherwise (status 507 for a volume
   * with no room for it). The caller removes whatever may have been written, at every location.
   */
  async putAll(
    locations: string[],
    path: KeyPath,
    body: ReadableStream<Uint8Array>,
    options: { sizeBytes?: number; md5?: boolean } = {},
  ): Promise<PutResult> {
    for (const location of locations) this.#refuseDown(location, "PUT", path);
    return await fanOut(this.#fanout, {
      locations,
      path,
      body,
      sizeBytes: options.sizeBytes,
      md5: options.md5 ?? true,
    });
  }
}
