// The key pages of the index: the keys of live records, kept beside the records in sorted runs so
// that a `?list` reads one KV entry per hundreds of keys instead of one per key, and passes most
// of them on without decoding them (bench/NOTES.md, "Listing from key pages"). A page is the KV
// entry `[PAGES, bound]` (lib/core/layout.ts): it holds the live keys from its bound (included) to
// the next page's bound (excluded), so that the pages partition the key space and the page of a
// key is the one with the greatest bound at or below it; the first page's bound is "". Its value
// is the number of keys, a space, and the keys as a JSON array (`2 ["/a","/b"]`): a listing copies
// the array's text into its answer, which is what JSON.stringify would have written, and a page
// read by hand says what it holds. The store (lib/core/store.ts) keeps them exact; this module
// holds the encoding, the changes to one page's keys and the assembly of a `?list` answer. Pure.

/** Keys per page at most: a commit that changes one decodes and encodes its page. */
export const PAGE_MAX_KEYS = 1024;
/**
 * UTF-16 units of an encoded page at most: KV stores a string of Latin-1 characters one byte a
 * unit and any other two, so a page stays within 16 KiB (KV takes 64 KiB per value), and a commit
 * that changes a key rewrites at most that. Larger pages list faster and cost a commit more
 * (bench/NOTES.md, "Listing from key pages": 200,000 short keys listed in 14.7 ms from pages of
 * 2.7 KB, 6.1 ms from pages of 11 KB; a commit of 16 records on 16 pages took 3.5 ms and 5.3 ms).
 */
export const PAGE_MAX_UNITS = 8192;
/**
 * What a build from the records fills a page to: three quarters of the most, so that the writes
 * that follow split few pages.
 */
export const PAGE_FILL_KEYS = 768;
export const PAGE_FILL_UNITS = 6144;
/** The bound of the first page. */
export const FIRST_BOUND = "";

/** A page: its bound and its keys, sorted (compareKeys) and all at or above the bound. */
export interface Page {
  bound: string;
  keys: string[];
}

/**
 * Orders keys as KV does, by their UTF-8 bytes, which is the order of their code points. JavaScript
 * compares UTF-16 units, which differs where a surrogate (U+D800-U+DFFF, half of a code point above
 * U+FFFF) meets a unit of U+E000-U+FFFF: there the surrogate is the greater.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** A UTF-16 unit's rank in code point order: surrogates after U+E000-U+FFFF. */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** The least key after `key`, in either order: the first bound past it. */
export function keyAfter(key: string): string {
  return key + "\0";
}

/** A page's value: `N [...]`, N keys as a JSON array. */
export function encodePage(keys: readonly string[]): string {
  return `${keys.length} ${JSON.stringify(keys)}`;
}

/** Where a page's JSON array starts: after its count and a space; throws on text that is not one. */
function arrayStart(text: string): number {
  const space = text.indexOf(" ");
  if (space < 1 || text.charCodeAt(space + 1) !== 0x5b) {
    throw new Error(`bad key page ${JSON.stringify(text.slice(0, 40))}`);
  }
  return space + 1;
}

/** The keys of a page's value. */
export function decodePage(text: string): string[] {
  const keys = JSON.parse(text.slice(arrayStart(text))) as unknown;
  if (!Array.isArray(keys) || keys.some((key) => typeof key !== "string")) {
    throw new Error(`bad key page ${JSON.stringify(text.slice(0, 40))}`);
  }
  return keys;
}

/**
 * A page's keys as they go into a listing's JSON array, undecoded: the number of keys and their
 * elements' text (`"/a","/b"`), "" for none.
 */
export function pageElements(text: string): { count: number; elements: string } {
  const start = arrayStart(text);
  return { count: Number(text.slice(0, start - 1)), elements: text.slice(start + 1, -1) };
}

/** The index in sorted `keys` where `key` is, or would be inserted. */
function position(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKeys(keys[middle], key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Adds `key` to sorted `keys` in place; false if it was there. */
export function insertKey(keys: string[], key: string): boolean {
  const at = position(keys, key);
  if (keys[at] === key) return false;
  keys.splice(at, 0, key);
  return true;
}

/** Removes `key` from sorted `keys` in place; false if it was not there. */
export function removeKey(keys: string[], key: string): boolean {
  const at = position(keys, key);
  if (keys[at] !== key) return false;
  keys.splice(at, 1);
  return true;
}

/** Whether keys fit in one page: PAGE_MAX_KEYS, and PAGE_MAX_UNITS encoded. */
export function fits(keys: readonly string[]): boolean {
  return keys.length <= PAGE_MAX_KEYS && encodePage(keys).length <= PAGE_MAX_UNITS;
}

/**
 * A page split in halves until each fits: the first keeps the bound, each other takes its first
 * key as its bound. A page that fits comes back alone, and so does a single key too long for any
 * page (keys are far shorter: a URL path of at most 189 bytes, docs/operations.md).
 */
export function splitPage(page: Page): Page[] {
  if (page.keys.length <= 1 || fits(page.keys)) return [page];
  const middle = page.keys.length >>> 1;
  return [
    ...splitPage({ bound: page.bound, keys: page.keys.slice(0, middle) }),
    ...splitPage({ bound: page.keys[middle], keys: page.keys.slice(middle) }),
  ];
}

/**
 * The pages a build writes for sorted `keys`, the first at `bound`, each after it bounded by its
 * first key: filled to PAGE_FILL_KEYS keys or PAGE_FILL_UNITS units. No keys make no page, but
 * at FIRST_BOUND one empty page, so that the page of any key can be found.
 */
export function packPages(bound: string, keys: readonly string[]): Page[] {
  if (keys.length === 0) return bound === FIRST_BOUND ? [{ bound, keys: [] }] : [];
  const pages: Page[] = [];
  let page: Page = { bound, keys: [] };
  // The units of the page's JSON array as it grows: each key's JSON text and a comma.
  let units = 0;
  for (const key of keys) {
    const more = JSON.stringify(key).length + 1;
    if (
      page.keys.length > 0 && (page.keys.length >= PAGE_FILL_KEYS || units + more > PAGE_FILL_UNITS)
    ) {
      pages.push(page);
      page = { bound: key, keys: [] };
      units = 0;
    }
    page.keys.push(key);
    units += more;
  }
  pages.push(page);
  return pages;
}

/** Keys for a listing: decoded ones, or a page's elements passed on whole (pageElements). */
export type KeyRun = { keys: readonly string[] } | { count: number; elements: string };

/**
 * A `?list` answer, `{"next":"...","keys":[...]}`, built from runs of keys: at most `limit` keys,
 * and `next` the first key past them (or ""). A page's elements go in as they are, unless the page
 * holds more keys than the answer has room for; the text is JSON.stringify's, key for key.
 */
export class ListingBody {
  readonly limit: number;
  #pieces: string[] = [];
  #count = 0;
  #next = "";
  #full = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Whether the answer is complete: `limit` keys, and the next one seen. */
  get full(): boolean {
    return this.#full;
  }

  /** Adds a run; false once the answer is full (the rest of the run is left out). */
  add(run: KeyRun): boolean {
    if (this.#full) return false;
    if ("elements" in run) {
      if (run.count === 0) return true;
      if (this.#count + run.count <= this.limit) {
        this.#pieces.push(run.elements);
        this.#count += run.count;
        return true;
      }
      return this.add({ keys: JSON.parse(`[${run.elements}]`) as string[] });
    }
    for (const key of run.keys) {
      if (this.#count === this.limit) {
        this.#next = key;
        this.#full = true;
        return false;
      }
      this.#pieces.push(JSON.stringify(key));
      this.#count++;
    }
    return true;
  }

  text(): string {
    return `{"next":${JSON.stringify(this.#next)},"keys":[${this.#pieces.join(",")}]}`;
  }
}
