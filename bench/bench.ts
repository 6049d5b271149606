// The bench (`deno task bench`): measures mkv.ts against its targets (bench/README.md) in one run,
// on a cluster it starts itself (3 volumes, 3 replicas, in a temp dir) or on a running server
// (--url): fetch of a missing and of a present key under `wrk -t2 -c100 -d5s`, thrasher.ts cycles/s
// with its PUT, GET and DELETE latency percentiles, values of 1 MiB and 64 KiB written and read
// back (checked) by 16 clients, the index's CPU per request and per MiB, one 512 MiB value PUT and
// read back through the 302 with the index's peak RSS, and the ceiling of the same run: a bare
// Deno.serve answering 404 under the same load. With --peer it also starts a minikeyvalue on the
// same volumes and measures both in alternating rounds, with the ratio of every figure; with
// --vs-flags it does the same with a second mkv.ts index started with those flags. Prints a
// Markdown table and, unless --smoke, writes it and a JSON copy under bench/results/. This file is
// the wiring: cli.ts reads the flags, servers.ts and peer.ts start what is measured, measure.ts
// takes every figure (with meter.ts, bigvalue.ts, blobs.ts, tools.ts), figures.ts holds the loads,
// targets and arithmetic, table.ts and report.ts render the result.
//
//   deno task bench                     # full run, about 3 minutes
//   deno task bench --peer PATH/TO/mkv   # side by side with minikeyvalue, 5 to 7 minutes
//   deno task bench --vs-flags "--metrics=false"   # what the metrics cost, 5 to 7 minutes
//   deno task bench --smoke [--peer PATH]   # a tiny run that checks the bench works (CI)
//   deno task bench --vs http://localhost:3010   # also against another running server
//   deno task bench --keys 1000000 [--peer PATH]   # a store of many keys: bench/keys.ts

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnCluster } from "../dev/cluster.ts";
import { commandLine } from "../lib/flags.ts";
import { BENCH_USAGE, parseBenchArgs } from "./cli.ts";
import { type BenchResult, FULL_LOAD, REPLICAS, SMOKE_LOAD, SUBVOLUMES } from "./figures.ts";
import { keysMain } from "./keys.ts";
import { measureAll } from "./measure.ts";
import type { Server } from "./meter.ts";
import { benchIndexArgs, startPeer } from "./peer.ts";
import { loadAverage } from "./proc.ts";
import { renderMarkdown } from "./report.ts";
import { distinctFreePorts, indexServer, startCeiling } from "./servers.ts";
import { log } from "./tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS_DIR = join(ROOT, "bench", "results");

/** A git command in the checkout; null if git cannot run. */
async function git(args: string[]): Promise<Deno.CommandOutput | null> {
  return await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
    .output().catch(() => null);
}

/** The conditions of the run: cores, load average at its start, Deno, the commit. */
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

/** Writes the run under bench/results/, named by its date and as latest.*; gives the paths. */
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

/** Runs what the command line asks for and prints its table; resolves with the exit status. */
async function main(): Promise<number> {
  const options = commandLine("bench", parseBenchArgs, BENCH_USAGE);
  if (options === null) return 0;
  if (options.keys > 0) {
    return await keysMain({
      keys: options.keys,
      valueBytes: options.valueBytes,
      peer: options.peer?.kind === "minikeyvalue" ? options.peer.binary : null,
      smoke: options.smoke,
      listOnly: options.keysListOnly,
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
