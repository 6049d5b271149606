// The index's HTTP API (see README): GET/HEAD answer with a 302 to a live replica, PUT streams to
// every replica at once, DELETE/UNLINK, and `?list`/`?unlinked` listings. Bad input gets a 4xx
// with a short reason; a 5xx always names the volume or the disk that failed.

import {
  isBalanced,
  type KeyPath,
  keyToPath,
  keyToVolumes,
  MAX_KEY_BYTES,
  type Placement,
} from "./placement.ts";
import type { Auth } from "./auth.ts";
import { settlePending } from "./cleanup.ts";
import { firstLine, textResponse } from "./errors.ts";
import { Lru } from "./lru.ts";
import { CONTENT_TYPE, IndexMetrics } from "./metrics.ts";
import { isPending, type KeyRecord } from "./record.ts";
import { type Store, StoreError } from "./store.ts";
import { UploadError, VolumeError, type Volumes, type WriteOutcome } from "./volumes.ts";

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
/** The methods of the API, for `Allow`. */
const ALLOW = "GET, HEAD, PUT, DELETE, UNLINK";
/** Paths under this prefix are the index's own (health, metrics); no key under it is written. */
export const RESERVED_PREFIX = "/-/";
/** The index's own endpoints, all GET/HEAD. */
export const ENDPOINTS = ["/-/health", "/-/ready", "/-/metrics"] as const;
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
}

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

/** Bytes of `text` in UTF-8, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
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

function volumeFailure(err: VolumeError | UploadError | StoreError): Response {
  if (err instanceof UploadError) return textResponse(400, err.message);
  if (err instanceof StoreError) return textResponse(500, err.message);
  return textResponse(err.status === 507 ? 507 : 503, err.message);
}

/** The index: its state and the handler of its HTTP API. */
export class IndexServer {
  readonly store: Store;
  readonly volumes: Volumes;
  options: ServerOptions;
  #verified = new Lru<string, number>(VERIFIED_ENTRIES);
  #parts = new WeakMap<KeyRecord, RedirectParts>();
  #sweeping: Promise<number> | null = null;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  /** What `/-/metrics` shows; always kept (a few additions per request). */
  readonly metrics = new IndexMetrics();

  constructor(store: Store, volumes: Volumes, options: ServerOptions) {
    this.store = store;
    this.volumes = volumes;
    this.options = options;
    store.onCommit = (seconds) => this.metrics.commit(seconds);
  }

  /** Changes where new values go (a rebalance to new volumes does this). */
  setPlacement(placement: Placement): void {
    this.options = { ...this.options, placement };
    this.volumes.track(placement.volumes);
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
    this.metrics.request(request.method, response.status, (performance.now() - started) / 1000);
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
      (method === "PUT" || method === "DELETE" || method === "UNLINK")
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
      default:
        await request.body?.cancel();
        return textResponse(405, `method ${method} not allowed`, { allow: ALLOW });
    }
  }

  /**
   * The index's own endpoints: `/-/health` and `/-/ready` open to all (load balancers), and
   * `/-/metrics`, which needs `admin` with --credentials. Null for any other path.
   */
  async #endpoint(target: string, request: Request): Promise<Response | null> {
    switch (target) {
      case "/-/health":
        return await this.#health();
      case "/-/ready":
        return this.#ready();
      case "/-/metrics": {
        const auth = this.options.auth;
        if (auth) {
          const verdict = auth.check(request.method, "admin", request.headers.get("authorization"));
          if (!verdict.ok) return textResponse(verdict.status, verdict.reason, verdict.headers);
        }
        this.metrics.setVolumes(this.volumes.stats());
        return new Response(this.metrics.render(), { headers: { "content-type": CONTENT_TYPE } });
      }
      default:
        return null;
    }
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

  /** 200 if enough volumes are up to place every replica of a value; else 503 naming the down. */
  #ready(): Response {
    const { volumes, replicas } = this.options.placement;
    const down = volumes.filter((volume) => !this.volumes.isAlive(volume));
    const up = volumes.length - down.length;
    const summary = `${up} of ${volumes.length} volumes up, ${replicas} replicas needed` +
      (down.length === 0 ? "" : `; down: ${down.join(", ")}`);
    if (up >= replicas) return textResponse(200, `ready: ${summary}`);
    return textResponse(503, `not ready: ${summary}`);
  }

  #notFound(rawPath: string): Response {
    if (this.options.fallback === "") return empty(404);
    return empty(302, { location: `http://${this.options.fallback}${rawPath}` });
  }

  #isVerified(key: string): boolean {
    const at = this.#verified.get(key);
    return at !== undefined && Date.now() - at < VERIFIED_TTL_MS;
  }

  #setVerified(key: string): void {
    this.#verified.set(key, Date.now());
  }

  async #get(key: string, rawPath: string): Promise<Response> {
    const record = await this.store.get(key);
    if (record === null || record.state !== "live") return this.#notFound(rawPath);
    const live = shuffled(record.volumes.filter((v) => this.volumes.isAlive(v)));
    if (live.length === 0) {
      return textResponse(410, `key ${key}: no live volume holds it (${record.volumes.join(",")})`);
    }
    let chosen = live[0];
    if (!this.#isVerified(key)) {
      const found = await this.#findReplica(this.#redirectParts(key, record).path, live);
      if (found === null) {
        return textResponse(
          410,
          `key ${key}: not found on any live volume (${record.volumes.join(",")})`,
        );
      }
      chosen = found;
      this.#setVerified(key);
    }
    return this.#redirect(key, record, chosen);
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
        path: keyToPath(key),
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
    for await (
      const [key] of this.store.list({
        prefix: parsed.key,
        start: parsed.start,
        state: parsed.state,
      })
    ) {
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
    const body = request.body;
    if (body === null || request.headers.get("content-length") === "0") {
      await body?.cancel();
      return textResponse(411, "a value needs a body");
    }
    const path = keyToPath(key);
    if (!storable(path)) {
      await body.cancel();
      return textResponse(
        400,
        "key cannot be stored: its base64 form ends in / (minikeyvalue layout)",
      );
    }
    using lock = this.store.lock(key);
    if (lock === null) {
      await body.cancel();
      return textResponse(409, `a write to ${key} is in progress`);
    }
    const length = request.headers.get("content-length");
    const sizeBytes = length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
    this.metrics.writeStarted();
    try {
      return await this.#putLocked(key, path, body, sizeBytes);
    } finally {
      this.metrics.writeEnded();
    }
  }

  async #putLocked(
    key: string,
    path: KeyPath,
    body: ReadableStream<Uint8Array>,
    sizeBytes: number | undefined,
  ): Promise<Response> {
    const old = await this.store.get(key);
    if (old !== null && old.state === "live") {
      await body.cancel();
      return textResponse(403, `key ${key} exists; DELETE it first`);
    }
    const placement = this.options.placement;
    const targets = keyToVolumes(key, placement);
    const down = targets.find((location) => !this.volumes.isAlive(location));
    if (down !== undefined) {
      await body.cancel();
      return textResponse(503, `volume ${down}: down; cannot write ${key}`);
    }
    // The record names every place a file of this key may be, old ones included, so that the
    // cleanup of an interrupted write (here, at start-up, or by gc) finds them all. An unlinked
    // value being replaced is kept in the record until the new one is committed, so that a write
    // that fails gives it back.
    const everywhere = [...new Set([...targets, ...(old?.volumes ?? [])])];
    const previous = old?.state === "unlinked" ? old : old?.previous;
    const writing: KeyRecord = { state: "writing", volumes: everywhere, md5: "", previous };
    await this.store.set(key, writing);
    this.#verified.delete(key);
    const written: WriteOutcome = { stored: [], uncertain: [] };
    let result;
    try {
      result = await this.volumes.putAll(targets, path, body, { sizeBytes, outcome: written });
    } catch (err) {
      if (!(err instanceof VolumeError || err instanceof UploadError)) throw err;
      await this.#settle(key, path, writing, written);
      return volumeFailure(err);
    }
    if (result.sizeBytes === 0) {
      await this.#settle(key, path, writing, written);
      return textResponse(411, "a value needs a body");
    }
    const live: KeyRecord = {
      state: "live",
      volumes: targets,
      md5: this.options.md5sum ? result.md5 : "",
    };
    await this.store.set(key, live);
    this.metrics.bodyReceived(result.sizeBytes);
    // The store hands this very record to the GETs that follow: they redirect without an md5.
    this.#parts.set(live, { placement, path, volumes: targets.join(","), balance: "balanced" });
    this.#setVerified(key);
    const stale = everywhere.filter((location) => !targets.includes(location));
    if (stale.length > 0) await this.volumes.deleteAll(stale, path);
    return empty(201);
  }

  /**
   * Settles a pending record under its key's lock; what cannot be done now (a volume down) stays
   * pending for the sweep.
   */
  async #settle(
    key: string,
    path: KeyPath,
    record: KeyRecord,
    written: WriteOutcome | null,
  ): Promise<void> {
    const settled = await settlePending(this, key, record, written, path);
    if (settled.outcome === "failed" || settled.outcome === "lost") {
      console.error(`index: key ${JSON.stringify(key)}: ${settled.outcome}: ${settled.detail}`);
    }
  }

  async #delete(key: string, method: "DELETE" | "UNLINK"): Promise<Response> {
    using lock = this.store.lock(key);
    if (lock === null) return textResponse(409, `a write to ${key} is in progress`);
    const record = await this.store.get(key);
    if (record === null || isPending(record)) return empty(404);
    if (method === "UNLINK") {
      if (record.state !== "live") return empty(404);
      await this.store.set(key, { ...record, state: "unlinked" });
      return empty(204);
    }
    if (this.options.protect && record.state === "live") {
      return textResponse(403, `key ${key} is protected: UNLINK it before DELETE`);
    }
    // Accepted once this commits: the key is gone for readers, and its files are the store's
    // to remove, now, or by the sweep if a volume cannot be reached (or after a crash).
    const deleting: KeyRecord = { state: "deleting", volumes: record.volumes, md5: record.md5 };
    await this.store.set(key, deleting);
    this.#verified.delete(key);
    await this.#settle(key, this.#parts.get(record)?.path ?? keyToPath(key), deleting, null);
    return empty(204);
  }

  /**
   * Settles the pending records that no write holds: files of interrupted writes and of deletes
   * are removed, unlinked values a failed write would have replaced are given back. Runs at
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
    for await (const key of this.store.listPending()) {
      using lock = this.store.lock(key);
      if (lock === null) continue;
      const record = await this.store.get(key);
      if (record === null || !isPending(record)) continue;
      const result = await settlePending(this, key, record, null);
      if (result.outcome !== "failed") settled++;
      if (result.outcome === "lost") {
        console.error(`index: key ${JSON.stringify(key)}: lost: ${result.detail}`);
      }
    }
    return settled;
  }

  /** Sweeps pending records now and every SWEEP_INTERVAL_MS, until `stopSweeps`. */
  startSweeps(): void {
    const sweep = () => {
      this.sweepPending().catch((err) => {
        console.error(`index: sweep of pending records failed: ${(err as Error).message}`);
      });
    };
    sweep();
    this.#sweepTimer ??= setInterval(sweep, SWEEP_INTERVAL_MS);
  }

  /** Stops the sweeps; waits for one running. */
  async stopSweeps(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    await this.#sweeping?.catch(() => {});
  }
}
