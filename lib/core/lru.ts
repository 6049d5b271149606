// A bounded map that keeps the most recently set entries: the index's caches (the store's records,
// the core's checked replicas) in one place.

/**
 * A Map bounded to `capacity` entries; setting one past it drops the entry set longest ago. A
 * `get` does not reorder entries, so that a hot read costs one Map lookup: recency is that of
 * `set`, which every cache here calls when it learns something new.
 */
export class Lru<K, V> {
  readonly capacity: number;
  #entries = new Map<K, V>();

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  /** Sets `key` as the newest entry, dropping the oldest if there are more than `capacity`. */
  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size > this.capacity) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
