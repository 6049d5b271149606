// Tests of the per-client limits at the index's nginx (`--limit-rate`/`--limit-burst`,
// `--limit-conn`) with a real cluster: a client over a limit gets 429 with the reason, traffic
// within the limits passes, and the client is served again once it slows down. Every request goes
// to 127.0.0.1, so that all of them come from one client address.

import assert from "node:assert/strict";
import { testCluster } from "../helpers.ts";

async function status(url: string, init: RequestInit = {}): Promise<[number, string]> {
  const response = await fetch(url, { redirect: "manual", ...init });
  return [response.status, await response.text()];
}

Deno.test("--limit-rate: a burst over rate and burst gets 429s; normal traffic passes", async () => {
  await using cluster = await testCluster({
    volumes: 1,
    indexArgs: ["--replicas", "1", "--limit-rate", "4/s", "--limit-burst", "4"],
  });
  const base = `http://127.0.0.1:${cluster.index.port}`;
  assert.deepEqual(await status(`${base}/a`, { method: "PUT", body: "value" }), [201, ""]);
  assert.equal((await status(`${base}/a`))[0], 302);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  // 24 at once: the bucket lets through its burst (and what the rate refills meanwhile).
  const answers = await Promise.all(Array.from({ length: 24 }, () => status(`${base}/a`)));
  const limited = answers.filter(([code]) => code === 429);
  const served = answers.filter(([code]) => code === 302);
  assert.equal(limited.length + served.length, answers.length, JSON.stringify(answers));
  assert.ok(served.length >= 1 && served.length <= 8, `served ${served.length}`);
  assert.ok(limited.length >= 16, `limited ${limited.length}`);
  for (const [, body] of limited) {
    assert.equal(body, "too many requests or connections from your address\n");
  }
  // Once the client slows down, it is served again, at the rate.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  for (let i = 0; i < 3; i++) {
    assert.equal((await status(`${base}/a`))[0], 302);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  assert.deepEqual(await status(`${base}/a`, { method: "DELETE" }), [204, ""]);
});

Deno.test("--limit-conn: a client holding its connections gets 429 on one more", async () => {
  await using cluster = await testCluster({
    volumes: 1,
    indexArgs: ["--replicas", "1", "--limit-conn", "2"],
  });
  const port = cluster.index.port;
  const base = `http://127.0.0.1:${port}`;
  assert.equal((await status(`${base}/absent`))[0], 404);
  // Two uploads in progress (their bodies never come) hold two connections.
  const held: Deno.Conn[] = [];
  try {
    for (const key of ["/slow1", "/slow2"]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(conn);
      await conn.write(
        new TextEncoder().encode(
          `PUT ${key} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n`,
        ),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(await status(`${base}/absent`), [
      429,
      "too many requests or connections from your address\n",
    ]);
  } finally {
    for (const conn of held) conn.close();
  }
  // Their connections closed, the client is served again.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal((await status(`${base}/absent`))[0], 404);
  assert.equal((await status(`${base}/slow1`))[0], 404);
});
