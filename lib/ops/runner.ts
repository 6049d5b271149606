// The concurrent runner of an operation: what it works with (its context), the counting and
// reporting of outcomes with throttled progress (OperationRun), running a function on many items
// with bounded concurrency (forEachLimited), retrying keys a write kept locked (withRetries), and
// the records an operation works through, read lazily from the index (forEachRecord); and, on a
// running server, the board that shows the operation running and the last one (OperationBoard),
// for the metrics and the status page.

import { type EventLog, logEvent } from "../events.ts";
import { locationHost, type Placement } from "../placement.ts";
import { isPending, type KeyRecord, type Store } from "../core/mod.ts";
import type { Volumes } from "../volumes/mod.ts";
import {
  type Counts,
  type Emit,
  formatSummary,
  isUndone,
  type Operation,
  type OperationRequest,
} from "./protocol.ts";

/** What an operation works with: the server's own store and volumes online, or its own. */
export interface OperationContext {
  store: Store;
  volumes: Volumes;
  /**
   * Online only: switches the running server's placement for new PUTs (a rebalance does). Its
   * presence is what tells an operation that it runs online.
   */
  setPlacement?: (placement: Placement) => void | Promise<void>;
  /** Online only: where the running operation is shown (metrics, status page, event log). */
  board?: OperationBoard;
  /**
   * Online only: whether the server is about to remove a value of the key that an overwrite
   * replaced (after its grace, for readers already sent there): gc leaves those files to it.
   */
  retiring?: (key: string) => boolean;
}

/** An operation's progress, as the metrics and the status page show it. */
export interface OperationProgress {
  command: Operation;
  /** When it started, in milliseconds since the epoch. */
  startedMs: number;
  /** Work done so far, and in all (null while it is being counted), in `unit`s. */
  done: number;
  total: number | null;
  unit: string;
  counts: Counts;
  /** Outcomes so far that leave work undone (missing, corrupt, failed...: see isUndone). */
  problems: number;
  /** When it finished (the last one only). */
  finishedMs?: number;
  /** Why it stopped before its end, if it failed. */
  error?: string;
}

/**
 * An operation: works through the index or the volumes as `request` says, reporting to `run`,
 * until it is done or `signal` aborts it. Unexpected failures reject.
 */
export type OperationFn = (
  ctx: OperationContext,
  request: OperationRequest,
  run: OperationRun,
  signal: AbortSignal,
) => Promise<void>;

/** How often progress is reported. */
const PROGRESS_INTERVAL_MS = 250;
/** Rounds of retrying keys that were locked by a write, and the pause between rounds. */
export const BUSY_ROUNDS = 20;
export const BUSY_PAUSE_MS = 250;

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

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Counts outcomes, reports findings and throttled progress. */
export class OperationRun {
  readonly counts: Counts = {};
  readonly unit: string;
  done = 0;
  total: number | null = null;
  #started = Date.now();
  #lastProgressMs = 0;
  /** Outcomes so far that leave work undone. */
  #problems = 0;

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
    if (isUndone(outcome)) this.#problems++;
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
    await this.emit({
      type: "summary",
      command: this.command,
      counts: { ...this.counts },
      undone: this.#problems,
      elapsedMs: Date.now() - this.#started,
    });
  }

  /** Where the run is now. */
  progress(): OperationProgress {
    return {
      command: this.command,
      startedMs: this.#started,
      done: this.done,
      total: this.total,
      unit: this.unit,
      counts: { ...this.counts },
      problems: this.#problems,
    };
  }
}

/**
 * The operation running on a server (one at a time, see admin.ts) and the last one that ended,
 * for the metrics and the status page; their start and end go to the event log.
 */
export class OperationBoard {
  #running: OperationRun | null = null;
  #last: OperationProgress | null = null;
  #log: EventLog;

  constructor(log: EventLog = logEvent) {
    this.#log = log;
  }

  begin(run: OperationRun): void {
    this.#running = run;
    this.#log("operation_started", {
      msg: `index: operation ${run.command} started`,
      operation: run.command,
    });
  }

  /** The run ended: to its end, or with `error` if it failed. */
  end(run: OperationRun, error?: string): void {
    if (this.#running === run) this.#running = null;
    const progress = run.progress();
    const finishedMs = Date.now();
    this.#last = { ...progress, finishedMs, ...(error !== undefined && { error }) };
    const summary = formatSummary({
      type: "summary",
      command: run.command,
      counts: progress.counts,
      undone: progress.problems,
      elapsedMs: finishedMs - progress.startedMs,
    });
    this.#log("operation_finished", {
      msg: `index: operation ${error === undefined ? "finished" : `failed: ${error}`}: ${summary}`,
      operation: run.command,
      elapsedMs: finishedMs - progress.startedMs,
      problems: progress.problems,
      error,
      counts: progress.counts,
    });
  }

  /** The operation running now, or null. */
  running(): OperationProgress | null {
    return this.#running?.progress() ?? null;
  }

  /** The last operation that ended since the server started, or null. */
  last(): OperationProgress | null {
    return this.#last;
  }
}

/**
 * Keys worked on at once where a key's work is the read (and perhaps the commit) of its record
 * and no request to a volume: so many share the store's getMany calls and commits, where
 * --concurrency's few, which bound the requests to the volumes, kept them one or two to a call.
 */
export const RECORD_WORK_AT_ONCE = 256;

/** A function that runs the work it is given with at most `limit` at once; the rest wait. */
export function limiter(limit: number): <T>(work: () => Promise<T>) => Promise<T> {
  const take = slots(limit);
  return async (work) => {
    using _slot = await take();
    return await work();
  };
}

/**
 * Slots given out `limit` at a time: `await take()` waits for a free one and returns it, given
 * back when disposed of (again is harmless). Unlike `limiter`, work may give its slot back before
 * it ends: a key's volume requests done, its commit waits with the other keys'.
 */
export function slots(limit: number): () => Promise<Disposable> {
  let free = limit;
  const waiting: (() => void)[] = [];
  return async () => {
    while (free === 0) await new Promise<void>((resolve) => waiting.push(resolve));
    free--;
    let held = true;
    return {
      [Symbol.dispose]: () => {
        if (!held) return;
        held = false;
        free++;
        waiting.shift()?.();
      },
    };
  };
}

/** Runs `fn` on each item with at most `limit` at once, pulling items lazily. */
export async function forEachLimited<T>(
  items: AsyncIterable<T> | Iterable<T>,
  limit: number,
  signal: AbortSignal,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  // A count and one waiter rather than a race of the tasks running: a race costs a reaction per
  // task running, per item, which at hundreds at once took more time than the items' work.
  let running = 0;
  let failure: { error: unknown } | null = null;
  let wake: (() => void) | null = null;
  const finished = () => {
    running--;
    wake?.();
    wake = null;
  };
  const oneFinished = () => new Promise<void>((resolve) => wake = resolve);
  for await (const item of items) {
    if (signal.aborted || failure !== null) break;
    running++;
    fn(item).catch((error) => {
      failure ??= { error };
    }).finally(finished);
    while (running >= limit) await oneFinished();
  }
  while (running > 0) await oneFinished();
  if (failure !== null) throw (failure as { error: unknown }).error;
}

/**
 * Runs `fn` on every item, then retries those it answered "busy" for (a write held the key's
 * lock) a few times; the still-busy ones are reported as such.
 */
async function withRetries<T>(
  run: OperationRun,
  items: AsyncIterable<T>,
  options: { concurrency: number; signal: AbortSignal; keyOf: (item: T) => string },
  fn: (item: T) => Promise<"busy" | "done">,
): Promise<void> {
  let busy: T[] = [];
  const attempt = async (item: T) => {
    if (await fn(item) === "busy") busy.push(item);
    else run.done++;
  };
  await forEachLimited(items, options.concurrency, options.signal, attempt);
  for (let round = 0; round < BUSY_ROUNDS && busy.length > 0 && !options.signal.aborted; round++) {
    await sleep(BUSY_PAUSE_MS);
    const retry = busy;
    busy = [];
    await forEachLimited(retry, options.concurrency, options.signal, attempt);
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

/**
 * Runs `fn` on every live and unlinked record (their number is the run's total), with at most
 * `request.concurrency` at once and busy keys retried (see withRetries).
 */
export async function forEachRecord(
  run: OperationRun,
  store: Store,
  request: OperationRequest,
  signal: AbortSignal,
  fn: (entry: [string, KeyRecord]) => Promise<"busy" | "done">,
): Promise<void> {
  run.total = await countRecords(store, signal);
  await withRetries(run, recordsToWork(store), {
    concurrency: request.concurrency,
    signal,
    keyOf: ([key]) => key,
  }, fn);
}

/**
 * Runs `fn` on `key`'s record read again under the key's lock, as the one listed may be stale:
 * "busy" if a write holds the lock (forEachRecord retries it), and a record gone meanwhile (or
 * pending: a PUT's or a DELETE's now) is counted as gone.
 */
export async function withLockedRecord(
  store: Store,
  run: OperationRun,
  key: string,
  fn: (record: KeyRecord) => Promise<void>,
): Promise<"busy" | "done"> {
  using lock = store.lock(key);
  if (lock === null) return "busy";
  const record = await store.get(key);
  if (record === null || isPending(record)) {
    await run.outcome("gone");
    return "done";
  }
  await fn(record);
  return "done";
}

/** Makes sure the volume client probes every host a record names (removed volumes included). */
export function track(volumes: Volumes, locations: string[]): void {
  volumes.track(locations.map(locationHost));
}
