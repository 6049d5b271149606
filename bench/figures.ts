// What the bench measures and how it judges it: the loads of a full and of a smoke run, the targets
// and minikeyvalue's reference figures, the shape of a run's result (per server, per load), and the
// arithmetic over it: costs added up and divided, rounds combined, the ratio of two servers. All
// pure.

import type { LatencySummary, Operation } from "../thrasher.ts";

export const MIB = 1024 * 1024;
/** Replicas and subvolumes of the bench's index, and of the peer on the same volumes. */
export const REPLICAS = 3;
export const SUBVOLUMES = 10;

/** How hard each figure is pushed: the full run, or a quick check of the bench. */
export interface Load {
  wrkThreads: number;
  wrkConnections: number;
  wrkSeconds: number;
  /** Rounds of (ceiling, missing, random, present); each figure is the best of its rounds. */
  wrkRounds: number;
  /** Keys written before the rounds, read at random by wrk (the `random` figure). */
  randomKeys: number;
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
  randomKeys: 10_000,
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
  randomKeys: 200,
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
  random: 1.5,
  present: 2.5,
  thrash: 1.0,
  mibPut: 1.3,
  mibGet: 1.0,
  bigPut: 2.5,
};

/** The write tail: PUT and DELETE max and p99.9 under thrash (bench/README.md, "Targets"). */
export const TAIL_TARGETS = { maxMs: 150, p999OverP99: 2 };

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
  /** GETs of `randomKeys` keys written beforehand, at random: most not read in seconds. */
  randomRps: number;
  /** GETs of one key, hot: the index may remember where it is. */
  presentRps: number;
  /** Every wrk round's rate, in order; the figures above are the best of each. */
  wrkRoundsRps: { missing: number[]; random: number[]; present: number[] };
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
  cost: { missing: Cost; random: Cost; present: Cost; thrash: Cost; bigPut: Cost };
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

/** Which way a figure is better; the ratio is turned so that above 1× mkv.ts is better. */
export type Better = "higher" | "lower";

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

/** Whether a write latency meets TAIL_TARGETS. */
export function tailMet(summary: LatencySummary): boolean {
  return summary.maxMs <= TAIL_TARGETS.maxMs &&
    summary.p999Ms <= TAIL_TARGETS.p999OverP99 * summary.p99Ms;
}
