// thrasher.ts as a subprocess against a real cluster and against a server that answers wrongly.
// Its pure parts, and the bench's, are in tests/unit/thrasher_test.ts.

import assert from "node:assert/strict";
import { type ThrashResult } from "../../thrasher.ts";
import { freePorts, request, runScript, type ScriptResult, testCluster } from "../helpers.ts";

function runThrasher(args: string[]): Promise<ScriptResult> {
  return runScript(["thrasher.ts", ...args]);
}

Deno.test("thrasher.ts runs every mode against a real cluster and reports JSON", async () => {
  await using cluster = await testCluster();
  const thrash = await runThrasher([
    "--url",
    cluster.url,
    "--count",
    "200",
    "--concurrency",
    "8",
    "--size",
    "100",
    "--json",
  ]);
  assert.equal(thrash.code, 0, thrash.stderr);
  const result = JSON.parse(thrash.stdout) as ThrashResult;
  assert.equal(result.mode, "thrash");
  assert.equal(result.count, 200);
  assert.equal(result.sizeBytes, 100);
  assert.equal(result.rateUnit, "cycles/s");
  assert.ok(result.rate > 0 && result.seconds > 0);
  for (const op of ["PUT", "GET", "DELETE"] as const) {
    const latency = result.latency[op];
    assert.ok(latency, `no ${op} latency`);
    assert.equal(latency.count, 200);
    assert.ok(latency.p50Ms <= latency.p90Ms && latency.p90Ms <= latency.p99Ms);
    assert.ok(latency.p99Ms <= latency.p999Ms && latency.p999Ms <= latency.maxMs);
  }
  // Every key was deleted again.
  const listing = await request(`${cluster.url}/thrasher-?list`);
  assert.equal(listing.status, 200);
  assert.deepEqual(JSON.parse(listing.body).keys, []);

  const get = await runThrasher(["--url", cluster.url, "--count", "50", "--mode", "get", "--json"]);
  assert.equal(get.code, 0, get.stderr);
  const getResult = JSON.parse(get.stdout) as ThrashResult;
  assert.equal(getResult.rateUnit, "ops/s");
  assert.equal(getResult.latency.GET?.count, 50);
  assert.equal(getResult.latency.PUT?.count, 50);
  assert.equal(getResult.latency.DELETE?.count, 50);

  const missing = await runThrasher(["--url", cluster.url, "--count", "50", "--mode", "missing"]);
  assert.equal(missing.code, 0, missing.stderr);
  assert.match(missing.stdout, /^missing: 50 keys/);
  assert.match(missing.stdout, /ops\/s/);
  assert.match(missing.stdout, /\nGET +p50 /);
  assert.ok(!missing.stdout.includes("PUT"));
});

Deno.test("thrasher.ts exits 1 with a clear message on the first wrong value", async () => {
  const [port] = freePorts(1);
  // A server that stores nothing: every PUT "succeeds" and every GET redirects to a wrong value.
  await using _server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    async (request) => {
      await request.body?.cancel();
      const path = new URL(request.url).pathname;
      if (request.method === "PUT") return new Response(null, { status: 201 });
      if (request.method === "DELETE") return new Response(null, { status: 204 });
      if (path === "/volume/value") return new Response("not what was stored");
      return new Response(null, {
        status: 302,
        headers: { location: `http://127.0.0.1:${port}/volume/value` },
      });
    },
  );
  const run = await runThrasher(["--url", `http://127.0.0.1:${port}`, "--count", "20"]);
  assert.equal(run.code, 1);
  assert.equal(run.stdout, "");
  assert.match(
    run.stderr,
    /^thrasher: GET \/thrasher-[0-9a-f]{8}-\d+: wrong value from http:\/\/127\.0\.0\.1:\d+\/volume\/value: 19 bytes, expected 32 bytes/,
  );
  assert.equal(run.stderr.trim().split("\n").length, 1);
});

Deno.test("thrasher.ts exits 1 when the server answers with an unexpected status", async () => {
  const [port] = freePorts(1);
  await using _server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    async (request) => {
      await request.body?.cancel();
      return new Response("disk full\n", { status: 507 });
    },
  );
  const run = await runThrasher(["--url", `http://127.0.0.1:${port}`, "--count", "5"]);
  assert.equal(run.code, 1);
  assert.match(
    run.stderr,
    /^thrasher: PUT \/thrasher-[0-9a-f]{8}-\d: status 507 \(expected 201\), body "disk full"\n$/,
  );
  const bad = await runThrasher(["--count", "0"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, "thrasher: -count must be at least 1\n");
});
