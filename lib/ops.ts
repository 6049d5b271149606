// Operations on a cluster: rebuild (the index from the volumes' files), rebalance (values to where
// the placement puts them), verify (every replica, optionally its md5; --repair fixes them) and gc
// (files and interrupted writes that no key points to). `index.ts COMMAND` runs them: through the
// admin socket of a running server when one answers (it then works with the server's own store,
// so key locks and the write-through cache stay coherent, and streams its progress back as
// NDJSON), or else on the index directly. Keys are iterated lazily and values are streamed, so
// memory stays bounded whatever the size of the cluster.
//
//   deno run -A index.ts verify --db ./data/index --volumes localhost:3001,localhost:3002 --md5

import { settlePending } from "./cleanup.ts";
import type { IndexOptions } from "./config.ts";
import { isBalanced, keyToVolumes, locationHost, pathToKey, type Placement } from "./placement.ts";
import { isPending, type KeyRecord } from "./record.ts";
import type { IndexServer } from "./server.ts";
import { adminSocketPath, Store, StoreError } from "./store.ts";
import { VolumeError, Volumes } from "./volumes.ts";

/** The admin socket's file name inside the --db directory (index.ts serves it there). */
/** The admin socket's one endpoint. */
const OPERATION_PATH = "/operation";
/** How often progress is reported. */
const PROGRESS_INTERVAL_MS = 250;
/**
 * Online, the files a rebalance moved away from stay this long after the new record is committed,
 * so that a client following a redirect issued just before the commit still finds the value.
 */
const ONLINE_DELETE_GRACE_MS = 2000;
/** Rounds of retrying keys that were locked by a write, and the pause between rounds. */
const BUSY_ROUNDS = 20;
const BUSY_PAUSE_MS = 250;
/** `HH/hh` directory pairs of the layout: the unit of progress of a walk of the volumes. */
const PREFIX_PAIRS = 65536;

const HEX_DIR = /^[0-9a-f]{2}$/;
const SUBVOLUME_DIR = /^sv[0-9A-F]{2}$/;

export const OPERATIONS = ["rebuild", "rebalance", "verify", "gc"] as const;
export type Operation = typeof OPERATIONS[number];

/** What to run; sent as JSON to a running server's admin socket. */
export interface OperationRequest {
  command: Operation;
  placement: Placement;
  /** rebuild: compute each value's md5. */
  md5sum: boolean;
  /** verify: read each replica and check its md5. */
  md5: boolean;
  /** verify: re-create missing and corrupt replicas. */
  repair: boolean;
  /** gc, rebalance: only list what would change. */
  dryRun: boolean;
  /** Keys worked on at once. */
  concurrency: number;
}

export type Counts = Record<string, number>;

/** What an operation reports as it runs; one JSON line each with --json and on the socket. */
export type OperationEvent =
  | {
    type: "progress";
    command: Operation;
    done: number;
    total: number | null;
    unit: string;
    elapsedMs: number;
    counts: Counts;
  }
  | {
    type: "item";
    command: Operation;
    outcome: string;
    key?: string;
    location?: string;
    detail: string;
  }
  | { type: "summary"; command: Operation; counts: Counts; undone: number; elapsedMs: number }
  | { type: "error"; command: Operation; message: string };

type Emit = (event: OperationEvent) => Promise<void>;

/**
 * Outcomes that leave work undone (so the command exits non-zero). The others are done, or
 * informational (a dry run's findings, a write in progress that was rightly left alone).
 */
const UNDONE = new Set([
  "conflict",
  "failed",
  "busy",
  "missing",
  "corrupt",
  "unreachable",
  "lost",
  "cleanup-failed",
]);
/** Outcomes that are counted but not reported one by one: the normal case of each command. */
const QUIET = new Set([
  "added",
  "updated",
  "unchanged",
  "moved",
  "balanced",
  "ok",
  "kept",
  "in-progress",
  "gone",
]);

// ---------------------------------------------------------------------------------------------
// Pure parts.

/** A request for the admin socket from the command line's options. */
export function operationRequest(options: IndexOptions): OperationRequest {
  if (!(OPERATIONS as readonly string[]).includes(options.command)) {
    throw new Error(`${options.command} is not an operation`);
  }
  return {
    command: options.command as Operation,
    placement: {
      volumes: options.volumes,
      replicas: options.replicas,
      subvolumes: options.subvolumes,
    },
    md5sum: options.md5sum,
    md5: options.md5,
    repair: options.repair,
    dryRun: options.dryRun,
    concurrency: options.concurrency,
  };
}

/** Checks a request that came over the admin socket; throws with a one-line reason. */
export function parseOperationRequest(value: unknown): OperationRequest {
  const v = value as Partial<OperationRequest> | null;
  if (v === null || typeof v !== "object") throw new Error("request is not a JSON object");
  if (!(OPERATIONS as readonly unknown[]).includes(v.command)) {
    throw new Error(`command must be one of ${OPERATIONS.join(", ")}`);
  }
  const p = v.placement;
  if (
    p === undefined || !Array.isArray(p.volumes) || p.volumes.length === 0 ||
    !p.volumes.every((h) => typeof h === "string" && /^[A-Za-z0-9.\-\[\]:]+:\d+$/.test(h)) ||
    !Number.isInteger(p.replicas) || p.replicas < 1 || p.replicas > p.volumes.length ||
    !Number.isInteger(p.subvolumes) || p.subvolumes < 1 || p.subvolumes > 256
  ) {
    throw new Error("placement must have volumes (host:port), replicas and subvolumes");
  }
  for (const flag of ["md5sum", "md5", "repair", "dryRun"] as const) {
    if (typeof v[flag] !== "boolean") throw new Error(`${flag} must be true or false`);
  }
  if (!Number.isInteger(v.concurrency) || v.concurrency! < 1 || v.concurrency! > 1024) {
    throw new Error("concurrency must be 1 to 1024");
  }
  return v as OperationRequest;
}

/** Whether an outcome leaves work undone. */
export function isUndone(outcome: string): boolean {
  return UNDONE.has(outcome);
}

/** Replica locations in placement order: those `keyToVolumes` names first, then the rest sorted. */
export function orderByPlacement(key: string, locations: string[], placement: Placement): string[] {
  const wanted = keyToVolumes(key, placement);
  const present = new Set(locations);
  const first = wanted.filter((location) => present.has(location));
  const rest = [...present].filter((location) => !wanted.includes(location)).sort();
  return [...first, ...rest];
}

export interface RebalancePlan {
  balanced: boolean;
  /** Where the replicas go, in placement order. */
  targets: string[];
  /** Targets that lack the value (not in the record): copied to before the commit. */
  copyTo: string[];
  /** Record locations not among the targets: deleted after the commit. */
  deleteFrom: string[];
}

/** What a rebalance does to one key's record. */
export function planRebalance(key: string, record: KeyRecord, placement: Placement): RebalancePlan {
  const targets = keyToVolumes(key, placement);
  return {
    balanced: isBalanced(key, record.volumes, placement),
    targets,
    copyTo: targets.filter((location) => !record.volumes.includes(location)),
    deleteFrom: record.volumes.filter((location) => !targets.includes(location)),
  };
}

/** A replica of a key as found by rebuild: where, its size, and its md5 if it was read. */
export interface FoundReplica {
  location: string;
  sizeBytes: number;
  md5?: string;
}

export type RebuildVerdict =
  | { ok: true; volumes: string[]; md5: string }
  | { ok: false; detail: string };

/**
 * The record that the replicas found of a key make, or a conflict if their contents differ (in
 * size, or in md5 when read): then none is picked.
 */
export function rebuildVerdict(
  key: string,
  found: FoundReplica[],
  placement: Placement,
): RebuildVerdict {
  const sizes = new Set(found.map((replica) => replica.sizeBytes));
  const md5s = new Set(found.map((replica) => replica.md5 ?? ""));
  if (sizes.size > 1 || md5s.size > 1) {
    const each = found.map((r) =>
      `${r.location} ${r.sizeBytes} bytes${r.md5 ? ` md5 ${r.md5}` : ""}`
    );
    return { ok: false, detail: `replicas differ: ${each.join(", ")}` };
  }
  const volumes = orderByPlacement(key, found.map((replica) => replica.location), placement);
  return { ok: true, volumes, md5: [...md5s][0] };
}

/** What verify saw of one replica: `md5` when it was read. */
export type ReplicaCheck =
  | { location: string; state: "present"; md5?: string }
  | { location: string; state: "missing" }
  | { location: string; state: "unreachable"; detail: string };

export interface ReplicaVerdict {
  /** Replicas holding the right value (any present one when there is no md5 to check). */
  good: string[];
  missing: string[];
  corrupt: string[];
  unreachable: string[];
  /** No md5 is recorded and the replicas read have different ones: no way to tell the good. */
  conflict: boolean;
}

/** Sorts a key's replicas by their state against the record's md5 ("" if none is recorded). */
export function classifyReplicas(expectedMd5: string, checks: ReplicaCheck[]): ReplicaVerdict {
  const verdict: ReplicaVerdict = {
    good: [],
    missing: [],
    corrupt: [],
    unreachable: [],
    conflict: false,
  };
  const readMd5s = new Set<string>();
  for (const check of checks) {
    if (check.state === "missing") verdict.missing.push(check.location);
    else if (check.state === "unreachable") verdict.unreachable.push(check.location);
    else if (expectedMd5 !== "" && check.md5 !== undefined && check.md5 !== expectedMd5) {
      verdict.corrupt.push(check.location);
    } else {
      verdict.good.push(check.location);
      if (check.md5 !== undefined) readMd5s.add(check.md5);
    }
  }
  if (expectedMd5 === "" && readMd5s.size > 1) {
    verdict.conflict = true;
    verdict.good = [];
  }
  return verdict;
}

/** Whether a verdict needs nothing done. */
export function allGood(verdict: ReplicaVerdict): boolean {
  return verdict.missing.length === 0 && verdict.corrupt.length === 0 &&
    verdict.unreachable.length === 0 && !verdict.conflict;
}

/** `1:02:03` or `2:03` from milliseconds. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function formatCounts(counts: Counts): string {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).sort(([a], [b]) => a < b ? -1 : 1);
  return parts.length === 0 ? "nothing" : parts.map(([name, n]) => `${name} ${n}`).join(", ");
}

/** The live progress line: done/total, rate, ETA and counts so far. */
export function formatProgress(
  event: Extract<OperationEvent, { type: "progress" }>,
): string {
  const seconds = event.elapsedMs / 1000;
  const rate = seconds > 0 ? event.done / seconds : 0;
  const rateText = `${rate >= 100 ? Math.round(rate) : rate.toFixed(1)} ${event.unit}/s`;
  if (event.total === null && event.done === 0) return `${event.command}: starting`;
  let position = `${event.done} ${event.unit}`;
  let eta = "";
  if (event.total !== null && event.total > 0) {
    const percent = Math.min(100, (event.done / event.total) * 100).toFixed(1);
    position = `${event.done}/${event.total} ${event.unit} ${percent}%`;
    if (rate > 0) eta = `, ETA ${formatDuration(((event.total - event.done) / rate) * 1000)}`;
  }
  return `${event.command}: ${position}, ${rateText}${eta} (${formatCounts(event.counts)})`;
}

/** One reported finding, as a line of text. */
export function formatItem(event: Extract<OperationEvent, { type: "item" }>): string {
  const where = [event.key === undefined ? "" : JSON.stringify(event.key), event.location ?? ""]
    .filter((part) => part !== "").join(" at ");
  const head = where === "" ? event.outcome : `${event.outcome} ${where}`;
  return `${event.command}: ${head}${event.detail ? `: ${event.detail}` : ""}`;
}

/** The summary line at the end. */
export function formatSummary(event: Extract<OperationEvent, { type: "summary" }>): string {
  const undone = event.undone > 0 ? `; ${event.undone} left undone` : "";
  return `${event.command}: ${formatCounts(event.counts)} in ${
    formatDuration(event.elapsedMs)
  }${undone}`;
}

/** An event as one NDJSON line. */
export function eventLine(event: OperationEvent): string {
  return `${JSON.stringify(event)}\n`;
}

// ---------------------------------------------------------------------------------------------
// Running an operation against a store and volumes.

/** What an operation works with: the server's own store and volumes online, or its own. */
export interface OperationContext {
  store: Store;
  volumes: Volumes;
  /** The running server, online: a rebalance switches its placement for new PUTs. */
  server?: IndexServer;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

/** Counts outcomes, reports findings and throttled progress. */
class Run {
  readonly counts: Counts = {};
  readonly unit: string;
  done = 0;
  total: number | null = null;
  #started = Date.now();
  #lastProgressMs = 0;

  constructor(
    readonly command: Operation,
    readonly emit: Emit,
    unit: string,
  ) {
    this.unit = unit;
  }

  async outcome(
    outcome: string,
    fields: { key?: string; location?: string; detail?: string } = {},
  ): Promise<void> {
    this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
    if (!QUIET.has(outcome)) {
      await this.emit({
        type: "item",
        command: this.command,
        outcome,
        ...fields,
        detail: fields.detail ?? "",
      });
    }
    await this.tick();
  }

  async tick(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#lastProgressMs < PROGRESS_INTERVAL_MS) return;
    this.#lastProgressMs = now;
    await this.emit({
      type: "progress",
      command: this.command,
      done: this.done,
      total: this.total,
      unit: this.unit,
      elapsedMs: now - this.#started,
      counts: { ...this.counts },
    });
  }

  async finish(): Promise<void> {
    await this.tick(true);
    let undone = 0;
    for (const [outcome, n] of Object.entries(this.counts)) if (isUndone(outcome)) undone += n;
    await this.emit({
      type: "summary",
      command: this.command,
      counts: { ...this.counts },
      undone,
      elapsedMs: Date.now() - this.#started,
    });
  }
}

/** Runs `fn` on each item with at most `limit` at once, pulling items lazily. */
async function forEachLimited<T>(
  items: AsyncIterable<T> | Iterable<T>,
  limit: number,
  signal: AbortSignal,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | null = null;
  for await (const item of items) {
    if (signal.aborted || failure !== null) break;
    const task: Promise<void> = fn(item).catch((error) => {
      failure ??= { error };
    }).finally(() => running.delete(task));
    running.add(task);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure !== null) throw (failure as { error: unknown }).error;
}

/**
 * Runs `fn` on every item, then retries those it answered "busy" for (a write held the key's
 * lock) a few times; the still-busy ones are reported as such.
 */
async function withRetries<T>(
  run: Run,
  items: AsyncIterable<T>,
  options: { concurrency: number; signal: AbortSignal; keyOf: (item: T) => string },
  fn: (item: T) => Promise<"busy" | "done">,
): Promise<void> {
  let busy: T[] = [];
  await forEachLimited(items, options.concurrency, options.signal, async (item) => {
    if (await fn(item) === "busy") busy.push(item);
    else run.done++;
  });
  for (let round = 0; round < BUSY_ROUNDS && busy.length > 0 && !options.signal.aborted; round++) {
    await sleep(BUSY_PAUSE_MS);
    const retry = busy;
    busy = [];
    await forEachLimited(retry, options.concurrency, options.signal, async (item) => {
      if (await fn(item) === "busy") busy.push(item);
      else run.done++;
    });
  }
  for (const item of busy) {
    await run.outcome("busy", { key: options.keyOf(item), detail: "a write kept the key locked" });
  }
}

/** Live and unlinked records, lazily (a pending one belongs to a PUT, a DELETE, or to gc). */
async function* recordsToWork(store: Store): AsyncGenerator<[string, KeyRecord]> {
  for await (const entry of store.list({ prefix: "", state: "all" })) {
    if (!isPending(entry[1])) yield entry;
  }
}

async function countRecords(store: Store, signal: AbortSignal): Promise<number> {
  let n = 0;
  for await (const _ of recordsToWork(store)) {
    if (signal.aborted) break;
    n++;
  }
  return n;
}

/** Makes sure the volume client probes every host a record names (removed volumes included). */
function track(volumes: Volumes, locations: string[]): void {
  volumes.track(locations.map(locationHost));
}

// --- walking the volumes' files

/** Files of one key found on the volumes. */
interface KeyFiles {
  key: string;
  found: FoundReplica[];
}

/** A file that is not a key's (its name does not decode to a key whose path it is). */
interface StrayFile {
  stray: string;
}

/**
 * Lists a directory and everything under it (base64 with `/` nests), as file paths. `dir` is the
 * path as on disk; names are percent-encoded in URLs, since a stray file may be called anything.
 */
async function listTree(
  volumes: Volumes,
  location: string,
  dir: string,
): Promise<{ path: string; sizeBytes: number }[]> {
  const out: { path: string; sizeBytes: number }[] = [];
  const url = dir.split("/").map(encodeURIComponent).join("/");
  for (const entry of await volumes.list(location, url)) {
    if (entry.type === "directory") {
      out.push(...await listTree(volumes, location, `${dir}${entry.name}/`));
    } else if (entry.type === "file") {
      out.push({ path: `${dir}${entry.name}`, sizeBytes: entry.size ?? 0 });
    }
  }
  return out;
}

/**
 * The files of every key on the volumes, key by key, one `HH/hh` directory at a time (on every
 * volume and subvolume at once, since a key's directory is the same everywhere), so that memory
 * holds one directory's worth. The subvolume directories are found, not assumed: a cluster
 * written with another --subvolumes is read all the same. `position` counts the `HH/hh` pairs done.
 */
async function* walkVolumes(
  volumes: Volumes,
  hosts: string[],
  position: { done: number },
): AsyncGenerator<KeyFiles | StrayFile> {
  const rootsByPrefix = new Map<string, string[]>();
  const addRoot = (prefix: string, root: string) => {
    const roots = rootsByPrefix.get(prefix) ?? [];
    roots.push(root);
    rootsByPrefix.set(prefix, roots);
  };
  for (const host of hosts) {
    for (const entry of await volumes.list(host, "/")) {
      if (entry.type !== "directory") continue;
      if (HEX_DIR.test(entry.name)) addRoot(entry.name, host);
      if (SUBVOLUME_DIR.test(entry.name)) {
        const root = `${host}/${entry.name}`;
        for (const sub of await volumes.list(root, "/")) {
          if (sub.type === "directory" && HEX_DIR.test(sub.name)) addRoot(sub.name, root);
        }
      }
    }
  }
  for (let high = 0; high < 256; high++) {
    const hh = high.toString(16).padStart(2, "0");
    const roots = rootsByPrefix.get(hh) ?? [];
    const rootsByLow = new Map<string, string[]>();
    const listings = await Promise.all(roots.map((root) => volumes.list(root, `/${hh}/`)));
    listings.forEach((entries, i) => {
      for (const entry of entries) {
        if (entry.type !== "directory" || !HEX_DIR.test(entry.name)) continue;
        rootsByLow.set(entry.name, [...(rootsByLow.get(entry.name) ?? []), roots[i]]);
      }
    });
    for (const low of [...rootsByLow.keys()].sort()) {
      const lowRoots = rootsByLow.get(low)!;
      const trees = await Promise.all(
        lowRoots.map((root) => listTree(volumes, root, `/${hh}/${low}/`)),
      );
      const byKey = new Map<string, FoundReplica[]>();
      const strays: string[] = [];
      trees.forEach((files, i) => {
        for (const file of files) {
          const key = pathToKey(file.path);
          if (key === null) {
            strays.push(`${lowRoots[i]}${file.path}`);
            continue;
          }
          byKey.set(key, [...(byKey.get(key) ?? []), {
            location: lowRoots[i],
            sizeBytes: file.sizeBytes,
          }]);
        }
      });
      for (const stray of strays) yield { stray };
      for (const key of [...byKey.keys()].sort()) yield { key, found: byKey.get(key)! };
      position.done = high * 256 + parseInt(low, 16) + 1;
    }
    position.done = (high + 1) * 256;
  }
}

// --- the four operations

function sameRecord(a: KeyRecord, b: KeyRecord): boolean {
  return a.state === b.state && a.md5 === b.md5 && a.volumes.join(",") === b.volumes.join(",");
}

/** The replicas of `found` that are still there; with `rehash`, read again for their md5. */
async function recheck(
  volumes: Volumes,
  key: string,
  found: FoundReplica[],
  rehash: boolean,
): Promise<FoundReplica[]> {
  const still: FoundReplica[] = [];
  for (const replica of found) {
    if (!rehash) {
      if (await volumes.has(replica.location, key)) still.push(replica);
      continue;
    }
    try {
      still.push({
        location: replica.location,
        ...await volumes.hash(replica.location, key),
      });
    } catch (err) {
      if (!(err instanceof VolumeError) || err.status !== 404) throw err;
    }
  }
  return still;
}

async function rebuild(
  ctx: OperationContext,
  request: OperationRequest,
  run: Run,
  signal: AbortSignal,
): Promise<void> {
  const { store, volumes } = ctx;
  const position = { done: 0 };
  run.total = PREFIX_PAIRS;
  const items = (async function* () {
    for await (const item of walkVolumes(volumes, request.placement.volumes, position)) {
      run.done = position.done;
      yield item;
    }
  })();
  await forEachLimited(items, request.concurrency, signal, async (item) => {
    if ("stray" in item) {
      await run.outcome("ignored", { location: item.stray, detail: "not a key's file" });
      return;
    }
    const { key, found } = item;
    if (request.md5sum && new Set(found.map((r) => r.sizeBytes)).size === 1) {
      for (const replica of found) {
        try {
          replica.md5 = (await volumes.hash(replica.location, key)).md5;
        } catch (err) {
          if (!(err instanceof VolumeError)) throw err;
          await run.outcome("failed", { key, location: replica.location, detail: message(err) });
          return;
        }
      }
    }
    const verdict = rebuildVerdict(key, found, request.placement);
    if (!verdict.ok) {
      await run.outcome("conflict", { key, detail: verdict.detail });
      return;
    }
    // A key locked by a write in progress gets its record from that write.
    using lock = store.lock(key);
    if (lock === null) {
      await run.outcome("in-progress", { key });
      return;
    }
    const old = await store.get(key);
    if (old !== null && isPending(old)) {
      await run.outcome("interrupted", {
        key,
        detail: "its record says an interrupted write; gc removes it",
      });
      return;
    }
    let next: KeyRecord = {
      state: old?.state === "unlinked" ? "unlinked" : "live",
      volumes: verdict.volumes,
      md5: verdict.md5,
    };
    if (old !== null && sameRecord(old, next)) {
      await run.outcome("unchanged");
      return;
    }
    // The files were seen before the lock was taken: a DELETE may have removed them since, or
    // a DELETE and a PUT replaced them (then the record changed, and they are read again).
    let still: FoundReplica[];
    try {
      still = await recheck(volumes, key, found, old !== null && request.md5sum);
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      await run.outcome("failed", { key, detail: message(err) });
      return;
    }
    if (still.length === 0) {
      await run.outcome("gone");
      return;
    }
    const confirmed = rebuildVerdict(key, still, request.placement);
    if (!confirmed.ok) {
      await run.outcome("conflict", { key, detail: confirmed.detail });
      return;
    }
    next = { ...next, volumes: confirmed.volumes, md5: confirmed.md5 };
    if (old !== null && sameRecord(old, next)) {
      await run.outcome("unchanged");
      return;
    }
    await store.set(key, next);
    await run.outcome(old === null ? "added" : "updated");
  });
  run.done = position.done;
}

/**
 * Deletions of files a rebalance moved away from, done after a grace period (online), each under
 * its key's lock and only where the key's record no longer points.
 */
class DelayedDeletes {
  #queue: { key: string; locations: string[]; dueMs: number }[] = [];
  #drainer: Promise<void> | null = null;

  constructor(
    readonly ctx: OperationContext,
    readonly run: Run,
    readonly graceMs: number,
    readonly concurrency: number,
  ) {}

  add(key: string, locations: string[]): void {
    this.#queue.push({ key, locations, dueMs: Date.now() + this.graceMs });
    this.#drainer ??= this.#drain().finally(() => {
      this.#drainer = null;
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const waitMs = this.#queue[0].dueMs - Date.now();
      if (waitMs > 0) await sleep(waitMs);
      const now = Date.now();
      let n = 0;
      while (n < this.#queue.length && n < this.concurrency && this.#queue[n].dueMs <= now) n++;
      await Promise.all(
        this.#queue.splice(0, n).map(async (item) => {
          try {
            await this.#delete(item);
          } catch (err) {
            // Nothing awaits the drainer until the end: a failure is reported, not thrown.
            await this.run.outcome("cleanup-failed", {
              key: item.key,
              detail: `${message(err)}; gc removes the old files at ${item.locations}`,
            });
          }
        }),
      );
    }
  }

  async #delete(item: { key: string; locations: string[] }): Promise<void> {
    const { store, volumes } = this.ctx;
    let lock = store.lock(item.key);
    for (let round = 0; lock === null && round < BUSY_ROUNDS; round++) {
      await sleep(BUSY_PAUSE_MS);
      lock = store.lock(item.key);
    }
    if (lock === null) {
      await this.run.outcome("cleanup-failed", {
        key: item.key,
        detail: `a write kept the key locked; gc removes the old files at ${item.locations}`,
      });
      return;
    }
    using _held = lock;
    const record = await store.get(item.key);
    const keep = new Set(record?.volumes ?? []);
    const drop = item.locations.filter((location) => !keep.has(location));
    const failures = await volumes.deleteAll(drop, item.key);
    for (const failure of failures) {
      await this.run.outcome("cleanup-failed", {
        key: item.key,
        detail: `${failure.message}; gc removes it later`,
      });
    }
  }

  async finish(): Promise<void> {
    while (this.#drainer !== null) await this.#drainer;
  }
}

async function rebalance(
  ctx: OperationContext,
  request: OperationRequest,
  run: Run,
  signal: AbortSignal,
): Promise<void> {
  const { store, volumes } = ctx;
  const placement = request.placement;
  if (!request.dryRun) {
    // New PUTs go to the new placement from now on, so that none lands where it is not wanted.
    ctx.server?.setPlacement(placement);
    volumes.track(placement.volumes);
  }
  run.total = await countRecords(store, signal);
  const deletes = new DelayedDeletes(
    ctx,
    run,
    ctx.server ? ONLINE_DELETE_GRACE_MS : 0,
    request.concurrency,
  );
  await withRetries(run, recordsToWork(store), {
    concurrency: request.concurrency,
    signal,
    keyOf: ([key]) => key,
  }, async ([key, listed]) => {
    if (isBalanced(key, listed.volumes, placement)) {
      await run.outcome("balanced");
      return "done";
    }
    let deleteFrom: string[] = [];
    {
      using lock = store.lock(key);
      if (lock === null) return "busy";
      const record = await store.get(key);
      if (record === null || isPending(record)) {
        await run.outcome("gone");
        return "done";
      }
      const plan = planRebalance(key, record, placement);
      if (plan.balanced) {
        await run.outcome("balanced");
        return "done";
      }
      if (request.dryRun) {
        await run.outcome("would-move", {
          key,
          detail: `${record.volumes.join(",")} -> ${plan.targets.join(",")}`,
        });
        return "done";
      }
      track(volumes, record.volumes);
      // A target the record already names counts only if its file is there: a replica lost
      // behind the index's back is copied again, so that old copies are never removed while the
      // new set is short of one.
      const missing: string[] = [];
      for (const location of plan.targets.filter((target) => !plan.copyTo.includes(target))) {
        try {
          if (!await volumes.has(location, key)) missing.push(location);
        } catch (err) {
          if (!(err instanceof VolumeError)) throw err;
          await run.outcome("failed", {
            key,
            detail: `kept at ${record.volumes}: ${message(err)}`,
          });
          return "done";
        }
      }
      const copyTo = [...plan.copyTo, ...missing];
      if (copyTo.length > 0) {
        const sources = record.volumes.filter((location) => !missing.includes(location)).sort(
          (a, b) => Number(volumes.isAlive(b)) - Number(volumes.isAlive(a)),
        );
        const failed = await volumes.copy(key, {
          sources,
          targets: copyTo,
          expectedMd5: record.md5,
        });
        if (failed !== null) {
          await run.outcome("failed", { key, detail: `kept at ${record.volumes}: ${failed}` });
          return "done";
        }
      }
      await store.set(key, { ...record, volumes: plan.targets });
      deleteFrom = plan.deleteFrom;
      await run.outcome("moved");
    }
    if (deleteFrom.length > 0) deletes.add(key, deleteFrom);
    return "done";
  });
  await deletes.finish();
}

async function checkReplicas(
  volumes: Volumes,
  key: string,
  record: KeyRecord,
  readMd5: boolean,
): Promise<ReplicaCheck[]> {
  return await Promise.all(record.volumes.map(async (location): Promise<ReplicaCheck> => {
    try {
      if (!readMd5) {
        return { location, state: await volumes.has(location, key) ? "present" : "missing" };
      }
      return { location, state: "present", md5: (await volumes.hash(location, key)).md5 };
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      if (err.status === 404) return { location, state: "missing" };
      return { location, state: "unreachable", detail: message(err) };
    }
  }));
}

async function verify(
  ctx: OperationContext,
  request: OperationRequest,
  run: Run,
  signal: AbortSignal,
): Promise<void> {
  const { store, volumes } = ctx;
  run.total = await countRecords(store, signal);
  await withRetries(run, recordsToWork(store), {
    concurrency: request.concurrency,
    signal,
    keyOf: ([key]) => key,
  }, async ([key, listed]) => {
    track(volumes, listed.volumes);
    const first = classifyReplicas(
      listed.md5,
      await checkReplicas(volumes, key, listed, request.md5),
    );
    if (allGood(first)) {
      await run.outcome("ok");
      return "done";
    }
    // A problem is confirmed under the key's lock: a DELETE, say, may have changed the record.
    using lock = store.lock(key);
    if (lock === null) return "busy";
    const record = await store.get(key);
    if (record === null || isPending(record)) {
      await run.outcome("gone");
      return "done";
    }
    const checks = await checkReplicas(volumes, key, record, request.md5);
    const verdict = classifyReplicas(record.md5, checks);
    if (allGood(verdict)) {
      await run.outcome("ok");
      return "done";
    }
    for (const check of checks) {
      if (check.state === "unreachable") {
        await run.outcome("unreachable", { key, location: check.location, detail: check.detail });
      }
    }
    if (verdict.conflict) {
      const md5s = checks.map((c) => `${c.location} ${c.state === "present" ? c.md5 : c.state}`);
      await run.outcome("conflict", {
        key,
        detail: `no md5 recorded and the replicas differ: ${md5s.join(", ")}`,
      });
      return "done";
    }
    const bad = [
      ...verdict.missing.map((location) => ({ location, was: "missing" })),
      ...verdict.corrupt.map((location) => ({ location, was: "corrupt" })),
    ];
    if (verdict.good.length === 0 && bad.length > 0) {
      await run.outcome("lost", { key, detail: "no good replica is left" });
    }
    let repaired = false;
    if (request.repair && verdict.good.length > 0 && bad.length > 0) {
      const failure = await volumes.copy(key, {
        sources: verdict.good,
        targets: bad.map((b) => b.location),
        expectedMd5: record.md5,
      });
      repaired = failure === null;
      if (failure !== null) await run.outcome("failed", { key, detail: failure });
    }
    for (const { location, was } of bad) {
      if (repaired) {
        await run.outcome("repaired", { key, location, detail: `was ${was}` });
      } else {
        const detail = was === "corrupt" && record.md5 !== ""
          ? `md5 differs from ${record.md5}`
          : "";
        await run.outcome(was, { key, location, detail });
      }
    }
    return "done";
  });
}

async function gc(
  ctx: OperationContext,
  request: OperationRequest,
  run: Run,
  signal: AbortSignal,
): Promise<void> {
  const { store, volumes } = ctx;
  // Pending records first (interrupted writes, deletes whose files remain): their records name
  // every place their files may be.
  for await (const key of store.listPending()) {
    if (signal.aborted) return;
    using lock = store.lock(key);
    if (lock === null) {
      await run.outcome("in-progress", { key });
      continue;
    }
    const record = await store.get(key);
    if (record === null || !isPending(record)) continue;
    track(volumes, record.volumes);
    const what = record.state === "writing" ? "an interrupted write" : "a delete";
    if (request.dryRun) {
      await run.outcome("interrupted", { key, detail: `${what}, files at ${record.volumes}` });
      continue;
    }
    const settled = await settlePending(ctx, key, record, null);
    await run.outcome(settled.outcome, { key, detail: `${what}: ${settled.detail}` });
  }
  const position = { done: 0 };
  run.total = PREFIX_PAIRS;
  const items = (async function* () {
    for await (const item of walkVolumes(volumes, request.placement.volumes, position)) {
      run.done = position.done;
      yield item;
    }
  })();
  const orphansOf = (record: KeyRecord | null, found: FoundReplica[]) => {
    const pointed = new Set(record?.volumes ?? []);
    return found.map((r) => r.location).filter((location) => !pointed.has(location));
  };
  await forEachLimited(items, request.concurrency, signal, async (item) => {
    if ("stray" in item) {
      await run.outcome("ignored", {
        location: item.stray,
        detail: "not a key's file; left alone",
      });
      return;
    }
    const { key, found } = item;
    if (orphansOf(await store.get(key), found).length === 0) {
      for (const _ of found) await run.outcome("kept");
      return;
    }
    // Holding the key's lock, no write can start placing files while they are judged.
    using lock = store.lock(key);
    if (lock === null) {
      await run.outcome("in-progress", { key });
      return;
    }
    const orphans = orphansOf(await store.get(key), found);
    for (let i = orphans.length; i < found.length; i++) await run.outcome("kept");
    for (const location of orphans) {
      if (request.dryRun) {
        await run.outcome("orphan", { key, location, detail: "no record points here" });
        continue;
      }
      try {
        await volumes.delete(location, key);
        await run.outcome("removed", { key, location, detail: "no record pointed here" });
      } catch (err) {
        if (!(err instanceof VolumeError)) throw err;
        await run.outcome("failed", { key, location, detail: message(err) });
      }
    }
  });
  run.done = position.done;
}

const UNITS: Record<Operation, string> = {
  rebuild: "dirs",
  rebalance: "keys",
  verify: "keys",
  gc: "dirs",
};

/**
 * Runs an operation to its end (or until `signal` aborts it), reporting through `emit`; the last
 * event is the summary. Unexpected failures reject.
 */
export async function execute(
  ctx: OperationContext,
  request: OperationRequest,
  emit: Emit,
  signal: AbortSignal,
): Promise<void> {
  const run = new Run(request.command, emit, UNITS[request.command]);
  await run.tick(true);
  const operation = { rebuild, rebalance, verify, gc }[request.command];
  await operation(ctx, request, run, signal);
  if (signal.aborted) await run.outcome("failed", { detail: "interrupted; run it again" });
  await run.finish();
}

// ---------------------------------------------------------------------------------------------
// The admin socket (server side) and the command line (client side).

function reply(status: number, text: string): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** The handler of the admin socket of a running server, through which operations run online. */
export function adminHandler(server: IndexServer): (request: Request) => Promise<Response> {
  let running: Operation | null = null;
  return async (request) => {
    if (new URL(request.url).pathname !== OPERATION_PATH || request.method !== "POST") {
      await request.body?.cancel();
      return reply(404, `POST ${OPERATION_PATH} runs an operation`);
    }
    let operation: OperationRequest;
    try {
      operation = parseOperationRequest(await request.json());
    } catch (err) {
      return reply(400, `bad operation request: ${message(err)}`);
    }
    if (running !== null) return reply(409, `an operation is already running: ${running}`);
    running = operation.command;
    const abort = new AbortController();
    // A signal stops the server, which waits for this response: the operation stops first.
    const stop = () => abort.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    const stream = new TransformStream<Uint8Array, Uint8Array>();
    const writer = stream.writable.getWriter();
    const encoder = new TextEncoder();
    // The client going away (Ctrl-C) cancels the stream, and so the operation.
    const emit: Emit = async (event) => {
      if (abort.signal.aborted && event.type !== "summary" && event.type !== "error") return;
      try {
        await writer.ready;
        writer.write(encoder.encode(eventLine(event))).catch(() => abort.abort());
      } catch {
        abort.abort();
      }
    };
    (async () => {
      try {
        await execute(
          { store: server.store, volumes: server.volumes, server },
          operation,
          emit,
          abort.signal,
        );
      } catch (err) {
        await emit({ type: "error", command: operation.command, message: message(err) });
      } finally {
        running = null;
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGTERM", stop);
        await writer.close().catch(() => {});
      }
    })();
    return new Response(stream.readable, { headers: { "content-type": "application/x-ndjson" } });
  };
}

/** Shows events: JSON lines, or a live line on a terminal, findings and the summary as text. */
class Reporter {
  #json: boolean;
  #tty: boolean;
  #lineShown = false;
  #encoder = new TextEncoder();
  exitCode = 1;

  constructor(json: boolean) {
    this.#json = json;
    this.#tty = Deno.stderr.isTerminal();
  }

  #clearLine(): void {
    if (!this.#lineShown) return;
    Deno.stderr.writeSync(this.#encoder.encode("\r\x1b[K"));
    this.#lineShown = false;
  }

  event(event: OperationEvent): void {
    if (event.type === "summary") this.exitCode = event.undone > 0 ? 1 : 0;
    if (event.type === "error") this.exitCode = 1;
    if (this.#json) {
      console.log(JSON.stringify(event));
      return;
    }
    if (event.type === "progress") {
      if (!this.#tty) return;
      Deno.stderr.writeSync(this.#encoder.encode(`\r\x1b[K${formatProgress(event)}`));
      this.#lineShown = true;
      return;
    }
    this.#clearLine();
    if (event.type === "item") console.log(formatItem(event));
    else if (event.type === "summary") console.log(formatSummary(event));
    else console.error(`index: ${event.command} failed: ${event.message}`);
  }

  log(line: string): void {
    this.#clearLine();
    console.error(line);
  }
}

/** Runs the operation on a server answering the admin socket; null if none answers. */
async function runOnline(
  socketPath: string,
  operation: OperationRequest,
  reporter: Reporter,
): Promise<number | null> {
  try {
    await Deno.stat(socketPath);
  } catch {
    return null;
  }
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  try {
    let response: Response;
    try {
      response = await fetch(`http://localhost${OPERATION_PATH}`, {
        method: "POST",
        body: JSON.stringify(operation),
        client,
      });
    } catch {
      return null;
    }
    if (response.status !== 200) {
      reporter.log(
        `index: the server refused ${operation.command}: ${(await response.text()).trim()}`,
      );
      return 1;
    }
    let pending = "";
    let ended = false;
    try {
      for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        const lines = pending.split("\n");
        pending = lines.pop()!;
        for (const line of lines) {
          if (line === "") continue;
          const event = JSON.parse(line) as OperationEvent;
          if (event.type === "summary" || event.type === "error") ended = true;
          reporter.event(event);
        }
      }
    } catch (err) {
      reporter.log(`index: lost the server during ${operation.command}: ${message(err)}`);
      return 1;
    }
    if (!ended) {
      reporter.log(`index: the server stopped before ${operation.command} finished`);
      return 1;
    }
    return reporter.exitCode;
  } finally {
    client.close();
  }
}

/** Runs an operation command (`rebuild`, ...); resolves to the exit code. */
export async function runOperation(options: IndexOptions): Promise<number> {
  const operation = operationRequest(options);
  const reporter = new Reporter(options.json);
  const socketPath = adminSocketPath(options.db);
  const online = await runOnline(socketPath, operation, reporter);
  if (online !== null) return online;
  let store: Store;
  try {
    store = await Store.open(options.db);
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    reporter.log(
      `index: ${err.message}, and no server answers on ${socketPath}; ` +
        `is a server still starting or stuck?`,
    );
    return 1;
  }
  const volumes = new Volumes({
    hosts: options.volumes,
    timeoutMs: options.voltimeoutMs,
    log: (line) => reporter.log(line),
  });
  const abort = new AbortController();
  const stop = () => abort.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    await volumes.probeAll();
    volumes.start();
    await execute({ store, volumes }, operation, (event) => {
      reporter.event(event);
      return Promise.resolve();
    }, abort.signal);
    return reporter.exitCode;
  } catch (err) {
    reporter.event({ type: "error", command: operation.command, message: message(err) });
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    volumes.close();
    store.close();
  }
}
