// Tests of the load tools' pure parts: thrasher.ts's (percentiles, flags, report, values), then
// bench/bench.ts's (reading wrk; combining rounds; the table, with and without the peer; its
// command line), bench/blobs.ts's (the values), bench/peer.ts's (the second server's command line),
// bench/proc.ts's (the peak RSS) and bench/profile.ts's (the profile summary). thrasher.ts as a
// subprocess is in tests/cluster/thrasher_test.ts.

import assert from "node:assert/strict";
import {
  advantage,
  type BenchResult,
  combineLatency,
  type Cost,
  FULL_LOAD,
  type ServerFigures,
  tailMet,
} from "../../bench/figures.ts";
import { parseBenchArgs } from "../../bench/cli.ts";
import { renderMarkdown } from "../../bench/report.ts";
import { parseWrkLatencyMs, parseWrkRate, parseWrkRequests, wrkTrouble } from "../../bench/wrk.ts";
import { blobValue, isBlobValue } from "../../bench/blobs.ts";
import { benchIndexArgs, parseIndexFlags, peerArgs } from "../../bench/peer.ts";
import { summarizeProfile } from "../../bench/profile.ts";
import { mainThreadCpuSeconds, parsePeakRssMib } from "../../bench/proc.ts";
import { FlagError } from "../../lib/flags.ts";
import {
  formatResult,
  parseThrasherArgs,
  percentile,
  summarize,
  type ThrashResult,
  valueFor,
} from "../../thrasher.ts";

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

Deno.test("summarize sorts the samples and reports p50, p90, p99, p99.9 and max", () => {
  const samples = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000);
  assert.deepEqual(summarize(samples), {
    count: 1000,
    p50Ms: 499,
    p90Ms: 899,
    p99Ms: 989,
    p999Ms: 998,
    maxMs: 999,
  });
  assert.deepEqual(summarize([]), {
    count: 0,
    p50Ms: 0,
    p90Ms: 0,
    p99Ms: 0,
    p999Ms: 0,
    maxMs: 0,
  });
  // The p99.9 of 10,000 samples is the 9,990th, not the max (float error must not round it up).
  const tenThousand = summarize(Array.from({ length: 10_000 }, (_, i) => i + 1));
  assert.equal(tenThousand.p999Ms, 9_990);
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
      PUT: {
        count: 10_000,
        p50Ms: 4.321,
        p90Ms: 12.34,
        p99Ms: 123.4,
        p999Ms: 456.7,
        maxMs: 1234.5,
      },
      GET: { count: 10_000, p50Ms: 1, p90Ms: 2, p99Ms: 3, p999Ms: 3.5, maxMs: 4 },
    },
  };
  const lines = formatResult(result).split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^thrash: 10000 keys of 32 bytes, 16 in flight, http:\/\/localhost:3000/);
  assert.equal(lines[1], "1,818 cycles/s (5.50 s)");
  assert.equal(
    lines[2],
    "PUT    p50 4.32 ms  p90 12.3 ms  p99 123 ms  p99.9 457 ms  max 1235 ms  (10000)",
  );
  assert.match(lines[3], /^GET +p50 1\.00 ms/);
  assert.ok(!formatResult(result).includes("DELETE"));
});

Deno.test("valueFor gives each key its own value of exactly the size asked", () => {
  assert.equal(new TextDecoder().decode(valueFor("/k1", 10)), "/k1;/k1;/k");
  assert.equal(valueFor("/k1", 1).length, 1);
  assert.equal(valueFor("/a-long-key", 100_000).length, 100_000);
  assert.notDeepEqual(valueFor("/k1", 32), valueFor("/k2", 32));
});

Deno.test("the bench reads wrk's and /proc's figures", async () => {
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
  const latency = [
    "  Latency Distribution",
    "     50%  812.00us",
    "     75%    1.21ms",
    "     90%    2.50ms",
    "     99%    1.03s ",
  ].join("\n");
  assert.equal(parseWrkLatencyMs(latency, 50), 0.812);
  assert.equal(parseWrkLatencyMs(latency, 90), 2.5);
  assert.equal(parseWrkLatencyMs(latency, 99), 1030);
  assert.throws(() => parseWrkLatencyMs(wrkOutput, 99), /no 99% latency/);
  assert.equal(parsePeakRssMib("Name:\tdeno\nVmHWM:\t   65536 kB\nVmRSS:\t 1024 kB\n"), 64);
  assert.throws(() => parsePeakRssMib("Name:\tdeno\n"), /no VmHWM/);
  // The main thread of this test process has run some JavaScript; a pid that is not there has none.
  const main = await mainThreadCpuSeconds(Deno.pid);
  assert.ok(main !== null && main >= 0);
  assert.equal(await mainThreadCpuSeconds(2 ** 30), null);
});

Deno.test("the bench combines rounds and turns every ratio so that above 1 mkv.ts is better", () => {
  const run = (p50Ms: number, p999Ms: number, maxMs: number) => ({
    count: 1000,
    p50Ms,
    p90Ms: p50Ms * 2,
    p99Ms: p50Ms * 3,
    p999Ms,
    maxMs,
  });
  assert.deepEqual(combineLatency([run(10, 50, 60), run(30, 40, 400), run(20, 45, 70)]), {
    count: 3000,
    p50Ms: 20,
    p90Ms: 40,
    p99Ms: 60,
    p999Ms: 45,
    maxMs: 400,
  });
  assert.equal(combineLatency([]).count, 0);
  assert.equal(advantage(200, 100, "higher"), 2);
  assert.equal(advantage(2, 1, "lower"), 0.5);
  assert.equal(advantage(5, null, "lower"), null);
  assert.equal(advantage(0, 3, "higher"), null);
  assert.ok(tailMet(run(20, 100, 150)));
  assert.ok(!tailMet(run(20, 100, 151)));
  assert.ok(!tailMet(run(20, 121, 130)));
});

Deno.test("the value load's values differ per key and are checked byte for byte", () => {
  const block = new Uint8Array(1000).map((_, i) => i % 251);
  const value = blobValue(block, "/bench-a-1");
  assert.equal(value.length, 1000);
  assert.equal(new TextDecoder().decode(value.subarray(0, 10)), "/bench-a-1");
  assert.deepEqual(value.subarray(10), block.subarray(10));
  assert.ok(isBlobValue(value, block, "/bench-a-1"));
  assert.ok(!isBlobValue(value, block, "/bench-a-2"));
  assert.ok(!isBlobValue(value.subarray(0, 999), block, "/bench-a-1"));
  const flipped = value.slice();
  flipped[500] ^= 1;
  assert.ok(!isBlobValue(flipped, block, "/bench-a-1"));
  // A key longer than the value fills it and no more.
  assert.equal(blobValue(new Uint8Array(4), "/long-key").length, 4);
});

Deno.test("minikeyvalue's command line has Go-style flags and the server command last", () => {
  assert.deepEqual(
    peerArgs({
      port: 3100,
      volumes: ["localhost:3001", "localhost:3002"],
      replicas: 2,
      subvolumes: 10,
      dbDir: "/tmp/db",
    }),
    [
      "-port",
      "3100",
      "-volumes",
      "localhost:3001,localhost:3002",
      "-replicas",
      "2",
      "-subvolumes",
      "10",
      "-db",
      "/tmp/db",
      "server",
    ],
  );
});

Deno.test("a second index of the bench gets its flags after the bench's replicas and subvolumes", () => {
  assert.deepEqual(benchIndexArgs({ replicas: 3, subvolumes: 10, flags: ["--metrics=false"] }), [
    "--replicas",
    "3",
    "--subvolumes",
    "10",
    "--metrics=false",
  ]);
  assert.deepEqual(parseIndexFlags(" --metrics=false  -md5sum=false "), [
    "--metrics=false",
    "-md5sum=false",
  ]);
  assert.deepEqual(parseIndexFlags("--access-log stderr"), ["--access-log", "stderr"]);
  for (
    const [text, message] of [
      ["", /no flags given/],
      ["--port 3000", /the bench sets -port itself/],
      ["-replicas=2", /the bench sets -replicas itself/],
      ["--db /tmp/x", /the bench sets -db itself/],
      ["--no-such-flag", /--vs-flags: unknown flag --no-such-flag/],
      ["--metrics=maybe", /not a boolean/],
      ["server", /unexpected argument "server"/],
      ["--help", /not a flag to measure/],
    ] as const
  ) {
    assert.throws(() => parseIndexFlags(text), (err: Error) => {
      assert.ok(err instanceof FlagError, text);
      assert.match(err.message, message);
      return true;
    });
  }
});

Deno.test("the bench's command line: one second server, started on its own volumes or not", () => {
  assert.deepEqual(parseBenchArgs(["--vs-flags", "--metrics=false"]), {
    smoke: false,
    url: "",
    indexPid: 0,
    vsUrl: "",
    peer: { kind: "mkv", flags: ["--metrics=false"] },
    keys: 0,
    valueBytes: 256,
    keysListOnly: false,
  });
  assert.deepEqual(parseBenchArgs(["--smoke", "--vs-flags=--metrics=false -md5sum=false"]), {
    smoke: true,
    url: "",
    indexPid: 0,
    vsUrl: "",
    peer: { kind: "mkv", flags: ["--metrics=false", "-md5sum=false"] },
    keys: 0,
    valueBytes: 256,
    keysListOnly: false,
  });
  assert.deepEqual(parseBenchArgs(["--peer", "/opt/mkv"]), {
    smoke: false,
    url: "",
    indexPid: 0,
    vsUrl: "",
    peer: { kind: "minikeyvalue", binary: "/opt/mkv" },
    keys: 0,
    valueBytes: 256,
    keysListOnly: false,
  });
  assert.deepEqual(
    parseBenchArgs([
      "--keys",
      "1000000",
      "--peer",
      "/opt/mkv",
      "--value-bytes=1",
      "--keys-list-only",
    ]),
    {
      smoke: false,
      url: "",
      indexPid: 0,
      vsUrl: "",
      peer: { kind: "minikeyvalue", binary: "/opt/mkv" },
      keys: 1_000_000,
      valueBytes: 1,
      keysListOnly: true,
    },
  );
  assert.deepEqual(parseBenchArgs(["--url", "http://localhost:3000/", "--vs", "http://h:1/"]), {
    smoke: false,
    url: "http://localhost:3000",
    indexPid: 0,
    vsUrl: "http://h:1",
    peer: null,
    keys: 0,
    valueBytes: 256,
    keysListOnly: false,
  });
  assert.equal(parseBenchArgs(["--help"]), "help");
  for (
    const [args, message] of [
      [["--vs-flags", "--metrics=false", "--url", "http://x:1"], /--vs-flags runs on the bench's/],
      [["--peer", "/opt/mkv", "--url", "http://x:1"], /--peer runs on the bench's own volumes/],
      [["--peer", "/opt/mkv", "--vs-flags", "-md5sum=false"], /--peer and --vs-flags each add/],
      [["--vs", "http://x:1", "--vs-flags", "-md5sum=false"], /--vs and --vs-flags each add/],
      [["--vs-flags", "--port=1"], /the bench sets -port itself/],
      [["--keys", "10", "--url", "http://x:1"], /--keys starts its own volumes/],
      [["--keys", "10", "--value-bytes", "0"], /--value-bytes 0/],
      [["extra"], /unexpected argument "extra"/],
    ] as const
  ) {
    assert.throws(() => parseBenchArgs([...args]), (err: Error) => {
      assert.ok(err instanceof FlagError, args.join(" "));
      assert.match(err.message, message);
      return true;
    });
  }
});

function cost(cpuSeconds: number | null, requests: number, bytes = 0): Cost {
  return { cpuSeconds, mainThreadCpuSeconds: null, wallSeconds: 5, requests, bytes };
}

function benchFigures(url: string, over: Partial<ServerFigures> = {}): ServerFigures {
  const latency = { count: 10_000, p50Ms: 10, p90Ms: 20, p99Ms: 40, p999Ms: 60, maxMs: 100 };
  return {
    name: "mkv.ts",
    url,
    missingRps: 66_000,
    randomRps: 45_000,
    presentRps: 30_000,
    wrkRoundsRps: {
      missing: [66_000, 61_000],
      random: [45_000, 44_000],
      present: [29_000, 30_000],
    },
    thrashCyclesPerSecond: 1_800,
    thrashRunSeconds: [5.5, 5.6, 5.7],
    thrashLatency: { PUT: latency, GET: latency, DELETE: { ...latency, maxMs: 400 } },
    blobs: FULL_LOAD.blobs.map(({ sizeBytes, count }) => ({
      sizeBytes,
      count,
      putMBps: 200,
      getMBps: 400,
      roundsMBps: { put: [190, 200], get: [400, 380] },
      latency: { PUT: latency, GET: latency, DELETE: latency },
      cost: { put: cost(1, 512, 512 * 1024 * 1024), get: cost(0.1, 512, 512 * 1024 * 1024) },
    })),
    bigPutSeconds: 9.1,
    bigGetSeconds: 1.2,
    bigPeakRssMib: 60,
    bigRssBeforeMib: 50,
    cost: {
      missing: { ...cost(2, 100_000), mainThreadCpuSeconds: 1 },
      random: cost(3, 100_000),
      present: cost(3, 100_000),
      thrash: cost(30, 30_000),
      bigPut: cost(1, 1, 512 * 1024 * 1024),
    },
    notes: [],
    ...over,
  };
}

function benchResult(over: Partial<BenchResult>): BenchResult {
  return {
    date: "2026-11-27T10:00:00.000Z",
    smoke: false,
    load: FULL_LOAD,
    machine: { cpus: 2, loadAverageAtStart: "1.00 1.00 1.00", deno: "2.9.6", commit: "abc1234" },
    ceiling: { rps: 100_000, roundsRps: [100_000, 90_000], cost: cost(1, 100_000) },
    mkv: benchFigures("http://localhost:3000"),
    other: null,
    otherIsPeer: false,
    ...over,
  };
}

/** The cells of the table's row whose figure starts with `start`. */
function tableRow(markdown: string, start: string): string[] {
  const line = markdown.split("\n").find((l) => l.startsWith(`| ${start}`));
  assert.ok(line, `no row ${start}`);
  return line.slice(2, -2).split(" | ");
}

Deno.test("the bench's table compares each figure with the ceiling and the targets", () => {
  const markdown = renderMarkdown(benchResult({}));
  const rows = markdown.split("\n").filter((line) => line.startsWith("| "));
  assert.equal(
    rows[0],
    "| figure | mkv.ts | of ceiling | minikeyvalue (reference) | target | met |",
  );
  assert.deepEqual(tableRow(markdown, "fetch missing").slice(1), [
    "66,000",
    "66%",
    "61,700 (47%)",
    "≥ 60% of ceiling",
    "yes",
  ]);
  assert.deepEqual(tableRow(markdown, "fetch present keys at random of 10,000").slice(1, 3), [
    "45,000",
    "45%",
  ]);
  assert.equal(tableRow(markdown, "fetch present keys at random")[5], "yes");
  assert.deepEqual(tableRow(markdown, "fetch one present key, hot").slice(1, 3), ["30,000", "30%"]);
  assert.equal(tableRow(markdown, "fetch one present key, hot")[5], "**no**");
  assert.equal(tableRow(markdown, "thrasher")[5], "yes");
  assert.equal(tableRow(markdown, "thrash PUT latency")[1], "10.0 / 40.0 / 60.0 / 100");
  assert.equal(tableRow(markdown, "thrash PUT latency")[5], "yes");
  assert.equal(tableRow(markdown, "thrash DELETE latency")[5], "**no**");
  assert.equal(tableRow(markdown, "index CPU per request, fetch missing")[1], "20.0");
  assert.equal(tableRow(markdown, "index CPU per thrash cycle")[1], "3,000");
  assert.equal(tableRow(markdown, "1 MiB values ×256")[1], "200");
  assert.equal(tableRow(markdown, "1 MiB values: index CPU per PUT")[1], "1,953 / 1,953");
  assert.equal(tableRow(markdown, "64 KiB values: GET")[1], "400");
  assert.equal(tableRow(markdown, "PUT of one 512 MiB")[5], "**no**");
  assert.equal(tableRow(markdown, "index peak RSS")[5], "yes");
  assert.match(markdown, /- mkv\.ts: index RSS before the big PUT: 50 MiB\./);
  assert.match(
    markdown,
    /- ceiling: wrk rounds \(req\/s\) 100,000, 90,000; CPU per request 10\.0 µs/,
  );
  assert.match(
    markdown,
    /wrk rounds \(req\/s\) missing 66,000, 61,000, random 45,000, 44,000, present 29,000, 30,000; /,
  );
  assert.match(
    markdown,
    /cores busy \(CPU s \/ wall s\) of the index: fetch missing 0\.40 \(JS thread 0\.20, 10\.0 µs per request\), fetch random 0\.60, fetch present 0\.60, /,
  );
  assert.ok(!markdown.includes("fsync"));
});

Deno.test("with the peer, every row has both servers, a ratio and which way it is taken", () => {
  const peer = benchFigures("http://localhost:3010", {
    name: "minikeyvalue",
    missingRps: 33_000,
    thrashCyclesPerSecond: 1_200,
    bigPutSeconds: 18.2,
    bigPeakRssMib: 1_024,
  });
  const markdown = renderMarkdown(benchResult({ other: peer, otherIsPeer: true }));
  const rows = markdown.split("\n").filter((line) => line.startsWith("| "));
  assert.equal(
    rows[0],
    "| figure | mkv.ts | minikeyvalue | ratio | ratio is | of ceiling | target | met |",
  );
  assert.deepEqual(tableRow(markdown, "fetch missing").slice(1), [
    "66,000",
    "33,000",
    "2.00×",
    "ours / theirs",
    "66%",
    "≥ 1.0×",
    "yes",
  ]);
  assert.equal(tableRow(markdown, "fetch one present key, hot")[7], "**no**");
  assert.deepEqual(tableRow(markdown, "fetch present keys at random").slice(3, 8), [
    "1.00×",
    "ours / theirs",
    "45%",
    "≥ 1.5×",
    "**no**",
  ]);
  assert.deepEqual(tableRow(markdown, "thrasher").slice(3, 5), ["1.50×", "ours / theirs"]);
  assert.deepEqual(tableRow(markdown, "PUT of one 512 MiB").slice(1, 8), [
    "9.10 s",
    "18.20 s",
    "2.00×",
    "theirs / ours",
    "—",
    "≥ 2.5×",
    "**no**",
  ]);
  assert.deepEqual(tableRow(markdown, "index peak RSS").slice(1, 5), [
    "60",
    "1,024",
    "17.07×",
    "theirs / ours",
  ]);
  assert.equal(tableRow(markdown, "thrash PUT latency")[3], "1.00× / 1.00× / 1.00× / 1.00×");
  assert.equal(tableRow(markdown, "1 MiB values ×256")[6], "≥ 1.3×");
  assert.match(markdown, /minikeyvalue's LevelDB does not fsync/);
  assert.match(markdown, /- minikeyvalue: thrasher runs 5\.50 s, 5\.60 s, 5\.70 s/);
});

Deno.test("a second mkv.ts index is named by its flags, without the peer's targets", () => {
  const second = benchFigures("http://localhost:3010", {
    name: "mkv.ts --metrics=false",
    missingRps: 60_000,
  });
  const markdown = renderMarkdown(
    benchResult({ other: second, otherIsPeer: false, otherFlags: ["--metrics=false"] }),
  );
  assert.match(markdown, /\| figure \| mkv\.ts \| mkv\.ts --metrics=false \| ratio \|/);
  assert.deepEqual(tableRow(markdown, "fetch missing").slice(1, 8), [
    "66,000",
    "60,000",
    "1.10×",
    "ours / theirs",
    "66%",
    "≥ 60% of ceiling",
    "yes",
  ]);
  assert.match(
    markdown,
    /mkv\.ts --metrics=false is a second index of the same code on the same volumes .*started with `--metrics=false`\./,
  );
  assert.ok(!markdown.includes("fsync"));
});

Deno.test("the profile summary splits idle, inspector and busy samples per function", () => {
  const frame = (functionName: string, url = "") => ({ functionName, url, lineNumber: 0 });
  const summary = summarizeProfile({
    nodes: [
      { id: 1, callFrame: frame("(root)"), children: [2, 3, 5] },
      { id: 2, callFrame: frame("(idle)") },
      {
        id: 3,
        callFrame: frame("handle", new URL("../../lib/http/api.ts", import.meta.url).href),
        children: [4],
      },
      { id: 4, callFrame: frame("md5", new URL("../../lib/md5.ts", import.meta.url).href) },
      { id: 5, callFrame: frame("emit", "ext:deno_node/inspector_network_bridge.js") },
    ],
    startTime: 0,
    endTime: 8,
    samples: [2, 2, 2, 2, 3, 4, 4, 5],
    timeDeltas: [1, 1, 1, 1, 1, 1, 1, 1],
  });
  assert.equal(summary.idleShare, 0.5);
  assert.equal(summary.inspectorShare, 0.125);
  const handle = summary.functions.find((f) => f.name === "handle lib/http/api.ts:1")!;
  const md5 = summary.functions.find((f) => f.name === "md5 lib/md5.ts:1")!;
  assert.deepEqual([handle.selfShare, handle.totalShare], [1 / 3, 1]);
  assert.deepEqual([md5.selfShare, md5.totalShare], [2 / 3, 2 / 3]);
});
