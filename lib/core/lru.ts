// A bounded map that keeps the most recently set entries: the index's caches (the store's records,
// the core's checked replicas) in one place. Each entry has a weight (its bytes, for those caches:
// lib/core/footprint.ts), and the entries together never weigh more than the capacity, so that a
// cache's memory is bounded whatever the keys and values it holds (docs/operations.md, "Memory").

/** What an entry weighs; called once per `set`, its answer kept until the entry goes. */
export type Weigh<K, V> = (key: K, value: V) => number;

interface Entry<V> {
  value: V;
  weight: number;
}

/**
 * A Map bounded to `capacity` in total weight (by default each entry weighs 1, so it is bounded
 * to `capacity` entries); setting one past it drops the entries set longest ago. A `get` does not
 * reorder entries, so that a hot read costs one Map lookup: recency is that of `set`, which every
 * cache here calls when it learns something new.
 */
export class Lru<K, V> {
  readonly capacity: number;
  readonly #weigh: Weigh<K, V>;
  #entries = new Map<K, Entry<V>>();
  #weight = 0;
  /**
   * Where the oldest entry is: an iterator kept from one eviction to the next. A Map keeps the
   * slots of deleted entries until it is rehashed, and a new iterator steps over all of them: one
   * per eviction made each `set` of a full cache cost tens of microseconds (300,000 sets of a
   * 45,000-entry cache: 10.7 s). Every entry before the iterator's place has been dropped, so the
   * next it gives is the oldest.
   */
  #oldest: Iterator<[K, Entry<V>]> | null = null;

  constructor(capacity: number, weigh: Weigh<K, V> = () => 1) {
    this.capacity = capacity;
    this.#weigh = weigh;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** What the entries weigh together; never more than `capacity`. */
  get weight(): number {
    return this.#weight;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /**
   * Sets `key` as the newest entry, dropping the oldest until the entries weigh no more than
   * `capacity`. An entry that alone weighs more is not kept (and an older value of its key goes).
   */
  set(key: K, value: V): void {
    this.delete(key);
    const weight = this.#weigh(key, value);
    if (weight > this.capacity) return;
    this.#entries.set(key, { value, weight });
    this.#weight += weight;
    while (this.#weight > this.capacity) {
      let next = this.#oldest?.next();
      // An iterator that reached the end stays there, entries added since included.
      if (next === undefined || next.done) {
        this.#oldest = this.#entries.entries();
        next = this.#oldest.next();
      }
      const [oldest, entry] = next.value!;
      this.#entries.delete(oldest);
      this.#weight -= entry.weight;
    }
  }

  delete(key: K): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#weight -= entry.weight;
  }

  clear(): void {
    this.#entries.clear();
    this.#weight = 0;
    this.#oldest = null;
  }
}
