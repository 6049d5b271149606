// The key pages in the index's Deno KV (the encoding is lib/core/pages.ts's): how a commit's
// changes of live keys become page writes, a byte-bounded cache of the pages that commits touch,
// the listing of keys from the pages, and a step of their build from the records. The store
// (lib/core/store.ts) decides when each runs: page writes go into the commit of the records they
// follow, and a build step is committed by the store's flush loop, its only writer, between two
// commits of records.

import { cachedPageBytes } from "./footprint.ts";
import {
  BUILD_RECORDS,
  BUILD_STALE_DELETES,
  BUILD_UNITS,
  LIST_BATCH,
  PAGES,
  RECORDS,
} from "./layout.ts";
import { Lru } from "./lru.ts";
import {
  compareKeys,
  decodePage,
  encodePage,
  FIRST_BOUND,
  insertKey,
  keyAfter,
  type KeyRun,
  packPages,
  pageElements,
  removeKey,
  splitPage,
} from "./pages.ts";
import { encodedState } from "./record.ts";

/** Pages kept in memory for the commits that change them, in bytes of heap (footprint.ts). */
export const PAGE_CACHE_BYTES = 4 * 1024 * 1024;
/**
 * Pages a listing reads in one round trip at most, and in its first: the next reads are sized to
 * the keys still wanted, by the keys per page read so far, so that a `?list` of 10,000 short keys
 * (about 40 pages) reads few pages past its end; without a number wanted, each read twice the one
 * before.
 */
const LIST_PAGES = 256;
const FIRST_LIST_PAGES = 8;

/**
 * How far the pages are built, as the entry PAGES_BUILT holds it: complete, or exact for the keys
 * below `cover` only (and kept so by every commit), the rest to be built from the records.
 */
export interface PagesBuilt {
  complete: boolean;
  cover: string;
}

/** No page built: an index made before the pages, or one whose pages a bulk load suspended. */
export const NOT_BUILT: PagesBuilt = { complete: false, cover: FIRST_BOUND };

/** A page in the cache: its value, and the next page's bound (null: it is the last). */
interface CachedPage {
  text: string;
  end: string | null;
}

/** A page a commit changes: its bound, its keys being changed, the bound after it. */
interface WorkPage {
  bound: string;
  end: string | null;
  keys: string[];
  changed: boolean;
}

/** What a commit writes of the pages, and what the cache learns once it is committed. */
export interface PagePlan {
  sets: { bound: string; text: string; end: string | null }[];
  deletes: string[];
  /** UTF-16 units of the values set. */
  units: number;
}

export const NO_PAGE_PLAN: PagePlan = { sets: [], deletes: [], units: 0 };

/** What one step of a build read of the records: the live keys, up to where. */
export interface BuildChunk {
  from: string;
  keys: string[];
  /** The first key past what was read, or null: the records were read to their end. */
  until: string | null;
}

/** Whether `key` starts with `prefix`, or, when after every such key, that nothing more will. */
function pastPrefix(key: string, prefix: string): boolean {
  return !key.startsWith(prefix) && compareKeys(key, prefix) > 0;
}

export class KeyPages {
  readonly #kv: Deno.Kv;
  readonly #reader: Deno.Kv;
  #cache = new Lru<string, CachedPage>(PAGE_CACHE_BYTES, cachedPageBytes);
  /** The bounds of the cached pages, sorted; some may have left the cache (dropped lazily). */
  #bounds: string[] = [];

  constructor(kv: Deno.Kv, reader: Deno.Kv) {
    this.#kv = kv;
    this.#reader = reader;
  }

  /** Forgets the cached pages: a build wrote pages the cache does not know the bounds of. */
  forget(): void {
    this.#cache.clear();
    this.#bounds = [];
  }

  /**
   * The page writes of a commit: `changes` are the keys whose record becomes live (true) or stops
   * being live (false), all of them in the built part of the pages. Reads the pages not cached.
   */
  async plan(changes: Map<string, boolean>): Promise<PagePlan> {
    const keys = [...changes.keys()].sort(compareKeys);
    const work: WorkPage[] = [];
    for (const key of keys) {
      // Keys in order meet their pages in order: a key's page is the last loaded, or a new one.
      let page = work.at(-1);
      if (page === undefined || (page.end !== null && compareKeys(key, page.end) >= 0)) {
        page = await this.#load(key);
        work.push(page);
      }
      const done = changes.get(key) ? insertKey(page.keys, key) : removeKey(page.keys, key);
      if (done) page.changed = true;
    }
    const plan: PagePlan = { sets: [], deletes: [], units: 0 };
    for (const page of work) {
      if (!page.changed) continue;
      if (page.keys.length === 0 && page.bound !== FIRST_BOUND) {
        plan.deletes.push(page.bound);
        continue;
      }
      const pieces = splitPage({ bound: page.bound, keys: page.keys });
      pieces.forEach((piece, i) => {
        const text = encodePage(piece.keys);
        plan.units += text.length;
        plan.sets.push({ bound: piece.bound, text, end: pieces[i + 1]?.bound ?? page.end });
      });
    }
    return plan;
  }

  /** Adds a plan's page writes to a commit. */
  write(op: Deno.AtomicOperation, plan: PagePlan): void {
    for (const { bound, text } of plan.sets) op.set([PAGES, bound], text);
    for (const bound of plan.deletes) op.delete([PAGES, bound]);
  }

  /** Keeps in the cache what a committed plan wrote. */
  committed(plan: PagePlan): void {
    for (const bound of plan.deletes) {
      this.#cache.delete(bound);
      this.#dropBound(bound);
    }
    for (const { bound, text, end } of plan.sets) {
      if (this.#cache.get(bound) === undefined) this.#addBound(bound);
      this.#cache.set(bound, { text, end });
    }
    // The bounds of pages the cache dropped go once they outnumber those it holds.
    if (this.#bounds.length > 2 * this.#cache.size + 64) {
      this.#bounds = this.#bounds.filter((bound) => this.#cache.get(bound) !== undefined);
    }
  }

  #addBound(bound: string): void {
    const at = this.#floorIndex(bound) + 1;
    if (this.#bounds[at - 1] !== bound) this.#bounds.splice(at, 0, bound);
  }

  #dropBound(bound: string): void {
    const at = this.#floorIndex(bound);
    if (at >= 0 && this.#bounds[at] === bound) this.#bounds.splice(at, 1);
  }

  /** The index in #bounds of the greatest bound at or below `key`; -1 if none. */
  #floorIndex(key: string): number {
    let low = 0;
    let high = this.#bounds.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareKeys(this.#bounds[middle], key) <= 0) low = middle + 1;
      else high = middle;
    }
    return low - 1;
  }

  /** The page that holds `key` (or would), from the cache, else from KV; a copy to change. */
  async #load(key: string): Promise<WorkPage> {
    const at = this.#floorIndex(key);
    if (at >= 0) {
      const bound = this.#bounds[at];
      const cached = this.#cache.get(bound);
      if (cached !== undefined && (cached.end === null || compareKeys(key, cached.end) < 0)) {
        return { bound, end: cached.end, keys: decodePage(cached.text), changed: false };
      }
      // A bound the cache dropped would hide the cached page below it from every later key.
      if (cached === undefined) this.#dropBound(bound);
    }
    const [below, above] = await Promise.all([
      this.#kv.list<string>({ prefix: [PAGES], end: [PAGES, keyAfter(key)] }, {
        reverse: true,
        limit: 1,
      }).next(),
      this.#kv.list<string>({ prefix: [PAGES], start: [PAGES, keyAfter(key)] }, { limit: 1 })
        .next(),
    ]);
    const end = above.done ? null : above.value.key[1] as string;
    // Built pages always have the first one; a page made here for a key below all is that one.
    if (below.done) return { bound: FIRST_BOUND, end, keys: [], changed: false };
    const bound = below.value.key[1] as string;
    const text = below.value.value;
    this.#addBound(bound);
    this.#cache.set(bound, { text, end });
    return { bound, end, keys: decodePage(text), changed: false };
  }

  /**
   * The live keys from `from` on that start with `prefix` and not with `exclude`, in order, as
   * runs: a page wholly within those passed on undecoded (pageElements). `usable` is asked before
   * each read of pages: once false, the rest is `fallback(from)`'s, from where the pages ended.
   * Each read is one KV snapshot, and each page's end is taken from the same read as the page, so
   * that a page split between two reads is not listed twice.
   */
  async *runs(
    options: { from: string; prefix: string; exclude?: string; wanted?: number },
    usable: () => boolean,
    fallback: (from: string) => AsyncGenerator<KeyRun>,
  ): AsyncGenerator<KeyRun> {
    const { prefix, exclude } = options;
    // Every key below `covered` was listed (or was not live when its page was read).
    let covered = options.from;
    if (!usable()) return yield* fallback(covered);
    const below = await this.#reader.list<string>(
      { prefix: [PAGES], end: [PAGES, keyAfter(covered)] },
      { reverse: true, limit: 1 },
    ).next();
    let start = below.done ? FIRST_BOUND : below.value.key[1] as string;
    // Keys of the pages read so far, and keys given: to size the next read.
    let pagesRead = 0;
    let keysRead = 0;
    let given = 0;
    while (true) {
      if (!usable()) return yield* fallback(covered);
      let size = pagesRead === 0 ? FIRST_LIST_PAGES : 2 * pagesRead;
      if (options.wanted !== undefined && keysRead > 0) {
        size = Math.ceil((options.wanted - given) / (keysRead / pagesRead)) + 1;
      }
      size = Math.max(2, Math.min(LIST_PAGES, size));
      const entries: Deno.KvEntry<string>[] = [];
      const read = this.#reader.list<string>({ prefix: [PAGES], start: [PAGES, start] }, {
        limit: size + 1,
        batchSize: size + 1,
      });
      for await (const entry of read) entries.push(entry);
      // The last page read is listed only by the next read, which gives its end.
      const last = entries.length <= size;
      const listed = last ? entries.length : entries.length - 1;
      for (let i = 0; i < listed; i++) {
        const bound = entries[i].key[1] as string;
        const end = i + 1 < entries.length ? entries[i + 1].key[1] as string : null;
        if (pastPrefix(bound, prefix)) return;
        if (end !== null && compareKeys(end, covered) <= 0) continue;
        const whole = compareKeys(bound, covered) >= 0 && bound.startsWith(prefix) &&
          end !== null && end.startsWith(prefix) &&
          (exclude === undefined || clearOf(bound, end, exclude));
        if (whole) {
          const elements = pageElements(entries[i].value);
          pagesRead++;
          keysRead += elements.count;
          given += elements.count;
          yield elements;
        } else {
          const keys: string[] = [];
          const decoded = decodePage(entries[i].value);
          pagesRead++;
          keysRead += decoded.length;
          for (const key of decoded) {
            if (compareKeys(key, covered) < 0) continue;
            if (pastPrefix(key, prefix)) {
              if (keys.length > 0) yield { keys };
              return;
            }
            if (!key.startsWith(prefix)) continue;
            if (exclude !== undefined && key.startsWith(exclude)) continue;
            keys.push(key);
          }
          given += keys.length;
          if (keys.length > 0) yield { keys };
        }
        if (end === null) return;
        covered = end;
      }
      if (last) return;
      start = entries[listed].key[1] as string;
    }
  }

  /**
   * Reads the records from `from` on, BUILD_RECORDS of them at most and live keys of BUILD_UNITS
   * at most, for the keys of the live ones: a build step's reading, done beside the commits (the
   * store notes what they change meanwhile, so that the reads need not be one snapshot).
   */
  async readChunk(from: string): Promise<BuildChunk> {
    const keys: string[] = [];
    let units = 0;
    let read = 0;
    const entries = this.#reader.list<string>({ prefix: [RECORDS], start: [RECORDS, from] }, {
      limit: BUILD_RECORDS,
      batchSize: LIST_BATCH,
    });
    for await (const entry of entries) {
      const key = entry.key[1] as string;
      read++;
      if (encodedState(entry.value) === "live") {
        keys.push(key);
        units += key.length + 3;
      }
      if (read === BUILD_RECORDS || units >= BUILD_UNITS) {
        return { from, keys, until: keyAfter(key) };
      }
    }
    return { from, keys, until: null };
  }

  /**
   * A build step's writes, to commit with the new PagesBuilt: the pages of the chunk's keys, and
   * the removal of the pages an earlier build left from `from` to where the chunk ends. If those
   * are more than BUILD_STALE_DELETES, the step ends after the last one it removes. The chunk's
   * keys are as of now: the caller applied what commits changed since they were read.
   */
  async planStep(chunk: BuildChunk): Promise<{ plan: PagePlan; until: string | null }> {
    const stale: string[] = [];
    const selector = chunk.until === null
      ? { prefix: [PAGES], start: [PAGES, chunk.from] }
      : { start: [PAGES, chunk.from], end: [PAGES, chunk.until] };
    for await (const entry of this.#kv.list(selector, { limit: BUILD_STALE_DELETES + 1 })) {
      stale.push(entry.key[1] as string);
    }
    let until = chunk.until;
    let keys = chunk.keys;
    if (stale.length > BUILD_STALE_DELETES) {
      stale.length = BUILD_STALE_DELETES;
      until = keyAfter(stale.at(-1)!);
      keys = keys.filter((key) => compareKeys(key, until!) < 0);
    }
    const plan: PagePlan = { sets: [], deletes: [], units: 0 };
    const pages = packPages(chunk.from, keys);
    const written = new Set(pages.map((page) => page.bound));
    for (const page of pages) {
      const text = encodePage(page.keys);
      plan.units += text.length;
      plan.sets.push({ bound: page.bound, text, end: null });
    }
    plan.deletes = stale.filter((bound) => !written.has(bound));
    return { plan, until };
  }
}

/**
 * Whether no key from `bound` (included) to `end` (excluded) starts with `exclude`: the range
 * lies wholly above or wholly below those keys.
 */
function clearOf(bound: string, end: string, exclude: string): boolean {
  if (bound.startsWith(exclude)) return false;
  return compareKeys(bound, exclude) > 0 || compareKeys(end, exclude) <= 0;
}
