// The bench at many keys (`deno task bench --keys N [--peer PATH]`): what a store of N keys costs
// to rebuild, list, read and write, side by side with minikeyvalue on the same volumes. N small
// values are written straight onto three volumes in the shared on-disk layout (as a restore
// would, far faster than through an index), one replica each, no subvolumes; then each index is
// rebuilt from them (mkv.ts with md5 and with --md5sum=false, and the peer), both serve, and the
// figures are taken in alternating rounds: a full `?list` walk in pages of 10,000, GETs of random
// keys under wrk (rate and p99), PUT+DELETE of fresh keys, start-up time, the index's RSS, its
// bytes on disk per key, and mkv.ts's own `verify` and `gc --dry-run` rates. Prints a Markdown
// table and, unless --smoke, writes it and a JSON copy under bench/results/.
//
//   deno task bench --keys 100000 --peer PATH/TO/mkv    # about 2 minutes
//   deno task bench --keys 1000000 --peer PATH/TO/mkv   # about 15 minutes

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ClusterProcess, freePort, spawnIndex, spawnVolume } from "../dev/cluster.ts";
import { keyToPath, keyToVolumes, type Placement } from "../lib/placement.ts";
import { readRssMib } from "./proc.ts";
import { parseWrkLatencyMs, parseWrkRate, wrkTrouble } from "./wrk.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS_DIR = join(ROOT, "bench", "results");
/** Every key the bench writes: `/bench/key-00000042`, in byte order as in number order. */
const KEY_PREFIX = "/bench/key-";
const KEY_DIGITS = 8;
/** Keys per `?list` page, the most either index gives. */
const LIST_PAGE_KEYS = 10_000;
/** Fresh keys PUT then DELETEd per round, by this many clients. */
const FRESH_KEYS = 2_000;
const FRESH_CONCURRENCY = 16;
/** One request's bound. */
const REQUEST_TIMEOUT_MS = 30_000;
const VOLUMES = 3;

/** How hard each figure is pushed. */
export interface KeysLoad {
  wrkThreads: number;
  wrkConnections: number;
  wrkSeconds: number;
  /** Rounds of each alternating figure; the best is kept. */
  rounds: number;
  freshKeys: number;
}

export const KEYS_LOAD: KeysLoad = {
  wrkThreads: 2,
  wrkConnections: 64,
  wrkSeconds: 5,
  rounds: 2,
  freshKeys: FRESH_KEYS,
};
export const KEYS_SMOKE_LOAD: KeysLoad = {
  wrkThreads: 1,
  wrkConnections: 4,
  wrkSeconds: 1,
  rounds: 1,
  freshKeys: 50,
};

export interface KeysOptions {
  keys: number;
  valueBytes: number;
  /** A minikeyvalue binary to measure beside mkv.ts; null for mkv.ts alone. */
  peer: string | null;
  smoke: boolean;
}

/** One server's figures; null where it has none (minikeyvalue has no verify). */
export interface KeysFigures {
  rebuildSeconds: number;
  /** mkv.ts only: `rebuild --md5sum=false`. */
  rebuildNoMd5Seconds: number | null;
  startSeconds: number;
  listSeconds: number;
  listedKeys: number;
  getRps: number;
  getP99Ms: number;
  freshOpsPerSecond: number;
  rssMib: number | null;
  diskBytesPerKey: number;
  verifyKeysPerSecond: number | null;
  gcKeysPerSecond: number | null;
  trouble: string[];
}

export interface KeysResult {
  date: string;
  keys: number;
  valueBytes: number;
  fillSeconds: number;
  mkv: KeysFigures;
  peer: KeysFigures | null;
}

// ---- pure ----

/** The bench's i-th key. */
export function benchKey(i: number): string {
  return KEY_PREFIX + String(i).padStart(KEY_DIGITS, "0");
}

/** A wrk script asking for random keys of `keys`, each thread with a seed of its own. */
export function randomKeysScript(keys: number): string {
  return [
    `local keys = ${keys}`,
    `math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)`,
    `request = function()`,
    `  local path = string.format("${KEY_PREFIX}%0${KEY_DIGITS}d", math.random(0, keys - 1))`,
    `  return wrk.format("GET", path)`,
    `end`,
    ``,
  ].join("\n");
}

/** `{"next": ..., "keys": [...]}` of a `?list` answer, as both indexes give it. */
export function parseListPage(text: string): { next: string; keys: string[] } {
  const page = JSON.parse(text) as { next?: unknown; keys?: unknown };
  if (!Array.isArray(page.keys)) throw new Error(`not a ?list answer: ${text.slice(0, 200)}`);
  return { next: typeof page.next === "string" ? page.next : "", keys: page.keys as string[] };
}

function ratio(ours: number | null, theirs: number | null, better: "higher" | "lower"): string {
  if (ours === null || theirs === null || ours === 0 || theirs === 0) return "–";
  const value = better === "higher" ? ours / theirs : theirs / ours;
  return `${value.toFixed(2)}×`;
}

function fixed(value: number | null, digits: number): string {
  return value === null ? "–" : value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** The result as a Markdown table; ratios are turned so that above 1× mkv.ts is better. */
export function renderKeysMarkdown(result: KeysResult): string {
  const { mkv, peer } = result;
  const rows: [string, number | null, number | null, "higher" | "lower", number][] = [
    ["rebuild (s)", mkv.rebuildSeconds, peer?.rebuildSeconds ?? null, "lower", 1],
    [
      "rebuild --md5sum=false (s)",
      mkv.rebuildNoMd5Seconds,
      peer?.rebuildSeconds ?? null,
      "lower",
      1,
    ],
    ["start-up (s)", mkv.startSeconds, peer?.startSeconds ?? null, "lower", 2],
    [
      `?list of every key, pages of ${LIST_PAGE_KEYS.toLocaleString("en-US")} (s)`,
      mkv.listSeconds,
      peer?.listSeconds ?? null,
      "lower",
      2,
    ],
    ["GET of random keys (req/s)", mkv.getRps, peer?.getRps ?? null, "higher", 0],
    ["GET of random keys, p99 (ms)", mkv.getP99Ms, peer?.getP99Ms ?? null, "lower", 2],
    [
      "PUT + DELETE of fresh keys (ops/s)",
      mkv.freshOpsPerSecond,
      peer?.freshOpsPerSecond ?? null,
      "higher",
      0,
    ],
    ["index RSS after the GETs (MiB)", mkv.rssMib, peer?.rssMib ?? null, "lower", 0],
    [
      "index on disk per key (bytes)",
      mkv.diskBytesPerKey,
      peer?.diskBytesPerKey ?? null,
      "lower",
      0,
    ],
    ["verify (keys/s)", mkv.verifyKeysPerSecond, null, "higher", 0],
    ["gc --dry-run (keys/s)", mkv.gcKeysPerSecond, null, "higher", 0],
  ];
  const lines = [
    `# Bench at ${result.keys.toLocaleString("en-US")} keys of ${result.valueBytes} bytes, ` +
    result.date,
    "",
    `Values written straight onto ${VOLUMES} volumes (1 replica, no subvolumes) in ` +
    `${result.fillSeconds.toFixed(1)} s.`,
    "",
    "| figure | mkv.ts | minikeyvalue | ratio (above 1× mkv.ts is better) |",
    "| --- | --- | --- | --- |",
    ...rows.map(([figure, ours, theirs, better, digits]) =>
      `| ${figure} | ${fixed(ours, digits)} | ${fixed(theirs, digits)} | ` +
      `${ratio(ours, theirs, better)} |`
    ),
  ];
  const trouble = [...mkv.trouble, ...(peer?.trouble ?? [])];
  if (trouble.length > 0) lines.push("", ...trouble.map((line) => `- ${line}`));
  return lines.join("\n") + "\n";
}

// ---- I/O ----

function log(line: string): void {
  console.error(`bench: ${line}`);
}

async function seconds<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [(performance.now() - started) / 1000, value];
}

/** Runs a program to its end; throws with its output if it fails. */
async function runChecked(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(output.stdout) +
    new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")} failed (status ${output.code}):\n${text}`);
  }
  return text;
}

/** `deno run -A index.ts ARGS` of this checkout. */
function indexTool(args: string[]): Promise<string> {
  return runChecked(Deno.execPath(), [
    "run",
    "-A",
    "--config",
    join(ROOT, "deno.json"),
    join(ROOT, "index.ts"),
    ...args,
  ]);
}

/** How nginx's workers own what they write on a volume: learnt from a file they wrote. */
export interface Ownership {
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
}

/**
 * Writes one file through a volume's nginx and reads how it and its directory are owned, so that
 * the files the bench writes by hand are the volume's own (its workers can read and delete them).
 */
export async function volumeOwnership(port: number, dir: string): Promise<Ownership> {
  const path = keyToPath("/bench-ownership-probe");
  const url = `http://localhost:${port}${path}`;
  const put = await fetch(url, { method: "PUT", body: "probe" });
  await put.body?.cancel();
  if (put.status !== 201 && put.status !== 204) {
    throw new Error(`volume localhost:${port}: cannot PUT ${JSON.stringify(path)}: ${put.status}`);
  }
  const file = await Deno.stat(join(dir, path));
  const parent = await Deno.stat(join(dir, path, ".."));
  const removed = await fetch(url, { method: "DELETE" });
  await removed.body?.cancel();
  return {
    uid: file.uid ?? Deno.uid() ?? 0,
    gid: file.gid ?? Deno.gid() ?? 0,
    fileMode: (file.mode ?? 0o644) & 0o777,
    dirMode: (parent.mode ?? 0o755) & 0o777,
  };
}

/**
 * Writes `keys` values straight into the volumes' directories in the on-disk layout, owned as
 * the volumes' own files are; `valueBytes` each, each starting with its key so none repeat.
 * Synchronous calls, one file after another: for small files they are several times faster than
 * many async writes at once, each of which costs a trip through the runtime's thread pool.
 */
export function fillVolumes(options: {
  keys: number;
  valueBytes: number;
  placement: Placement;
  dirs: Map<string, string>;
  owners: Map<string, Ownership>;
}): void {
  const made = new Set<string>();
  const root = Deno.uid() === 0;
  const makeDirs = (base: string, relative: string, owner: Ownership) => {
    let at = base;
    for (const part of relative.split("/").filter((p) => p !== "")) {
      at = join(at, part);
      if (made.has(at)) continue;
      try {
        Deno.mkdirSync(at, { mode: owner.dirMode });
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
      if (root) Deno.chownSync(at, owner.uid, owner.gid);
      made.add(at);
    }
  };
  const encoder = new TextEncoder();
  const value = new Uint8Array(options.valueBytes);
  for (let i = 0; i < options.keys; i++) {
    const key = benchKey(i);
    const [location] = keyToVolumes(key, options.placement);
    const base = options.dirs.get(location)!;
    const owner = options.owners.get(location)!;
    const path = keyToPath(key);
    makeDirs(base, path.slice(0, path.lastIndexOf("/")), owner);
    value.fill(0x2e);
    value.set(encoder.encode(key).subarray(0, value.length));
    const file = join(base, path);
    Deno.writeFileSync(file, value, { mode: owner.fileMode });
    if (root) Deno.chownSync(file, owner.uid, owner.gid);
    if (i > 0 && i % 100_000 === 0) log(`filled ${i.toLocaleString("en-US")} keys`);
  }
}

/** Every key under the bench's prefix, page by page; the count and the time it took. */
async function listAll(url: string): Promise<{ seconds: number; keys: number }> {
  const [elapsed, count] = await seconds(async () => {
    let start = "";
    let count = 0;
    while (true) {
      const query = `list&limit=${LIST_PAGE_KEYS}` +
        (start === "" ? "" : `&start=${encodeURIComponent(start)}`);
      const response = await fetch(`${url}${KEY_PREFIX}?${query}`, {
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`?list: status ${response.status}: ${text}`);
      const page = parseListPage(text);
      count += page.keys.length;
      if (page.next === "" || page.keys.length === 0) return count;
      start = page.next;
    }
  });
  return { seconds: elapsed, keys: count };
}

/** GETs of random keys under wrk: the rate, p99 and any trouble it reported. */
async function randomGets(
  url: string,
  script: string,
  load: KeysLoad,
): Promise<{ rps: number; p99Ms: number; trouble: string[] }> {
  const output = await runChecked("wrk", [
    `-t${load.wrkThreads}`,
    `-c${load.wrkConnections}`,
    `-d${load.wrkSeconds}s`,
    "--latency",
    "-s",
    script,
    url,
  ]);
  return {
    rps: parseWrkRate(output),
    p99Ms: parseWrkLatencyMs(output, 99),
    trouble: wrkTrouble(output),
  };
}

/** PUT then DELETE of `count` keys no one has written, by FRESH_CONCURRENCY clients. */
async function freshWrites(url: string, count: number, round: string): Promise<number> {
  const body = new Uint8Array(256).fill(0x2f);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const key = `/bench/fresh-${round}-${next++}`;
      for (const [method, want] of [["PUT", 201], ["DELETE", 204]] as const) {
        const response = await fetch(`${url}${key}`, {
          method,
          body: method === "PUT" ? body : undefined,
          redirect: "manual",
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        await response.body?.cancel();
        if (response.status !== want) throw new Error(`${method} ${key}: ${response.status}`);
      }
    }
  };
  const [elapsed] = await seconds(() =>
    Promise.all(Array.from({ length: FRESH_CONCURRENCY }, worker))
  );
  return (2 * count) / elapsed;
}

async function diskBytes(dir: string): Promise<number> {
  const output = await runChecked("du", ["-sb", dir]);
  return Number(output.split(/\s/)[0]);
}

/** A server under measure. */
interface Served {
  url: string;
  pid: number;
  startSeconds: number;
  stop(): Promise<void>;
}

async function serveMkv(port: number, db: string, volumes: string[]): Promise<Served> {
  const [startSeconds, index] = await seconds(() =>
    spawnIndex({ port, db, volumes, args: ["--replicas", "1", "--subvolumes", "1"] })
  );
  return { url: index.url, pid: index.pid, startSeconds, stop: () => index.stop() };
}

async function servePeer(binary: string, port: number, db: string, volumes: string[]) {
  const [startSeconds, child] = await seconds(async () => {
    const child = new Deno.Command(binary, {
      args: peerCommand(binary, { port, db, volumes, command: "server" }).slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 30_000;
    while (true) {
      const status = await fetch(`http://localhost:${port}/bench-probe`, {
        redirect: "manual",
        signal: AbortSignal.timeout(1_000),
      }).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      }, () => 0);
      if (status === 404) return child;
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await child.status;
        throw new Error(`minikeyvalue :${port} did not start`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  return {
    url: `http://localhost:${port}`,
    pid: child.pid,
    startSeconds,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** minikeyvalue's command line: Go's one-dash flags, then the command. */
function peerCommand(
  binary: string,
  options: { port?: number; db: string; volumes: string[]; command: "server" | "rebuild" },
): string[] {
  return [
    binary,
    ...(options.port === undefined ? [] : ["-port", String(options.port)]),
    "-volumes",
    options.volumes.join(","),
    "-replicas",
    "1",
    "-subvolumes",
    "1",
    "-db",
    options.db,
    options.command,
  ];
}

/** Runs the bench at many keys; resolves with its figures. */
export async function runKeysBench(options: KeysOptions): Promise<KeysResult> {
  const load = options.smoke ? KEYS_SMOKE_LOAD : KEYS_LOAD;
  const date = new Date().toISOString();
  const dir = await Deno.makeTempDir({ prefix: "mkv-bench-keys-" });
  // nginx's workers, another account when root starts the volumes, pass through it.
  await Deno.chmod(dir, 0o755);
  const volumes: ClusterProcess[] = [];
  const servers: Served[] = [];
  try {
    const hosts: string[] = [];
    const dirs = new Map<string, string>();
    const owners = new Map<string, Ownership>();
    for (let i = 0; i < VOLUMES; i++) {
      const port = freePort();
      const volumeDir = join(dir, `volume${i + 1}`);
      volumes.push(await spawnVolume({ port, dir: volumeDir }));
      hosts.push(`localhost:${port}`);
      dirs.set(`localhost:${port}`, volumeDir);
      owners.set(`localhost:${port}`, await volumeOwnership(port, volumeDir));
    }
    const placement: Placement = { volumes: hosts, replicas: 1, subvolumes: 1 };
    log(`writing ${options.keys.toLocaleString("en-US")} values onto the volumes`);
    const [fillSeconds] = await seconds(() =>
      Promise.resolve(
        fillVolumes({
          keys: options.keys,
          valueBytes: options.valueBytes,
          placement,
          dirs,
          owners,
        }),
      )
    );
    const volumeFlags = ["--volumes", hosts.join(","), "--replicas", "1", "--subvolumes", "1"];
    const ourDb = join(dir, "mkv-index");
    const noMd5Db = join(dir, "mkv-index-nomd5");
    const peerDb = join(dir, "peer-index");
    log("rebuilding");
    const rebuilds: Record<string, number> = {};
    const rebuildOf = {
      mkv: () => indexTool(["rebuild", "--db", ourDb, ...volumeFlags]),
      mkvNoMd5: () => indexTool(["rebuild", "--db", noMd5Db, ...volumeFlags, "--md5sum=false"]),
      peer: () => {
        const command = peerCommand(options.peer!, {
          db: peerDb,
          volumes: hosts,
          command: "rebuild",
        });
        return runChecked(command[0], command.slice(1));
      },
    };
    const order = options.peer === null ? ["mkv", "mkvNoMd5"] : ["peer", "mkv", "mkvNoMd5"];
    for (const name of order) {
      [rebuilds[name]] = await seconds(rebuildOf[name as keyof typeof rebuildOf]);
      log(`rebuild ${name}: ${rebuilds[name].toFixed(1)} s`);
    }
    const ours = await serveMkv(freePort(), ourDb, hosts);
    servers.push(ours);
    const theirs = options.peer === null
      ? null
      : await servePeer(options.peer, freePort(), peerDb, hosts);
    if (theirs !== null) servers.push(theirs);
    const measured = theirs === null ? [ours] : [ours, theirs];
    const script = join(dir, "random-keys.lua");
    await Deno.writeTextFile(script, randomKeysScript(options.keys));
    const best = measured.map(() => ({
      listSeconds: Infinity,
      listedKeys: 0,
      getRps: 0,
      getP99Ms: Infinity,
      fresh: 0,
      trouble: [] as string[],
    }));
    for (let round = 0; round < load.rounds; round++) {
      for (const [i, server] of measured.entries()) {
        const name = i === 0 ? "mkv.ts" : "minikeyvalue";
        const listed = await listAll(server.url);
        if (listed.keys !== options.keys) {
          best[i].trouble.push(`${name}: ?list gave ${listed.keys} keys of ${options.keys}`);
        }
        best[i].listedKeys = listed.keys;
        best[i].listSeconds = Math.min(best[i].listSeconds, listed.seconds);
        const gets = await randomGets(server.url, script, load);
        if (gets.rps > best[i].getRps) {
          best[i].getRps = gets.rps;
          best[i].getP99Ms = gets.p99Ms;
        }
        best[i].trouble.push(...gets.trouble.map((line) => `${name}: wrk: ${line}`));
        best[i].fresh = Math.max(
          best[i].fresh,
          await freshWrites(server.url, load.freshKeys, `${i}-${round}`),
        );
        log(
          `${name} round ${round + 1}: list ${listed.seconds.toFixed(2)} s, ` +
            `GET ${Math.round(gets.rps)}/s p99 ${gets.p99Ms.toFixed(2)} ms`,
        );
      }
    }
    const rss = await Promise.all(measured.map((server) => readRssMib(server.pid)));
    const [verifySeconds] = await seconds(() =>
      indexTool(["verify", "--db", ourDb, "--volumes", hosts.join(",")])
    );
    const [gcSeconds] = await seconds(() =>
      indexTool(["gc", "--dry-run", "--db", ourDb, "--volumes", hosts.join(",")])
    );
    const figuresOf = async (i: number): Promise<KeysFigures> => ({
      rebuildSeconds: i === 0 ? rebuilds.mkv : rebuilds.peer,
      rebuildNoMd5Seconds: i === 0 ? rebuilds.mkvNoMd5 : null,
      startSeconds: measured[i].startSeconds,
      listSeconds: best[i].listSeconds,
      listedKeys: best[i].listedKeys,
      getRps: best[i].getRps,
      getP99Ms: best[i].getP99Ms,
      freshOpsPerSecond: best[i].fresh,
      rssMib: rss[i],
      diskBytesPerKey: await diskBytes(i === 0 ? ourDb : peerDb) / options.keys,
      verifyKeysPerSecond: i === 0 ? options.keys / verifySeconds : null,
      gcKeysPerSecond: i === 0 ? options.keys / gcSeconds : null,
      trouble: best[i].trouble,
    });
    return {
      date,
      keys: options.keys,
      valueBytes: options.valueBytes,
      fillSeconds,
      mkv: await figuresOf(0),
      peer: theirs === null ? null : await figuresOf(1),
    };
  } finally {
    for (const server of servers) await server.stop();
    await Promise.all(volumes.map((volume) => volume.stop()));
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs the bench, prints its table and, unless a smoke run, keeps it under bench/results/. */
export async function keysMain(options: KeysOptions): Promise<number> {
  const result = await runKeysBench(options);
  const table = renderKeysMarkdown(result);
  console.log(table);
  if (!options.smoke) {
    const stamp = result.date.replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
    const base = join(RESULTS_DIR, `keys-${result.keys}-${stamp}`);
    await Deno.writeTextFile(`${base}.md`, table);
    await Deno.writeTextFile(`${base}.json`, JSON.stringify(result, null, 2) + "\n");
    log(`wrote ${base}.md and .json`);
  }
  return 0;
}
