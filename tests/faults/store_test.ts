// lib/core/store.ts under a kill -9: every write a child process had acknowledged is there after
// reopening its Deno KV. The store's other tests are in tests/unit/store_test.ts.

import assert from "node:assert/strict";
import { live, openStore, tempDb } from "../store_db.ts";

Deno.test("every write acknowledged before a kill -9 is there after reopening", async () => {
  await using db = await tempDb();
  const storeUrl = new URL("../../lib/core/store.ts", import.meta.url).href;
  // Writes rounds of 100 keys at once (a few batches each) and prints each key once acknowledged.
  const script = `
    const { Store } = await import(${JSON.stringify(storeUrl)});
    const store = await Store.open(${JSON.stringify(db.path)});
    const encoder = new TextEncoder();
    for (let round = 0;; round++) {
      await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const key = "/crash/" + round + "/" + i;
        await store.set(key, { state: "live", volumes: ["localhost:3001"], md5: "" });
        await Deno.stdout.write(encoder.encode(key + "\\n"));
      }));
    }
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-kv", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const acknowledged: string[] = [];
  let buffered = "";
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  while (acknowledged.length < 1000) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    acknowledged.push(...lines);
  }
  child.kill("SIGKILL");
  await reader.cancel();
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL");
  assert.ok(acknowledged.length >= 1000, `only ${acknowledged.length} writes acknowledged`);
  // The lock died with the process; every acknowledged record was committed.
  using store = await openStore(db.path);
  for (const key of acknowledged) {
    assert.deepEqual(await store.get(key), live("localhost:3001"), key);
  }
});
