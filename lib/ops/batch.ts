// Records set in groups: an operation that sets many records (rebuild) hands each to a RecordBatch,
// which passes them on to the store together (Store.setMany: one commit, one fsync) once a group
// is full or has waited long enough. Records handed to the store one by one as a walk found their
// keys made commits of a few dozen records each, and their fsyncs were most of the KV's work.

import type { KeyPath } from "../placement.ts";
import type { KeyRecord, Store } from "../core/mod.ts";
import { type PutResult, VolumeError, type Volumes } from "../volumes/mod.ts";
import { limiter } from "./runner.ts";

/**
 * Records per group: the store's MAX_BATCH (lib/core/layout.ts), so that a group is one commit.
 */
export const BATCH_RECORDS = 256;
/**
 * How long the first record of a group waits for the others, at most. Its key stays locked
 * meanwhile (a write to it is answered 409), so it is short: a walk finds a group's worth of keys
 * in a few tens of milliseconds.
 */
export const BATCH_WAIT_MS = 25;

interface Waiting {
  key: string;
  record: KeyRecord | null;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class RecordBatch {
  #store: Pick<Store, "setMany">;
  #size: number;
  #waitMs: number;
  #waiting: Waiting[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    store: Pick<Store, "setMany">,
    options: { size?: number; waitMs?: number } = {},
  ) {
    this.#store = store;
    this.#size = options.size ?? BATCH_RECORDS;
    this.#waitMs = options.waitMs ?? BATCH_WAIT_MS;
  }

  /**
   * Sets (or with null, removes) the record of a key, with others of its group; resolves once it
   * is committed. The caller holds the key's lock until then, as for Store.set.
   */
  set(key: string, record: KeyRecord | null): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ key, record, resolve, reject });
      if (this.#waiting.length >= this.#size) this.flush();
      else this.#timer ??= setTimeout(() => this.flush(), this.#waitMs);
    });
  }

  /** Hands the records waiting to the store now, in one commit. */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const group = this.#waiting;
    this.#waiting = [];
    const committed = this.#store.setMany(group.map(({ key, record }) => [key, record]));
    committed.then(
      () => group.forEach(({ resolve }) => resolve()),
      (err) => group.forEach(({ reject }) => reject(err)),
    );
  }
}

/** Files at most this long are read in batches (HashBatch), each held whole in memory. */
export const SMALL_FILE_BYTES = 64 * 1024;
/** Files of one volume read in one batch, at most. */
const HASH_BATCH_FILES = 64;
/** How long the first file of a batch waits for others, at most (its key stays locked). */
const HASH_BATCH_WAIT_MS = 5;

interface WaitingRead {
  path: KeyPath;
  resolve: (result: PutResult | null) => void;
  reject: (err: unknown) => void;
}

/**
 * Reads of small files for their md5 (rebuild with md5), gathered per volume and sent in batches
 * on one connection each (Volumes.hashMany), `limit` batches at once: one request per file cost a
 * write and a wake-up of the volume's nginx each, as the listings did. A batch that fails is read
 * again file by file, so that each file's own failure (or absence) is what its key is told.
 */
export class HashBatch {
  #volumes: Volumes;
  #take: <T>(work: () => Promise<T>) => Promise<T>;
  #waiting = new Map<string, WaitingRead[]>();
  #timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(volumes: Volumes, limit: number) {
    this.#volumes = volumes;
    this.#take = limiter(limit);
  }

  /** The md5 and size of the key's file at `location` (at most SMALL_FILE_BYTES); null if gone. */
  hash(location: string, path: KeyPath): Promise<PutResult | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.#waiting.get(location) ?? [];
      waiting.push({ path, resolve, reject });
      this.#waiting.set(location, waiting);
      if (waiting.length >= HASH_BATCH_FILES) this.#flush(location);
      else if (!this.#timers.has(location)) {
        this.#timers.set(location, setTimeout(() => this.#flush(location), HASH_BATCH_WAIT_MS));
      }
    });
  }

  #flush(location: string): void {
    clearTimeout(this.#timers.get(location));
    this.#timers.delete(location);
    const batch = this.#waiting.get(location) ?? [];
    this.#waiting.delete(location);
    if (batch.length === 0) return;
    // A failure past the volumes' own fails the batch's keys, which fails the operation.
    this.#take(() => this.#read(location, batch)).catch((err) => {
      for (const { reject } of batch) reject(err);
    });
  }

  async #read(location: string, batch: WaitingRead[]): Promise<void> {
    const paths = batch.map(({ path }) => path);
    try {
      const results = await this.#volumes.hashMany(location, paths, SMALL_FILE_BYTES);
      batch.forEach(({ resolve }, i) => resolve(results[i]));
      return;
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
    }
    for (const { path, resolve, reject } of batch) {
      try {
        resolve(await this.#volumes.hash(location, path));
      } catch (err) {
        if (err instanceof VolumeError && err.status === 404) resolve(null);
        else reject(err);
      }
    }
  }
}
