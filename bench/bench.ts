// The bench (`deno task bench`): measures mkv.ts against its targets (bench/README.md) in one run, on a
// cluster it starts itself (3 volumes, 3 replicas, in a temp dir) or on a running server (--url):
// fetch of a missing and of a present key under `wrk -t2 -c100 -d5s`, thrasher.ts cycles/s with
// its PUT, GET and DELETE latency percentiles, values of 1 MiB and 64 KiB written and read back
// (checked) by 16 clients, the index's CPU per request and per MiB, one 512 MiB value PUT and read
// back through the 302 with the index's peak RSS, and the ceiling of the same run: a bare
// Deno.serve answering 404 under the same load. With --peer it also starts a minikeyvalue on the
// same volumes and measures both in alternating rounds, with the ratio of every figure; with
// --vs-flags it does the same with a second mkv.ts index started with those flags.
// Prints a Markdown table and, unless --smoke, writes it and a JSON copy under bench/results/.
//
//   deno task bench                     # full run, about 3 minutes
//   deno task bench --peer PATH/TO/mkv   # side by side with minikeyvalue, 5 to 7 minutes
//   deno task bench --vs-flags "--metrics=false"   # what the metrics cost, 5 to 7 minutes
//   deno task bench --smoke [--peer PATH]   # a tiny run that checks the bench works (CI)
//   deno task bench --vs http://localhost:3010   # also against another running server
//   deno task bench --keys 1000000 [--peer PATH]   # a store of many keys: bench/keys.ts

import { createHash } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, spawnCluster } from "../dev/cluster.ts";
import { commandLine, FlagError, type FlagSpec, parseFlags, usageFlags } from "../lib/flags.ts";
import {
  type LatencySummary,
  type Operation,
  OPERATIONS,
  runThrasher,
  type ThrashResult,
} from "../thrasher.ts";
import { BlobLoad, type BlobPhase, megabytesPerSecond } from "./blobs.ts";
import { keysMain } from "./keys.ts";
import { parseWrkRate, parseWrkRequests, wrkTrouble } from "./wrk.ts";
import { benchIndexArgs, parseIndexFlags, type PeerKind, startPeer } from "./peer.ts";
import {
  descendants,
  loadAverage,
  mainThreadCpuSeconds,
  readPeakRssMib,
  readRssMib,
  resetPeakRss,
  totalCpuSeconds,
} from "./proc.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS_DIR = join(ROOT, "bench", "results");
const MIB = 1024 * 1024;
/** The chunk the big value is made of; each copy is stamped with its index so none repeat. */
const BIG_CHUNK_BYTES = MIB;
/** How long the ceiling server may take to answer. */
const CEILING_START_TIMEOUT_MS = 20_000;
/** The bound of the bench's own single requests (checks, the big value's HEAD and DELETE). */
const CHECK_TIMEOUT_MS = 30_000;
/** Replicas and subvolumes of the bench's index, and of the peer on the same volumes. */
const REPLICAS = 3;
const SUBVOLUMES = 10;

/** How hard each figure is pushed: the full run, or a quick check of the bench. */
export interface Load {
  wrkThreads: number;
  wrkConnections: number;
  wrkSeconds: number;
  /** Rounds of (ceiling, missing, present); each figure is the best of its rounds. */
  wrkRounds: number;
  thrashCount: number;
  thrashConcurrency: number;
  /** thrasher.ts runs per server; cycles/s is over their mean wall time. */
  thrashRuns: number;
  /** The value loads: `count` values of `sizeBytes`, `blobConcurrency` clients. */
  blobs: { sizeBytes: number; count: number }[];
  blobConcurrency: number;
  /** Rounds of each value load per server; MB/s is the best round. */
  blobRounds: number;
  bigBytes: number;
}

export const FULL_LOAD: Load = {
  wrkThreads: 2,
  wrkConnections: 100,
  wrkSeconds: 5,
  wrkRounds: 2,
  thrashCount: 10_000,
  thrashConcurrency: 16,
  thrashRuns: 3,
  blobs: [{ sizeBytes: MIB, count: 256 }, { sizeBytes: 64 * 1024, count: 2048 }],
  blobConcurrency: 16,
  blobRounds: 2,
  bigBytes: 512 * MIB,
};

export const SMOKE_LOAD: Load = {
  wrkThreads: 1,
  wrkConnections: 4,
  wrkSeconds: 1,
  wrkRounds: 1,
  thrashCount: 300,
  thrashConcurrency: 16,
  thrashRuns: 1,
  blobs: [{ sizeBytes: MIB, count: 16 }, { sizeBytes: 64 * 1024, count: 64 }],
  blobConcurrency: 16,
  blobRounds: 1,
  bigBytes: 8 * MIB,
};

/** minikeyvalue's reference figures, measured once on the same kind of machine with wrk on it too. */
export const REFERENCE = {
  ceilingRps: 130_000,
  missingRps: 61_700,
  presentRps: 16_100,
  thrashCyclesPerSecond: 1_146,
  bigPutSeconds: 8.6,
  bigPeakRssMib: 1_072,
  bigGetSeconds: 1.8,
};

/** The targets of a run without a peer (bench/README.md, "Targets"). */
export const TARGETS = {
  missingShareOfCeiling: 0.6,
  presentShareOfCeiling: 0.4,
  thrashCyclesPerSecond: 1_700,
  bigPutSeconds: REFERENCE.bigPutSeconds,
  bigPeakRssMib: 64,
};

/** The targets against the peer in the same run: mkv.ts's advantage (ratio, >1 = mkv.ts better). */
export const PEER_TARGETS = {
  missing: 1.0,
  present: 2.5,
  thrash: 1.0,
  mibPut: 1.3,
  mibGet: 1.0,
  bigPut: 2.5,
};

/** The write tail: PUT and DELETE max and p99.9 under thrash (bench/README.md, "Targets"). */
export const TAIL_TARGETS = { maxMs: 150, p999OverP99: 2 };

export const BENCH_FLAGS: FlagSpec = {
  url: { type: "string", default: "", help: "a running server to measure (default: start one)" },
  peer: {
    type: "string",
    default: "",
    help: "a minikeyvalue binary to start on the same volumes and measure side by side",
    arg: "PATH",
  },
  vs: { type: "string", default: "", help: "a second server to measure the same way", arg: "URL" },
  "vs-flags": {
    type: "string",
    default: "",
    help: "start a second mkv.ts index with these flags on the same volumes, measure both",
    arg: "FLAGS",
  },
  smoke: { type: "bool", default: false, help: "a tiny quick run that writes no results" },
  keys: {
    type: "int",
    default: 0,
    help: "measure a store of N keys instead (bench/keys.ts): rebuild, listing, random GETs",
    arg: "N",
  },
  "value-bytes": {
    type: "int",
    default: 256,
    help: "with --keys: the size of each value written onto the volumes",
    arg: "BYTES",
  },
  "index-pid": {
    type: "int",
    default: 0,
    help: "pid of the index's Deno process, for its RSS and CPU with --url",
    arg: "PID",
  },
};

export const BENCH_USAGE = `bench.ts: measures mkv.ts against its targets, and against minikeyvalue.

  deno task bench [flags]

Needs wrk (bash .ci/install bench installs it).

Flags:
${usageFlags(BENCH_FLAGS)}`;

/**
 * What a server's processes did over some loads, summed: CPU time (user + system) of all its
 * processes (the index's Deno process and its nginx for mkv.ts, the one process of the peer), of
 * the index's main (JavaScript) thread, the wall time, the requests and bytes. `cpuSeconds` is null
 * when the server's processes are unknown (--vs, --url without --index-pid).
 */
export interface Cost {
  cpuSeconds: number | null;
  mainThreadCpuSeconds: number | null;
  wallSeconds: number;
  requests: number;
  bytes: number;
}

/** One value load of one server, over its rounds. */
export interface BlobFigures {
  sizeBytes: number;
  count: number;
  /** The best round's rate, MB/s (10^6 bytes). */
  putMBps: number;
  getMBps: number;
  roundsMBps: { put: number[]; get: number[] };
  latency: Record<Operation, LatencySummary>;
  cost: { put: Cost; get: Cost };
}

/** What one server gave. Rates in requests or cycles per second. */
export interface ServerFigures {
  name: string;
  url: string;
  missingRps: number;
  presentRps: number;
  /** Every wrk round's rate, in order; the figures above are the best of each. */
  wrkRoundsRps: { missing: number[]; present: number[] };
  thrashCyclesPerSecond: number;
  /** Wall seconds of each thrasher.ts run of `thrashCount` cycles, process start included. */
  thrashRunSeconds: number[];
  /** Percentiles: the median of the runs' own; max: the largest of all runs. */
  thrashLatency: Record<Operation, LatencySummary>;
  blobs: BlobFigures[];
  bigPutSeconds: number;
  bigGetSeconds: number;
  bigPeakRssMib: number | null;
  bigRssBeforeMib: number | null;
  cost: { missing: Cost; present: Cost; thrash: Cost; bigPut: Cost };
  /** What the runs reported besides the figures (socket errors, unexpected statuses). */
  notes: string[];
}

export interface BenchResult {
  date: string;
  smoke: boolean;
  load: Load;
  machine: { cpus: number; loadAverageAtStart: string; deno: string; commit: string };
  ceiling: { rps: number; roundsRps: number[]; cost: Cost };
  mkv: ServerFigures;
  /**
   * The second server, measured in the same rounds: the peer (--peer), a second mkv.ts index
   * (--vs-flags), or another running server (--vs).
   */
  other: ServerFigures | null;
  /** Whether `other` is minikeyvalue started by --peer, so that its targets apply. */
  otherIsPeer: boolean;
  /** The flags of the second mkv.ts index (--vs-flags); absent for any other second server. */
  otherFlags?: string[];
}

/** What the command line asks for. */
export interface BenchOptions {
  smoke: boolean;
  /** A running server to measure, without a trailing slash; "" to start a cluster. */
  url: string;
  indexPid: number;
  /** A second running server (--vs); "". */
  vsUrl: string;
  /** A second server the bench starts on its own volumes (--peer, --vs-flags), or null. */
  peer: PeerKind | null;
  /** With --keys: the bench at many keys instead (bench/keys.ts); 0 otherwise. */
  keys: number;
  valueBytes: number;
}

/** Which way a figure is better; the ratio is turned so that above 1× mkv.ts is better. */
type Better = "higher" | "lower";

/** One row of the table. */
interface Row {
  figure: string;
  mkv: string;
  other: string;
  ratio: string;
  better: Better | null;
  ofCeiling: string;
  reference: string;
  target: string;
  met: string;
}

// ---- pure: parsing tool output, combining rounds, rendering the table ----

/** A cost with nothing in it yet; CPU times stay null for what the bench cannot read. */
export function emptyCost(known: { cpu: boolean; mainThread: boolean }): Cost {
  return {
    cpuSeconds: known.cpu ? 0 : null,
    mainThreadCpuSeconds: known.mainThread ? 0 : null,
    wallSeconds: 0,
    requests: 0,
    bytes: 0,
  };
}

/** `a` plus `b`; a CPU time stays null if either does not know it. */
export function addCost(a: Cost, b: Cost): Cost {
  const sum = (x: number | null, y: number | null) => x === null || y === null ? null : x + y;
  return {
    cpuSeconds: sum(a.cpuSeconds, b.cpuSeconds),
    mainThreadCpuSeconds: sum(a.mainThreadCpuSeconds, b.mainThreadCpuSeconds),
    wallSeconds: a.wallSeconds + b.wallSeconds,
    requests: a.requests + b.requests,
    bytes: a.bytes + b.bytes,
  };
}

/** CPU µs per request of a cost, or null. */
export function cpuPerRequestUs(cost: Cost): number | null {
  return cost.cpuSeconds === null || cost.requests === 0
    ? null
    : cost.cpuSeconds / cost.requests * 1e6;
}

/** CPU µs per MiB moved of a cost, or null. */
export function cpuPerMibUs(cost: Cost): number | null {
  return cost.cpuSeconds === null || cost.bytes === 0
    ? null
    : cost.cpuSeconds / (cost.bytes / MIB) * 1e6;
}

/** Cores the server's processes kept busy on average (1.0 = one core), or null. */
export function coresBusy(cost: Cost): number | null {
  return cost.cpuSeconds === null || cost.wallSeconds === 0
    ? null
    : cost.cpuSeconds / cost.wallSeconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The latency of several runs: each percentile the median of the runs', max the largest. */
export function combineLatency(runs: LatencySummary[]): LatencySummary {
  if (runs.length === 0) return { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 };
  return {
    count: runs.reduce((sum, run) => sum + run.count, 0),
    p50Ms: median(runs.map((run) => run.p50Ms)),
    p90Ms: median(runs.map((run) => run.p90Ms)),
    p99Ms: median(runs.map((run) => run.p99Ms)),
    p999Ms: median(runs.map((run) => run.p999Ms)),
    maxMs: Math.max(...runs.map((run) => run.maxMs)),
  };
}

/** mkv.ts's advantage: ours / other for rates, other / ours for costs; above 1, mkv.ts is better. */
export function advantage(
  mkv: number | null,
  other: number | null | undefined,
  better: Better,
): number | null {
  if (mkv === null || other === null || other === undefined || mkv === 0 || other === 0) {
    return null;
  }
  return better === "higher" ? mkv / other : other / mkv;
}

function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

function yesNo(ok: boolean): string {
  return ok ? "yes" : "**no**";
}

function seconds(s: number): string {
  return `${s.toFixed(2)} s`;
}

function ms(value: number): string {
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

function microseconds(us: number): string {
  return us < 100 ? us.toFixed(1) : thousands(us);
}

function times(ratio: number | null): string {
  return ratio === null ? "—" : `${ratio.toFixed(2)}×`;
}

function orDash(value: number | null, format: (n: number) => string): string {
  return value === null ? "—" : format(value);
}

function sizeName(sizeBytes: number): string {
  return sizeBytes >= MIB && sizeBytes % MIB === 0
    ? `${sizeBytes / MIB} MiB`
    : `${Math.round(sizeBytes / 1024)} KiB`;
}

/** p50 / p99 / p99.9 / max, the parts of a latency row. */
function latencyParts(summary: LatencySummary): number[] {
  return [summary.p50Ms, summary.p99Ms, summary.p999Ms, summary.maxMs];
}

/** Whether a write latency meets TAIL_TARGETS. */
export function tailMet(summary: LatencySummary): boolean {
  return summary.maxMs <= TAIL_TARGETS.maxMs &&
    summary.p999Ms <= TAIL_TARGETS.p999OverP99 * summary.p99Ms;
}

/** The rows of the table, one per figure. */
export function tableRows(result: BenchResult): Row[] {
  const { mkv, other, ceiling, load } = result;
  const peer = other !== null && result.otherIsPeer;
  const ref = REFERENCE;
  const rows: Row[] = [];
  const blank = {
    other: "—",
    ratio: "—",
    better: null,
    ofCeiling: "—",
    reference: "—",
    target: "—",
    met: "—",
  };
  /** A row of one number per server, with its ratio. */
  const single = (
    figure: string,
    pick: (figures: ServerFigures) => number | null,
    format: (n: number) => string,
    better: Better,
    extra: Partial<Row> = {},
  ) => {
    const ours = pick(mkv);
    const theirs = other === null ? null : pick(other);
    rows.push({
      ...blank,
      figure,
      mkv: orDash(ours, format),
      other: orDash(theirs, format),
      ratio: times(advantage(ours, theirs, better)),
      better,
      ...extra,
    });
  };
  /** A row of several numbers per server (`a / b / c`), with a ratio for each. */
  const parts = (
    figure: string,
    pick: (figures: ServerFigures) => (number | null)[] | null,
    format: (n: number) => string,
    better: Better,
    extra: Partial<Row> = {},
  ) => {
    const ours = pick(mkv);
    const theirs = other === null ? null : pick(other);
    const join = (values: (number | null)[] | null) =>
      values === null ? "—" : values.map((v) => orDash(v, format)).join(" / ");
    rows.push({
      ...blank,
      figure,
      mkv: join(ours),
      other: join(theirs),
      ratio: ours === null || theirs === null
        ? "—"
        : ours.map((v, i) => times(advantage(v, theirs[i], better))).join(" / "),
      better,
      ...extra,
    });
  };
  const ratioTarget = (
    pick: (figures: ServerFigures) => number | null,
    better: Better,
    target: number,
  ): Partial<Row> => {
    if (!peer) return {};
    const ratio = advantage(pick(mkv), pick(other!), better);
    return {
      target: `≥ ${target.toFixed(1)}×`,
      met: ratio === null ? "—" : yesNo(ratio >= target),
    };
  };
  const wrk = `wrk -t${load.wrkThreads} -c${load.wrkConnections} -d${load.wrkSeconds}s, ` +
    `best of ${load.wrkRounds}`;

  rows.push({
    ...blank,
    figure: `ceiling: bare Deno.serve 404, ${wrk} (req/s)`,
    mkv: thousands(ceiling.rps),
    ofCeiling: "100%",
    reference: `${thousands(ref.ceilingRps)} (bare Deno)`,
  });
  single(`fetch missing key, ${wrk} (req/s)`, (f) => f.missingRps, thousands, "higher", {
    ofCeiling: percent(mkv.missingRps / ceiling.rps),
    reference: `${thousands(ref.missingRps)} (${percent(ref.missingRps / ref.ceilingRps)})`,
    ...(peer ? ratioTarget((f) => f.missingRps, "higher", PEER_TARGETS.missing) : {
      target: `≥ ${percent(TARGETS.missingShareOfCeiling)} of ceiling`,
      met: yesNo(mkv.missingRps >= TARGETS.missingShareOfCeiling * ceiling.rps),
    }),
  });
  single(`fetch present key (302), ${wrk} (req/s)`, (f) => f.presentRps, thousands, "higher", {
    ofCeiling: percent(mkv.presentRps / ceiling.rps),
    reference: `${thousands(ref.presentRps)} (${percent(ref.presentRps / ref.ceilingRps)})`,
    ...(peer ? ratioTarget((f) => f.presentRps, "higher", PEER_TARGETS.present) : {
      target: `≥ ${percent(TARGETS.presentShareOfCeiling)} of ceiling`,
      met: yesNo(mkv.presentRps >= TARGETS.presentShareOfCeiling * ceiling.rps),
    }),
  });
  const us = (n: number) => n.toFixed(1);
  single(
    "index CPU per request, fetch missing (µs)",
    (f) => cpuPerRequestUs(f.cost.missing),
    us,
    "lower",
  );
  single(
    "index CPU per request, fetch present (µs)",
    (f) => cpuPerRequestUs(f.cost.present),
    us,
    "lower",
  );

  const thrash = `thrasher: ${thousands(load.thrashCount)} × (PUT, GET, DELETE), ` +
    `${load.thrashConcurrency} workers, ${load.thrashRuns} runs`;
  single(`${thrash} (cycles/s)`, (f) => f.thrashCyclesPerSecond, thousands, "higher", {
    reference: thousands(ref.thrashCyclesPerSecond),
    ...(peer ? ratioTarget((f) => f.thrashCyclesPerSecond, "higher", PEER_TARGETS.thrash) : {
      target: `≥ ${thousands(TARGETS.thrashCyclesPerSecond)}`,
      met: yesNo(mkv.thrashCyclesPerSecond >= TARGETS.thrashCyclesPerSecond),
    }),
  });
  for (const op of OPERATIONS) {
    const write = op !== "GET";
    parts(
      `thrash ${op} latency p50 / p99 / p99.9 / max (ms)`,
      (f) => latencyParts(f.thrashLatency[op]),
      ms,
      "lower",
      write
        ? {
          target: `max ≤ ${TAIL_TARGETS.maxMs}, p99.9 ≤ ${TAIL_TARGETS.p999OverP99}× p99`,
          met: yesNo(tailMet(mkv.thrashLatency[op])),
        }
        : {},
    );
  }
  single(
    "index CPU per thrash cycle (µs)",
    (f) => {
      const perRequest = cpuPerRequestUs(f.cost.thrash);
      return perRequest === null ? null : perRequest * 3;
    },
    (n) => thousands(n),
    "lower",
  );

  const clients = `${load.blobConcurrency} clients`;
  load.blobs.forEach((blob, i) => {
    const size = sizeName(blob.sizeBytes);
    const mb = (n: number) => n.toFixed(0);
    const isMib = blob.sizeBytes === MIB;
    single(
      `${size} values ×${blob.count}, ${clients}: PUT (MB/s, best of ${load.blobRounds})`,
      (f) => f.blobs[i].putMBps,
      mb,
      "higher",
      isMib ? ratioTarget((f) => f.blobs[i].putMBps, "higher", PEER_TARGETS.mibPut) : {},
    );
    single(
      `${size} values: GET through the 302, every byte checked (MB/s)`,
      (f) => f.blobs[i].getMBps,
      mb,
      "higher",
      isMib ? ratioTarget((f) => f.blobs[i].getMBps, "higher", PEER_TARGETS.mibGet) : {},
    );
    parts(
      `${size} values: PUT latency p50 / p99 / p99.9 / max (ms)`,
      (f) => latencyParts(f.blobs[i].latency.PUT),
      ms,
      "lower",
    );
    for (const op of ["put", "get"] as const) {
      parts(
        `${size} values: index CPU per ${op.toUpperCase()}, per request / per MiB (µs)`,
        (f) => [cpuPerRequestUs(f.blobs[i].cost[op]), cpuPerMibUs(f.blobs[i].cost[op])],
        (n) => thousands(n),
        "lower",
      );
    }
  });

  const big = `${load.bigBytes / MIB} MiB`;
  single(
    `PUT of one ${big} value, ${REPLICAS} replicas (s)`,
    (f) => f.bigPutSeconds,
    seconds,
    "lower",
    {
      reference: seconds(ref.bigPutSeconds),
      ...(peer ? ratioTarget((f) => f.bigPutSeconds, "lower", PEER_TARGETS.bigPut) : {
        target: `< ${seconds(TARGETS.bigPutSeconds)}`,
        met: yesNo(mkv.bigPutSeconds < TARGETS.bigPutSeconds),
      }),
    },
  );
  single(
    "index peak RSS during that PUT (VmHWM, MiB)",
    (f) => f.bigPeakRssMib,
    (n) => thousands(n),
    "lower",
    {
      reference: thousands(ref.bigPeakRssMib),
      target: `≤ ${TARGETS.bigPeakRssMib}`,
      met: mkv.bigPeakRssMib === null ? "—" : yesNo(mkv.bigPeakRssMib <= TARGETS.bigPeakRssMib),
    },
  );
  single(
    "index CPU per MiB of that PUT (µs)",
    (f) => cpuPerMibUs(f.cost.bigPut),
    (n) => thousands(n),
    "lower",
  );
  single(`GET of it through the 302, streamed (s)`, (f) => f.bigGetSeconds, seconds, "lower", {
    reference: seconds(ref.bigGetSeconds),
  });
  return rows;
}

/** The cores a server kept busy per load, for the notes: `missing 1.10 (JS thread 0.85), ...`. */
function coresNote(figures: ServerFigures): string | null {
  const loads: [string, Cost][] = [
    ["fetch missing", figures.cost.missing],
    ["fetch present", figures.cost.present],
    ["thrash", figures.cost.thrash],
    ...figures.blobs.map((b): [string, Cost] => [`${sizeName(b.sizeBytes)} PUT`, b.cost.put]),
    ["big PUT", figures.cost.bigPut],
  ];
  const parts = loads.flatMap(([name, cost]) => {
    const cores = coresBusy(cost);
    if (cores === null) return [];
    // The JS thread's time per request (per MiB for the value loads) bounds one index process
    // however many cores it gets.
    const per = cost.bytes > 0
      ? { unit: "MiB", count: cost.bytes / MIB }
      : { unit: "request", count: cost.requests };
    const main = cost.mainThreadCpuSeconds === null || cost.wallSeconds === 0 || per.count === 0
      ? ""
      : ` (JS thread ${(cost.mainThreadCpuSeconds / cost.wallSeconds).toFixed(2)}, ` +
        `${microseconds(cost.mainThreadCpuSeconds / per.count * 1e6)} µs per ${per.unit})`;
    return [`${name} ${cores.toFixed(2)}${main}`];
  });
  return parts.length === 0 ? null : parts.join(", ");
}

/** The Markdown report: a heading with the conditions of the run, the table, the notes. */
export function renderMarkdown(result: BenchResult): string {
  const other = result.other;
  const head = other === null
    ? ["figure", "mkv.ts", "of ceiling", "minikeyvalue (reference)", "target", "met"]
    : ["figure", "mkv.ts", other.name, "ratio", "ratio is", "of ceiling", "target", "met"];
  const lines = [
    `# mkv.ts bench, ${result.date}${result.smoke ? " (smoke run: figures mean nothing)" : ""}`,
    "",
    `Server: ${result.mkv.url}${other === null ? "" : `; ${other.name}: ${other.url}`}. ` +
    `Machine: ${result.machine.cpus} cores, load average at start ` +
    `${result.machine.loadAverageAtStart}; Deno ${result.machine.deno}; commit ` +
    `${result.machine.commit}. The load generators share the cores with the servers.` +
    (other === null ? "" : " The servers were measured in alternating rounds."),
    "",
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
  ];
  for (const row of tableRows(result)) {
    const cells = other === null
      ? [row.figure, row.mkv, row.ofCeiling, row.reference, row.target, row.met]
      : [
        row.figure,
        row.mkv,
        row.other,
        row.ratio,
        row.better === null ? "—" : row.better === "higher" ? "ours / theirs" : "theirs / ours",
        row.ofCeiling,
        row.target,
        row.met,
      ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  lines.push("");
  if (other !== null) {
    lines.push(
      "Every ratio is turned so that above 1× mkv.ts is better: rates (req/s, cycles/s, MB/s) are " +
        "ours / theirs, costs (seconds, latency, CPU, memory) theirs / ours.",
    );
  }
  if (other !== null && result.otherFlags !== undefined) {
    lines.push(
      `${other.name} is a second index of the same code on the same volumes (its own --db and ` +
        `port, the same --replicas and --subvolumes), started with \`${
          result.otherFlags.join(" ")
        }\`.`,
    );
  }
  if (result.otherIsPeer) {
    lines.push(
      "Durability differs: minikeyvalue's LevelDB does not fsync, while mkv.ts answers 201/204 " +
        "only after the KV commit (fsync) that records the write.",
    );
  }
  if (other !== null) lines.push("");
  for (const figures of [result.mkv, other]) {
    if (figures === null) continue;
    const runs = figures.thrashRunSeconds.map(seconds).join(", ");
    lines.push(
      `- ${figures.name}: thrasher runs ${runs} per ${thousands(result.load.thrashCount)} cycles ` +
        `(process start included); wrk rounds (req/s) missing ` +
        `${figures.wrkRoundsRps.missing.map(thousands).join(", ")}, present ` +
        `${figures.wrkRoundsRps.present.map(thousands).join(", ")}` +
        figures.blobs.map((b) =>
          `; ${sizeName(b.sizeBytes)} rounds (MB/s) PUT ${
            b.roundsMBps.put.map((n) => n.toFixed(0)).join(", ")
          }, ` +
          `GET ${b.roundsMBps.get.map((n) => n.toFixed(0)).join(", ")}`
        ).join("") + ".",
    );
    const cores = coresNote(figures);
    if (cores !== null) {
      lines.push(`- ${figures.name}: cores busy (CPU s / wall s) of the index: ${cores}.`);
    }
    if (figures.bigRssBeforeMib !== null) {
      lines.push(
        `- ${figures.name}: index RSS before the big PUT: ${
          figures.bigRssBeforeMib.toFixed(0)
        } MiB.`,
      );
    }
    for (const note of figures.notes) lines.push(`- ${figures.name}: ${note}`);
  }
  const ceilingUs = cpuPerRequestUs(result.ceiling.cost);
  lines.push(
    `- ceiling: wrk rounds (req/s) ${result.ceiling.roundsRps.map(thousands).join(", ")}` +
      (ceilingUs === null ? "." : `; CPU per request ${ceilingUs.toFixed(1)} µs.`),
  );
  return lines.join("\n") + "\n";
}

/**
 * The bench's command line: its flags, checked together. --peer and --vs-flags start their second
 * server on the bench's own volumes, so neither goes with --url; each of them and --vs add a second
 * server, so only one of the three may be given.
 */
export function parseBenchArgs(args: string[]): BenchOptions | "help" {
  const parsed = parseFlags(args, BENCH_FLAGS);
  if (parsed.positionals.length > 0) {
    throw new FlagError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  }
  if (parsed.help) return "help";
  const values = parsed.values;
  const seconds = (["peer", "vs", "vs-flags"] as const).filter((name) => values[name] !== "");
  if (seconds.length > 1) {
    throw new FlagError(
      `${seconds.map((name) => `--${name}`).join(" and ")} each add a second server: give one`,
    );
  }
  for (const name of ["peer", "vs-flags"] as const) {
    if (values[name] !== "" && values.url !== "") {
      throw new FlagError(`--${name} runs on the bench's own volumes: it cannot go with --url`);
    }
  }
  const keys = values.keys as number;
  if (keys < 0) throw new FlagError(`--keys ${keys}: a number of keys, 1 or more`);
  if (keys > 0 && (values.url !== "" || values.vs !== "" || values["vs-flags"] !== "")) {
    throw new FlagError("--keys starts its own volumes and compares with --peer only");
  }
  const valueBytes = values["value-bytes"] as number;
  if (valueBytes < 1) throw new FlagError(`--value-bytes ${valueBytes}: 1 or more`);
  const peer: PeerKind | null = values.peer !== ""
    ? { kind: "minikeyvalue", binary: String(values.peer) }
    : values["vs-flags"] !== ""
    ? { kind: "mkv", flags: parseIndexFlags(String(values["vs-flags"])) }
    : null;
  return {
    smoke: values.smoke as boolean,
    url: String(values.url).replace(/\/+$/, ""),
    indexPid: values["index-pid"] as number,
    vsUrl: String(values.vs).replace(/\/+$/, ""),
    peer,
    keys,
    valueBytes,
  };
}

// ---- I/O: the tools, the servers ----

async function run(command: string, args: string[], installHint: string): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, stdin: "null" }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(`${command} is not installed: ${installHint}`);
    }
    throw err;
  }
  const decoder = new TextDecoder();
  const text = decoder.decode(output.stdout) + decoder.decode(output.stderr);
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")} failed (status ${output.code}):\n${text}`);
  }
  return text;
}

const INSTALL_HINT = "run `bash .ci/install bench` (Debian package wrk)";

function log(line: string): void {
  console.error(`bench: ${line}`);
}

/** A server under measure: where it answers, which processes are its own, where its keys go. */
interface Server {
  name: string;
  url: string;
  /** The process whose RSS and main thread are read; 0 if unknown. */
  pid: number;
  /** Every process whose CPU time is the server's (the index and its nginx; the peer). */
  pids: number[];
  /** Whether the main thread is worth its own figure: the JavaScript thread of a Deno index. */
  jsThread: boolean;
  /** Starts every key the bench writes, so that no server reads keys another one wrote. */
  prefix: string;
}

/** Starts counting a server's CPU and wall time; the returned function stops and reports. */
async function meter(server: Server): Promise<(requests: number, bytes: number) => Promise<Cost>> {
  const known = server.pids.length > 0;
  const mainKnown = server.jsThread && server.pid > 0;
  const cpuBefore = known ? await totalCpuSeconds(server.pids) : 0;
  const mainBefore = mainKnown ? await mainThreadCpuSeconds(server.pid) : null;
  const started = performance.now();
  return async (requests, bytes) => {
    const wallSeconds = (performance.now() - started) / 1000;
    const mainAfter = mainKnown ? await mainThreadCpuSeconds(server.pid) : null;
    return {
      cpuSeconds: known ? (await totalCpuSeconds(server.pids)) - cpuBefore : null,
      mainThreadCpuSeconds: mainAfter === null || mainBefore === null
        ? null
        : mainAfter - mainBefore,
      wallSeconds,
      requests,
      bytes,
    };
  };
}

function emptyCostOf(server: Server): Cost {
  return emptyCost({ cpu: server.pids.length > 0, mainThread: server.jsThread && server.pid > 0 });
}

/** Requests per second of `wrk` on one URL, and what it said was wrong. */
async function wrk(
  url: string,
  load: Load,
): Promise<{ rps: number; requests: number; trouble: string[] }> {
  const output = await run("wrk", [
    `-t${load.wrkThreads}`,
    `-c${load.wrkConnections}`,
    `-d${load.wrkSeconds}s`,
    url,
  ], INSTALL_HINT);
  return {
    rps: parseWrkRate(output),
    requests: parseWrkRequests(output),
    trouble: wrkTrouble(output),
  };
}

async function expectStatus(url: string, init: RequestInit, expected: number): Promise<Response> {
  const response = await fetch(url, {
    redirect: "manual",
    signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    ...init,
  });
  await response.body?.cancel();
  if (response.status !== expected) {
    throw new Error(`${init.method ?? "GET"} ${url}: status ${response.status}, not ${expected}`);
  }
  return response;
}

/** One thrasher.ts run as its own process: wall seconds (start included), its report, the cost. */
async function thrashOnce(
  server: Server,
  load: Load,
): Promise<{ seconds: number; result: ThrashResult; cost: Cost }> {
  // thrasher.ts draws a fresh key prefix per run, so no server sees another's keys.
  const stop = await meter(server);
  const started = performance.now();
  const result = await runThrasher({
    url: server.url,
    count: load.thrashCount,
    concurrency: load.thrashConcurrency,
  });
  const seconds = (performance.now() - started) / 1000;
  const cost = await stop(3 * load.thrashCount, 0);
  return { seconds, result, cost };
}

/** The chunks of the big value; the same bytes every time it is generated. */
function* bigChunks(sizeBytes: number, seed: Uint8Array): Generator<Uint8Array<ArrayBuffer>> {
  for (let offset = 0, i = 0; offset < sizeBytes; offset += seed.length, i++) {
    const chunk = seed.slice(0, Math.min(seed.length, sizeBytes - offset));
    new DataView(chunk.buffer).setUint32(0, i);
    yield chunk;
  }
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  // getRandomValues fills at most 64 KiB at a time.
  for (let i = 0; i < length; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
  return bytes;
}

/**
 * PUTs a value streamed from `chunks` with a Content-Length, as `curl -T FILE` does (fetch would
 * send it chunked); node:http writes each chunk as the socket drains, so nothing is buffered.
 */
function putStreamed(
  url: string,
  sizeBytes: number,
  chunks: Iterator<Uint8Array>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method: "PUT",
      headers: { "content-length": String(sizeBytes) },
    }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (text: string) => body += text);
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      response.on("error", reject);
    });
    request.on("error", reject);
    const write = () => {
      for (let next = chunks.next(); !next.done; next = chunks.next()) {
        if (!request.write(next.value)) {
          request.once("drain", write);
          return;
        }
      }
      request.end();
    };
    write();
  });
}

/** The big value: its seed chunk and md5, made once and PUT to every server. */
interface BigValue {
  sizeBytes: number;
  seed: Uint8Array;
  md5: string;
}

function makeBigValue(sizeBytes: number): BigValue {
  const seed = randomBytes(Math.min(BIG_CHUNK_BYTES, sizeBytes));
  const hash = createHash("md5");
  for (const chunk of bigChunks(sizeBytes, seed)) hash.update(chunk);
  return { sizeBytes, seed, md5: hash.digest("hex") };
}

/**
 * PUTs the big value (streamed from memory, with its length), reads it back through the 302
 * (streamed, counted), deletes it. Its md5 is checked against the server's Content-Md5; the GET
 * checks the size. Fills the big-value figures of `figures`.
 */
async function bigValue(server: Server, big: BigValue, figures: ServerFigures): Promise<void> {
  const key = `${server.prefix}big`;
  const url = `${server.url}${key}`;
  if (server.pid > 0) {
    figures.bigRssBeforeMib = await readRssMib(server.pid);
    if (!resetPeakRss(server.pid)) {
      figures.notes.push("could not reset the index's VmHWM: its peak RSS is since its start");
    }
  }
  const stop = await meter(server);
  const put = await putStreamed(url, big.sizeBytes, bigChunks(big.sizeBytes, big.seed));
  figures.cost.bigPut = await stop(1, big.sizeBytes);
  if (put.status !== 201) throw new Error(`PUT ${url}: status ${put.status}: ${put.body.trim()}`);
  figures.bigPutSeconds = figures.cost.bigPut.wallSeconds;
  figures.bigPeakRssMib = server.pid > 0 ? await readPeakRssMib(server.pid) : null;

  const head = await expectStatus(url, { method: "HEAD" }, 302);
  const serverMd5 = head.headers.get("content-md5");
  if (serverMd5 !== null && serverMd5 !== big.md5) {
    throw new Error(`PUT ${url}: the server computed md5 ${serverMd5}, the bench sent ${big.md5}`);
  }
  if (serverMd5 === null) figures.notes.push("no Content-Md5 from the server: the md5 unchecked");

  const getStarted = performance.now();
  const response = await fetch(url);
  if (response.status !== 200 || response.body === null) {
    await response.body?.cancel();
    throw new Error(`GET ${url} through the redirect: status ${response.status}`);
  }
  let receivedBytes = 0;
  for await (const chunk of response.body) receivedBytes += chunk.length;
  figures.bigGetSeconds = (performance.now() - getStarted) / 1000;
  if (receivedBytes !== big.sizeBytes) {
    throw new Error(`GET ${url}: ${receivedBytes} bytes, expected ${big.sizeBytes}`);
  }
  await expectStatus(url, { method: "DELETE" }, 204);
}

/** One round of a value load against a server: PUT, GET (checked), DELETE, each metered. */
async function blobRound(
  server: Server,
  options: { sizeBytes: number; count: number; concurrency: number; round: number },
): Promise<{ put: BlobPhase; get: BlobPhase; remove: BlobPhase; putCost: Cost; getCost: Cost }> {
  using load = new BlobLoad({
    url: server.url,
    prefix: `${server.prefix}blob-${options.sizeBytes}-${options.round}-`,
    count: options.count,
    sizeBytes: options.sizeBytes,
    concurrency: options.concurrency,
  });
  let stop = await meter(server);
  const put = await load.put();
  const putCost = await stop(put.requests, put.bytes);
  stop = await meter(server);
  const get = await load.get();
  const getCost = await stop(get.requests, get.bytes);
  const remove = await load.remove();
  return { put, get, remove, putCost, getCost };
}

function newFigures(server: Server, load: Load): ServerFigures {
  const cost = () => emptyCostOf(server);
  return {
    name: server.name,
    url: server.url,
    missingRps: 0,
    presentRps: 0,
    wrkRoundsRps: { missing: [], present: [] },
    thrashCyclesPerSecond: 0,
    thrashRunSeconds: [],
    thrashLatency: {} as Record<Operation, LatencySummary>,
    blobs: load.blobs.map(({ sizeBytes, count }) => ({
      sizeBytes,
      count,
      putMBps: 0,
      getMBps: 0,
      roundsMBps: { put: [], get: [] },
      latency: {} as Record<Operation, LatencySummary>,
      cost: { put: cost(), get: cost() },
    })),
    bigPutSeconds: 0,
    bigGetSeconds: 0,
    bigPeakRssMib: null,
    bigRssBeforeMib: null,
    cost: { missing: cost(), present: cost(), thrash: cost(), bigPut: cost() },
    notes: [],
  };
}

/**
 * Every figure of every server, in alternating rounds (the servers in turn within each round),
 * so that other work on the machine meets them all alike. The ceiling is measured under wrk in
 * the same rounds, just before the servers' own wrk runs.
 */
async function measureAll(
  servers: Server[],
  ceiling: Server,
  load: Load,
): Promise<{ figures: ServerFigures[]; ceiling: BenchResult["ceiling"] }> {
  const figures = servers.map((server) => newFigures(server, load));

  log(`${load.bigBytes / MIB} MiB value: md5 of it`);
  const big = makeBigValue(load.bigBytes);
  for (const [i, server] of servers.entries()) {
    log(`${server.name}: ${load.bigBytes / MIB} MiB value`);
    await bigValue(server, big, figures[i]);
  }

  // wrk goes to the address itself, so that `localhost` resolving to ::1 first changes nothing.
  const wrkBase = (url: string) => url.replace("//localhost:", "//127.0.0.1:");
  for (const server of servers) {
    await expectStatus(`${server.url}${server.prefix}missing`, {}, 404);
    await expectStatus(
      `${server.url}${server.prefix}present`,
      { method: "PUT", body: "present" },
      201,
    );
    await expectStatus(`${server.url}${server.prefix}present`, {}, 302);
  }
  const ceilingFigures = { rps: 0, roundsRps: [] as number[], cost: emptyCostOf(ceiling) };
  /** Runs wrk on `target`, adding the server's cost to `into`. */
  const measured = async (server: Server, target: string) => {
    const stop = await meter(server);
    const result = await wrk(target, load);
    return { ...result, cost: await stop(result.requests, 0) };
  };
  // Other work on the machine only ever slows a run down, so each figure is its best round.
  for (let round = 1; round <= load.wrkRounds; round++) {
    log(`ceiling (bare Deno.serve), round ${round}`);
    const c = await measured(ceiling, ceiling.url);
    ceilingFigures.roundsRps.push(c.rps);
    ceilingFigures.cost = addCost(ceilingFigures.cost, c.cost);
    for (const [i, server] of servers.entries()) {
      const f = figures[i];
      log(`${server.name}: fetch missing, round ${round}`);
      const missing = await measured(server, `${wrkBase(server.url)}${server.prefix}missing`);
      f.wrkRoundsRps.missing.push(missing.rps);
      f.cost.missing = addCost(f.cost.missing, missing.cost);
      for (const line of missing.trouble) {
        if (!line.startsWith("Non-2xx")) f.notes.push(`fetch missing: ${line}`);
      }
      log(`${server.name}: fetch present, round ${round}`);
      const present = await measured(server, `${wrkBase(server.url)}${server.prefix}present`);
      f.wrkRoundsRps.present.push(present.rps);
      f.cost.present = addCost(f.cost.present, present.cost);
      for (const line of present.trouble) f.notes.push(`fetch present: ${line}`);
    }
  }
  ceilingFigures.rps = Math.max(...ceilingFigures.roundsRps);
  for (const [i, server] of servers.entries()) {
    figures[i].missingRps = Math.max(...figures[i].wrkRoundsRps.missing);
    figures[i].presentRps = Math.max(...figures[i].wrkRoundsRps.present);
    await expectStatus(`${server.url}${server.prefix}missing`, {}, 404);
    await expectStatus(`${server.url}${server.prefix}present`, {}, 302);
    await expectStatus(`${server.url}${server.prefix}present`, { method: "DELETE" }, 204);
  }

  const thrashRuns: Record<Operation, LatencySummary>[][] = servers.map(() => []);
  for (let round = 1; round <= load.thrashRuns; round++) {
    for (const [i, server] of servers.entries()) {
      log(`${server.name}: thrasher, run ${round}`);
      const run = await thrashOnce(server, load);
      figures[i].thrashRunSeconds.push(run.seconds);
      figures[i].cost.thrash = addCost(figures[i].cost.thrash, run.cost);
      thrashRuns[i].push(run.result.latency as Record<Operation, LatencySummary>);
    }
  }
  for (const [i, f] of figures.entries()) {
    const meanSeconds = f.thrashRunSeconds.reduce((a, b) => a + b, 0) / f.thrashRunSeconds.length;
    f.thrashCyclesPerSecond = load.thrashCount / meanSeconds;
    for (const op of OPERATIONS) {
      f.thrashLatency[op] = combineLatency(thrashRuns[i].map((run) => run[op]));
    }
  }

  for (const [b, blob] of load.blobs.entries()) {
    const latency = servers.map(
      () => ({ PUT: [], GET: [], DELETE: [] } as Record<Operation, LatencySummary[]>),
    );
    for (let round = 1; round <= load.blobRounds; round++) {
      for (const [i, server] of servers.entries()) {
        log(`${server.name}: ${blob.count} values of ${sizeName(blob.sizeBytes)}, round ${round}`);
        const r = await blobRound(server, { ...blob, concurrency: load.blobConcurrency, round });
        const f = figures[i].blobs[b];
        f.roundsMBps.put.push(megabytesPerSecond(r.put));
        f.roundsMBps.get.push(megabytesPerSecond(r.get));
        f.cost.put = addCost(f.cost.put, r.putCost);
        f.cost.get = addCost(f.cost.get, r.getCost);
        latency[i].PUT.push(r.put.latency);
        latency[i].GET.push(r.get.latency);
        latency[i].DELETE.push(r.remove.latency);
      }
    }
    for (const [i, f] of figures.entries()) {
      const blobFigures = f.blobs[b];
      blobFigures.putMBps = Math.max(...blobFigures.roundsMBps.put);
      blobFigures.getMBps = Math.max(...blobFigures.roundsMBps.get);
      for (const op of OPERATIONS) blobFigures.latency[op] = combineLatency(latency[i][op]);
    }
  }
  return { figures, ceiling: ceilingFigures };
}

/** The bare Deno.serve of bench/ceiling.ts, answering on `port`; stopped on dispose. */
async function startCeiling(): Promise<{ port: number; pid: number } & AsyncDisposable> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "bench", "ceiling.ts"), String(port)],
    stdin: "null",
    stdout: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    await status;
  };
  try {
    const deadline = Date.now() + CEILING_START_TIMEOUT_MS;
    while (true) {
      if (exited) throw new Error(`ceiling :${port} exited while starting`);
      try {
        await expectStatus(`http://127.0.0.1:${port}/`, {}, 404);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`ceiling :${port} did not answer: ${err}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, pid: child.pid, [Symbol.asyncDispose]: stop };
}

function distinctFreePorts(count: number): number[] {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(freePort());
  return [...ports];
}

async function git(args: string[]): Promise<Deno.CommandOutput | null> {
  return await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
    .output().catch(() => null);
}

async function machine(): Promise<BenchResult["machine"]> {
  const head = await git(["rev-parse", "--short", "HEAD"]);
  // Read-only: diff-index neither refreshes nor writes git's index.
  const changed = await git(["diff-index", "--quiet", "HEAD", "--"]);
  const commit = (head?.success ? new TextDecoder().decode(head.stdout).trim() : "?") +
    (changed?.code === 1 ? " with uncommitted changes" : "");
  return {
    cpus: navigator.hardwareConcurrency,
    loadAverageAtStart: await loadAverage(),
    deno: Deno.version.deno,
    commit,
  };
}

async function writeResults(result: BenchResult, markdown: string): Promise<string[]> {
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const stamp = result.date.replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
  const json = JSON.stringify(result, null, 2) + "\n";
  const written: string[] = [];
  for (const [name, text] of [[`${stamp}.md`, markdown], [`${stamp}.json`, json]]) {
    await Deno.writeTextFile(join(RESULTS_DIR, name), text);
    written.push(join("bench", "results", name));
  }
  await Deno.writeTextFile(join(RESULTS_DIR, "latest.md"), markdown);
  await Deno.writeTextFile(join(RESULTS_DIR, "latest.json"), json);
  return written;
}

/** Our index: the index's Deno process and the nginx it runs in front of it. */
async function indexServer(url: string, pid: number, runId: string): Promise<Server> {
  return {
    name: "mkv.ts",
    url,
    pid,
    pids: pid > 0 ? [pid, ...await descendants(pid)] : [],
    jsThread: true,
    prefix: `/bench-mkv-${runId}-`,
  };
}

async function main(): Promise<number> {
  const options = commandLine("bench", parseBenchArgs, BENCH_USAGE);
  if (options === null) return 0;
  if (options.keys > 0) {
    return await keysMain({
      keys: options.keys,
      valueBytes: options.valueBytes,
      peer: options.peer?.kind === "minikeyvalue" ? options.peer.binary : null,
      smoke: options.smoke,
    });
  }
  const { smoke, url, vsUrl, peer: peerKind } = options;
  const load = smoke ? SMOKE_LOAD : FULL_LOAD;
  const date = new Date().toISOString();
  const conditions = await machine();
  const runId = crypto.randomUUID().slice(0, 8);

  await using ceilingProcess = await startCeiling();
  const ceiling: Server = {
    name: "ceiling",
    url: `http://127.0.0.1:${ceilingProcess.port}/missing`,
    pid: ceilingProcess.pid,
    pids: [ceilingProcess.pid],
    jsThread: true,
    prefix: "/",
  };
  const vs: Server | null = vsUrl === "" ? null : {
    name: `vs ${vsUrl}`,
    url: vsUrl,
    pid: 0,
    pids: [],
    jsThread: false,
    prefix: `/bench-vs-${runId}-`,
  };
  const measure = async (servers: Server[]) => {
    const measuredAll = await measureAll(servers, ceiling, load);
    const [mkv, other = null] = measuredAll.figures;
    return { mkv, other, ceiling: measuredAll.ceiling };
  };
  let measured: Awaited<ReturnType<typeof measure>>;
  if (url !== "") {
    const ours = await indexServer(url, options.indexPid, runId);
    measured = await measure(vs === null ? [ours] : [ours, vs]);
  } else {
    const dir = await Deno.makeTempDir({ prefix: "mkv-bench-" });
    // nginx's workers (user nobody) write the volumes' files under it.
    await Deno.chmod(dir, 0o777);
    try {
      const [port, ...volumePorts] = distinctFreePorts(4);
      log(`starting a cluster: index :${port}, volumes ${volumePorts.join(", ")}, in ${dir}`);
      await using cluster = await spawnCluster({
        dir,
        port,
        volumePorts,
        indexArgs: benchIndexArgs({ replicas: REPLICAS, subvolumes: SUBVOLUMES, flags: [] }),
      });
      const ours = await indexServer(cluster.url, cluster.index.pid, runId);
      if (peerKind === null) {
        measured = await measure(vs === null ? [ours] : [ours, vs]);
      } else {
        await using peer = await startPeer({
          peer: peerKind,
          volumes: volumePorts.map((p) => `localhost:${p}`),
          replicas: REPLICAS,
          subvolumes: SUBVOLUMES,
          dbDir: join(dir, `${peerKind.kind}-db`),
          logFile: join(dir, `${peerKind.kind}.log`),
        });
        log(`${peer.name} on :${peer.port} (its log: ${peer.logNote})`);
        measured = await measure([ours, {
          name: peer.name,
          url: peer.url,
          pid: peer.pid,
          pids: peer.pids,
          jsThread: peer.jsThread,
          prefix: `/bench-peer-${runId}-`,
        }]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  const result: BenchResult = {
    date,
    smoke,
    load,
    machine: conditions,
    ceiling: measured.ceiling,
    mkv: measured.mkv,
    other: measured.other,
    otherIsPeer: peerKind?.kind === "minikeyvalue",
    ...(peerKind?.kind === "mkv" && { otherFlags: peerKind.flags }),
  };
  const markdown = renderMarkdown(result);
  console.log(markdown);
  if (!smoke) {
    const written = await writeResults(result, markdown);
    log(`wrote ${written.join(", ")} and bench/results/latest.{md,json}`);
  }
  return 0;
}

if (import.meta.main) {
  let status = 1;
  try {
    status = await main();
  } catch (err) {
    console.error(`bench: failed: ${err instanceof Error ? err.message : err}`);
  }
  Deno.exit(status);
}
