// Tests of the load tools: thrasher.ts's pure parts (percentiles, flags, report, values), then the
// program as a subprocess against a real cluster and against a server that answers wrongly; then
// the pure parts of bench/bench.ts (reading wrk and hyperfine; the table), of bench/proc.ts (the
// peak RSS) and of bench/profile.ts (the profile summary).

import assert from "node:assert/strict";
import {
  FULL_LOAD,
  parseHyperfine,
  parseWrkRate,
  parseWrkRequests,
  renderMarkdown,
  wrkTrouble,
} from "../bench/bench.ts";
import { summarizeProfile } from "../bench/profile.ts";
import { parsePeakRssMib } from "../bench/proc.ts";
import { FlagError } from "../lib/flags.ts";
import {
  formatResult,
  parseThrasherArgs,
  percentile,
  summarize,
  type ThrashResult,
  valueFor,
} from "../thrasher.ts";
import { freePorts, request, runScript, type ScriptResult, testCluster } from "./helpers.ts";

function runThrasher(args: string[]): Promise<ScriptResult> {
  return runScript(["thrasher.ts", ...args]);
}

Deno.test("percentile takes the nearest rank of sorted samples", () => {
  const samples = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(samples, 50), 50);
  assert.equal(percentile(samples, 90), 90);
  assert.equal(percentile(samples, 99), 99);
  assert.equal(percentile(samples, 100), 100);
  assert.equal(percentile(samples, 0), 1);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([1, 2, 3], 50), 2);
  assert.equal(percentile([], 50), 0);
});

Deno.test("summarize sorts the samples and reports p50, p90, p99 and max", () => {
  const samples = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000);
  assert.deepEqual(summarize(samples), {
    count: 1000,
    p50Ms: 499,
    p90Ms: 899,
    p99Ms: 989,
    maxMs: 999,
  });
  assert.deepEqual(summarize([]), { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 });
});

Deno.test("the thrasher's flags have minikeyvalue-like defaults and Go-style syntax", () => {
  assert.deepEqual(parseThrasherArgs([]), {
    url: "http://localhost:3000",
    count: 10_000,
    concurrency: 16,
    sizeBytes: 32,
    mode: "thrash",
    json: false,
  });
  assert.deepEqual(
    parseThrasherArgs([
      "-url=http://127.0.0.1:3100/",
      "--count",
      "200",
      "-concurrency",
      "4",
      "--size=1024",
      "--mode",
      "missing",
      "--json",
    ]),
    {
      url: "http://127.0.0.1:3100",
      count: 200,
      concurrency: 4,
      sizeBytes: 1024,
      mode: "missing",
      json: true,
    },
  );
  assert.equal(parseThrasherArgs(["--help"]), "help");
  assert.equal(parseThrasherArgs(["-h", "--count", "5"]), "help");
});

Deno.test("the thrasher refuses a bad command line with a one-line reason", () => {
  const bad: [string[], RegExp][] = [
    [["--mode", "fast"], /-mode must be one of thrash, get, missing/],
    [["--count", "0"], /-count must be at least 1/],
    [["--concurrency", "-1"], /-concurrency must be at least 1/],
    [["--size", "ten"], /not an integer/],
    [["--url", "localhost:3000"], /-url must be like http:\/\/host:port/],
    [["--url", "http://localhost:3000/path"], /-url must be like/],
    [["--nope"], /unknown flag --nope/],
    [["extra"], /unexpected argument "extra"/],
  ];
  for (const [args, reason] of bad) {
    assert.throws(() => parseThrasherArgs(args), (err: Error) => {
      assert.ok(err instanceof FlagError, `${args}: ${err}`);
      assert.match(err.message, reason);
      assert.ok(!err.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("formatResult prints the rate with its unit and one line per measured operation", () => {
  const result: ThrashResult = {
    mode: "thrash",
    url: "http://localhost:3000",
    count: 10_000,
    concurrency: 16,
    sizeBytes: 32,
    seconds: 5.5,
    rate: 1818.18,
    rateUnit: "cycles/s",
    latency: {
      PUT: { count: 10_000, p50Ms: 4.321, p90Ms: 12.34, p99Ms: 123.4, maxMs: 1234.5 },
      GET: { count: 10_000, p50Ms: 1, p90Ms: 2, p99Ms: 3, maxMs: 4 },
    },
  };
  const lines = formatResult(result).split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^thrash: 10000 keys of 32 bytes, 16 in flight, http:\/\/localhost:3000/);
  assert.equal(lines[1], "1,818 cycles/s (5.50 s)");
  assert.equal(lines[2], "PUT    p50 4.32 ms  p90 12.3 ms  p99 123 ms  max 1235 ms  (10000)");
  assert.match(lines[3], /^GET +p50 1\.00 ms/);
  assert.ok(!formatResult(result).includes("DELETE"));
});

Deno.test("valueFor gives each key its own value of exactly the size asked", () => {
  assert.equal(new TextDecoder().decode(valueFor("/k1", 10)), "/k1;/k1;/k");
  assert.equal(valueFor("/k1", 1).length, 1);
  assert.equal(valueFor("/a-long-key", 100_000).length, 100_000);
  assert.notDeepEqual(valueFor("/k1", 32), valueFor("/k2", 32));
});

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
    assert.ok(latency.p99Ms <= latency.maxMs);
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

Deno.test("the bench reads wrk's, hyperfine's and /proc's figures", () => {
  const wrkOutput = [
    "Running 5s test @ http://127.0.0.1:3000/missing",
    "  2 threads and 100 connections",
    "  181512 requests in 5.00s, 17.13MB read",
    "  Socket errors: connect 0, read 0, write 0, timeout 12",
    "  Non-2xx or 3xx responses: 181512",
    "Requests/sec:  36302.47",
    "Transfer/sec:      3.43MB",
  ].join("\n");
  assert.equal(parseWrkRate(wrkOutput), 36302.47);
  assert.equal(parseWrkRequests(wrkOutput), 181512);
  assert.deepEqual(wrkTrouble(wrkOutput), [
    "Socket errors: connect 0, read 0, write 0, timeout 12",
    "Non-2xx or 3xx responses: 181512",
  ]);
  assert.throws(() => parseWrkRate("unable to connect to 127.0.0.1:1"), /no Requests\/sec/);
  assert.deepEqual(
    parseHyperfine(JSON.stringify({ results: [{ mean: 5.5, min: 5.25, max: 6, times: [] }] })),
    { mean: 5.5, min: 5.25, max: 6 },
  );
  assert.throws(() => parseHyperfine("{}"), /no results/);
  assert.equal(parsePeakRssMib("Name:\tdeno\nVmHWM:\t   65536 kB\nVmRSS:\t 1024 kB\n"), 64);
  assert.throws(() => parsePeakRssMib("Name:\tdeno\n"), /no VmHWM/);
});

Deno.test("the bench's table compares each figure with the ceiling and the targets", () => {
  const figures = {
    url: "http://localhost:3000",
    missingRps: 66_000,
    presentRps: 30_000,
    wrkRoundsRps: { missing: [66_000, 61_000], present: [29_000, 30_000], ceiling: [100_000] },
    cpuPerRequestUs: { missing: 20, present: 30, ceiling: 10 },
    thrashCyclesPerSecond: 1_800,
    thrashRunSeconds: { mean: 5.6, min: 5.5, max: 5.7 },
    bigPutSeconds: 9.1,
    bigGetSeconds: 1.2,
    bigPeakRssMib: 60,
    notes: ["index RSS before the big PUT: 50 MiB"],
  };
  const markdown = renderMarkdown({
    date: "2026-11-27T10:00:00.000Z",
    smoke: false,
    load: FULL_LOAD,
    machine: { cpus: 2, loadAverageAtStart: "1.00 1.00 1.00", deno: "2.9.6", commit: "abc1234" },
    ceilingRps: 100_000,
    mkv: figures,
    vs: { ...figures, url: "http://localhost:3010", thrashCyclesPerSecond: 1_200 },
  });
  const rows = markdown.split("\n").filter((line) => line.startsWith("| "));
  assert.equal(rows.length, 2 + 7);
  const row = (start: string) =>
    rows.find((line) => line.startsWith(`| ${start}`))!.slice(2, -2).split(" | ");
  assert.deepEqual(row("fetch missing").slice(1, 6), [
    "66,000",
    "66%",
    "61,700 (47%)",
    "≥ 60% of ceiling",
    "yes",
  ]);
  assert.deepEqual(row("fetch present").slice(1, 3), ["30,000", "30%"]);
  assert.equal(row("fetch present")[5], "**no**");
  assert.equal(row("thrasher")[5], "yes");
  assert.equal(row("thrasher")[7], "1.50×");
  assert.equal(row("PUT of one 512 MiB")[5], "**no**");
  assert.equal(row("index peak RSS")[5], "yes");
  assert.match(markdown, /- http:\/\/localhost:3000: index RSS before the big PUT: 50 MiB/);
  assert.match(
    markdown,
    /ceiling 10\.0 µs; missing 20\.0 µs \(2\.0×\); present 30\.0 µs \(3\.0×\)/,
  );
  assert.match(markdown, /wrk rounds \(req\/s\): ceiling 100,000; missing 66,000, 61,000; /);
});

Deno.test("the profile summary splits idle, inspector and busy samples per function", () => {
  const frame = (functionName: string, url = "") => ({ functionName, url, lineNumber: 0 });
  const summary = summarizeProfile({
    nodes: [
      { id: 1, callFrame: frame("(root)"), children: [2, 3, 5] },
      { id: 2, callFrame: frame("(idle)") },
      { id: 3, callFrame: frame("handle", "file:///work/main/lib/server.ts"), children: [4] },
      { id: 4, callFrame: frame("md5", "file:///work/main/lib/md5.ts") },
      { id: 5, callFrame: frame("emit", "ext:deno_node/inspector_network_bridge.js") },
    ],
    startTime: 0,
    endTime: 8,
    samples: [2, 2, 2, 2, 3, 4, 4, 5],
    timeDeltas: [1, 1, 1, 1, 1, 1, 1, 1],
  });
  assert.equal(summary.idleShare, 0.5);
  assert.equal(summary.inspectorShare, 0.125);
  const handle = summary.functions.find((f) => f.name === "handle lib/server.ts:1")!;
  const md5 = summary.functions.find((f) => f.name === "md5 lib/md5.ts:1")!;
  assert.deepEqual([handle.selfShare, handle.totalShare], [1 / 3, 1]);
  assert.deepEqual([md5.selfShare, md5.totalShare], [2 / 3, 2 / 3]);
});
