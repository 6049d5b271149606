// Store.prefetch and Store.setMany (lib/core/store.ts), the reads and writes of an operation that
// works through keys in key order, on a real Deno KV in a temporary directory: what a prefetch
// caches is what `get` reads, present or absent, within and past its bound; a group set at once
// is one commit.

import assert from "node:assert/strict";
import type { KeyRecord } from "../../lib/core/record.ts";
import { Store } from "../../lib/core/store.ts";

const record = (size: number): KeyRecord => ({
  state: "live",
  volumes: ["localhost:3001"],
  md5: "",
  info: { size, mtime: 1 },
});

Deno.test("Store.prefetch caches what get reads; setMany commits a group at once", async () => {
  const dir = await Deno.makeTempDir();
  const commits: number[] = [];
  let store = await Store.open(dir, { onCommit: (_, records) => commits.push(records) });
  try {
    const keys = Array.from({ length: 300 }, (_, i) => `/k${String(i).padStart(4, "0")}`);
    await store.setMany(keys.filter((_, i) => i % 3 !== 0).map((key, i) => [key, record(i)]));
    assert.deepEqual(commits, [200]);
    const expected = new Map<string, KeyRecord | null>();
    for (const key of [...keys, "/\u{1F600}", "/\uffff", "/absent"]) {
      expected.set(key, await store.get(key));
    }
    store.close();
    // A fresh store: nothing cached; the prefetch alone reads, then get answers the same.
    store = await Store.open(dir);
    const wanted = [...expected.keys()];
    await store.prefetch(wanted.slice(0, 10));
    await store.prefetch(wanted);
    for (const [key, value] of expected) assert.deepEqual(await store.get(key), value, key);
    // A group spread past PREFETCH_SPREAD entries per key: the keys past the bound are left to
    // get, which still answers right.
    store.forget();
    await store.prefetch(["/k0000", "/k0299"]);
    assert.deepEqual(await store.get("/k0299"), expected.get("/k0299"));
    assert.deepEqual(await store.get("/k0000"), null);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
