// The processes of bench/tail.ts's cluster: its volumes (nginx as volume.ts runs it, with an access
// log of its own), waiting for the index to answer, the scheduling of every watched thread
// (/proc/PID/task/TID/schedstat), their nice value, and one thrasher.ts round measured with them.

import { join } from "node:path";
import {
  DEFAULT_WORKER_USER,
  Nginx,
  prepareVolumeDir,
  renderVolumeLocations,
  startDiskReport,
  workerAccount,
} from "../nginx.ts";
import { runThrasher } from "../thrasher.ts";
import { VOLUME_LOG_FORMAT } from "./tail_parse.ts";
import type { Round } from "./tail_report.ts";

/** How long the index may take to answer on its port. */
const START_TIMEOUT_MS = 20_000;

/** A process whose threads' scheduling is sampled (`/proc/PID/task/TID/schedstat`). */
export interface Watched {
  name: string;
  pid: number;
  /** Only the process's main thread (the index's JS thread). */
  mainThread?: boolean;
}

export async function waitForAnswer(url: string, child: Deno.ChildProcess): Promise<void> {
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
export async function startVolume(
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
export async function childPids(pid: number): Promise<number[]> {
  const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`).catch(() => "");
  return text.trim().split(/\s+/).filter((p) => p !== "").map(Number);
}

/** Sets the nice value of every thread of every watched process (`renice` per thread). */
export async function renice(watched: Watched[], nice: number): Promise<void> {
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

export async function thrash(
  url: string,
  options: { count: number; concurrency: number; nice: number },
  watched: Watched[],
): Promise<Round> {
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
