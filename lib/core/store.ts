// The index's table of key → record, in Deno KV (SQLite on local disk). The index process is its
// only writer: it holds `DB/lock` while it runs, takes an in-memory lock per key for every write,
// and so needs no KV checks. Writes of many keys that arrive together share one atomic commit
// (one fsync); a write is acknowledged only after its commit. A bounded write-through cache
// answers hot keys and absent keys without touching SQLite, and the reads that miss it go through
// a second KV handle on the same file, so that they never wait behind a commit's fsync. Pending
// records are found through one marker entry per commit. The number of keys and the bytes of
// their values are kept as figures in the KV, changed in the same commit as the records, so that
// the metrics and the status page never scan. The keys of live records are kept in key pages too
// (lib/core/pages.ts, lib/core/keypages.ts), which `?list` reads instead of the records: a commit
// that makes a key live or not live rewrites its page in the same atomic commit, so that the pages
// are exactly the live records after a crash at any point, as they are after every commit. Where
// they are not built (an index made before them, or after a bulk load that suspended them:
// suspendPages), a listing walks the records, and a build in the background makes them from the
// records, step by step, each step committed by the flush loop between two commits of records.

import { firstLine } from "../errors.ts";
import { logEvent } from "../events.ts";
import { cachedRecordBytes, setKeyBytes } from "./footprint.ts";
import { KeyPages, NO_PAGE_PLAN, NOT_BUILT, type PagesBuilt } from "./keypages.ts";
import { Lru } from "./lru.ts";
import { compareKeys, insertKey, type KeyRun, ListingBody, removeKey } from "./pages.ts";
import { decodeRecord, encodedState, encodeRecord, type KeyRecord } from "./record.ts";
import {
  COMMIT_PAGE_MUTATIONS,
  COMMIT_PAGE_UNITS,
  GET_MANY,
  kvPath,
  LIST_BATCH,
  MARKERS,
  MAX_BATCH,
  PAGES_BUILT,
  RECORDS,
  STATS,
} from "./layout.ts";
import { loadMarkers, type PendingMarkers } from "./markers.ts";
import { loadStats, shiftStats, type StoreStats } from "./stats.ts";
import { closeIndexFiles, openIndexFiles, StoreError } from "./storefiles.ts";

export { adminSocketPath } from "./layout.ts";
export { StoreError } from "./storefiles.ts";
export { NO_STATS, type StoreStats } from "./stats.ts";

/**
 * Records kept in memory (including "absent" answers), oldest dropped first, in bytes of heap as
 * lib/core/footprint.ts weighs them (with what a redirect to each needs): about 45,000 records
 * of short keys and one volume, fewer of longer ones, whatever the number of keys.
 */
export const RECORD_CACHE_BYTES = 32 * 1024 * 1024;
/**
 * Keys a removal watch (Store.watchRemovals) remembers, in bytes of heap; past this it answers
 * that every key may have been removed, so that it never grows with the index.
 */
const REMOVAL_WATCH_BYTES = 8 * 1024 * 1024;
/** Tries of a commit that fails with a transient SQLite error such as "database is locked". */
const COMMIT_TRIES = 20;
/**
 * Keys of the first run a walk of the records gives a listing; each next run doubles, to
 * LIST_BATCH: a short listing is answered after a short read, a long one in few runs.
 */
const FIRST_RECORD_RUN = 16;

/**
 * Told how long a commit took, in seconds, failed ones included, and how many records it carried.
 */
export type CommitHook = (seconds: number, records: number) => void;

export interface ListOptions {
  /** Only keys starting with this. */
  prefix: string;
  /** Begin at this key (inclusive), if it is after the prefix. */
  start?: string;
  /** Which records: live ones (for `?list`), or unlinked ones (for `?unlinked`), or all. */
  state: "live" | "unlinked" | "all";
  /** Leave out keys starting with this (the index's own, under `/-/`). */
  exclude?: string;
}

/** A batch's page writes would not fit in one commit: it is committed in halves. */
class PagesTooLarge extends Error {
  override name = "PagesTooLarge";
}

interface Pending {
  key: string;
  record: KeyRecord | null;
  resolve: () => void;
  reject: (err: Error) => void;
}

function isTransient(err: unknown): boolean {
  return err instanceof Error && /database is locked|busy/i.test(err.message);
}

/** Entries a prefetch reads per key it wants, at most (see Store.prefetch). */
const PREFETCH_SPREAD = 4;

export class Store {
  readonly kv: Deno.Kv;
  /**
   * A second handle on the same file, for reads of records only. One handle runs its operations
   * one after another, so a read on `kv` waits for the commits queued before it (0.7 ms at p50,
   * 2.5 ms at p99 under a write load, against 0.04 ms / 0.3 ms here). SQLite's WAL lets a reader
   * run beside the writer, and a read that starts after a commit returned sees it.
   */
  readonly reader: Deno.Kv;
  #lockFile: Deno.FsFile;
  #cache = new Lru<string, KeyRecord | null>(RECORD_CACHE_BYTES, cachedRecordBytes);
  #locks = new Set<string>();
  #pending: Pending[] = [];
  #flushing = false;
  /** Reads of records in flight, per key: what they read is cached only if no commit changed it. */
  #reading = new Map<string, number>();
  /** Keys with reads in flight that a commit changed: those reads may hold the old record. */
  #changedUnderRead = new Set<string>();
  /** Reads of KV asked for in this turn of the event loop, to be sent together (#read). */
  #reads: {
    key: string;
    resolve: (value: string | null) => void;
    reject: (err: unknown) => void;
  }[] = [];
  readonly #onCommit: CommitHook | undefined;
  #stats: StoreStats;
  #markers: PendingMarkers;
  /** The removal watches open (watchRemovals): the keys whose records were removed meanwhile. */
  #watches = new Set<{ keys: Set<string>; bytes: number; overflowed: boolean }>();
  /** Work for the flush loop between two commits of records (a step of the pages' build). */
  #tasks: (() => Promise<void>)[] = [];
  /** Records per batch: MAX_BATCH, halved while a batch's page writes would not fit a commit. */
  #batchSize = MAX_BATCH;
  #pages: KeyPages;
  /** How far the pages are built, as of the last commit. */
  #built: PagesBuilt;
  /** Set by suspendPages until buildPages: no build runs. */
  #suspended = false;
  /** Counts the suspensions, so that a listing that began before one stops reading pages. */
  #pagesEpoch = 0;
  /**
   * While a build step reads records from `from` on, the commits' changes to the live keys there
   * (which no page holds yet), so that the step writes its pages as of its commit.
   */
  #window: { from: string; changes: Map<string, boolean> } | null = null;
  /** The build running, if any. */
  #build: Promise<void> | null = null;
  #stopBuild = false;
  #closed = false;

  private constructor(
    handles: { kv: Deno.Kv; reader: Deno.Kv; lockFile: Deno.FsFile },
    loaded: { stats: StoreStats; markers: PendingMarkers; built: PagesBuilt },
    onCommit: CommitHook | undefined,
  ) {
    this.#onCommit = onCommit;
    this.kv = handles.kv;
    this.reader = handles.reader;
    this.#lockFile = handles.lockFile;
    this.#stats = loaded.stats;
    this.#markers = loaded.markers;
    this.#built = loaded.built;
    this.#pages = new KeyPages(handles.kv, handles.reader);
  }

  /** The figures as of the last commit. */
  get stats(): Readonly<StoreStats> {
    return this.#stats;
  }

  /**
   * Opens the index in directory `db` (created if missing) and takes its lock, so that no other
   * process writes it meanwhile. Throws StoreError if another process holds it. `onCommit` is
   * told of every commit (the metrics, the write trace).
   */
  static async open(db: string, options: { onCommit?: CommitHook } = {}): Promise<Store> {
    const files = await openIndexFiles(db);
    try {
      const stats = await loadStats(files.kv);
      // Every commit of this version writes the figures and PAGES_BUILT together; a version
      // before the pages writes the figures alone, and its records are not in the pages.
      const [figures, built] = await files.kv.getMany<[StoreStats, PagesBuilt]>([
        STATS,
        PAGES_BUILT,
      ]);
      return new Store(
        files,
        {
          stats,
          markers: await loadMarkers(files.kv),
          built: built.value !== null && built.versionstamp === figures.versionstamp
            ? built.value
            : NOT_BUILT,
        },
        options.onCommit,
      );
    } catch (err) {
      closeIndexFiles(files);
      throw new StoreError(`cannot open index ${kvPath(db)}: ${firstLine(err)}`);
    }
  }

  /** Whether the key pages are complete (a listing reads them), or being built. */
  get pagesComplete(): boolean {
    return this.#built.complete;
  }

  close(): void {
    // A build in progress stops at its next step; what it committed stays.
    this.#closed = true;
    this.reader.close();
    this.kv.close();
    this.#lockFile.close();
  }

  /**
   * Takes the write lock of a key until the end of the caller's scope, as
   * `using lock = store.lock(key)`; null if a write to it is already in progress.
   */
  lock(key: string): Disposable | null {
    if (this.#locks.has(key)) return null;
    this.#locks.add(key);
    return { [Symbol.dispose]: () => this.#locks.delete(key) };
  }

  /** The record of a key, or null if it has none. */
  async get(key: string): Promise<KeyRecord | null> {
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    this.#reading.set(key, (this.#reading.get(key) ?? 0) + 1);
    try {
      const value = await this.#read(key);
      const record = value === null ? null : decodeRecord(value);
      if (!this.#changedUnderRead.has(key)) this.#cache.set(key, record);
      return record;
    } finally {
      const left = this.#reading.get(key)! - 1;
      if (left > 0) this.#reading.set(key, left);
      else {
        this.#reading.delete(key);
        this.#changedUnderRead.delete(key);
      }
    }
  }

  /**
   * The encoded record of `key` read from KV, or null. Reads asked for in the same turn of the
   * event loop share `getMany` calls of GET_MANY keys: one handle serves its calls one after
   * another, so that a read each made concurrent readers (a rebuild, a burst of GETs) wait in
   * line for a round trip per key.
   */
  #read(key: string): Promise<string | null> {
    return new Promise((resolve, reject) => {
      this.#reads.push({ key, resolve, reject });
      if (this.#reads.length === 1) queueMicrotask(() => this.#readQueued());
    });
  }

  #readQueued(): void {
    const reads = this.#reads;
    this.#reads = [];
    for (let from = 0; from < reads.length; from += GET_MANY) {
      const some = reads.slice(from, from + GET_MANY);
      this.reader.getMany<string[]>(some.map(({ key }) => [RECORDS, key])).then(
        (entries) => entries.forEach((entry, i) => some[i].resolve(entry.value)),
        (err) => some.forEach(({ reject }) => reject(err)),
      );
    }
  }

  /**
   * Reads the records of `keys` into the cache with one KV list over their range (from the least
   * to the greatest, in KV's order) instead of a `getMany` per ten keys: for an operation that
   * works through keys in key order (rebuild, gc), whose `get`s then find them there. A KV call
   * costs far more than an entry, and neighbouring keys share the KV file's pages. At most
   * PREFETCH_SPREAD entries per key wanted are read; keys past those are left to `get`. Cached as
   * `get` caches: not what a commit changed meanwhile.
   */
  async prefetch(keys: string[]): Promise<void> {
    const wanted = keys.filter((key) => this.#cache.get(key) === undefined);
    if (wanted.length === 0) return;
    let low = wanted[0];
    let high = wanted[0];
    for (const key of wanted) {
      if (compareKeys(key, low) < 0) low = key;
      if (compareKeys(key, high) > 0) high = key;
    }
    for (const key of wanted) this.#reading.set(key, (this.#reading.get(key) ?? 0) + 1);
    try {
      const limit = wanted.length * PREFETCH_SPREAD;
      const found = new Map<string, string>();
      let last = low;
      // The end is exclusive: `high` followed by a NUL is the first key after it.
      const entries = this.reader.list<string>(
        { start: [RECORDS, low], end: [RECORDS, `${high}\0`] },
        { batchSize: Math.min(limit, LIST_BATCH), limit },
      );
      for await (const entry of entries) {
        last = entry.key[1] as string;
        found.set(last, entry.value);
      }
      const whole = found.size < limit;
      for (const key of wanted) {
        const text = found.get(key);
        if (text === undefined && !whole && compareKeys(key, last) > 0) continue;
        if (this.#changedUnderRead.has(key)) continue;
        this.#cache.set(key, text === undefined ? null : decodeRecord(text));
      }
    } finally {
      for (const key of wanted) {
        const left = this.#reading.get(key)! - 1;
        if (left > 0) this.#reading.set(key, left);
        else {
          this.#reading.delete(key);
          this.#changedUnderRead.delete(key);
        }
      }
    }
  }

  /** Reads an entry of the KV past the cache (`/-/health`): resolves once the KV answered. */
  async ping(): Promise<void> {
    await this.kv.get(["health"]);
  }

  /** Forgets what the cache holds, e.g. after records changed behind the store's back. */
  forget(): void {
    this.#cache.clear();
  }

  /**
   * Sets (or with null, removes) the record of a key; resolves once it is committed to disk.
   * The caller holds the key's lock.
   */
  set(key: string, record: KeyRecord | null): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ key, record, resolve, reject });
      if (!this.#flushing) this.#flush();
    });
  }

  /** Runs `task` in the flush loop, between two commits of records: nothing commits meanwhile. */
  #exclusive(task: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#tasks.push(() => task().then(resolve, reject));
      if (!this.#flushing) this.#flush();
    });
  }

  /**
   * Sets the records of several keys, committed together (up to MAX_BATCH a commit) where `set`s
   * made one by one commit the first alone; resolves once all are committed. The caller holds
   * the keys' locks.
   */
  setMany(entries: [string, KeyRecord | null][]): Promise<void> {
    const done = entries.map(([key, record]) =>
      new Promise<void>((resolve, reject) => this.#pending.push({ key, record, resolve, reject }))
    );
    if (!this.#flushing) this.#flush();
    return Promise.all(done).then(() => {});
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#pending.length > 0 || this.#tasks.length > 0) {
      const task = this.#tasks.shift();
      if (task !== undefined) {
        await task();
        continue;
      }
      const batch = this.#pending.splice(0, this.#batchSize);
      const started = performance.now();
      try {
        await this.#commit(batch);
        this.#batchSize = MAX_BATCH;
        this.#onCommit?.((performance.now() - started) / 1000, batch.length);
        this.#changed(batch);
        this.#noteRemovals(batch);
        for (const item of batch) this.#cache.set(item.key, item.record);
        for (const item of batch) item.resolve();
      } catch (err) {
        if (err instanceof PagesTooLarge) {
          this.#pending.unshift(...batch);
          this.#batchSize = batch.length >>> 1;
          continue;
        }
        this.#onCommit?.((performance.now() - started) / 1000, batch.length);
        this.#changed(batch);
        for (const item of batch) this.#cache.delete(item.key);
        const error = new StoreError(`index: cannot commit: ${firstLine(err)}`);
        for (const item of batch) item.reject(error);
      }
    }
    this.#flushing = false;
  }

  /**
   * Watches for records removed from now on, until disposed: `mayBeRemoved(key)` says whether the
   * key's record was removed (a DELETE done, a failed write undone) since the watch began, and so
   * whether its files, seen in a listing of a volume taken since, may be gone. Rebuild trusts a
   * listing for the other keys and reads no file. Bounded: past REMOVAL_WATCH_BYTES of removed
   * keys it says yes for every key.
   */
  watchRemovals(): { mayBeRemoved(key: string): boolean } & Disposable {
    const watch = { keys: new Set<string>(), bytes: 0, overflowed: false };
    this.#watches.add(watch);
    return {
      mayBeRemoved: (key) => watch.overflowed || watch.keys.has(key),
      [Symbol.dispose]: () => this.#watches.delete(watch),
    };
  }

  #noteRemovals(batch: Pending[]): void {
    for (const watch of this.#watches) {
      for (const { key, record } of batch) {
        if (record !== null || watch.overflowed || watch.keys.has(key)) continue;
        watch.keys.add(key);
        watch.bytes += setKeyBytes(key);
        if (watch.bytes > REMOVAL_WATCH_BYTES) {
          watch.overflowed = true;
          watch.keys.clear();
        }
      }
    }
  }

  /** Keeps reads in flight of the batch's keys from caching what they read (it may be older). */
  #changed(batch: Pending[]): void {
    for (const { key } of batch) if (this.#reading.has(key)) this.#changedUnderRead.add(key);
  }

  /**
   * The records that the batch replaces, in its order: the latest of the batch itself, else the
   * cache's, else read from KV. Exact, as only the flush writes and it commits one batch at a
   * time.
   */
  async #replaced(batch: Pending[]): Promise<(KeyRecord | null)[]> {
    const olds: (KeyRecord | null | undefined)[] = [];
    const inBatch = new Map<string, KeyRecord | null>();
    const unknown: number[] = [];
    for (const [i, { key, record }] of batch.entries()) {
      olds[i] = inBatch.has(key) ? inBatch.get(key) : this.#cache.get(key);
      if (olds[i] === undefined) unknown.push(i);
      inBatch.set(key, record);
    }
    const reads: Promise<void>[] = [];
    for (let from = 0; from < unknown.length; from += GET_MANY) {
      const indexes = unknown.slice(from, from + GET_MANY);
      reads.push(
        this.reader.getMany<string[]>(indexes.map((i) => [RECORDS, batch[i].key])).then(
          (entries) => {
            entries.forEach((entry, j) => {
              olds[indexes[j]] = entry.value === null ? null : decodeRecord(entry.value);
            });
          },
        ),
      );
    }
    await Promise.all(reads);
    return olds as (KeyRecord | null)[];
  }

  async #commit(batch: Pending[]): Promise<void> {
    const olds = await this.#replaced(batch);
    let stats = this.#stats;
    for (const [i, { record }] of batch.entries()) stats = shiftStats(stats, olds[i], record);
    const markers = this.#markers.plan(batch);
    // The keys that become live or stop being live: their pages change in this commit where the
    // pages are built; beyond, a build step reading those records meanwhile is told of them.
    const maintained = new Map<string, boolean>();
    const beyond = new Map<string, boolean>();
    for (const [key, live] of liveChanges(batch, olds)) {
      const built = this.#built.complete || compareKeys(key, this.#built.cover) < 0;
      (built ? maintained : beyond).set(key, live);
    }
    const pages = maintained.size === 0 ? NO_PAGE_PLAN : await this.#pages.plan(maintained);
    if (
      batch.length > 1 && (pages.units > COMMIT_PAGE_UNITS ||
        pages.sets.length + pages.deletes.length > COMMIT_PAGE_MUTATIONS)
    ) {
      throw new PagesTooLarge();
    }
    await this.#atomically((op) => {
      for (const { key, record } of batch) {
        if (record === null) op.delete([RECORDS, key]);
        else op.set([RECORDS, key], encodeRecord(record));
      }
      markers.parts.forEach((part, i) => op.set([MARKERS, markers.marker, i], part));
      for (const [marker, part] of markers.deletes) op.delete([MARKERS, marker, part]);
      op.set(STATS, stats);
      op.set(PAGES_BUILT, this.#built);
      this.#pages.write(op, pages);
    });
    this.#stats = stats;
    this.#markers.apply(markers);
    this.#pages.committed(pages);
    const window = this.#window;
    if (window !== null) {
      for (const [key, live] of beyond) {
        if (compareKeys(key, window.from) >= 0) window.changes.set(key, live);
      }
    }
  }

  /** Commits the mutations `fill` adds, trying again after a transient error. */
  async #atomically(fill: (op: Deno.AtomicOperation) => void): Promise<void> {
    for (let attempt = 1;; attempt++) {
      const op = this.kv.atomic();
      fill(op);
      try {
        const result = await op.commit();
        if (!result.ok) throw new Error("commit refused");
        return;
      } catch (err) {
        if (!isTransient(err) || attempt >= COMMIT_TRIES) throw err;
        await new Promise((resolve) => setTimeout(resolve, attempt * 5));
      }
    }
  }

  /**
   * Stops keeping the key pages before a bulk load (rebuild), which would rewrite a page for
   * nearly every key it adds: until the build that disposing of the answer runs (buildPages),
   * listings walk the records. Resolves once the pages are marked unbuilt in the KV, so that a
   * crash meanwhile leaves them to be built again.
   */
  async suspendPages(): Promise<AsyncDisposable> {
    this.#suspended = true;
    this.#pagesEpoch++;
    await this.#exclusive(async () => {
      await this.#atomically((op) => {
        op.set(STATS, this.#stats);
        op.set(PAGES_BUILT, NOT_BUILT);
      });
      this.#built = NOT_BUILT;
      this.#window = null;
      this.#pages.forget();
    });
    return { [Symbol.asyncDispose]: () => this.buildPages() };
  }

  /**
   * Builds the key pages from the records where they are not built, and resolves once they are
   * complete (at once if they are); ends a suspension. Steps of BUILD_RECORDS records, each
   * committed by the flush loop; the writes meanwhile go on.
   */
  async buildPages(): Promise<void> {
    this.#suspended = false;
    this.#stopBuild = false;
    while (!this.#built.complete && !this.#closed && !this.#suspended && !this.#stopBuild) {
      this.#build ??= this.#buildSteps().finally(() => this.#build = null);
      await this.#build;
    }
  }

  /**
   * Builds the key pages in the background, as buildPages does; a failure is logged (event
   * `pages_build_failed`) and the records serve listings until the next start.
   */
  startPageBuild(): void {
    const started = performance.now();
    const wasComplete = this.#built.complete;
    this.buildPages().then(() => {
      // A new, empty index builds its one page at once: no event for that.
      if (wasComplete || !this.#built.complete || this.#stats.liveKeys === 0) return;
      const seconds = (performance.now() - started) / 1000;
      logEvent("pages_built", {
        msg: `index: key pages built in ${seconds.toFixed(1)} s: listings read them`,
        seconds: Number(seconds.toFixed(3)),
        keys: this.#stats.liveKeys,
      });
    }, (err) => {
      if (this.#closed) return;
      logEvent("pages_build_failed", {
        msg: `index: cannot build the key pages: ${firstLine(err)}; listings walk the records`,
        reason: firstLine(err),
      });
    });
  }

  /** Stops a build running in the background (startPageBuild); resolves once it stopped. */
  async stopPageBuild(): Promise<void> {
    this.#stopBuild = true;
    await this.#build?.catch(() => {});
  }

  async #buildSteps(): Promise<void> {
    while (!this.#built.complete && !this.#closed && !this.#suspended && !this.#stopBuild) {
      const epoch = this.#pagesEpoch;
      const window = { from: this.#built.cover, changes: new Map<string, boolean>() };
      this.#window = window;
      const chunk = await this.#pages.readChunk(window.from);
      await this.#exclusive(async () => {
        if (this.#pagesEpoch !== epoch || this.#window !== window || this.#closed) return;
        this.#window = null;
        for (const [key, live] of window.changes) {
          if (chunk.until !== null && compareKeys(key, chunk.until) >= 0) continue;
          if (live) insertKey(chunk.keys, key);
          else removeKey(chunk.keys, key);
        }
        const { plan, until } = await this.#pages.planStep(chunk);
        const built: PagesBuilt = until === null
          ? { complete: true, cover: "" }
          : { complete: false, cover: until };
        await this.#atomically((op) => {
          this.#pages.write(op, plan);
          op.set(STATS, this.#stats);
          op.set(PAGES_BUILT, built);
        });
        this.#built = built;
        this.#pages.forget();
      });
    }
  }

  /**
   * Keys whose records are pending: `writing` (in progress or interrupted) or `deleting`, as of
   * the last commit; a caller takes the key's lock and reads its record before acting on it.
   */
  listPending(): string[] {
    return this.#markers.keys();
  }

  /** Records in key order (byte order of UTF-8), lazily, filtered by `state` and `prefix`. */
  async *list(options: ListOptions): AsyncGenerator<[string, KeyRecord]> {
    for await (const [key, text] of this.#listEncoded(options)) yield [key, decodeRecord(text)];
  }

  /** The keys of `list`, without their records. */
  async *listKeys(options: ListOptions): AsyncGenerator<string> {
    for await (const run of this.#runs(options)) {
      yield* "keys" in run ? run.keys : JSON.parse(`[${run.elements}]`) as string[];
    }
  }

  /**
   * A `?list` or `?unlinked` answer, `{"next": "...", "keys": [...]}`: `limit` keys of `list`
   * at most, and `next` the first key past them ("" if none). Live keys are read from the key
   * pages where they are complete, most of them copied into the answer undecoded.
   */
  async listJson(options: ListOptions & { limit: number }): Promise<string> {
    const body = new ListingBody(options.limit);
    // One key past the limit: the answer's `next`.
    const wanted = options.limit + 1;
    for await (const run of this.#runs(options, wanted)) if (!body.add(run)) break;
    return body.text();
  }

  /**
   * The keys of `list` in runs: from the key pages where they serve, else from the records; in
   * reads sized for `wanted` keys, if given.
   */
  #runs(options: ListOptions, wanted?: number): AsyncGenerator<KeyRun> {
    const from = listFrom(options);
    if (options.state !== "live") return this.#recordRuns(options, from);
    const epoch = this.#pagesEpoch;
    return this.#pages.runs(
      { from, prefix: options.prefix, exclude: options.exclude, wanted },
      () => this.#built.complete && this.#pagesEpoch === epoch,
      (at) => this.#recordRuns(options, at),
    );
  }

  /**
   * The keys of `list` from `from` on, walking the records, in runs of FIRST_RECORD_RUN keys and
   * then twice as many each, to LIST_BATCH. A `?list` needs only the state of each record, which
   * its first characters say (encodedState): decoding every record (its info's JSON) took two
   * thirds of a listing's time.
   */
  async *#recordRuns(options: ListOptions, from: string): AsyncGenerator<KeyRun> {
    let keys: string[] = [];
    let size = FIRST_RECORD_RUN;
    for await (const [key] of this.#listEncoded(options, from)) {
      keys.push(key);
      if (keys.length < size) continue;
      yield { keys };
      keys = [];
      size = Math.min(2 * size, LIST_BATCH);
    }
    if (keys.length > 0) yield { keys };
  }

  /** Keys and encoded records in key order, filtered by `state`, `prefix` and `exclude`. */
  async *#listEncoded(
    options: ListOptions,
    from = listFrom(options),
  ): AsyncGenerator<[string, string]> {
    const entries = this.reader.list<string>(
      { prefix: [RECORDS], start: [RECORDS, from] },
      { batchSize: LIST_BATCH },
    );
    for await (const entry of entries) {
      const key = entry.key[1] as string;
      if (!key.startsWith(options.prefix)) break;
      if (options.exclude !== undefined && key.startsWith(options.exclude)) continue;
      if (options.state === "all" || encodedState(entry.value) === options.state) {
        yield [key, entry.value];
      }
    }
  }
}

/** Where a listing begins: at `start` if it is past the prefix, else at the prefix. */
function listFrom(options: ListOptions): string {
  return options.start !== undefined && compareKeys(options.start, options.prefix) > 0
    ? options.start
    : options.prefix;
}

/**
 * The keys of a batch whose record becomes live or stops being live, each with whether it ends
 * live; `olds` are the records the batch replaces, in its order (a key may come more than once).
 */
function liveChanges(batch: Pending[], olds: (KeyRecord | null)[]): Map<string, boolean> {
  const before = new Map<string, boolean>();
  const after = new Map<string, boolean>();
  for (const [i, { key, record }] of batch.entries()) {
    if (!before.has(key)) before.set(key, olds[i]?.state === "live");
    after.set(key, record?.state === "live");
  }
  const changes = new Map<string, boolean>();
  for (const [key, live] of after) if (before.get(key) !== live) changes.set(key, live);
  return changes;
}
