// Tests of lib/core/store.ts on a real Deno KV in a temp directory: the group commit (concurrent
// writes share commits; a failed commit fails its whole batch and leaves the cache true), the
// bounded write-through cache (and lib/core/lru.ts under it), a read racing a commit, what survives
// a close, the figures (keys and bytes by state) and the markers of pending records (one entry per
// commit, golden tests of their bookkeeping) kept in the same commits. KV is never replaced: the
// tests only count or delay calls to the real one. A kill -9 is in tests/faults/store_test.ts.

import assert from "node:assert/strict";
import { Lru } from "../../lib/core/lru.ts";
import type { KeyRecord } from "../../lib/core/record.ts";
import { PendingMarkers, splitMarker } from "../../lib/core/markers.ts";
import { shiftStats } from "../../lib/core/stats.ts";
import { kvPath, MAX_BATCH } from "../../lib/core/layout.ts";
import { NO_STATS, RECORD_CACHE_BYTES, Store, StoreError } from "../../lib/core/store.ts";
import { cachedRecordBytes, stringBytes, verifiedBytes } from "../../lib/core/footprint.ts";
import { live, openStore, tempDb } from "../store_db.ts";

/** Counts the commits the store's KV has completed (the real ones, which still run). */
function countCommits(store: Store): { count: number } {
  const counter = { count: 0 };
  const atomic = store.kv.atomic.bind(store.kv);
  store.kv.atomic = () => {
    const op = atomic();
    const commit = op.commit.bind(op);
    op.commit = async () => {
      const result = await commit();
      counter.count++;
      return result;
    };
    return op;
  };
  return counter;
}

/**
 * Counts the records the store reads from its KV (in `getMany`, which its reads share); the first
 * read asked for while `hold` is set waits for it after KV has answered, as a read overtaken by a
 * commit would.
 */
function watchReads(store: Store): { count: number; hold: Promise<void> | null; read: () => void } {
  const watch = { count: 0, hold: null as Promise<void> | null, read: () => {} };
  const getMany = store.reader.getMany.bind(store.reader);
  store.reader.getMany = (async (
    keys: Deno.KvKey[],
    options?: { consistency?: Deno.KvConsistencyLevel },
  ) => {
    watch.count += keys.length;
    // Only the read asked for first is held: the commit it is overtaken by reads too.
    const hold = watch.hold;
    watch.hold = null;
    const entries = await getMany(keys, options);
    watch.read();
    if (hold !== null) await hold;
    return entries;
  }) as Deno.Kv["getMany"];
  return watch;
}

/**
 * `store.get(key)` whose KV read is answered before `meanwhile` runs and returned to the store
 * only after it has finished: a read overtaken by whatever `meanwhile` commits.
 */
async function readAround(
  store: Store,
  reads: ReturnType<typeof watchReads>,
  key: string,
  meanwhile: () => Promise<void>,
): Promise<KeyRecord | null> {
  let release = () => {};
  reads.hold = new Promise((resolve) => release = resolve);
  const read = new Promise<void>((resolve) => reads.read = resolve);
  const racing = store.get(key);
  await read;
  await meanwhile();
  reads.hold = null;
  release();
  return await racing;
}

/** What KV itself holds for `key`, read on a connection of its own (no cache in between). */
async function inKv(db: string, key: string): Promise<string | null> {
  const kv = await Deno.openKv(kvPath(db));
  try {
    return (await kv.get<string>(["k", key])).value;
  } finally {
    kv.close();
  }
}

Deno.test("Lru keeps the most recently set entries up to its capacity", () => {
  const lru = new Lru<string, number>(3);
  lru.set("a", 1);
  lru.set("b", 2);
  lru.set("c", 3);
  lru.set("a", 10); // set again: now the newest
  lru.set("d", 4); // drops b, the oldest
  assert.equal(lru.size, 3);
  assert.equal(lru.get("b"), undefined);
  assert.deepEqual(["a", "c", "d"].map((k) => lru.get(k)), [10, 3, 4]);
  lru.set("e", 5); // drops c: a get does not make an entry newer
  assert.equal(lru.get("c"), undefined);
  lru.delete("a");
  assert.equal(lru.get("a"), undefined);
  assert.equal(lru.size, 2);
  lru.clear();
  assert.equal(lru.size, 0);
});

Deno.test("Lru bounds the total weight of its entries, dropping the oldest", () => {
  const lru = new Lru<string, string>(100, (key, value) => key.length + value.length);
  lru.set("a", "x".repeat(29)); // 30
  lru.set("b", "x".repeat(29)); // 30
  lru.set("c", "x".repeat(29)); // 30
  assert.equal(lru.weight, 90);
  lru.set("d", "x".repeat(19)); // 20: 110 in all, so a (the oldest) goes
  assert.deepEqual([lru.size, lru.weight, lru.get("a")], [3, 80, undefined]);
  lru.set("b", "x".repeat(59)); // b again, heavier (60), now the newest: 110, so c goes
  assert.deepEqual([lru.size, lru.weight], [2, 80]);
  assert.deepEqual([lru.get("c"), lru.get("d")?.length, lru.get("b")?.length], [undefined, 19, 59]);
  lru.set("e", "x".repeat(39)); // 40: 120, so d goes; then exactly the capacity
  assert.deepEqual([lru.size, lru.weight, lru.get("d")], [2, 100, undefined]);
  lru.delete("b");
  lru.delete("nothing");
  assert.deepEqual([lru.size, lru.weight], [1, 40]);
  lru.clear();
  assert.deepEqual([lru.size, lru.weight], [0, 0]);
});

Deno.test("Lru keeps no entry heavier than its capacity, nor the value it replaced", () => {
  const lru = new Lru<string, number>(10, (_, value) => value);
  lru.set("small", 4);
  lru.set("big", 3);
  lru.set("big", 11); // alone past the capacity: not kept, and its older value is gone
  assert.deepEqual([lru.get("big"), lru.get("small"), lru.size, lru.weight], [undefined, 4, 1, 4]);
});

Deno.test("the caches weigh their entries in bytes (golden figures)", () => {
  // A string: its header (48 with a sliced string's parent), its characters in words of 8 bytes,
  // one byte each if all are Latin-1, else two.
  assert.equal(stringBytes(""), 48);
  assert.equal(stringBytes("/hello"), 56);
  assert.equal(stringBytes("/h\u00e9llo"), 56);
  assert.equal(stringBytes("/h\u20acllo"), 64);
  assert.equal(stringBytes("x".repeat(189)), 48 + 192);
  // An absent key: the Lru's entry (80) and the key with the URL it was sliced from (80 + 8).
  assert.equal(cachedRecordBytes("/hello", null), 80 + 88);
  // A record: its object (64), volumes array (48), md5 (empty: 48), one volume (8 + 64); what a
  // redirect needs (WeakMap entry 48, object 64, two strings built 2 * 24: the path `/5d/41/` and
  // 8 base64 characters, the volume and a comma).
  assert.equal(
    cachedRecordBytes("/hello", live("localhost:3001")),
    168 + (64 + 48 + 48 + 72) + (48 + 64 + 48 + 15 + 15),
  );
  const full: KeyRecord = {
    state: "live",
    volumes: ["localhost:3001", "localhost:3002"],
    md5: "5d41402abc4b2a76b9719d911017c592",
    version: "0000018c5a3b2c1d",
    info: { size: 5, mtime: 1, type: "text/plain", meta: { a: "b" } },
  };
  // md5 80, version 64, two volumes 2 * 72; info: object and mtime (64 + 16), meta (64 + 8 +
  // 56 + 56), type 64; the path has the version's 18 characters more.
  assert.equal(
    cachedRecordBytes("/hello", full),
    168 + (64 + 48 + 80 + 64 + 2 * 72 + (80 + 184 + 64)) + (48 + 64 + 48 + 33 + 30),
  );
  // A key whose replicas were seen present: entry, key, object, array, one location.
  assert.equal(verifiedBytes("/hello", { locations: ["localhost:3001"] }), 80 + 88 + 64 + 48 + 72);
});

Deno.test("concurrent writes share few commits, and each is on disk when it resolves", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  const commits = countCommits(store);
  const n = 1000;
  const keys = Array.from({ length: n }, (_, i) => `/many/${i}`);
  let resolvedBeforeCommit = 0;
  await Promise.all(keys.map(async (key, i) => {
    const before = commits.count;
    await store.set(key, live(`localhost:${3000 + (i % 7)}`));
    if (commits.count === before) resolvedBeforeCommit++;
  }));
  // The first write commits alone; the others queue behind it and go MAX_BATCH at a time.
  assert.equal(commits.count, 1 + Math.ceil((n - 1) / MAX_BATCH));
  assert.equal(resolvedBeforeCommit, 0);
  store.forget();
  for (const [i, key] of keys.entries()) {
    assert.deepEqual(await store.get(key), live(`localhost:${3000 + (i % 7)}`), key);
  }
  assert.equal(await inKv(db.path, keys[n - 1]), "localhost:3005");
});

Deno.test("a read overtaken by a commit is cached only if the commit left its key alone", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  const reads = watchReads(store);
  // KV answers "absent" before the write, and the answer is held until after its commit.
  for (const written of ["/race", "/other"]) {
    const record = live("localhost:3001");
    assert.equal(await readAround(store, reads, "/race", () => store.set(written, record)), null);
    const readsBefore = reads.count;
    const expected = written === "/race" ? record : null;
    assert.deepEqual(await store.get("/race"), expected, `after a write of ${written}`);
    assert.equal(reads.count, readsBefore, `answered from the cache after a write of ${written}`);
    store.forget();
    assert.deepEqual(await store.get("/race"), expected);
    await store.set("/race", null);
    store.forget();
  }
});

Deno.test("reads on the second handle see every commit that returned", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  for (let i = 0; i < 200; i++) {
    await store.set(`/k${i}`, live("localhost:3001"));
    store.forget();
    assert.deepEqual(await store.get(`/k${i}`), live("localhost:3001"));
    await store.set(`/k${i}`, null);
    store.forget();
    assert.equal(await store.get(`/k${i}`), null);
  }
});

Deno.test("a failed commit rejects every write of its batch; the cache stays true", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  await store.set("/a", live("localhost:3001"));
  await store.set("/b", live("localhost:3001"));
  // The first write commits alone; the next three make one batch, which KV refuses whole
  // because one record is over its 64 KiB limit.
  const first = store.set("/first", live("localhost:3001"));
  const huge: KeyRecord = { state: "live", volumes: ["x".repeat(70_000)], md5: "" };
  const batch = await Promise.allSettled([
    store.set("/a", live("localhost:3002")),
    store.set("/b", null),
    store.set("/huge", huge),
  ]);
  await first;
  const errors = batch.map((result) => {
    assert.equal(result.status, "rejected");
    return (result as PromiseRejectedResult).reason;
  });
  for (const err of errors) {
    assert.ok(err instanceof StoreError, String(err));
    assert.match(err.message, /^index: cannot commit: /);
    assert.equal(err, errors[0], "one failure, told to every write of the batch");
  }
  // Nothing of the batch is cached or stored: the records are the ones before it, through the
  // cache and after it is emptied.
  for (const forget of [false, true]) {
    if (forget) store.forget();
    assert.deepEqual(await store.get("/a"), live("localhost:3001"));
    assert.deepEqual(await store.get("/b"), live("localhost:3001"));
    assert.equal(await store.get("/huge"), null);
    assert.deepEqual(await store.get("/first"), live("localhost:3001"));
  }
  assert.equal(await inKv(db.path, "/a"), "localhost:3001");
  // The store goes on: the next writes commit.
  await Promise.all([store.set("/a", live("localhost:3002")), store.set("/b", null)]);
  assert.deepEqual(await store.get("/a"), live("localhost:3002"));
  assert.equal(await store.get("/b"), null);
  assert.equal(await inKv(db.path, "/b"), null);
});

Deno.test("the cache answers written and absent keys without KV, and is bounded", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  const reads = watchReads(store);
  await store.set("/w", live("localhost:3001"));
  await store.set("/gone", live("localhost:3001"));
  await store.set("/gone", null);
  // A commit reads the records it replaces where the cache has none: those reads aside.
  reads.count = 0;
  assert.deepEqual(await store.get("/w"), live("localhost:3001"));
  assert.equal(await store.get("/gone"), null);
  assert.equal(reads.count, 0, "written records (and removals) are cached as they commit");
  assert.equal(await store.get("/absent"), null);
  assert.equal(await store.get("/absent"), null);
  assert.equal(reads.count, 1, "an absent key is cached too");
  // Fill the cache past its bound in bytes with absent keys of one length (reads, no commits): the
  // oldest entries go.
  const fillKey = (i: number) => `/fill/${String(i).padStart(7, "0")}`;
  const fill = Math.ceil(RECORD_CACHE_BYTES / cachedRecordBytes(fillKey(0), null));
  for (let i = 0; i < fill; i += 500) {
    const some = Math.min(500, fill - i);
    await Promise.all(Array.from({ length: some }, (_, j) => store.get(fillKey(i + j))));
  }
  assert.equal(reads.count, 1 + fill);
  assert.equal(await store.get(fillKey(fill - 1)), null);
  assert.equal(reads.count, 1 + fill, "the newest entry is still cached");
  assert.deepEqual(await store.get("/w"), live("localhost:3001"));
  assert.equal(reads.count, 2 + fill, "the oldest entry was dropped, read again");
});

Deno.test("a removal watch names the keys whose records were removed since it began", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  await store.set("/before", live("localhost:3001"));
  await store.set("/kept", live("localhost:3001"));
  await store.set("/gone-before", null);
  {
    using watch = store.watchRemovals();
    await store.set("/before", null);
    await store.set("/after", live("localhost:3001"));
    assert.equal(watch.mayBeRemoved("/before"), true);
    assert.equal(watch.mayBeRemoved("/kept"), false);
    assert.equal(watch.mayBeRemoved("/after"), false);
    assert.equal(watch.mayBeRemoved("/gone-before"), false);
  }
  await store.set("/kept", null);
  using later = store.watchRemovals();
  assert.equal(later.mayBeRemoved("/kept"), false);
});

Deno.test("listKeys gives list's keys, in order, filtered by state and prefix", async () => {
  await using db = await tempDb();
  using store = await openStore(db.path);
  await store.set("/a/1", live("localhost:3001"));
  await store.set("/a/2", { ...live("localhost:3001"), state: "unlinked" });
  await store.set("/a/3", { ...live("localhost:3001"), info: { size: 1, mtime: 2 } });
  await store.set("/a/4", { ...live("localhost:3001"), state: "writing" });
  await store.set("/b/1", live("localhost:3001"));
  for (const state of ["live", "unlinked", "all"] as const) {
    const keys = [];
    for await (const key of store.listKeys({ prefix: "/a/", state })) keys.push(key);
    const listed = [];
    for await (const [key] of store.list({ prefix: "/a/", state })) listed.push(key);
    assert.deepEqual(keys, listed, state);
  }
  const live1 = [];
  for await (const key of store.listKeys({ prefix: "/a/", start: "/a/2", state: "live" })) {
    live1.push(key);
  }
  assert.deepEqual(live1, ["/a/3"]);
});

Deno.test("records committed before a close are there after reopening", async () => {
  await using db = await tempDb();
  const records = new Map<string, KeyRecord>();
  {
    using store = await openStore(db.path);
    for (let round = 0; round < 3; round++) {
      const writes = Array.from({ length: 300 }, (_, i) => {
        const key = `/r${round}/${i}`;
        const record: KeyRecord = i % 10 === 0
          ? { state: "writing", volumes: ["localhost:3001", "localhost:3002"], md5: "" }
          : live(`localhost:300${round}`, "5d41402abc4b2a76b9719d911017c592");
        records.set(key, record);
        return store.set(key, record);
      });
      await Promise.all(writes);
    }
    await store.set("/r0/1", null);
    records.delete("/r0/1");
  }
  using store = await openStore(db.path);
  const listed = new Map<string, KeyRecord>();
  for await (const [key, record] of store.list({ prefix: "/", state: "all" })) {
    listed.set(key, record);
  }
  assert.deepEqual(listed, records);
  const pending = [];
  for (const key of store.listPending()) pending.push(key);
  assert.deepEqual(
    pending.sort(),
    [...records].filter(([, r]) => r.state === "writing").map(([key]) => key).sort(),
  );
});

function writing(volume: string): KeyRecord {
  return { state: "writing", volumes: [volume], md5: "" };
}

/** The entries of a KV file under `prefix`, read on a handle of its own. */
async function rawEntries(db: string, prefix: string): Promise<[Deno.KvKey, unknown][]> {
  const kv = await Deno.openKv(kvPath(db));
  try {
    return (await Array.fromAsync(kv.list({ prefix: [prefix] }))).map((e) => [e.key, e.value]);
  } finally {
    kv.close();
  }
}

Deno.test("splitMarker keeps each entry within KV's value size", () => {
  assert.deepEqual(splitMarker([]), []);
  assert.deepEqual(splitMarker(["/a", "/b"]), [["/a", "/b"]]);
  const long = "/" + "x".repeat(1999);
  const parts = splitMarker(Array.from({ length: 25 }, () => long));
  assert.deepEqual(parts.map((part) => part.length), [10, 10, 5]);
});

Deno.test("PendingMarkers: a marker per commit, removed once none of its keys is pending", () => {
  const markers = new PendingMarkers(new Map(), new Set());
  const plan1 = markers.plan([
    { key: "/a", record: writing("v1") },
    { key: "/b", record: writing("v1") },
    { key: "/c", record: live("v1") },
  ]);
  assert.deepEqual(plan1, { marker: 0, parts: [["/a", "/b"]], settled: [], deletes: [] });
  markers.apply(plan1);
  // A key already marked needs no new marker; the last record of a key in a batch wins.
  const plan2 = markers.plan([
    { key: "/a", record: { state: "deleting", volumes: ["v1"], md5: "" } },
    { key: "/d", record: writing("v1") },
    { key: "/d", record: live("v1") },
    { key: "/b", record: live("v1") },
  ]);
  assert.deepEqual(plan2, { marker: 1, parts: [], settled: ["/b"], deletes: [] });
  markers.apply(plan2);
  assert.deepEqual(markers.keys(), ["/a"]);
  const plan3 = markers.plan([{ key: "/e", record: writing("v1") }, { key: "/a", record: null }]);
  assert.deepEqual(plan3, { marker: 1, parts: [["/e"]], settled: ["/a"], deletes: [[0, 0]] });
  markers.apply(plan3);
  assert.deepEqual(markers.keys(), ["/e"]);
  assert.deepEqual(markers.plan([]).deletes, [], "marker 0 is gone");
});

Deno.test("PendingMarkers: loaded markers count only the keys still pending", () => {
  const loaded = new Map([
    [3, { parts: 1, keys: ["/gone", "/x"] }],
    [4, { parts: 2, keys: ["/y", "/x"] }],
    [7, { parts: 1, keys: ["/settled"] }],
  ]);
  const markers = new PendingMarkers(loaded, new Set(["/x", "/y"]));
  assert.deepEqual(markers.keys().sort(), ["/x", "/y"]);
  // Markers 3 and 7 hold no pending key: removed by the next commit, which numbers on from 8.
  const plan = markers.plan([{ key: "/z", record: writing("v1") }]);
  assert.deepEqual(plan, { marker: 8, parts: [["/z"]], settled: [], deletes: [[3, 0], [7, 0]] });
  markers.apply(plan);
  const settle = markers.plan([{ key: "/x", record: null }, { key: "/y", record: live("v1") }]);
  assert.deepEqual(settle.deletes, [[4, 0], [4, 1]]);
});

Deno.test("PendingMarkers: a commit removes at most 128 marker entries; the rest follow", () => {
  const loaded = new Map<number, { parts: number; keys: string[] }>();
  for (let i = 0; i < 300; i++) loaded.set(i, { parts: 1, keys: [`/k${i}`] });
  const markers = new PendingMarkers(loaded, new Set());
  const removed: number[] = [];
  for (let commit = 0; commit < 3; commit++) {
    const plan = markers.plan([]);
    assert.ok(plan.deletes.length <= 128);
    removed.push(...plan.deletes.map(([marker]) => marker));
    markers.apply(plan);
  }
  assert.deepEqual(removed, Array.from({ length: 300 }, (_, i) => i));
});

Deno.test("markers in KV: one entry per commit, none left once every record settled", async () => {
  await using db = await tempDb();
  {
    using store = await openStore(db.path);
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.set(`/m${i}`, writing("v1"))));
    const markers = await rawEntries(db.path, "p");
    assert.ok(markers.length >= 1 && markers.length < 50, `${markers.length} markers for 50 keys`);
    const listed = markers.flatMap(([, keys]) => keys as string[]).sort();
    assert.deepEqual(listed, Array.from({ length: 50 }, (_, i) => `/m${i}`).sort());
    assert.deepEqual(await rawEntries(db.path, "w"), [], "no marker per key");
    await store.set("/m0", live("v1"));
  }
  // Reopened (as after a crash): the pending keys are found, the settled one is not.
  {
    using store = await openStore(db.path);
    const pending = store.listPending().sort();
    assert.deepEqual(pending, Array.from({ length: 49 }, (_, i) => `/m${i + 1}`).sort());
    await Promise.all(pending.map((key) => store.set(key, null)));
    assert.deepEqual(store.listPending(), []);
    assert.deepEqual(await rawEntries(db.path, "p"), []);
  }
});

Deno.test("the per-key markers of an earlier version become markers on open", async () => {
  await using db = await tempDb();
  {
    using store = await openStore(db.path);
    await store.set("/old-writing", writing("v1"));
    await store.set("/old-live", live("v1"));
  }
  // As an earlier version left them: a marker per key, and no new ones.
  const kv = await Deno.openKv(kvPath(db.path));
  for (const [key] of await rawEntries(db.path, "p")) await kv.delete(key);
  await kv.set(["w", "/old-writing"], true);
  await kv.set(["w", "/old-live"], true);
  kv.close();
  using store = await openStore(db.path);
  assert.deepEqual(store.listPending(), ["/old-writing"]);
  assert.deepEqual(await rawEntries(db.path, "w"), []);
  await store.set("/old-writing", null);
  assert.deepEqual(await rawEntries(db.path, "p"), []);
});

function sized(state: KeyRecord["state"], size: number): KeyRecord {
  return { state, volumes: ["localhost:3001"], md5: "", info: { size, mtime: 1 } };
}

Deno.test("shiftStats: a record's state and size move between the figures", () => {
  let stats = shiftStats(NO_STATS, null, sized("writing", 0));
  assert.deepEqual(stats, { ...NO_STATS, pending: 1 });
  stats = shiftStats(stats, sized("writing", 0), sized("live", 100));
  assert.deepEqual(stats, { ...NO_STATS, liveKeys: 1, liveBytes: 100 });
  stats = shiftStats(stats, sized("live", 100), sized("unlinked", 100));
  assert.deepEqual(stats, { ...NO_STATS, unlinkedKeys: 1, unlinkedBytes: 100 });
  stats = shiftStats(stats, sized("unlinked", 100), null);
  assert.deepEqual(stats, NO_STATS);
  // A record written before sizes were kept counts as a key of 0 bytes.
  assert.deepEqual(shiftStats(NO_STATS, null, live("localhost:3001")), {
    ...NO_STATS,
    liveKeys: 1,
  });
});

Deno.test("the figures follow every commit, also when the old record is not cached", async () => {
  await using db = await tempDb();
  {
    using store = await openStore(db.path);
    assert.deepEqual(store.stats, NO_STATS);
    await Promise.all([
      store.set("/a", sized("live", 10)),
      store.set("/b", sized("live", 20)),
      store.set("/c", sized("writing", 0)),
    ]);
    assert.deepEqual(store.stats, { ...NO_STATS, liveKeys: 2, liveBytes: 30, pending: 1 });
    // One batch that changes a key twice: each change counts from the one before.
    await Promise.all([store.set("/c", sized("live", 5)), store.set("/c", sized("unlinked", 5))]);
    assert.deepEqual(store.stats, {
      ...NO_STATS,
      liveKeys: 2,
      liveBytes: 30,
      unlinkedKeys: 1,
      unlinkedBytes: 5,
    });
    // With the cache emptied, the records replaced are read from KV inside the commit.
    store.forget();
    await Promise.all([store.set("/a", null), store.set("/b", sized("unlinked", 20))]);
    assert.deepEqual(store.stats, { ...NO_STATS, unlinkedKeys: 2, unlinkedBytes: 25 });
    // A failed commit changes nothing. (The first write commits alone, the next two together.)
    const first = store.set("/first", sized("live", 1));
    const huge: KeyRecord = { state: "live", volumes: ["x".repeat(70_000)], md5: "" };
    await assert.rejects(Promise.all([store.set("/b", null), store.set("/huge", huge)]));
    await first;
    const after = { ...NO_STATS, liveKeys: 1, liveBytes: 1, unlinkedKeys: 2, unlinkedBytes: 25 };
    assert.deepEqual(store.stats, after);
  }
  // The figures are in the KV: the same after reopening, without a count.
  using store = await openStore(db.path);
  assert.deepEqual(store.stats, {
    ...NO_STATS,
    liveKeys: 1,
    liveBytes: 1,
    unlinkedKeys: 2,
    unlinkedBytes: 25,
  });
});

Deno.test("an index without figures (written before they were kept) is counted on open", async () => {
  await using db = await tempDb();
  {
    using store = await openStore(db.path);
    await store.set("/a", sized("live", 7));
    await store.set("/b", sized("deleting", 7));
    await store.set("/c", live("localhost:3001"));
    await store.kv.delete(["stats"]);
  }
  using store = await openStore(db.path);
  assert.deepEqual(store.stats, { ...NO_STATS, liveKeys: 2, liveBytes: 7, pending: 1 });
});
