// The index's access log (--access-log): one JSON line per request from its nginx, in a file it
// creates mode 0600, never with the Authorization header.

import assert from "node:assert/strict";
import { join } from "node:path";
import { put, request, testCluster } from "./helpers.ts";

/** The file's lines, once it has at least `count` (nginx writes each line as the request ends). */
async function readLines(path: string, count: number): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lines = (await Deno.readTextFile(path)).split("\n").filter((line) => line !== "");
    if (lines.length >= count || Date.now() > deadline) return lines;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("--access-log: a JSON line per request, mode 0600, no Authorization", async () => {
  const logDir = await Deno.makeTempDir({ prefix: "mkv-test-log-" });
  const path = join(logDir, "access.log");
  try {
    await using cluster = await testCluster({
      volumes: 1,
      indexArgs: ["--replicas", "1", "--access-log", path],
    });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const base = cluster.url;
    const secret = "QWxhZGRpbjpvcGVuIHNlc2FtZQ";
    assert.equal(await put(base, "/k1", "hello"), 201);
    const got = await request(`${base}/k1`, {
      headers: { authorization: `Basic ${secret}==`, "user-agent": 'mkv "test"' },
    });
    assert.equal(got.status, 302);
    assert.equal((await request(`${base}/absent`)).status, 404);
    const text = (await readLines(path, 3)).join("\n");
    const lines = text.split("\n").map((line) => JSON.parse(line));
    assert.equal(lines.length, 3, text);
    assert.deepEqual(
      lines.map((line) => [line.method, line.status, line.uri]),
      [["PUT", 201, "/k1"], ["GET", 302, "/k1"], ["GET", 404, "/absent"]],
    );
    assert.equal(lines[0].request_length > 5, true);
    assert.equal(lines[1].user_agent, 'mkv "test"');
    for (const line of lines) {
      assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
      assert.equal(typeof line.request_time, "number");
      assert.equal(typeof line.upstream_response_time, "string");
      assert.ok(line.remote_addr === "127.0.0.1" || line.remote_addr === "::1", line.remote_addr);
    }
    assert.ok(!text.includes(secret), text);
    assert.ok(!/authorization|basic/i.test(text), text);
  } finally {
    await Deno.remove(logDir, { recursive: true });
  }
});

Deno.test("-v without --access-log: the access log goes to stderr", async () => {
  await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1", "-v"] });
  assert.equal((await request(`${cluster.url}/absent-v`)).status, 404);
  const deadline = Date.now() + 5_000;
  let line: string | undefined;
  while (line === undefined && Date.now() < deadline) {
    line = cluster.index.log.split("\n").find((l) => l.includes('"uri":"/absent-v"'));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(line !== undefined, cluster.index.log);
  // Prefixed like the rest of nginx's stderr: `index :PORT: {...}`.
  const entry = JSON.parse(line.slice(line.indexOf("{")));
  assert.deepEqual([entry.method, entry.status], ["GET", 404]);
});
