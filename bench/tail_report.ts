// bench/tail.ts's report: each round's rate and latency and how its processes were scheduled, what
// the commits, GC, event loop, fsyncs and volumes did, and the timeline of the slowest writes,
// phase by phase, with what happened beside each. Pure.

import type { TraceLine } from "../lib/core/writetrace.ts";
import { type LatencySummary, summarize } from "../thrasher.ts";
import type { GcPause, Syscall, VolumeRequest } from "./tail_parse.ts";

/** Events this close to a slow write (before its start, after its end) count as during it. */
const NEAR_MS = 5;
/** A commit, fsync or volume request at least this long is listed under a slow write. */
const LONG_MS = 20;

/** A write of the trace, with its whole time. */
type Write = Omit<Extract<TraceLine, { kind: "write" }>, "kind"> & { totalMs: number };

export interface Round {
  rate: number;
  latency: Record<string, LatencySummary>;
  startAt: number;
  endAt: number;
  /** Per process watched: ms its threads ran, and ms they were runnable but waited for a core. */
  sched: { name: string; runMs: number; waitMs: number }[];
}

function ms(value: number): string {
  return value < 10 ? value.toFixed(1) : value.toFixed(0);
}

function stats(values: number[]): string {
  if (values.length === 0) return "none";
  const s = summarize(values);
  return `${s.count} × p50 ${ms(s.p50Ms)} / p99 ${ms(s.p99Ms)} / p99.9 ${ms(s.p999Ms)} / ` +
    `max ${ms(s.maxMs)} ms`;
}

/** The phases of a write as `name +delta (at)`, in ms. Pure. */
export function renderPhases(phases: [string, number][]): string {
  let last = 0;
  return phases.map(([name, at]) => {
    const part = `${name} +${ms(at - last)}`;
    last = at;
    return part;
  }).join(", ");
}

function overlaps(startAt: number, endAt: number, from: number, to: number): boolean {
  return endAt >= from - NEAR_MS && startAt <= to + NEAR_MS;
}

/** The report's lines: the rounds, what happened beside them, and the slowest writes. */
export function renderReport(input: {
  rounds: Round[];
  trace: TraceLine[];
  volumeRequests: VolumeRequest[];
  gc: GcPause[];
  indexSyscalls: Syscall[];
  volumeSyscalls: Syscall[];
  slowest: number;
  pathOf: (key: string) => string;
}): string[] {
  const { rounds, trace, volumeRequests, gc, indexSyscalls, volumeSyscalls } = input;
  const lines: string[] = [];
  for (const [i, round] of rounds.entries()) {
    const parts = Object.entries(round.latency).map(([op, s]) =>
      `${op} ${ms(s.p50Ms)} / ${ms(s.p99Ms)} / ${ms(s.p999Ms)} / ${ms(s.maxMs)}`
    );
    lines.push(
      `round ${i + 1}: ${Math.round(round.rate)} cycles/s; p50 / p99 / p99.9 / max (ms): ` +
        parts.join("; "),
    );
    const seconds = (round.endAt - round.startAt) / 1000;
    lines.push(
      `  cores used / runnable but waiting for a core, per second of the round: ` +
        round.sched.map((p) =>
          `${p.name} ${(p.runMs / 1000 / seconds).toFixed(2)} / ${
            (p.waitMs / 1000 / seconds).toFixed(2)
          }`
        ).join("; "),
    );
  }
  const writes: Write[] = [];
  const commits: { at: number; ms: number; records: number }[] = [];
  const lags: { at: number; ms: number }[] = [];
  for (const line of trace) {
    if (line.kind === "write") {
      writes.push({ ...line, totalMs: line.phases[line.phases.length - 1][1] });
    } else if (line.kind === "commit") commits.push(line);
    else lags.push(line);
  }
  lines.push("");
  lines.push(`index, inside (from the lock to the answer), ms:`);
  for (const op of ["PUT", "DELETE"]) {
    const own = writes.filter((w) => w.op === op);
    lines.push(`  ${op}: ${stats(own.map((w) => w.totalMs))}`);
    const deltas = new Map<string, number[]>();
    for (const w of own) {
      let last = 0;
      for (const [name, at] of w.phases) {
        if (!deltas.has(name)) deltas.set(name, []);
        deltas.get(name)!.push(at - last);
        last = at;
      }
    }
    for (const [name, values] of deltas) lines.push(`    ${name}: ${stats(values)}`);
  }
  lines.push(`KV commits: ${stats(commits.map((c) => c.ms))}`);
  lines.push(`  records per commit: ${stats(commits.map((c) => c.records)).replaceAll(" ms", "")}`);
  lines.push(`event-loop stalls ≥ 10 ms: ${stats(lags.map((l) => l.ms))}`);
  lines.push(`GC pauses: ${stats(gc.map((g) => g.ms))}`);
  const majors = gc.filter((g) => !/Scavenge|Minor/.test(g.kind));
  lines.push(`  of them major (mark-compact): ${stats(majors.map((g) => g.ms))}`);
  for (const v of [...new Set(volumeRequests.map((r) => r.volume))].sort()) {
    for (const method of ["PUT", "DELETE"]) {
      const own = volumeRequests.filter((r) => r.volume === v && r.method === method);
      lines.push(
        `volume ${v + 1} ${method} (nginx $request_time, on its cached clock): ${
          stats(own.map((r) => r.ms))
        }`,
      );
    }
  }
  if (indexSyscalls.length > 0) {
    lines.push(`index fsync/fdatasync: ${stats(indexSyscalls.map((s) => s.ms))}`);
  }
  for (const name of [...new Set(volumeSyscalls.map((s) => s.name))].sort()) {
    const own = volumeSyscalls.filter((s) => s.name === name).map((s) => s.ms);
    lines.push(`volume 1 nginx ${name}: ${stats(own)}`);
  }
  const byPath = new Map<string, VolumeRequest[]>();
  for (const r of volumeRequests) {
    const key = `${r.method} ${r.path.replace(/^\/sv\d+/, "")}`;
    byPath.set(key, [...byPath.get(key) ?? [], r]);
  }
  const slow = [...writes].sort((a, b) => b.totalMs - a.totalMs).slice(0, input.slowest);
  lines.push("");
  lines.push(`the ${slow.length} slowest writes (phases: name +ms it took):`);
  for (const w of slow) {
    const endAt = w.at + w.totalMs;
    const offset = (at: number) => `+${ms(at - w.at)}`;
    lines.push(
      `${w.op} ${w.key} ${w.status} ${ms(w.totalMs)} ms at ` +
        `${new Date(w.at).toISOString().slice(11, 23)}: ${renderPhases(w.phases)}`,
    );
    const volumes = byPath.get(`${w.op} ${input.pathOf(w.key)}`) ?? [];
    const near = volumes.filter((r) => overlaps(r.endAt - r.ms, r.endAt, w.at, endAt));
    if (near.length > 0) {
      lines.push(
        "  volumes: " +
          near.map((r) => `v${r.volume + 1} ${r.status} took ${ms(r.ms)} ended ${offset(r.endAt)}`)
            .join("; "),
      );
    }
    const during = commits.filter((c) => overlaps(c.at - c.ms, c.at, w.at, endAt));
    const longest = during.reduce((a, c) => (c.ms > a.ms ? c : a), { at: 0, ms: 0, records: 0 });
    lines.push(
      `  commits during it: ${during.length}, longest ${ms(longest.ms)} ms ` +
        `(${longest.records} records, ended ${offset(longest.at)})`,
    );
    const stalls = lags.filter((l) => overlaps(l.at - l.ms, l.at, w.at, endAt));
    if (stalls.length > 0) {
      lines.push(`  event loop late: ${stalls.map((l) => `${ms(l.ms)} ms at ${offset(l.at)}`)}`);
    }
    const pauses = gc.filter((g) => g.up + g.ms >= w.up - NEAR_MS && g.up <= w.up + w.totalMs);
    const big = pauses.filter((g) => g.ms >= 1);
    if (pauses.length > 0) {
      lines.push(
        `  GC: ${pauses.length} pauses, ${ms(pauses.reduce((a, g) => a + g.ms, 0))} ms` +
          (big.length > 0 ? ` (${big.map((g) => `${g.kind} ${ms(g.ms)}`).join(", ")})` : ""),
      );
    }
    const syncs = indexSyscalls.filter((s) => overlaps(s.endAt - s.ms, s.endAt, w.at, endAt));
    if (syncs.length > 0) {
      const long = syncs.filter((s) => s.ms >= LONG_MS);
      lines.push(
        `  index fsyncs: ${syncs.length}, longest ${ms(Math.max(...syncs.map((s) => s.ms)))} ms` +
          (long.length > 0 ? ` (${long.map((s) => `${ms(s.ms)} ended ${offset(s.endAt)}`)})` : ""),
      );
    }
    const files = volumeSyscalls.filter((s) =>
      s.ms >= LONG_MS && overlaps(s.endAt - s.ms, s.endAt, w.at, endAt)
    );
    if (files.length > 0) {
      lines.push(
        `  volume 1 slow calls: ${
          files.map((s) => `${s.name} ${ms(s.ms)} ended ${offset(s.endAt)}`)
        }`,
      );
    }
  }
  return lines;
}
