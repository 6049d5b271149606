// The index's HTTP API (see README): GET/HEAD answer with a 302 to a live replica, PUT streams to
// every replica at once, DELETE/UNLINK, and `?list`/`?unlinked` listings. Bad input gets a 4xx
// with a short reason; a 5xx always names the volume or the disk that failed.

import {
  isBalanced,
  keyLocations,
  type KeyPath,
  keyToPath,
  keyToVolumes,
  locationHost,
  MAX_KEY_BYTES,
  PARTS_PREFIX,
  type Placement,
  recordPath,
  utf8Length,
  versionPath,
} from "../placement.ts";
import type { Auth } from "../auth/auth.ts";
import { type Settled, settlePending } from "../core/cleanup.ts";
import { firstLine, textResponse } from "../errors.ts";
import { Lru } from "../core/lru.ts";
import { logEvent } from "../events.ts";
import { CONTENT_TYPE, IndexMetrics } from "./metrics.ts";
import { OperationBoard } from "../ops/runner.ts";
import { renderStatusPage, type StatusData, StatusHistory } from "./status.ts";
import {
  isPending,
  type KeyRecord,
  namesFile,
  needsSettling,
  nextVersion,
  type ObjectInfo,
} from "../core/record.ts";
import { type Store, StoreError, UPLOADS_PREFIX } from "../core/store.ts";
import { type PutResult, UploadError, VolumeError, type Volumes } from "../volumes/mod.ts";
import { LEFT_AS_EXTRA, moveReplicas, planRebalance } from "../ops/rebalance.ts";
import type { S3Api } from "../s3/api.ts";
import { isS3Request } from "../s3/detect.ts";
import { openWriteTrace } from "../core/writetrace.ts";

/** The most keys one listing returns; `limit` may ask for fewer. */
export const MAX_LIST_LIMIT = 10_000;
/**
 * How long replicas seen present (just written by a PUT, or found by a GET's check) are trusted
 * before a GET checks a volume again. A hot key costs one check per this period, not one per GET;
 * a file lost behind the index's back is noticed (410) within it.
 */
export const VERIFIED_TTL_MS = 2_000;
/** Records whose presence was checked, kept in memory; oldest dropped first. */
const VERIFIED_ENTRIES = 50_000;
/** How often pending records (deletes and failed writes whose files remain) are swept. */
const SWEEP_INTERVAL_MS = 30_000;
/**
 * How long the files of a value that an overwrite replaced stay after the new record is
 * committed, so that a client following a redirect issued just before still finds them.
 */
export const RETIRE_GRACE_MS = 2_000;
/** How often S3 multipart uploads past --multipart-max-age are looked for. */
const REAP_INTERVAL_MS = 3_600_000;
/** How often a write that waits for its key's lock (`lockWaitMs`) looks again, at most. */
const LOCK_POLL_MAX_MS = 100;
/** The methods of the API, for `Allow`. */
const ALLOW = "GET, HEAD, PUT, DELETE, UNLINK, REBALANCE";
/** Paths under this prefix are the index's own (health, metrics); no key under it is written. */
export const RESERVED_PREFIX = "/-/";
/** The index's own endpoints, all GET/HEAD. */
export const ENDPOINTS = [
  "/-/health",
  "/-/ready",
  "/-/metrics",
  "/-/status",
  "/-/status.json",
] as const;
/** How long `/-/health` waits for its read of the KV. */
const HEALTH_TIMEOUT_MS = 2_000;

export interface ServerOptions {
  placement: Placement;
  protect: boolean;
  md5sum: boolean;
  /** `host:port` that GETs of absent keys are sent to, or "". */
  fallback: string;
  verbose: boolean;
  /** Access keys and their rights (`--credentials`); absent or null: open to all. */
  auth?: Auth | null;
  /** Private reads: each `Location` is signed for GET/HEAD for this long; absent: unsigned. */
  readExpiryMs?: number;
  /** `--metrics=false`: requests and commits are not measured, `/-/metrics` answers 404. */
  metrics?: boolean;
  /** S3 multipart uploads older than this are aborted (`--multipart-max-age`); default a week. */
  multipartMaxAgeMs?: number;
}

export interface WriteOptions {
  /** The body's length from `Content-Length`, if given: small bodies take a faster path. */
  sizeBytes?: number;
  /** S3's attributes of the value, kept in its record. */
  attributes?: Omit<ObjectInfo, "size" | "mtime">;
  /**
   * Replace a live value (S3's PutObject and CompleteMultipartUpload); without it a live key is
   * refused with 403, as minikeyvalue does, and so it is with --protect (a live value is only
   * ever removed after an UNLINK there).
   */
  overwrite?: boolean;
  /**
   * Store an empty value (S3 has them; minikeyvalue's PUT refuses them with 411). An overwrite
   * always may: it cannot know a body is empty before the old value is replaced.
   */
  allowEmpty?: boolean;
  /**
   * A condition on the key's current value (its live record, or null where none is live),
   * checked under the key's lock right after its record is read: null, or the status and reason
   * to refuse the write with, changing nothing (S3's If-Match, If-None-Match).
   */
  precondition?: (current: KeyRecord | null) => { status: number; reason: string } | null;
  /**
   * How long to wait for a write in progress to the same key (S3's last writer wins) before
   * refusing with 409, as a write that does not wait (minikeyvalue's PUT) is refused at once.
   */
  lockWaitMs?: number;
}

/** Where a key can be read: its live record and a live replica that holds its file, or why not. */
export type Located =
  | { ok: true; record: KeyRecord; location: string; path: KeyPath }
  | { ok: false; status: 404 | 410; reason: string };

/** How a write ended: the committed record, or the status and reason to answer with. */
export type WriteResult =
  | { ok: true; record: KeyRecord; md5: string; sizeBytes: number }
  | { ok: false; status: number; reason: string };

/** What a request asks for, once its URL has been checked. */
export type Parsed =
  | { kind: "key"; key: string; rawPath: string }
  | { kind: "list"; key: string; state: "live" | "unlinked"; start?: string; limit: number }
  | { kind: "bad"; status: number; reason: string };

interface RedirectParts {
  placement: Placement;
  path: KeyPath;
  volumes: string;
  balance: "balanced" | "unbalanced";
}

/** An answer without a body; Deno.serve adds its `Content-Length: 0`. */
function empty(status: number, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

/**
 * Parses the path and query of a request URL (`/a%20b?list&limit=10`) into what it asks for.
 * Pure; every refusal carries its status and a short reason.
 */
export function parseTarget(pathAndQuery: string): Parsed {
  const q = pathAndQuery.indexOf("?");
  const rawPath = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
  let key: string;
  try {
    key = decodeURIComponent(rawPath);
  } catch {
    return { kind: "bad", status: 400, reason: "key is not valid percent-encoded UTF-8" };
  }
  if (!key.startsWith("/")) return { kind: "bad", status: 400, reason: "key must start with /" };
  if (utf8Length(key) > MAX_KEY_BYTES) {
    return { kind: "bad", status: 414, reason: `key longer than ${MAX_KEY_BYTES} bytes` };
  }
  // A bare "?" is no query at all, as minikeyvalue reads it.
  if (q === -1 || q === pathAndQuery.length - 1) return { kind: "key", key, rawPath };
  const params = new URLSearchParams(pathAndQuery.slice(q + 1));
  let state: "live" | "unlinked" | null = null;
  let start: string | undefined;
  let limit = MAX_LIST_LIMIT;
  let sawLimit = false;
  for (const [name, value] of params) {
    if ((name === "list" || name === "unlinked") && value === "" && state === null) {
      state = name === "list" ? "live" : "unlinked";
    } else if (name === "start" && start === undefined) {
      if (utf8Length(value) > MAX_KEY_BYTES) {
        return { kind: "bad", status: 414, reason: `start longer than ${MAX_KEY_BYTES} bytes` };
      }
      start = value;
    } else if (name === "limit" && !sawLimit) {
      sawLimit = true;
      if (!/^\d{1,9}$/.test(value) || Number(value) < 1 || Number(value) > MAX_LIST_LIMIT) {
        return {
          kind: "bad",
          status: 400,
          reason: `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}`,
        };
      }
      limit = Number(value);
    } else {
      return { kind: "bad", status: 400, reason: `unknown query ${JSON.stringify(name)}` };
    }
  }
  if (state === null) {
    return { kind: "bad", status: 400, reason: "query must be ?list or ?unlinked" };
  }
  return { kind: "list", key, state, start, limit };
}

/** The key's path on a volume would end in `/`, which no file name can: base64 ending in `/`. */
function storable(path: KeyPath): boolean {
  return !path.endsWith("/");
}

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The status and reason of a failure of a volume, of the upload, or of the KV. */
function failureStatus(
  err: VolumeError | UploadError | StoreError,
): { status: number; reason: string } {
  if (err instanceof UploadError) return { status: 400, reason: err.message };
  if (err instanceof StoreError) return { status: 500, reason: err.message };
  return { status: err.status === 507 ? 507 : 503, reason: err.message };
}

function volumeFailure(err: VolumeError | UploadError | StoreError): Response {
  const { status, reason } = failureStatus(err);
  return textResponse(status, reason);
}

/** A write that a volume failed, in the event log (a client's broken upload is not logged). */
function logWriteFailure(key: string, err: VolumeError): void {
  logEvent("write_failed", {
    msg: `index: key ${JSON.stringify(key)}: write failed: ${err.message}`,
    key,
    volume: err.volume,
    reason: err.message,
  });
}

/** The index: its state and the handler of its HTTP API. */
export class IndexServer {
  readonly store: Store;
  readonly volumes: Volumes;
  options: ServerOptions;
  /** Per key: when its files were last seen present, and where (the replicas trusted then). */
  #verified = new Lru<string, { atMs: number; locations: string[] }>(VERIFIED_ENTRIES);
  #parts = new WeakMap<KeyRecord, RedirectParts>();
  #sweeping: Promise<number> | null = null;
  /** Accepted DELETEs whose files are being removed, by key; each holds its key's lock. */
  #removals = new Map<string, Promise<void>>();
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  /** What `/-/metrics` shows; kept unless --metrics=false (a few additions per request). */
  readonly metrics = new IndexMetrics();
  /** The operation running on this server, and the last one (the admin socket's). */
  readonly board = new OperationBoard();
  /** Request rate and latency over the last minutes, for the status page. */
  readonly history = new StatusHistory();
  /** Whether requests are measured (`--metrics`). */
  readonly #measure: boolean;
  /** The S3 API, made on the first S3 request. */
  #s3: Promise<S3Api> | null = null;
  #reapTimer: ReturnType<typeof setInterval> | undefined;
  /** The writes under way, which `setPlacement` waits for. */
  #writes = new Set<Promise<WriteResult>>();
  #reaping: Promise<unknown> | null = null;
  /** The phases of every write, with MKV_TRACE_WRITES=FILE (lib/core/writetrace.ts); else null. */
  readonly #trace = openWriteTrace();
  /** The last version given to an overwrite's file (#newVersion). */
  #lastVersion: string | undefined;
  /** Per key, removals of replaced values waiting out RETIRE_GRACE_MS, and what starts each now. */
  #retiring = new Map<string, { wake: () => void; done: Promise<void> }[]>();

  constructor(store: Store, volumes: Volumes, options: ServerOptions) {
    this.store = store;
    this.volumes = volumes;
    this.options = options;
    this.#measure = options.metrics !== false;
    const trace = this.#trace;
    if (this.#measure || trace !== null) {
      store.onCommit = (seconds, records) => {
        if (this.#measure) this.metrics.commit(seconds);
        trace?.commit(seconds * 1000, records);
      };
    }
  }

  /**
   * Changes where new values go (a rebalance to new volumes does this); resolves once the writes
   * already under way have ended. They took their volumes from the old placement: a rebalance
   * lists the records only after they are committed, so that none lands behind it, unbalanced.
   */
  async setPlacement(placement: Placement): Promise<void> {
    this.options = { ...this.options, placement };
    this.volumes.track(placement.volumes);
    await Promise.allSettled([...this.#writes]);
  }

  handle = async (request: Request): Promise<Response> => {
    const started = performance.now();
    let response: Response;
    try {
      response = await this.#route(request);
    } catch (err) {
      if (!(err instanceof StoreError || err instanceof VolumeError)) throw err;
      await request.body?.cancel().catch(() => {});
      response = volumeFailure(err);
    }
    if (this.#measure) {
      this.metrics.request(request.method, response.status, (performance.now() - started) / 1000);
    }
    if (this.options.verbose) {
      const ms = (performance.now() - started).toFixed(1);
      console.error(
        `${request.method} ${new URL(request.url).pathname} ${response.status} ${ms}ms`,
      );
    }
    return response;
  };

  async #route(request: Request): Promise<Response> {
    const url = request.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    const target = pathStart === -1 ? "/" : url.slice(pathStart);
    const method = request.method;
    if (target.startsWith(RESERVED_PREFIX) && (method === "GET" || method === "HEAD")) {
      const answer = await this.#endpoint(target, request);
      if (answer !== null) return answer;
    }
    // S3 requests go to the S3 API, told apart as docs/s3.md, "Which requests are S3's", says
    // (lib/s3/detect.ts).
    const query = target.indexOf("?");
    const rawQuery = query === -1 ? "" : target.slice(query + 1);
    if (isS3Request({ rawQuery, headers: request.headers })) {
      return await (await this.#s3Api()).handle(request, target);
    }
    const parsed = parseTarget(target);
    if (parsed.kind === "bad") {
      await request.body?.cancel();
      return textResponse(parsed.status, parsed.reason);
    }
    const auth = this.options.auth;
    if (auth) {
      const verdict = auth.check(method, parsed.kind, request.headers.get("authorization"));
      if (!verdict.ok) {
        await request.body?.cancel();
        return textResponse(verdict.status, verdict.reason, verdict.headers);
      }
    }
    if (parsed.kind === "list") {
      if (method !== "GET" && method !== "HEAD") {
        await request.body?.cancel();
        return textResponse(400, `${method} takes no query`);
      }
      return await this.#list(parsed);
    }
    if (
      parsed.key.startsWith(RESERVED_PREFIX) &&
      (method === "PUT" || method === "DELETE" || method === "UNLINK" || method === "REBALANCE")
    ) {
      await request.body?.cancel();
      return textResponse(
        400,
        `keys under ${RESERVED_PREFIX} are reserved for the index's endpoints ` +
          `(${ENDPOINTS.join(", ")}): ${method} refused`,
      );
    }
    switch (method) {
      case "GET":
      case "HEAD":
        return await this.#get(parsed.key, parsed.rawPath);
      case "PUT":
        return await this.#put(parsed.key, request);
      case "DELETE":
      case "UNLINK":
        await request.body?.cancel();
        return await this.#delete(parsed.key, method);
      case "REBALANCE":
        await request.body?.cancel();
        return await this.#rebalance(parsed.key);
      default:
        await request.body?.cancel();
        return textResponse(405, `method ${method} not allowed`, { allow: ALLOW });
    }
  }

  /**
   * The index's own endpoints: `/-/health` and `/-/ready` open to all (load balancers), and
   * `/-/metrics`, `/-/status` and `/-/status.json`, which need `admin` with --credentials. Null
   * for any other path.
   */
  async #endpoint(target: string, request: Request): Promise<Response | null> {
    if (target === "/-/health") return await this.#health();
    if (target === "/-/ready") return this.#ready();
    if (target !== "/-/metrics" && target !== "/-/status" && target !== "/-/status.json") {
      return null;
    }
    const auth = this.options.auth;
    if (auth) {
      const verdict = auth.check(request.method, "admin", request.headers.get("authorization"));
      if (!verdict.ok) return textResponse(verdict.status, verdict.reason, verdict.headers);
    }
    const noStore = { "cache-control": "no-store" };
    if (target === "/-/metrics") {
      if (!this.#measure) return textResponse(404, "metrics are off (--metrics=false)");
      this.metrics.setVolumes(this.volumes.stats());
      this.metrics.setStore(this.store.stats);
      this.metrics.setOperation(this.board.running());
      return new Response(this.metrics.render(), {
        headers: { "content-type": CONTENT_TYPE, ...noStore },
      });
    }
    if (target === "/-/status.json") {
      return new Response(JSON.stringify(this.#status()), {
        headers: { "content-type": "application/json", ...noStore },
      });
    }
    return new Response(renderStatusPage(this.#status()), {
      headers: { "content-type": "text/html; charset=utf-8", ...noStore },
    });
  }

  /** What the status page shows, as of now. */
  #status(): StatusData {
    return {
      timeMs: Date.now(),
      replicas: this.options.placement.replicas,
      volumes: this.volumes.stats(),
      store: { ...this.store.stats },
      writesInProgress: this.metrics.writes,
      metrics: this.#measure,
      samples: this.history.samples(),
      operation: this.board.running(),
      lastOperation: this.board.last(),
    };
  }

  /** 200 `ok` if the KV answers a read (past the cache) within HEALTH_TIMEOUT_MS; else 503. */
  async #health(): Promise<Response> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.store.kv.get(["health"]),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS / 1000}s`)),
            HEALTH_TIMEOUT_MS,
          );
        }),
      ]);
      return textResponse(200, "ok");
    } catch (err) {
      return textResponse(503, `index KV does not answer: ${firstLine(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * 200 if enough volumes answer (up or full) to hold every replica of a value; else 503. Full
   * volumes count: they serve reads and DELETEs, and a DELETE through this index is how their
   * space is freed, so a load balancer must not take the index out for them; writes placed on
   * them answer 507 meanwhile. The answer names the full and the down volumes.
   */
  #ready(): Response {
    const { volumes, replicas } = this.options.placement;
    const down = volumes.filter((volume) => this.volumes.health(volume) === "down");
    const full = volumes.filter((volume) => this.volumes.health(volume) === "full");
    const up = volumes.length - down.length - full.length;
    const summary = `${up} of ${volumes.length} volumes up, ${replicas} replicas needed` +
      (full.length === 0 ? "" : `; full (reads and deletes only): ${full.join(", ")}`) +
      (down.length === 0 ? "" : `; down: ${down.join(", ")}`);
    if (up + full.length >= replicas) return textResponse(200, `ready: ${summary}`);
    return textResponse(503, `not ready: ${summary}`);
  }

  #notFound(rawPath: string): Response {
    if (this.options.fallback === "") return empty(404);
    return empty(302, { location: `http://${this.options.fallback}${rawPath}` });
  }

  /**
   * The live replicas of `key` that its record names and that were seen present within
   * VERIFIED_TTL_MS: only these are trusted, so that one replica seen present never vouches for
   * another (which may have come back with an empty disk).
   */
  #verifiedLive(key: string, record: KeyRecord): string[] {
    const seen = this.#verified.get(key);
    if (seen === undefined || Date.now() - seen.atMs >= VERIFIED_TTL_MS) return [];
    return seen.locations.filter((location) =>
      record.volumes.includes(location) && this.volumes.isAlive(location)
    );
  }

  #setVerified(key: string, locations: string[]): void {
    this.#verified.set(key, { atMs: Date.now(), locations });
  }

  async #get(key: string, rawPath: string): Promise<Response> {
    const found = await this.locate(key);
    if (found.ok) return this.#redirect(key, found.record, found.location);
    return found.status === 404 ? this.#notFound(rawPath) : textResponse(410, found.reason);
  }

  /**
   * Where a GET of a key reads: its live record and a live replica that holds its file (checked
   * on a volume at most every VERIFIED_TTL_MS); 404 if absent or unlinked, 410 if on no live
   * volume. The S3 API's GET and HEAD use it too.
   */
  async locate(key: string): Promise<Located> {
    const record = await this.store.get(key);
    if (record === null || record.state !== "live") {
      return { ok: false, status: 404, reason: `key ${key} not found` };
    }
    let live = shuffled(record.volumes.filter((v) => this.volumes.isAlive(v)));
    if (live.length === 0) {
      // A volume that closed its sockets is being probed: its answer, in milliseconds, decides.
      await this.volumes.probed(record.volumes);
      live = shuffled(record.volumes.filter((v) => this.volumes.isAlive(v)));
    }
    if (live.length === 0) {
      return {
        ok: false,
        status: 410,
        reason: `key ${key}: no live volume holds it (${record.volumes.join(",")})`,
      };
    }
    const path = this.#redirectParts(key, record).path;
    let chosen: string | undefined = shuffled(this.#verifiedLive(key, record))[0];
    if (chosen === undefined) {
      const found = await this.#findReplica(path, live);
      if (found === null) {
        return {
          ok: false,
          status: 410,
          reason: `key ${key}: not found on any live volume (${record.volumes.join(",")})`,
        };
      }
      chosen = found;
      this.#setVerified(key, [found]);
    }
    return { ok: true, record, location: chosen, path };
  }

  /** The first of `locations` that has the key's file; unreachable ones are skipped. */
  async #findReplica(path: KeyPath, locations: string[]): Promise<string | null> {
    for (const location of locations) {
      try {
        if (await this.volumes.has(location, path)) return location;
      } catch (err) {
        if (!(err instanceof VolumeError)) throw err;
      }
    }
    return null;
  }

  /** What a redirect to this record needs, computed once per record and placement. */
  #redirectParts(key: string, record: KeyRecord): RedirectParts {
    let parts = this.#parts.get(record);
    if (parts === undefined || parts.placement !== this.options.placement) {
      parts = {
        placement: this.options.placement,
        path: recordPath(key, record),
        volumes: record.volumes.join(","),
        balance: isBalanced(key, record.volumes, this.options.placement)
          ? "balanced"
          : "unbalanced",
      };
      this.#parts.set(record, parts);
    }
    return parts;
  }

  #redirect(key: string, record: KeyRecord, location: string): Response {
    const parts = this.#redirectParts(key, record);
    const headers: Record<string, string> = {
      // With private reads the URL carries its own signature: `curl -L` needs no header there.
      location: this.volumes.readUrl(location, parts.path, this.options.readExpiryMs),
      "key-volumes": parts.volumes,
      "key-balance": parts.balance,
    };
    if (record.md5 !== "") headers["content-md5"] = record.md5;
    return new Response(null, { status: 302, headers });
  }

  async #list(
    parsed: { key: string; state: "live" | "unlinked"; start?: string; limit: number },
  ): Promise<Response> {
    const keys: string[] = [];
    let next = "";
    const listed = this.store.listKeys({
      prefix: parsed.key,
      start: parsed.start,
      state: parsed.state,
    });
    for await (const key of listed) {
      // The index's own keys (multipart parts) are no one's values.
      if (key.startsWith(RESERVED_PREFIX)) continue;
      if (keys.length === parsed.limit) {
        next = key;
        break;
      }
      keys.push(key);
    }
    return new Response(JSON.stringify({ next, keys }), {
      headers: { "content-type": "application/json" },
    });
  }

  async #put(key: string, request: Request): Promise<Response> {
    const length = request.headers.get("content-length");
    const result = await this.write(key, request.body, {
      sizeBytes: length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined,
    });
    return result.ok ? empty(201) : textResponse(result.status, result.reason);
  }

  /**
   * Writes a value under its key's lock: streamed to every replica, answered once the record is
   * committed. The one write path of the API, S3 and multipart uploads. Refuses a live key unless
   * `overwrite`; the body is always consumed or cancelled.
   */
  async write(
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
    using lock = await this.#lockKeyWithin(key, options.lockWaitMs ?? 0);
    if (lock === null) {
      await body.cancel();
      return {
        ok: false,
        status: 409,
        reason: options.lockWaitMs
          ? `a write to ${key} is still in progress after ${options.lockWaitMs} ms`
          : `a write to ${key} is in progress`,
      };
    }
    this.metrics.writeStarted();
    this.#trace?.begin(key, "PUT");
    try {
      const writing = this.#writeLocked(key, path, body, { ...options, allowEmpty });
      this.#writes.add(writing);
      const result = await writing.finally(() => this.#writes.delete(writing));
      this.#trace?.end(key, result.ok ? 201 : result.status);
      return result;
    } finally {
      this.metrics.writeEnded();
    }
  }

  async #writeLocked(
    key: string,
    path: KeyPath,
    body: ReadableStream<Uint8Array>,
    options: WriteOptions,
  ): Promise<WriteResult> {
    const found = await this.#settleFirst(key, path, await this.store.get(key));
    this.#trace?.mark(key, "read");
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
      if (options.overwrite && !this.options.protect) {
        return await this.#overwrite(key, path, old, body, options);
      }
      await body.cancel();
      return {
        ok: false,
        status: 403,
        reason: this.options.protect && options.overwrite
          ? `key ${key} is protected (--protect): UNLINK it before replacing it`
          : `key ${key} exists; DELETE it first`,
      };
    }
    const where = await this.#targetsUp(key, body);
    if ("status" in where) return where;
    const { placement, targets } = where;
    // A new key's value goes to its plain file, minikeyvalue's. One written over an unlinked
    // value goes to a new version's file: the unlinked value is kept, whole, in the record and on
    // its volumes until the new one is committed, so that a write that fails gives it back.
    const writing: KeyRecord = old === null ? { state: "writing", volumes: targets, md5: "" } : {
      state: "writing",
      volumes: targets,
      md5: "",
      version: this.#newVersion(old.version),
      previous: old,
    };
    await this.store.set(key, writing);
    this.#trace?.mark(key, "commit writing");
    this.#verified.delete(key);
    const put = await this.#putReplicas(targets, versionPath(path, writing.version), body, {
      sizeBytes: options.sizeBytes,
      undo: async (err) => {
        if (err instanceof VolumeError) logWriteFailure(key, err);
        await this.#settle(key, path, writing);
      },
    });
    if (!put.ok) return put;
    this.#trace?.mark(key, "volumes");
    if (put.result.sizeBytes === 0 && !options.allowEmpty) {
      await this.#settle(key, path, writing);
      return { ok: false, status: 411, reason: "a value needs a body" };
    }
    const committed = await this.#commitWrite(
      key,
      path,
      { placement, writing },
      put.result,
      options,
    );
    // No reader sees an unlinked value: its files go at once.
    if (old !== null) await this.#removeReplaced(key, path, old, committed.record);
    return committed;
  }

  /**
   * The key's record once what an earlier write or delete left behind (after a crash, or with a
   * volume down) is settled, so that a new record never has to name those files too; or the 503
   * if a volume cannot settle it now. The caller holds the key's lock.
   */
  async #settleFirst(
    key: string,
    path: KeyPath,
    record: KeyRecord | null,
  ): Promise<{ ok: true; record: KeyRecord | null } | WriteResult & { ok: false }> {
    if (record === null || !needsSettling(record)) return { ok: true, record };
    const settled = await this.#settle(key, path, record);
    if (settled.outcome === "failed") {
      return {
        ok: false,
        status: 503,
        reason: `key ${key}: an earlier write or delete is not cleaned up: ${settled.detail}`,
      };
    }
    return { ok: true, record: await this.store.get(key) };
  }

  /** A version for a value written over one of version `after`: newer than any this index made. */
  #newVersion(after: string | undefined): string {
    this.#lastVersion = nextVersion(Date.now(), [this.#lastVersion, after]);
    return this.#lastVersion;
  }

  /**
   * The key's targets under the placement, or (the body cancelled) 503 if one is down, 507 if one
   * is full.
   */
  async #targetsUp(
    key: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ placement: Placement; targets: string[] } | WriteResult & { ok: false }> {
    const placement = this.options.placement;
    const targets = keyToVolumes(key, placement);
    const refused = this.volumes.unwritable(targets);
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
   * Streams `body` to `file` (a version of the key's file) on every target. On a failure of a
   * volume or of the client's upload, `undo` gets the error, and the failure is the answer.
   */
  async #putReplicas(
    targets: string[],
    file: KeyPath,
    body: ReadableStream<Uint8Array>,
    options: {
      sizeBytes?: number;
      undo: (err: VolumeError | UploadError) => Promise<void>;
    },
  ): Promise<{ ok: true; result: PutResult } | WriteResult & { ok: false }> {
    try {
      const result = await this.volumes.putAll(targets, file, body, {
        sizeBytes: options.sizeBytes,
      });
      return { ok: true, result };
    } catch (err) {
      if (!(err instanceof VolumeError || err instanceof UploadError)) throw err;
      await options.undo(err);
      return { ok: false, ...failureStatus(err) };
    }
  }

  /** Commits the live record of a value that `writing` names, now written whole on its targets. */
  async #commitWrite(
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
      md5: this.options.md5sum || options.attributes ? result.md5 : "",
      ...(writing.version !== undefined && { version: writing.version }),
      info: { size: result.sizeBytes, mtime: Date.now(), ...options.attributes },
    };
    await this.store.set(key, live);
    this.#trace?.mark(key, "commit live");
    this.metrics.bodyReceived(result.sizeBytes);
    // The store hands this very record to the GETs that follow: they redirect without an md5.
    this.#parts.set(live, {
      placement,
      path: versionPath(path, live.version),
      volumes: targets.join(","),
      balance: "balanced",
    });
    this.#setVerified(key, targets);
    return { ok: true, record: live, md5: result.md5, sizeBytes: result.sizeBytes };
  }

  /**
   * Replaces a live value (docs/design.md, "Overwrites"). The new value goes to a new version's
   * file, which no reader and no committed value points at: first the record names it as the live
   * value's overwrite in progress (the old value stays live for readers), then the value streams to
   * it on every target, then the live record names it, and only then, once a read already sent to
   * the old files has had time to start, are those removed (#retireLater). A crash at any instant
   * leaves the old value or the new one, each whole; a failed or cut-off upload removes the new
   * files and gives the old record back, untouched.
   */
  async #overwrite(
    key: string,
    path: KeyPath,
    old: KeyRecord,
    body: ReadableStream<Uint8Array>,
    options: WriteOptions,
  ): Promise<WriteResult> {
    const where = await this.#targetsUp(key, body);
    if ("status" in where) return where;
    const { placement, targets } = where;
    const writing: KeyRecord = {
      state: "writing",
      volumes: targets,
      md5: "",
      version: this.#newVersion(old.version),
    };
    const pending: KeyRecord = { ...old, next: writing };
    await this.store.set(key, pending);
    this.#trace?.mark(key, "commit writing");
    const put = await this.#putReplicas(targets, versionPath(path, writing.version), body, {
      sizeBytes: options.sizeBytes,
      undo: async (err) => {
        if (err instanceof VolumeError) logWriteFailure(key, err);
        await this.#settle(key, path, pending);
      },
    });
    if (!put.ok) return put;
    this.#trace?.mark(key, "volumes");
    const committed = await this.#commitWrite(
      key,
      path,
      { placement, writing },
      put.result,
      options,
    );
    this.#retireLater(key, path, old);
    return committed;
  }

  /**
   * Removes the files of `old`, a value that `current` replaced, except any that `current` names
   * too (a record left by an earlier version of mkv.ts may name the same file). What cannot be
   * removed now is logged: no record names it, so gc removes it.
   */
  async #removeReplaced(
    key: string,
    path: KeyPath,
    old: KeyRecord,
    current: KeyRecord | null,
  ): Promise<void> {
    const version = old.version;
    const stale = old.volumes.filter((location) => !namesFile(current, { version, location }));
    for (const failure of await this.volumes.deleteAll(stale, versionPath(path, version))) {
      console.error(`index: key ${JSON.stringify(key)}: old value left for gc: ${failure.message}`);
    }
  }

  /**
   * Removes the files of a live value that an overwrite replaced, after RETIRE_GRACE_MS: a client
   * sent there by a redirect just before the commit still finds them (once nginx opened a file, its
   * read goes on after the file is removed). Only where the key's record does not name the same
   * file again. It takes no lock, so that it never makes a write wait or fail: a version is never
   * given to a key again (nextVersion), and the plain file only is again after a DELETE, which
   * runs the key's removals first (#retireNow), under its lock. One lost to a crash is left to gc.
   */
  #retireLater(key: string, path: KeyPath, old: KeyRecord): void {
    let wake = () => {};
    const timer = setTimeout(() => wake(), RETIRE_GRACE_MS);
    const done = new Promise<void>((resolve) => {
      wake = resolve;
    }).then(async () => {
      clearTimeout(timer);
      await this.#removeReplaced(key, path, old, await this.store.get(key));
    }).catch((err) => {
      console.error(`index: key ${JSON.stringify(key)}: old value left for gc: ${firstLine(err)}`);
    }).finally(() => {
      const left = this.#retiring.get(key)?.filter((retiring) => retiring.done !== done) ?? [];
      if (left.length > 0) this.#retiring.set(key, left);
      else this.#retiring.delete(key);
    });
    this.#retiring.set(key, [...(this.#retiring.get(key) ?? []), { wake, done }]);
  }

  /** Whether a value of the key that an overwrite replaced waits out its grace to be removed. */
  isRetiring(key: string): boolean {
    return this.#retiring.has(key);
  }

  /** Runs the key's removals of replaced values now (all keys' if `key` is null); waits for them. */
  async #retireNow(key: string | null): Promise<void> {
    const retiring = key === null
      ? [...this.#retiring.values()].flat()
      : this.#retiring.get(key) ?? [];
    for (const { wake } of retiring) wake();
    await Promise.allSettled(retiring.map(({ done }) => done));
  }

  /**
   * Settles a record that needs it under its key's lock; what cannot be done now (a volume down)
   * stays for the sweep.
   */
  async #settle(key: string, path: KeyPath, record: KeyRecord): Promise<Settled> {
    const settled = await settlePending(this, key, record, path);
    if (settled.outcome === "failed") {
      logEvent("settle_failed", {
        msg: `index: key ${JSON.stringify(key)}: failed: ${settled.detail}`,
        key,
        reason: settled.detail,
      });
    }
    return settled;
  }

  async #delete(key: string, method: "DELETE" | "UNLINK"): Promise<Response> {
    const result = await this.remove(key, { unlink: method === "UNLINK", background: true });
    return result.ok
      ? empty(204)
      : result.status === 404
      ? empty(404)
      : textResponse(result.status, result.reason);
  }

  /**
   * `REBALANCE /key` (minikeyvalue's): moves the key's replicas to where the current placement
   * puts them, under its lock, as the rebalance operation does for every key (moveReplicas);
   * 204 once the new record is committed and the old copies removed, 404 if absent.
   */
  async #rebalance(key: string): Promise<Response> {
    using lock = await this.#lockKey(key);
    if (lock === null) return textResponse(409, `a write to ${key} is in progress`);
    const record = await this.store.get(key);
    if (record === null || isPending(record)) return empty(404);
    const plan = planRebalance(key, record, this.options.placement);
    if (plan.balanced) return empty(204);
    const moved = await moveReplicas(this, key, record, plan);
    if (!moved.ok) return textResponse(503, `key ${key}: ${moved.detail}`);
    this.#verified.delete(key);
    const failures = await this.volumes.deleteAll(moved.deleteFrom, recordPath(key, record));
    for (const failure of failures) {
      console.error(
        `index: REBALANCE ${JSON.stringify(key)}: ${failure.message}; ${LEFT_AS_EXTRA}`,
      );
    }
    return empty(204);
  }

  /**
   * Deletes a key (or with `unlink`, hides it, keeping its files) under its lock: accepted once
   * the record commits, its files removed now or by the sweep. `force` deletes a live key even
   * with --protect (the index's own keys: multipart parts). With `background` (DELETE, S3's
   * DeleteObject) it answers once the record says `deleting` and removes the files after;
   * without, once they are removed (the parts of an aborted or completed multipart upload).
   */
  async remove(
    key: string,
    options: { unlink?: boolean; force?: boolean; background?: boolean } = {},
  ): Promise<{ ok: true } | { ok: false; status: number; reason: string }> {
    const lock = await this.#lockKey(key);
    if (lock === null) {
      return { ok: false, status: 409, reason: `a write to ${key} is in progress` };
    }
    using held = new DisposableStack();
    held.use(lock);
    const path = keyToPath(key);
    const found = await this.store.get(key);
    const absent = { ok: false, status: 404, reason: `key ${key} not found` } as const;
    if (found === null || isPending(found)) return absent;
    // An overwrite interrupted by a crash is undone first: its files go with it.
    const settled = await this.#settleFirst(key, path, found);
    if (!settled.ok) return settled;
    const record = settled.record;
    if (record === null || isPending(record)) return absent;
    if (options.unlink) {
      if (record.state !== "live") return absent;
      await this.store.set(key, { ...record, state: "unlinked" });
      return { ok: true };
    }
    if (this.options.protect && record.state === "live" && !options.force) {
      return { ok: false, status: 403, reason: `key ${key} is protected: UNLINK it before DELETE` };
    }
    // A value this one replaced is removed first: then no removal of the key's plain file is
    // left to run after a new value is written there.
    await this.#retireNow(key);
    // Accepted once this commits: the key is gone for readers, and its files are the store's
    // to remove, now, or by the sweep if a volume cannot be reached (or after a crash). In the
    // background, the answer does not wait for them (bench/NOTES.md, "Write tail latency").
    // They are removed where the record points and where the placement puts the key, so that a
    // copy the record does not name never brings the key back at a rebuild. On the other volumes
    // of the placement (where a rebalance cut short may have left one) they are removed once, as
    // far as those volumes answer: a volume down there never holds the DELETE back.
    const placement = this.options.placement;
    const deleting: KeyRecord = {
      state: "deleting",
      volumes: [...new Set([...record.volumes, ...keyToVolumes(key, placement)])],
      md5: record.md5,
      ...(record.version !== undefined && { version: record.version }),
    };
    const elsewhere = keyLocations(key, placement).filter((location) =>
      !deleting.volumes.includes(location) && this.volumes.isAlive(location)
    );
    this.#trace?.begin(key, "DELETE");
    await this.store.set(key, deleting);
    this.#trace?.mark(key, "commit deleting");
    this.#verified.delete(key);
    const also = { locations: elsewhere, path: recordPath(key, record) };
    if (options.background) this.#removeLater(key, path, deleting, held.move(), also);
    else await this.#settle(key, path, deleting).then(() => this.#removeElsewhere(key, also));
    this.#trace?.end(key, 204);
    return { ok: true };
  }

  /**
   * The key's write lock (null if a write to it is in progress), taken once the removal of an
   * accepted DELETE of the key, if one is finishing, is done: so a PUT right after a DELETE
   * writes its files after the old ones are gone, never to have them removed under it.
   */
  async #lockKey(key: string): Promise<Disposable | null> {
    const removal = this.#removals.get(key);
    if (removal !== undefined) await removal;
    return this.store.lock(key);
  }

  /**
   * The key's write lock, waiting up to `waitMs` for the write or delete that holds it to end:
   * null if it still does. Writes that wait take the lock in no set order; each then writes
   * whole, so the last to take it wins.
   */
  async #lockKeyWithin(key: string, waitMs: number): Promise<Disposable | null> {
    const deadlineMs = Date.now() + waitMs;
    for (let pauseMs = 5;; pauseMs = Math.min(pauseMs * 2, LOCK_POLL_MAX_MS)) {
      const lock = await this.#lockKey(key);
      const leftMs = deadlineMs - Date.now();
      if (lock !== null || leftMs <= 0) return lock;
      await new Promise((resolve) => setTimeout(resolve, Math.min(pauseMs, leftMs)));
    }
  }

  /**
   * Removes the files and then the record of an accepted DELETE, after its answer, holding the
   * key's lock (`lock`) until done. What fails (a volume down, a commit) leaves the record
   * `deleting` for the sweep, as a crash does.
   */
  #removeLater(
    key: string,
    path: KeyPath,
    record: KeyRecord,
    lock: Disposable,
    also: { locations: string[]; path: KeyPath },
  ): void {
    // No caller is left to hand an error to, and the sweep retries whatever this leaves: every
    // failure is logged.
    const removal = this.#settle(key, path, record).then(
      () => this.#removeElsewhere(key, also),
    ).then(() => {}, (err) => {
      const reason = err instanceof Error ? err.message : String(err);
      logEvent("settle_failed", {
        msg: `index: key ${JSON.stringify(key)}: removal left for the sweep: ${reason}`,
        key,
        reason,
      });
    }).finally(() => {
      this.#removals.delete(key);
      lock[Symbol.dispose]();
    });
    this.#removals.set(key, removal);
  }

  /**
   * Removes a deleted key's file where neither its record nor the placement's targets put it
   * (see remove): once, whatever a volume answers; a failure is logged and left.
   */
  async #removeElsewhere(
    key: string,
    also: { locations: string[]; path: KeyPath },
  ): Promise<void> {
    for (const failure of await this.volumes.deleteAll(also.locations, also.path)) {
      if (failure.status === 404) continue;
      console.error(`index: key ${JSON.stringify(key)}: ${failure.message}; left as it is`);
    }
  }

  /**
   * A volume came back (it answers its probe again). It may have come back empty (a new disk), so
   * replicas trusted until now are checked again before a GET is sent to them (docs/operations.md,
   * "Volume health"); and the removals that waited for it are done.
   */
  volumeUp(): void {
    this.#verified.clear();
    this.sweepPending().catch(() => {});
  }

  /**
   * Settles the records that need it and that no write holds: files of interrupted writes and of
   * deletes are removed, and the value an interrupted write would have replaced (live or
   * unlinked) stays as it was. Runs at
   * start-up, every SWEEP_INTERVAL_MS and when a volume comes back (see `startSweeps`); one at a
   * time. Returns how many were settled; those that cannot be yet stay for the next sweep (or gc).
   */
  sweepPending(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = null;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    let settled = 0;
    let left = 0;
    for (const key of this.store.listPending()) {
      using lock = this.store.lock(key);
      if (lock === null) continue;
      const record = await this.store.get(key);
      if (record === null || !needsSettling(record)) continue;
      const result = await settlePending(this, key, record);
      if (result.outcome !== "failed") settled++;
      else left++;
    }
    if (settled > 0) {
      logEvent("sweep", {
        msg: `index: sweep settled ${settled} pending records` +
          (left > 0 ? `; ${left} wait for their volumes` : ""),
        settled,
        left,
      });
    }
    return settled;
  }

  /**
   * Sweeps pending records now and every SWEEP_INTERVAL_MS, until `stopSweeps`; and (unless
   * --metrics=false) samples the request totals for the status page's history meanwhile.
   */
  /**
   * The S3 API, loaded on the first S3 request: a plain minikeyvalue index never pays its
   * memory (XML, SigV4 and Node's crypto).
   */
  #s3Api(): Promise<S3Api> {
    this.#s3 ??= import("../s3/api.ts").then(({ S3Api }) => new S3Api(this));
    return this.#s3;
  }

  /**
   * Aborts S3 multipart uploads older than --multipart-max-age and parts left without an upload;
   * loads the S3 API only if there is any.
   */
  async reapUploads(): Promise<number> {
    const any = async (entries: AsyncIterable<unknown>) => {
      for await (const _ of entries) return true;
      return false;
    };
    const pending = await any(this.store.kv.list({ prefix: [UPLOADS_PREFIX] }, { limit: 1 })) ||
      await any(this.store.list({ prefix: PARTS_PREFIX, state: "all" }));
    return pending ? await (await this.#s3Api()).multipart.reap() : 0;
  }

  startSweeps(): void {
    const sweep = () => {
      this.sweepPending().catch((err) => {
        logEvent("sweep_failed", {
          msg: `index: sweep of pending records failed: ${(err as Error).message}`,
          reason: (err as Error).message,
        });
      });
    };
    sweep();
    this.#sweepTimer ??= setInterval(sweep, SWEEP_INTERVAL_MS);
    const reap = () => {
      this.#reaping ??= this.reapUploads().catch((err) => {
        logEvent("reap_failed", {
          msg: `index: reaping of S3 multipart uploads failed: ${(err as Error).message}`,
          reason: (err as Error).message,
        });
      }).finally(() => {
        this.#reaping = null;
      });
    };
    reap();
    this.#reapTimer ??= setInterval(reap, REAP_INTERVAL_MS);
    if (this.#measure) this.history.start(() => this.metrics.totals());
  }

  /** Stops the sweeps (and the sampling); waits for one running. */
  async stopSweeps(): Promise<void> {
    this.history.stop();
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    clearInterval(this.#reapTimer);
    this.#reapTimer = undefined;
    await this.#reaping;
    await this.#sweeping?.catch(() => {});
    await Promise.allSettled(this.#removals.values());
    // Replaced values are removed now rather than after their grace: no redirect is followed
    // once the index stops answering.
    await this.#retireNow(null);
  }
}
