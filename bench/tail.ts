// bench/tail.ts: where the slowest writes of the thrash load spend their time (the
// finding is in bench/NOTES.md, "Write tail latency"). Starts its own cluster in a temp dir: three
// volumes (nginx, as volume.ts renders them, each with an access log of `$msec`, `$request_time`
// per request) and the index (`--replicas 3 --subvolumes 10`, its own access log, V8's GC trace,
// and MKV_TRACE_WRITES: one line per write with the end of each of its phases, one per KV commit,
// one per stall of the event loop; lib/core/writetrace.ts). Then runs thrasher.ts rounds against it and
// prints the latency of each round, what the commits, GC, event loop, fsyncs and volumes did, and
// the timeline of the slowest writes, phase by phase.
//
//   deno run -A bench/tail.ts [--rounds 4] [--count 4000] [--concurrency 16] [--slowest 10]
//                             [--strace] [--nice N] [--root DIR] [--keep]
//
// `--strace` runs the index under `strace -f -T -tt -e trace=fsync,fdatasync` and attaches
// `strace -T -tt` (file calls) to the first volume's nginx worker; `--nice N` runs the cluster and
// thrasher.ts at that nice value; `--root DIR` runs the index.ts of another checkout (to compare
// two versions); `--keep` leaves the temp dir (logs and traces) in place and prints where.

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { commandLine, FlagError, type FlagSpec, parseFlags, usageFlags } from "../lib/flags.ts";
import { keyToPath } from "../lib/placement.ts";
import { TRACE_ENV, type TraceLine } from "../lib/core/writetrace.ts";
import {
  DEFAULT_WORKER_USER,
  Nginx,
  prepareVolumeDir,
  renderVolumeLocations,
  stopChild,
  workerAccount,
} from "../nginx.ts";
import { startDiskReport } from "../lib/volumes/mod.ts";
import { freePort } from "../dev/cluster.ts";
import { type LatencySummary, runThrasher, summarize } from "../thrasher.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const REPLICAS = 3;
const SUBVOLUMES = 10;
const VOLUMES = 3;
/** How long the index may take to answer on its port. */
const START_TIMEOUT_MS = 20_000;
/** How long a stopped process may take to exit before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** The trace is written every 100 ms: waited for before it is read. */
const TRACE_SETTLE_MS = 400;
/** Events this close to a slow write (before its start, after its end) count as during it. */
const NEAR_MS = 5;
/** A commit, fsync or volume request at least this long is listed under a slow write. */
const LONG_MS = 20;
/** Volume file calls (strace of its nginx) traced. */
const VOLUME_CALLS = "fsync,fdatasync,openat,rename,unlink,mkdir,rmdir";
/** The volumes' access log line: end time (s), method, path, status, time taken (s). */
const VOLUME_LOG_FORMAT = "$msec $request_method $uri $status $request_time";

const FLAGS: FlagSpec = {
  rounds: { type: "int", default: 4, help: "thrasher.ts runs, one after another", arg: "N" },
  count: { type: "int", default: 4000, help: "keys per run", arg: "N" },
  concurrency: { type: "int", default: 16, help: "requests in flight", arg: "N" },
  slowest: { type: "int", default: 10, help: "slowest writes whose timeline is printed", arg: "N" },
  strace: {
    type: "bool",
    default: false,
    help: "trace fsyncs of the index, file calls of a volume",
  },
  gc: { type: "bool", default: true, help: "V8's GC trace of the index (--trace-gc)" },
  keep: { type: "bool", default: false, help: "keep the temp dir with every log" },
  nice: {
    type: "int",
    default: 0,
    help: "run the cluster and thrasher.ts at this nice value (-10: ahead of other work; root)",
    arg: "N",
  },
  root: {
    type: "string",
    default: "",
    help: "run index.ts of this checkout (another version, to compare); default this one",
    arg: "DIR",
  },
};

const USAGE = `bench/tail.ts: timeline of the slowest writes under the thrash load

usage: deno run -A bench/tail.ts [flags]

${usageFlags(FLAGS)}
`;

interface TailOptions {
  rounds: number;
  count: number;
  concurrency: number;
  slowest: number;
  strace: boolean;
  gc: boolean;
  keep: boolean;
  root: string;
  nice: number;
}

/** A volume request, from its access log. */
interface VolumeRequest {
  volume: number;
  endAt: number;
  method: string;
  path: string;
  status: number;
  ms: number;
}

/** A GC pause, from V8's trace; `up` is the isolate's clock, as performance.now() in the index. */
interface GcPause {
  up: number;
  kind: string;
  ms: number;
}

/** A traced system call that ended at `endAt` (wall clock, ms), `ms` long. */
interface Syscall {
  endAt: number;
  name: string;
  ms: number;
}

/** A write of the trace, with its whole time. */
type Write = Omit<Extract<TraceLine, { kind: "write" }>, "kind"> & { totalMs: number };

interface Round {
  rate: number;
  latency: Record<string, LatencySummary>;
  startAt: number;
  endAt: number;
  /** Per process watched: ms its threads ran, and ms they were runnable but waited for a core. */
  sched: { name: string; runMs: number; waitMs: number }[];
}

/** A process whose threads' scheduling is sampled (`/proc/PID/task/TID/schedstat`). */
interface Watched {
  name: string;
  pid: number;
  /** Only the process's main thread (the index's JS thread). */
  mainThread?: boolean;
}

// Pure functions: parsing the logs and traces, rendering the report.

export function parseTailArgs(args: string[]): TailOptions | "help" {
  const { values, positionals, help } = parseFlags(args, FLAGS);
  if (help) return "help";
  if (positionals.length > 0) throw new FlagError(`unexpected argument ${positionals[0]}`);
  for (const name of ["rounds", "count", "concurrency"]) {
    if ((values[name] as number) < 1) throw new FlagError(`-${name} must be at least 1`);
  }
  return {
    rounds: values.rounds as number,
    count: values.count as number,
    concurrency: values.concurrency as number,
    slowest: values.slowest as number,
    strace: values.strace as boolean,
    gc: values.gc as boolean,
    keep: values.keep as boolean,
    root: values.root === "" ? ROOT : values.root as string,
    nice: values.nice as number,
  };
}

/** The lines of a trace file (lib/core/writetrace.ts). Pure. */
export function parseTrace(text: string): TraceLine[] {
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

/** A volume's access log lines (VOLUME_LOG_FORMAT). Pure. */
export function parseVolumeLog(text: string, volume: number): VolumeRequest[] {
  const out: VolumeRequest[] = [];
  for (const line of text.split("\n")) {
    const [msec, method, path, status, seconds] = line.split(" ");
    if (seconds === undefined) continue;
    out.push({
      volume,
      endAt: Number(msec) * 1000,
      method,
      path,
      status: Number(status),
      ms: Number(seconds) * 1000,
    });
  }
  return out;
}

/** GC pauses of V8's `--trace-gc` output (`[pid:0x..]   1234 ms: Scavenge ..., 1.2 / 0.0 ms`). */
export function parseGcTrace(text: string): GcPause[] {
  const out: GcPause[] = [];
  const re =
    /^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: ([A-Za-z][A-Za-z -]*?) [\d.]+ \(.*?([\d.]+) \/ [\d.]+ ms/;
  for (const line of text.split("\n")) {
    const m = line.match(re);
    if (m) out.push({ up: Number(m[1]), kind: m[2], ms: Number(m[3]) });
  }
  return out;
}

/**
 * System calls of `strace -T -tt` output (`[pid] HH:MM:SS.uuuuuu name(...) = 0 <0.000123>`),
 * the clock taken as today's local time of `day`. Unfinished/resumed pairs are joined. Pure.
 */
export function parseStrace(text: string, day: Date): Syscall[] {
  const out: Syscall[] = [];
  const re =
    /^(?:\d+\s+)?(\d\d):(\d\d):(\d\d)\.(\d{6}) (?:<\.\.\. )?(\w+)(?:\(| resumed>).*<([\d.]+)>$/;
  for (const line of text.split("\n")) {
    const m = line.match(re);
    if (!m) continue;
    const start = new Date(day.getFullYear(), day.getMonth(), day.getDate(), +m[1], +m[2], +m[3])
      .getTime() + Number(m[4]) / 1000;
    const ms = Number(m[6]) * 1000;
    // A resumed line is stamped at its end; a whole one at its start.
    const endAt = line.includes("resumed>") ? start : start + ms;
    out.push({ endAt, name: m[5], ms });
  }
  return out;
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

// I/O: the cluster, the runs, the logs.

async function waitForAnswer(url: string, child: Deno.ChildProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = false;
  child.status.then(() => exited = true);
  while (Date.now() < deadline && !exited) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      return;
    } catch {
      // Not listening yet.
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`index: no answer at ${url} within ${START_TIMEOUT_MS} ms`);
}

/** A volume as volume.ts runs it (nginx and its disk figures), with an access log of its own. */
async function startVolume(
  dir: string,
  i: number,
  port: number,
): Promise<{ nginx: Nginx; stop: () => Promise<void> }> {
  const data = join(dir, `volume${i + 1}`);
  const user = await workerAccount(DEFAULT_WORKER_USER);
  await prepareVolumeDir(data, user);
  const report = await startDiskReport(data, (message) => console.error(`tail: ${message}`));
  const log = join(dir, `volume${i + 1}.access.log`);
  const nginx = await Nginx.start({
    name: `volume :${port}`,
    port,
    user,
    httpBlocks: `  log_format mkv_tail '${VOLUME_LOG_FORMAT}';`,
    locations: `    access_log ${log} mkv_tail;\n` + renderVolumeLocations({ dir: data }),
  }).catch(async (err) => {
    await report.stop();
    throw err;
  });
  return {
    nginx,
    stop: async () => {
      await report.stop();
      await nginx.stop();
    },
  };
}

/** Ms that the threads of `pid` ran, and ms they waited runnable, since they started. */
async function schedOf(watched: Watched): Promise<{ runMs: number; waitMs: number }> {
  const pid = watched.pid;
  let runMs = 0;
  let waitMs = 0;
  const tasks = watched.mainThread
    ? [String(pid)]
    : (await Array.fromAsync(Deno.readDir(`/proc/${pid}/task`))).map((task) => task.name);
  for (const task of tasks) {
    const text = await Deno.readTextFile(`/proc/${pid}/task/${task}/schedstat`).catch(() => "");
    const [run, wait] = text.split(" ").map(Number);
    if (!Number.isFinite(wait)) continue;
    runMs += run / 1e6;
    waitMs += wait / 1e6;
  }
  return { runMs, waitMs };
}

async function schedAll(watched: Watched[]) {
  return await Promise.all(watched.map(async (w) => ({ name: w.name, ...await schedOf(w) })));
}

/** The pids of a process's children (nginx's workers of its master). */
async function childPids(pid: number): Promise<number[]> {
  const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`).catch(() => "");
  return text.trim().split(/\s+/).filter((p) => p !== "").map(Number);
}

/** Sets the nice value of every thread of every watched process (`renice` per thread). */
async function renice(watched: Watched[], nice: number): Promise<void> {
  const tids: string[] = [];
  for (const { pid } of watched) {
    for await (const task of Deno.readDir(`/proc/${pid}/task`)) tids.push(task.name);
  }
  const out = await new Deno.Command("renice", {
    args: ["-n", String(nice), "-p", ...new Set(tids)],
    stdout: "null",
  }).output();
  if (!out.success) throw new Error(`renice -n ${nice} failed (exit ${out.code})`);
}

async function thrash(url: string, options: TailOptions, watched: Watched[]): Promise<Round> {
  const before = await schedAll(watched);
  const startAt = Date.now();
  const result = await runThrasher({
    url,
    count: options.count,
    concurrency: options.concurrency,
    nice: options.nice,
  });
  const endAt = Date.now();
  const after = await schedAll(watched);
  const sched = after.map((a, i) => ({
    name: a.name,
    runMs: a.runMs - before[i].runMs,
    waitMs: a.waitMs - before[i].waitMs,
  }));
  return { rate: result.rate, latency: result.latency, startAt, endAt, sched };
}

async function main(): Promise<void> {
  const options = commandLine("tail", parseTailArgs, USAGE);
  if (options === null) return;
  const dir = await Deno.makeTempDir({ prefix: "mkv-tail-" });
  await Deno.chmod(dir, 0o755);
  const ports = Array.from({ length: VOLUMES }, () => freePort());
  const volumes: { nginx: Nginx; stop: () => Promise<void> }[] = [];
  const tracers: Deno.ChildProcess[] = [];
  let index: Deno.ChildProcess | null = null;
  let indexPid = 0;
  try {
    for (const [i, port] of ports.entries()) volumes.push(await startVolume(dir, i, port));
    const hosts = ports.map((port) => `localhost:${port}`);
    const port = freePort();
    const deno = [
      Deno.execPath(),
      "run",
      "-A",
      "--config",
      join(options.root, "deno.json"),
      ...(options.gc ? ["--v8-flags=--trace-gc"] : []),
      join(options.root, "index.ts"),
      "server",
      ...["--port", String(port), "--db", join(dir, "index"), "--volumes", hosts.join(",")],
      ...["--replicas", String(REPLICAS), "--subvolumes", String(SUBVOLUMES)],
      ...["--access-log", join(dir, "index.access.log")],
    ];
    const strace = ["strace", "-f", "-T", "-tt", "-e", "trace=fsync,fdatasync"];
    const command = options.strace ? [...strace, "-o", join(dir, "index.strace"), ...deno] : deno;
    const gcOut = await Deno.open(join(dir, "index.out"), { write: true, create: true });
    index = new Deno.Command(command[0], {
      args: command.slice(1),
      cwd: options.root,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      env: { [TRACE_ENV]: join(dir, "trace.jsonl") },
    }).spawn();
    const gcDone = index.stdout.pipeTo(gcOut.writable);
    const url = `http://127.0.0.1:${port}`;
    await waitForAnswer(`${url}/tail-probe`, index);
    if (options.strace) {
      const workers = await childPids(volumes[0].nginx.pid);
      tracers.push(
        new Deno.Command("strace", {
          args: [
            ...["-T", "-tt", "-e", `trace=${VOLUME_CALLS}`, "-o", join(dir, "volume1.strace")],
            ...workers.flatMap((pid) => ["-p", String(pid)]),
          ],
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    const load = await Deno.readTextFile("/proc/loadavg");
    console.log(
      `tail: index.ts of ${options.root}, cluster in ${dir}; ${options.rounds} × thrasher.ts --count ${options.count} ` +
        `--concurrency ${options.concurrency}, nice ${options.nice}; load average ${
          load.split(" ").slice(0, 3).join(" ")
        }`,
    );
    // Under strace the index's Deno process is strace's child; signals go to it, not to strace.
    indexPid = options.strace ? (await childPids(index.pid))[0] : index.pid;
    const frontNginx = await childPids(indexPid).then(async (pids) => {
      for (const pid of pids) {
        const comm = await Deno.readTextFile(`/proc/${pid}/comm`).catch(() => "");
        if (comm.startsWith("nginx")) return await childPids(pid);
      }
      return [];
    });
    const watched: Watched[] = [
      { name: "index (Deno)", pid: indexPid },
      { name: "its JS thread", pid: indexPid, mainThread: true },
      ...frontNginx.map((pid, i) => ({ name: `index nginx ${i + 1}`, pid })),
      ...(await Promise.all(volumes.map((v) => childPids(v.nginx.pid)))).flatMap((pids, i) =>
        pids.map((pid) => ({ name: `volume ${i + 1} nginx`, pid }))
      ),
    ];
    if (options.nice !== 0) await renice(watched, options.nice);
    const rounds: Round[] = [];
    for (let i = 0; i < options.rounds; i++) rounds.push(await thrash(url, options, watched));
    await new Promise((resolve) => setTimeout(resolve, TRACE_SETTLE_MS));
    for (const tracer of tracers) {
      await stopChild(tracer, { signal: "SIGINT", timeoutMs: STOP_TIMEOUT_MS });
    }
    tracers.length = 0;
    Deno.kill(indexPid, "SIGTERM");
    await stopChild(index, { signal: "SIGTERM", timeoutMs: STOP_TIMEOUT_MS });
    await gcDone.catch(() => {});
    index = null;
    const read = (name: string) => Deno.readTextFile(join(dir, name)).catch(() => "");
    const volumeRequests = (await Promise.all(
      ports.map(async (_, i) => parseVolumeLog(await read(`volume${i + 1}.access.log`), i)),
    )).flat();
    const today = new Date();
    const report = renderReport({
      rounds,
      trace: parseTrace(await read("trace.jsonl")),
      volumeRequests,
      gc: parseGcTrace(await read("index.out")),
      indexSyscalls: parseStrace(await read("index.strace"), today),
      volumeSyscalls: parseStrace(await read("volume1.strace"), today),
      slowest: options.slowest,
      pathOf: keyToPath,
    });
    console.log(report.join("\n"));
  } finally {
    for (const tracer of tracers) {
      await stopChild(tracer, { signal: "SIGINT", timeoutMs: STOP_TIMEOUT_MS });
    }
    if (index !== null) {
      if (indexPid !== 0) Deno.kill(indexPid, "SIGTERM");
      await stopChild(index, { signal: "SIGTERM", timeoutMs: STOP_TIMEOUT_MS });
    }
    for (const volume of volumes) await volume.stop();
    if (options.keep) console.log(`tail: logs and traces kept in ${dir}`);
    else await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
