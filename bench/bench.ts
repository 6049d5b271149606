// The bench (`deno task bench`): measures mkv.ts against its targets (bench/README.md) in one run, on a
// cluster it starts itself (3 volumes, 3 replicas, in a temp dir) or on a running server (--url):
// fetch of a missing and of a present key under `wrk -t2 -c100 -d5s`, thrasher.ts cycles/s
// repeated by hyperfine, one 512 MiB value PUT and read back through the 302 with the index's
// peak RSS, and the ceiling of the same run: a bare Deno.serve answering 404 under the same load.
// Prints a Markdown table and, unless --smoke, writes it and a JSON copy under bench/results/.
//
//   deno task bench                     # full run, about a minute
//   deno task bench --smoke             # a tiny run that checks the bench works (CI)
//   deno task bench --vs http://localhost:3010   # also against another server, with ratios

import { createHash } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, spawnCluster } from "../dev/cluster.ts";
import { FlagError, type FlagSpec, parseFlags, usageFlags } from "../lib/flags.ts";
import {
  descendants,
  loadAverage,
  readPeakRssMib,
  readRssMib,
  resetPeakRss,
  totalCpuSeconds,
} from "./proc.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const THRASHER = join(ROOT, "thrasher.ts");
const RESULTS_DIR = join(ROOT, "bench", "results");
const MIB = 1024 * 1024;
/** The chunk the big value is made of; each copy is stamped with its index so none repeat. */
const BIG_CHUNK_BYTES = MIB;
/** How long the ceiling server may take to answer. */
const CEILING_START_TIMEOUT_MS = 20_000;

/** How hard each figure is pushed: the full run, or a quick check of the bench. */
export interface Load {
  wrkThreads: number;
  wrkConnections: number;
  wrkSeconds: number;
  /** Rounds of (ceiling, missing, present); each figure is the best of its rounds. */
  wrkRounds: number;
  thrashCount: number;
  thrashConcurrency: number;
  thrashRuns: number;
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
  bigBytes: 8 * MIB,
};

/** minikeyvalue's figures from /work/shared/FIGURES.md (same kind of machine, wrk on it too). */
export const REFERENCE = {
  ceilingRps: 130_000,
  missingRps: 61_700,
  presentRps: 16_100,
  thrashCyclesPerSecond: 1_146,
  bigPutSeconds: 8.6,
  bigPeakRssMib: 1_072,
  bigGetSeconds: 1.8,
};

/** The targets (bench/README.md). */
export const TARGETS = {
  missingShareOfCeiling: 0.6,
  presentShareOfCeiling: 0.4,
  thrashCyclesPerSecond: 1_700,
  bigPutSeconds: REFERENCE.bigPutSeconds,
  bigPeakRssMib: 64,
};

export const BENCH_FLAGS: FlagSpec = {
  url: { type: "string", default: "", help: "a running server to measure (default: start one)" },
  vs: { type: "string", default: "", help: "a second server to measure the same way", arg: "URL" },
  smoke: { type: "bool", default: false, help: "a tiny quick run that writes no results" },
  "index-pid": {
    type: "int",
    default: 0,
    help: "pid of the index's Deno process, for its RSS with --url",
    arg: "PID",
  },
};

export const BENCH_USAGE = `bench.ts: measures mkv.ts against its targets.

  deno task bench [flags]

Needs wrk and hyperfine (bash .ci/install bench installs them).

Flags:
${usageFlags(BENCH_FLAGS)}`;

/** What one server gave. Rates in requests or cycles per second; null when not measured. */
export interface ServerFigures {
  url: string;
  missingRps: number;
  presentRps: number;
  /** Every wrk round's rate, in order; the figures above are the best of each. */
  wrkRoundsRps: { missing: number[]; present: number[]; ceiling: number[] };
  /**
   * CPU time (user + system, µs) the server's processes used per request over all wrk rounds:
   * the index and its nginx for mkv.ts, the one process for the ceiling. It depends less than
   * the rates on what else runs on the machine. Null when the processes are unknown.
   */
  cpuPerRequestUs: { missing: number | null; present: number | null; ceiling: number | null };
  thrashCyclesPerSecond: number;
  /** Mean and spread of the hyperfine runs, in seconds per run of `thrashCount` cycles. */
  thrashRunSeconds: { mean: number; min: number; max: number };
  bigPutSeconds: number;
  bigGetSeconds: number;
  bigPeakRssMib: number | null;
  /** What the wrk runs reported besides the rate (socket errors, unexpected statuses). */
  notes: string[];
}

export interface BenchResult {
  date: string;
  smoke: boolean;
  load: Load;
  machine: { cpus: number; loadAverageAtStart: string; deno: string; commit: string };
  ceilingRps: number;
  mkv: ServerFigures;
  vs: ServerFigures | null;
}

/** One row of the table. */
interface Row {
  figure: string;
  mkv: string;
  ofCeiling: string;
  reference: string;
  target: string;
  met: string;
  vs?: string;
  ratio?: string;
}

// ---- pure: parsing tool output, rendering the table ----

/** The `Requests/sec:` of wrk's report. Throws if it has none. */
export function parseWrkRate(output: string): number {
  const match = output.match(/^Requests\/sec:\s+([\d.]+)/m);
  if (!match) throw new Error(`wrk printed no Requests/sec:\n${output}`);
  return Number(match[1]);
}

/** How many requests wrk's run made (`N requests in 5.00s`). Throws if it does not say. */
export function parseWrkRequests(output: string): number {
  const match = output.match(/^\s*(\d+) requests in /m);
  if (!match) throw new Error(`wrk printed no request count:\n${output}`);
  return Number(match[1]);
}

/** The lines of wrk's report that tell of trouble (socket errors, statuses other than 2xx/3xx). */
export function wrkTrouble(output: string): string[] {
  return output.split("\n").map((line) => line.trim()).filter((line) =>
    /^(Socket errors|Non-2xx or 3xx responses)/.test(line)
  );
}

/** Mean, min and max seconds of the first command of hyperfine's `--export-json`. */
export function parseHyperfine(json: string): { mean: number; min: number; max: number } {
  const result = JSON.parse(json).results?.[0];
  if (typeof result?.mean !== "number") throw new Error("hyperfine's JSON has no results");
  return { mean: result.mean, min: result.min, max: result.max };
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

/** The rows of the table, one per figure. */
export function tableRows(result: BenchResult): Row[] {
  const { mkv, vs, ceilingRps } = result;
  const ref = REFERENCE;
  const wrk = `wrk -t${result.load.wrkThreads} -c${result.load.wrkConnections} ` +
    `-d${result.load.wrkSeconds}s, best of ${result.load.wrkRounds}`;
  const ratio = (a: number, b: number | null | undefined) =>
    b === null || b === undefined || b === 0 ? "—" : `${(a / b).toFixed(2)}×`;
  const rows: Row[] = [
    {
      figure: `ceiling: bare Deno.serve 404, ${wrk} (req/s)`,
      mkv: thousands(ceilingRps),
      ofCeiling: "100%",
      reference: `${thousands(ref.ceilingRps)} (bare Deno)`,
      target: "—",
      met: "—",
    },
    {
      figure: `fetch missing key, ${wrk} (req/s)`,
      mkv: thousands(mkv.missingRps),
      ofCeiling: percent(mkv.missingRps / ceilingRps),
      reference: `${thousands(ref.missingRps)} (${percent(ref.missingRps / ref.ceilingRps)})`,
      target: `≥ ${percent(TARGETS.missingShareOfCeiling)} of ceiling`,
      met: yesNo(mkv.missingRps >= TARGETS.missingShareOfCeiling * ceilingRps),
      vs: vs ? thousands(vs.missingRps) : undefined,
      ratio: ratio(mkv.missingRps, vs?.missingRps),
    },
    {
      figure: `fetch present key (302), ${wrk} (req/s)`,
      mkv: thousands(mkv.presentRps),
      ofCeiling: percent(mkv.presentRps / ceilingRps),
      reference: `${thousands(ref.presentRps)} (${percent(ref.presentRps / ref.ceilingRps)})`,
      target: `≥ ${percent(TARGETS.presentShareOfCeiling)} of ceiling`,
      met: yesNo(mkv.presentRps >= TARGETS.presentShareOfCeiling * ceilingRps),
      vs: vs ? thousands(vs.presentRps) : undefined,
      ratio: ratio(mkv.presentRps, vs?.presentRps),
    },
    {
      figure: `thrasher: ${thousands(result.load.thrashCount)} × (PUT, GET, DELETE), ` +
        `${result.load.thrashConcurrency} workers, hyperfine ×${result.load.thrashRuns} ` +
        `(cycles/s)`,
      mkv: thousands(mkv.thrashCyclesPerSecond),
      ofCeiling: "—",
      reference: thousands(ref.thrashCyclesPerSecond),
      target: `≥ ${thousands(TARGETS.thrashCyclesPerSecond)}`,
      met: yesNo(mkv.thrashCyclesPerSecond >= TARGETS.thrashCyclesPerSecond),
      vs: vs ? thousands(vs.thrashCyclesPerSecond) : undefined,
      ratio: ratio(mkv.thrashCyclesPerSecond, vs?.thrashCyclesPerSecond),
    },
    {
      figure: `PUT of one ${result.load.bigBytes / MIB} MiB value, 3 replicas`,
      mkv: seconds(mkv.bigPutSeconds),
      ofCeiling: "—",
      reference: seconds(ref.bigPutSeconds),
      target: `< ${seconds(TARGETS.bigPutSeconds)}`,
      met: yesNo(mkv.bigPutSeconds < TARGETS.bigPutSeconds),
      vs: vs ? seconds(vs.bigPutSeconds) : undefined,
      ratio: ratio(vs?.bigPutSeconds ?? 0, mkv.bigPutSeconds),
    },
    {
      figure: "index peak RSS during that PUT (VmHWM, MiB)",
      mkv: mkv.bigPeakRssMib === null ? "not measured" : mkv.bigPeakRssMib.toFixed(0),
      ofCeiling: "—",
      reference: thousands(ref.bigPeakRssMib),
      target: `≤ ${TARGETS.bigPeakRssMib}`,
      met: mkv.bigPeakRssMib === null ? "—" : yesNo(mkv.bigPeakRssMib <= TARGETS.bigPeakRssMib),
      vs: vs ? (vs.bigPeakRssMib === null ? "—" : vs.bigPeakRssMib.toFixed(0)) : undefined,
      ratio: "—",
    },
    {
      figure: "GET of it through the 302, streamed (s)",
      mkv: seconds(mkv.bigGetSeconds),
      ofCeiling: "—",
      reference: seconds(ref.bigGetSeconds),
      target: "—",
      met: "—",
      vs: vs ? seconds(vs.bigGetSeconds) : undefined,
      ratio: ratio(vs?.bigGetSeconds ?? 0, mkv.bigGetSeconds),
    },
  ];
  if (vs) rows[0].vs = rows[0].ratio = "—";
  return rows;
}

/** The Markdown report: a heading with the conditions of the run, the table, the notes. */
export function renderMarkdown(result: BenchResult): string {
  const withVs = result.vs !== null;
  const head = ["figure", "mkv.ts", "of ceiling", "minikeyvalue (FIGURES.md)", "target", "met"];
  // Above 1× mkv.ts is faster: rates are divided mkv.ts by vs, durations vs by mkv.ts.
  if (withVs) head.push(`vs ${result.vs!.url}`, "speed mkv.ts / vs");
  const lines = [
    `# mkv.ts bench, ${result.date}${result.smoke ? " (smoke run: figures mean nothing)" : ""}`,
    "",
    `Server: ${result.mkv.url}. Machine: ${result.machine.cpus} cores, load average at start ` +
    `${result.machine.loadAverageAtStart}; Deno ${result.machine.deno}; commit ` +
    `${result.machine.commit}. The load generators share the cores with the servers.`,
    "",
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
  ];
  for (const row of tableRows(result)) {
    const cells = [row.figure, row.mkv, row.ofCeiling, row.reference, row.target, row.met];
    if (withVs) cells.push(row.vs ?? "—", row.ratio ?? "—");
    lines.push(`| ${cells.join(" | ")} |`);
  }
  const t = result.mkv.thrashRunSeconds;
  lines.push(
    "",
    `Thrasher runs: mean ${seconds(t.mean)}, min ${seconds(t.min)}, max ${seconds(t.max)} ` +
      `per ${thousands(result.load.thrashCount)} cycles (process start included).`,
  );
  const rounds = result.mkv.wrkRoundsRps;
  lines.push(
    `wrk rounds (req/s): ceiling ${rounds.ceiling.map(thousands).join(", ")}; missing ` +
      `${rounds.missing.map(thousands).join(", ")}; present ` +
      `${rounds.present.map(thousands).join(", ")}.`,
    "",
  );
  const cpu = result.mkv.cpuPerRequestUs;
  if (cpu.missing !== null && cpu.present !== null && cpu.ceiling !== null) {
    const times = (us: number) => `${us.toFixed(1)} µs (${(us / cpu.ceiling!).toFixed(1)}×)`;
    lines.push(
      `Server CPU per request (user + system, all rounds; less sensitive to other load than req/s): ceiling ` +
        `${cpu.ceiling.toFixed(1)} µs; missing ${times(cpu.missing)}; present ` +
        `${times(cpu.present)} — the index's Deno process and its nginx together.`,
      "",
    );
  }
  for (const figures of [result.mkv, result.vs]) {
    for (const note of figures?.notes ?? []) lines.push(`- ${figures!.url}: ${note}`);
  }
  return lines.join("\n") + "\n";
}

// ---- I/O: the tools, the servers ----

async function run(
  command: string,
  args: string[],
  installHint: string,
): Promise<string> {
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

const INSTALL_HINT = "run `bash .ci/install bench` (Debian packages wrk and hyperfine)";

function log(line: string): void {
  console.error(`bench: ${line}`);
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
  const response = await fetch(url, { redirect: "manual", ...init });
  await response.body?.cancel();
  if (response.status !== expected) {
    throw new Error(`${init.method ?? "GET"} ${url}: status ${response.status}, not ${expected}`);
  }
  return response;
}

/** Cycles per second of thrasher.ts, run `thrashRuns` times by hyperfine. */
async function thrashRate(
  url: string,
  load: Load,
): Promise<{ cyclesPerSecond: number; runSeconds: ServerFigures["thrashRunSeconds"] }> {
  const exported = await Deno.makeTempFile({ prefix: "mkv-bench-hyperfine-", suffix: ".json" });
  try {
    const command = [
      Deno.execPath(),
      "run",
      "-A",
      THRASHER,
      "--url",
      url,
      "--count",
      String(load.thrashCount),
      "--concurrency",
      String(load.thrashConcurrency),
    ].join(" ");
    await run("hyperfine", [
      "-N",
      "--style",
      "basic",
      "--runs",
      String(load.thrashRuns),
      "--export-json",
      exported,
      command,
    ], INSTALL_HINT);
    const runSeconds = parseHyperfine(await Deno.readTextFile(exported));
    return { cyclesPerSecond: load.thrashCount / runSeconds.mean, runSeconds };
  } finally {
    await Deno.remove(exported).catch(() => {});
  }
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

/**
 * PUTs one big value (streamed from memory, with its length), reads it back through the 302 (streamed,
 * counted), deletes it. The md5 is computed before the clock starts and checked against the
 * index's Content-Md5; the GET checks the size. Returns seconds and the index's peak RSS.
 */
async function bigValue(
  url: string,
  sizeBytes: number,
  indexPid: number,
  notes: string[],
): Promise<{ putSeconds: number; getSeconds: number; peakRssMib: number | null }> {
  const key = `/bench-big-${crypto.randomUUID().slice(0, 8)}`;
  const seed = randomBytes(Math.min(BIG_CHUNK_BYTES, sizeBytes));
  const hash = createHash("md5");
  for (const chunk of bigChunks(sizeBytes, seed)) hash.update(chunk);
  const md5 = hash.digest("hex");

  if (indexPid > 0) {
    const rss = await readRssMib(indexPid);
    notes.push(`index RSS before the big PUT: ${rss === null ? "?" : rss.toFixed(0)} MiB`);
    if (!resetPeakRss(indexPid)) {
      notes.push("could not reset the index's VmHWM: its peak RSS is since its start");
    }
  }
  const putStarted = performance.now();
  const put = await putStreamed(`${url}${key}`, sizeBytes, bigChunks(sizeBytes, seed));
  if (put.status !== 201) throw new Error(`PUT ${key}: status ${put.status}: ${put.body.trim()}`);
  const putSeconds = (performance.now() - putStarted) / 1000;
  const peakRssMib = indexPid > 0 ? await readPeakRssMib(indexPid) : null;

  const head = await expectStatus(`${url}${key}`, { method: "HEAD" }, 302);
  const indexMd5 = head.headers.get("content-md5");
  if (indexMd5 !== null && indexMd5 !== md5) {
    throw new Error(`PUT ${key}: the index computed md5 ${indexMd5}, the bench sent ${md5}`);
  }
  if (indexMd5 === null) notes.push("no Content-Md5 from the server: the value's md5 unchecked");

  const getStarted = performance.now();
  const response = await fetch(`${url}${key}`);
  if (response.status !== 200 || response.body === null) {
    await response.body?.cancel();
    throw new Error(`GET ${key} through the redirect: status ${response.status}`);
  }
  let receivedBytes = 0;
  for await (const chunk of response.body) receivedBytes += chunk.length;
  const getSeconds = (performance.now() - getStarted) / 1000;
  if (receivedBytes !== sizeBytes) {
    throw new Error(`GET ${key}: ${receivedBytes} bytes, expected ${sizeBytes}`);
  }
  await expectStatus(`${url}${key}`, { method: "DELETE" }, 204);
  return { putSeconds, getSeconds, peakRssMib };
}

/** Every figure of one server. `indexPid` > 0 measures that process's peak RSS. */
function perRequestUs(pids: number[], [cpuSeconds, requests]: number[]): number | null {
  return pids.length === 0 || requests === 0 ? null : (cpuSeconds / requests) * 1e6;
}

/**
 * Every figure of one server. `indexPid` > 0 measures that process's peak RSS; `ceilingUrl`, if
 * not "", is measured under wrk in the same rounds, just before the server's own wrk runs.
 */
async function measureServer(
  url: string,
  load: Load,
  options: { indexPid: number; ceilingUrl: string; ceilingPid: number },
): Promise<ServerFigures> {
  const notes: string[] = [];
  log(`${url}: ${load.bigBytes / MIB} MiB value`);
  const big = await bigValue(url, load.bigBytes, options.indexPid, notes);

  // wrk goes to the address itself, so that `localhost` resolving to ::1 first changes nothing.
  const wrkBase = url.replace("//localhost:", "//127.0.0.1:");
  const id = crypto.randomUUID().slice(0, 8);
  const missingKey = `/bench-missing-${id}`;
  const presentKey = `/bench-present-${id}`;
  await expectStatus(`${url}${missingKey}`, {}, 404);
  await expectStatus(`${url}${presentKey}`, { method: "PUT", body: "present" }, 201);
  await expectStatus(`${url}${presentKey}`, {}, 302);
  const rounds: ServerFigures["wrkRoundsRps"] = { missing: [], present: [], ceiling: [] };
  // The index's Deno process and the nginx it runs in front of it.
  const serverPids = options.indexPid > 0
    ? [options.indexPid, ...await descendants(options.indexPid)]
    : [];
  const ceilingPids = options.ceilingPid > 0 ? [options.ceilingPid] : [];
  const cpu = { missing: [0, 0], present: [0, 0], ceiling: [0, 0] };
  /** Runs wrk on `target`, adding the CPU seconds of `pids` and the requests to `into`. */
  const measured = async (target: string, pids: number[], into: number[]) => {
    const before = await totalCpuSeconds(pids);
    const result = await wrk(target, load);
    into[0] += (await totalCpuSeconds(pids)) - before;
    into[1] += result.requests;
    return result;
  };
  // Other work on the machine only ever slows a run down, so each figure is its best round, and
  // the ceiling is measured in the same rounds so that it meets the same conditions.
  for (let round = 1; round <= load.wrkRounds; round++) {
    if (options.ceilingUrl !== "") {
      log(`ceiling (bare Deno.serve), round ${round}`);
      rounds.ceiling.push((await measured(options.ceilingUrl, ceilingPids, cpu.ceiling)).rps);
    }
    log(`${url}: fetch missing, round ${round}`);
    const missing = await measured(`${wrkBase}${missingKey}`, serverPids, cpu.missing);
    rounds.missing.push(missing.rps);
    for (const line of missing.trouble) {
      if (!line.startsWith("Non-2xx")) notes.push(`fetch missing: ${line}`);
    }
    log(`${url}: fetch present, round ${round}`);
    const present = await measured(`${wrkBase}${presentKey}`, serverPids, cpu.present);
    rounds.present.push(present.rps);
    for (const line of present.trouble) notes.push(`fetch present: ${line}`);
  }
  await expectStatus(`${url}${missingKey}`, {}, 404);
  await expectStatus(`${url}${presentKey}`, {}, 302);
  await expectStatus(`${url}${presentKey}`, { method: "DELETE" }, 204);

  log(`${url}: thrasher ×${load.thrashRuns}`);
  const thrash = await thrashRate(url, load);
  return {
    url,
    missingRps: Math.max(...rounds.missing),
    presentRps: Math.max(...rounds.present),
    wrkRoundsRps: rounds,
    cpuPerRequestUs: {
      missing: perRequestUs(serverPids, cpu.missing),
      present: perRequestUs(serverPids, cpu.present),
      ceiling: perRequestUs(ceilingPids, cpu.ceiling),
    },
    thrashCyclesPerSecond: thrash.cyclesPerSecond,
    thrashRunSeconds: thrash.runSeconds,
    bigPutSeconds: big.putSeconds,
    bigGetSeconds: big.getSeconds,
    bigPeakRssMib: big.peakRssMib,
    notes,
  };
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

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseFlags(Deno.args, BENCH_FLAGS);
    if (parsed.positionals.length > 0) {
      throw new FlagError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
    }
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    console.error(`bench: ${err.message}`);
    return 2;
  }
  if (parsed.help) {
    console.log(BENCH_USAGE);
    return 0;
  }
  const smoke = parsed.values.smoke as boolean;
  const load = smoke ? SMOKE_LOAD : FULL_LOAD;
  const url = String(parsed.values.url).replace(/\/+$/, "");
  const vsUrl = String(parsed.values.vs).replace(/\/+$/, "");
  const date = new Date().toISOString();
  const conditions = await machine();

  await using ceiling = await startCeiling();
  const ceilingPid = ceiling.pid;
  const ceilingUrl = `http://127.0.0.1:${ceiling.port}/missing`;
  let mkv: ServerFigures;
  if (url !== "") {
    mkv = await measureServer(url, load, {
      indexPid: parsed.values["index-pid"] as number,
      ceilingUrl,
      ceilingPid,
    });
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
        indexArgs: ["--replicas", "3"],
      });
      mkv = await measureServer(cluster.url, load, {
        indexPid: cluster.index.pid,
        ceilingUrl,
        ceilingPid,
      });
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  const vs = vsUrl === "" ? null : await measureServer(vsUrl, load, {
    indexPid: 0,
    ceilingUrl: "",
    ceilingPid: 0,
  });
  const ceilingRps = Math.max(...mkv.wrkRoundsRps.ceiling);
  const result: BenchResult = { date, smoke, load, machine: conditions, ceilingRps, mkv, vs };
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
