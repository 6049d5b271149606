// Tests of the store's key pages (lib/core/keypages.ts through lib/core/store.ts) on a real Deno KV
// in a temp directory: after random writes of every record state, the pages hold exactly the live
// keys, each within its bounds and size, and every listing matches a model's; an index made before
// the pages (records alone) lists right before and after the build; writes during a build, and a
// suspension (a rebuild's bulk load) with its build after, leave them exact.

import assert from "node:assert/strict";
import { PAGES, PAGES_BUILT, RECORDS, STATS } from "../../lib/core/layout.ts";
import { compareKeys, decodePage, fits } from "../../lib/core/pages.ts";
import { encodeRecord, type KeyRecord, type RecordState } from "../../lib/core/record.ts";
import type { Store } from "../../lib/core/store.ts";
import { openStore, tempDb } from "../store_db.ts";

const STATES: (RecordState | null)[] = [
  "live",
  "live",
  "live",
  "unlinked",
  "writing",
  "deleting",
  null,
];

/** A small deterministic generator (mulberry32), so that a failure can be run again. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function record(state: RecordState): KeyRecord {
  return { state, volumes: ["localhost:3001"], md5: "" };
}

/** Keys of a few shapes: shared prefixes, long ones, beyond the BMP, under the reserved `/-/`. */
function keyOf(i: number): string {
  switch (i % 5) {
    case 0:
      return `/a/${String(i).padStart(6, "0")}`;
    case 1:
      return `/b/${"x".repeat(i % 150)}${i}`;
    case 2:
      return `/c/\u{1f600}${i}`;
    case 3:
      return `/c/\uff5e${i}`;
    default:
      return `/-/parts/${i}`;
  }
}

/** The live keys of a model, sorted as KV sorts them. */
function liveKeys(model: Map<string, RecordState>): string[] {
  return [...model].filter(([, state]) => state === "live").map(([key]) => key).sort(compareKeys);
}

/** The pages as KV holds them: each fits, holds keys within its bounds; together, `want`. */
async function assertPagesExact(store: Store, want: string[]): Promise<void> {
  assert.ok(store.pagesComplete, "the pages are complete");
  const pages: { bound: string; keys: string[] }[] = [];
  for await (const entry of store.kv.list<string>({ prefix: [PAGES] })) {
    pages.push({ bound: entry.key[1] as string, keys: decodePage(entry.value) });
  }
  assert.equal(pages[0]?.bound, "", "the first page is bounded by the empty key");
  for (const [i, page] of pages.entries()) {
    assert.ok(fits(page.keys), `page ${JSON.stringify(page.bound)} fits`);
    if (i > 0) assert.ok(page.keys.length > 0, `page ${JSON.stringify(page.bound)} is empty`);
    const end = pages[i + 1]?.bound;
    for (const key of page.keys) {
      assert.ok(compareKeys(key, page.bound) >= 0, `${key} below its page's bound`);
      if (end !== undefined) assert.ok(compareKeys(key, end) < 0, `${key} past its page's end`);
    }
  }
  assert.deepEqual(pages.flatMap((page) => page.keys), want);
}

/** Every key of `listKeys`. */
async function listed(store: Store, options: Parameters<Store["listKeys"]>[0]): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.listKeys(options)) keys.push(key);
  return keys;
}

/** A listing's answers match the model's for a few prefixes, starts and limits. */
async function assertListings(store: Store, model: Map<string, RecordState>): Promise<void> {
  const live = liveKeys(model);
  assert.deepEqual(await listed(store, { prefix: "", state: "live" }), live);
  for (const prefix of ["/", "/a/", "/b/", "/c/", "/-/", "/zz"]) {
    for (const start of [undefined, "/a/000500", "/b/", "/c/\uff5e"]) {
      for (const limit of [0, 1, 7, 250, 10_000]) {
        const from = start !== undefined && compareKeys(start, prefix) > 0 ? start : prefix;
        const keys = live.filter((key) =>
          key.startsWith(prefix) && compareKeys(key, from) >= 0 && !key.startsWith("/-/")
        );
        const want = JSON.stringify({ next: keys[limit] ?? "", keys: keys.slice(0, limit) });
        const body = await store.listJson({ prefix, start, state: "live", exclude: "/-/", limit });
        assert.equal(body, want, `prefix ${prefix} start ${start} limit ${limit}`);
      }
    }
  }
  const unlinked = [...model].filter(([, state]) => state === "unlinked").map(([key]) => key)
    .sort(compareKeys);
  assert.deepEqual(await listed(store, { prefix: "", state: "unlinked" }), unlinked);
}

/** `count` random writes of random states over keys 0..`keys`-1, concurrent, into store and model. */
async function randomWrites(
  store: Store,
  model: Map<string, RecordState>,
  next: () => number,
  options: { count: number; keys: number },
): Promise<void> {
  const writes: Promise<void>[] = [];
  for (let i = 0; i < options.count; i++) {
    const key = keyOf(Math.floor(next() * options.keys));
    const state = STATES[Math.floor(next() * STATES.length)];
    if (state === null) model.delete(key);
    else model.set(key, state);
    writes.push(store.set(key, state === null ? null : record(state)));
    // Some writes wait, so that commits are of many sizes.
    if (next() < 0.02) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
}

Deno.test("random writes of every state keep the pages exactly the live keys", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  await store.buildPages();
  await assertPagesExact(store, []);
  const model = new Map<string, RecordState>();
  const next = random(24);
  // Most keys written live first, so that pages fill, split, and later empty.
  await randomWrites(store, model, next, { count: 6000, keys: 4000 });
  await assertPagesExact(store, liveKeys(model));
  await assertListings(store, model);
  for (const key of liveKeys(model)) {
    if (next() < 0.9) {
      model.delete(key);
      store.set(key, null);
    }
  }
  await store.set(
    keyOf(0),
    model.get(keyOf(0)) === undefined ? null : record(model.get(keyOf(0))!),
  );
  await assertPagesExact(store, liveKeys(model));
  await assertListings(store, model);
});

Deno.test("the pages survive a close: a reopened store lists from them", async () => {
  await using db = await tempDb();
  const model = new Map<string, RecordState>();
  {
    using store = await openStore(db.path);
    await store.buildPages();
    await randomWrites(store, model, random(7), { count: 800, keys: 600 });
  }
  using store = await openStore(db.path);
  assert.ok(store.pagesComplete);
  await assertPagesExact(store, liveKeys(model));
  await assertListings(store, model);
});

/** Writes records straight into the KV, as an index made before the pages holds them. */
async function writeOldIndex(db: string, model: Map<string, RecordState>, count: number) {
  const kv = await Deno.openKv(`${db}/index.kv`);
  try {
    const next = random(3);
    for (let from = 0; from < count; from += 200) {
      const op = kv.atomic();
      for (let i = from; i < Math.min(count, from + 200); i++) {
        const state = STATES[Math.floor(next() * (STATES.length - 1))] as RecordState;
        model.set(keyOf(i), state);
        op.set([RECORDS, keyOf(i)], encodeRecord(record(state)));
      }
      await op.commit();
    }
  } finally {
    kv.close();
  }
}

Deno.test("an index made before the pages lists from its records, then from pages once built", async () => {
  await using db = await tempDb();
  const model = new Map<string, RecordState>();
  await writeOldIndex(db.path, model, 3500);
  using store = await openStore(db.path);
  assert.equal(store.pagesComplete, false);
  assert.equal((await store.kv.get(PAGES_BUILT)).value, null);
  await assertListings(store, model);
  await store.buildPages();
  await assertPagesExact(store, liveKeys(model));
  await assertListings(store, model);
});

Deno.test("writes while the pages are built, and a suspension and its build, leave them exact", async () => {
  await using db = await tempDb();
  const model = new Map<string, RecordState>();
  await writeOldIndex(db.path, model, 12_000);
  using store = await openStore(db.path);
  const next = random(11);
  // The build's steps (10,000 records each at most) meet writes all over the key range.
  const build = store.buildPages();
  await randomWrites(store, model, next, { count: 3000, keys: 14_000 });
  await build;
  await assertPagesExact(store, liveKeys(model));
  await assertListings(store, model);

  // A bulk load: pages suspended, listings walk the records, then the build makes them again.
  const pages = await store.suspendPages();
  assert.equal(store.pagesComplete, false);
  assert.deepEqual((await store.kv.get(PAGES_BUILT)).value, { complete: false, cover: "" });
  await randomWrites(store, model, next, { count: 2000, keys: 15_000 });
  await assertListings(store, model);
  await pages[Symbol.asyncDispose]();
  await assertPagesExact(store, liveKeys(model));
  await assertListings(store, model);
});

Deno.test("a listing that began on the pages goes on from the records after a suspension", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  await store.buildPages();
  // Long keys, so that the listing reads its pages in several reads (64 pages each).
  const keys = Array.from(
    { length: 3000 },
    (_, i) => `/k/${"x".repeat(140)}${String(i).padStart(5, "0")}`,
  );
  await Promise.all(keys.map((key) => store.set(key, record("live"))));
  const seen: string[] = [];
  let suspended: AsyncDisposable | null = null;
  for await (const key of store.listKeys({ prefix: "/k/", state: "live" })) {
    seen.push(key);
    if (seen.length === 100) {
      suspended = await store.suspendPages();
      await store.set(keys[2999], null);
    }
  }
  assert.deepEqual(seen, keys.slice(0, 2999));
  await suspended![Symbol.asyncDispose]();
  assert.ok(store.pagesComplete);
  await assertPagesExact(store, keys.slice(0, 2999));
});

Deno.test("a batch whose pages would not fit one commit is committed in parts, exactly", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  await store.buildPages();
  // Long keys, about 40 to a page: 3,200 of them make some 80 full pages.
  const key = (i: number) => `/long/${String(i).padStart(5, "0")}${"z".repeat(170)}`;
  const model = new Map<string, RecordState>();
  for (let from = 0; from < 3200; from += 200) {
    await Promise.all(Array.from({ length: 200 }, (_, j) => {
      model.set(key(from + j), "live");
      return store.set(key(from + j), record("live"));
    }));
  }
  let commits = 0;
  const atomic = store.kv.atomic.bind(store.kv);
  store.kv.atomic = () => {
    commits++;
    return atomic();
  };
  // One key removed from every 40th: one batch that rewrites every page, more than a commit holds.
  const removed = Array.from({ length: 80 }, (_, i) => key(40 * i + 7));
  await Promise.all(removed.map((k) => {
    model.delete(k);
    return store.set(k, null);
  }));
  // The first key's commit starts alone; the 79 after it would be one batch, were it not too large.
  assert.ok(commits > 2, `${commits} commits`);
  await assertPagesExact(store, liveKeys(model));
  await assertListings(store, model);
});

Deno.test("records committed by a version before the pages make them unbuilt on open", async () => {
  await using db = await tempDb();
  const model = new Map<string, RecordState>();
  {
    using store = await openStore(db.path);
    await store.buildPages();
    await randomWrites(store, model, random(5), { count: 300, keys: 300 });
    // An earlier version writes a record and the figures, and knows nothing of the pages.
    const stats = (await store.kv.get(STATS)).value;
    model.set("/older", "live");
    await store.kv.atomic().set([RECORDS, "/older"], encodeRecord(record("live")))
      .set(STATS, stats).commit();
  }
  using store = await openStore(db.path);
  assert.equal(store.pagesComplete, false);
  await assertListings(store, model);
  await store.buildPages();
  await assertPagesExact(store, liveKeys(model));
});

Deno.test("commits in the range of a removed page read its pages from KV once, then from the cache", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  await store.buildPages();
  const key = (i: number) => `/f/${String(i).padStart(5, "0")}${"w".repeat(60)}`;
  await Promise.all(Array.from({ length: 600 }, (_, i) => store.set(key(i), record("live"))));
  const bounds: string[] = [];
  for await (const entry of store.kv.list({ prefix: [PAGES] })) bounds.push(entry.key[1] as string);
  assert.ok(bounds.length >= 3, `${bounds.length} pages`);
  // The second page's keys removed, so is the page: its range is the first page's now.
  const second = Array.from({ length: 600 }, (_, i) => key(i)).filter((k) =>
    compareKeys(k, bounds[1]) >= 0 && compareKeys(k, bounds[2]) < 0
  );
  for (const k of second) await store.set(k, null);
  let lists = 0;
  const list = store.kv.list.bind(store.kv);
  store.kv.list = ((...args: Parameters<Deno.Kv["list"]>) => {
    lists++;
    return list(...args);
  }) as Deno.Kv["list"];
  for (const k of second.slice(0, 20)) {
    await store.set(k, record("live"));
    await store.set(k, null);
  }
  // One page read (its floor and its end) at most, not two reads per commit.
  assert.ok(lists <= 2, `${lists} reads of pages for 40 commits`);
  const model = new Map<string, RecordState>();
  for (let i = 0; i < 600; i++) if (!second.includes(key(i))) model.set(key(i), "live");
  await assertPagesExact(store, liveKeys(model));
});
