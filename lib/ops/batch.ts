// Records set in groups: an operation that sets many records (rebuild) hands each to a RecordBatch,
// which passes them on to the store together (Store.setMany: one commit, one fsync) once a group
// is full or has waited long enough. Records handed to the store one by one as a walk found their
// keys made commits of a few dozen records each, and their fsyncs were most of the KV's work.

import type { KeyRecord, Store } from "../core/mod.ts";

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
