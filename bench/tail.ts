// bench/tail.ts: where the slowest writes of the thrash load spend their time (the finding is in
// bench/NOTES.md, "Write tail latency"). Starts its own cluster in a temp dir: three volumes
// (nginx, as volume.ts renders them, each with an access log of `$msec`, `$request_time` per
// request) and the index (`--replicas 3 --subvolumes 10`, its own access log, V8's GC trace, and
// MKV_TRACE_WRITES: one line per write with the end of each of its phases, one per KV commit, one
// per stall of the event loop; lib/core/writetrace.ts). Then runs thrasher.ts rounds against it and
// prints the latency of each round, what the commits, GC, event loop, fsyncs and volumes did, and
// the timeline of the slowest writes, phase by phase. This file holds the flags and the run;
// tail_procs.ts starts and watches the processes, tail_parse.ts reads the logs and traces back,
// tail_report.ts writes the report.
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
import { TRACE_ENV } from "../lib/core/writetrace.ts";
import { type Nginx, stopChild } from "../nginx.ts";
import { freePort } from "../dev/cluster.ts";
import { parseGcTrace, parseStrace, parseTrace, parseVolumeLog } from "./tail_parse.ts";
import { renderReport, type Round } from "./tail_report.ts";
import {
  childPids,
  renice,
  startVolume,
  thrash,
  waitForAnswer,
  type Watched,
} from "./tail_procs.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const REPLICAS = 3;
const SUBVOLUMES = 10;
const VOLUMES = 3;
/** How long a stopped process may take to exit before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** The trace is written every 100 ms: waited for before it is read. */
const TRACE_SETTLE_MS = 400;
/** Volume file calls (strace of its nginx) traced. */
const VOLUME_CALLS = "fsync,fdatasync,openat,rename,unlink,mkdir,rmdir";

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
