// Where the index spends its time under the bench's loads. Starts a cluster (3 volumes, 3 replicas,
// temp dir) whose index runs with the V8 inspector on, then for each load — fetch of a missing key
// and of a present key under wrk, thrasher.ts cycles, and 1 MiB PUTs from 16 clients (made in this
// process, so their load generator shows no CPU) — records a CPU profile of the index over
// the inspector and the CPU time every server process used. Prints per load: the CPU per request
// of each process group, and the functions of the index with the most self and total time.
// Writes the profiles (open them in Chrome DevTools, Performance tab) to --out.
//
//   deno run -A bench/profile.ts [--out DIR] [--seconds 5] [--cycles 3000]

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClusterProcess, freePort, spawnVolume } from "../dev/cluster.ts";
import { BlobLoad } from "./blobs.ts";
import { runThrasher } from "../thrasher.ts";
import { childrenCpuSeconds, cpuSeconds, descendants } from "./proc.ts";
import { commandLine, flagsOf, type FlagSpec, splitList, usageFlags } from "../lib/flags.ts";

/** The checkout's root, as a file URL (ends in `/`): profiled frames are named relative to it. */
const ROOT_URL = new URL("..", import.meta.url).href;
const ROOT = fileURLToPath(ROOT_URL);
/** The profiler's sampling interval; V8's default is 1000 µs, too coarse for µs-long requests. */
const SAMPLING_INTERVAL_US = 100;
/** Functions listed per table. */
const TOP_FUNCTIONS = 18;

const PROFILE_FLAGS: FlagSpec = {
  out: { type: "string", default: "/tmp/mkv-profiles", help: "where the profiles go", arg: "DIR" },
  seconds: { type: "int", default: 5, help: "seconds of wrk per fetch load", arg: "S" },
  cycles: { type: "int", default: 3000, help: "thrasher cycles", arg: "N" },
  loads: {
    type: "string",
    default: "missing,present,thrash,put1m",
    help: "which loads (put1m: 256 PUTs of 1 MiB, 16 clients; CPU per PUT = per MiB)",
    arg: "LIST",
  },
  inspect: {
    type: "bool",
    default: true,
    help: "profile over the inspector; false measures only CPU time, without its overhead",
  },
};

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A function's share of the busy samples, itself (self) and with what it called (total). */
export interface FunctionTime {
  name: string;
  selfShare: number;
  totalShare: number;
}

export interface ProfileSummary {
  /** Share of all samples where the JS thread waited for events (Rust work runs there too). */
  idleShare: number;
  /** Share of all samples spent emitting inspector events: the profiler's own cost, left out. */
  inspectorShare: number;
  /** Per function, shares of the remaining (busy) samples. */
  functions: FunctionTime[];
}

function frameName(frame: CallFrame): string {
  const url = frame.url.startsWith(ROOT_URL) ? frame.url.slice(ROOT_URL.length) : frame.url;
  const file = url.replace(/^.*\/ext:/, "ext:");
  const name = frame.functionName || "(anonymous)";
  return file === "" ? name : `${name} ${file}:${frame.lineNumber + 1}`;
}

/**
 * Self and total shares per function of the busy samples of a `Profiler.stop` profile: idle
 * samples and those of the inspector's own event emission are counted apart. Pure.
 */
export function summarizeProfile(profile: CpuProfile): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let idle = 0;
  let inspector = 0;
  let busy = 0;
  for (const id of profile.samples) {
    const stack: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      stack.push(frameName(byId.get(at)!.callFrame));
    }
    if (stack[0] === "(idle)") {
      idle++;
      continue;
    }
    if (stack.some((name) => /inspector/.test(name))) {
      inspector++;
      continue;
    }
    busy++;
    self.set(stack[0], (self.get(stack[0]) ?? 0) + 1);
    // Each function on the stack counts once per sample, however often it recurses.
    for (const name of new Set(stack)) total.set(name, (total.get(name) ?? 0) + 1);
  }
  const all = profile.samples.length || 1;
  return {
    idleShare: idle / all,
    inspectorShare: inspector / all,
    functions: [...total.keys()].map((name) => ({
      name,
      selfShare: (self.get(name) ?? 0) / (busy || 1),
      totalShare: (total.get(name) ?? 0) / (busy || 1),
    })),
  };
}

// ---- I/O ----

/** A Chrome DevTools Protocol session with the index's inspector. */
class Inspector {
  #socket: WebSocket;
  #nextId = 1;
  #waiting = new Map<number, (message: { result?: unknown; error?: unknown }) => void>();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.#waiting.get(message.id)?.(message);
      this.#waiting.delete(message.id);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    return new Inspector(socket);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, (message) => {
        if (message.error) reject(new Error(`${method}: ${JSON.stringify(message.error)}`));
        else resolve(message.result as T);
      });
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.#socket.onclose = resolve);
    this.#socket.close();
    await closed;
  }
}

async function output(command: string, args: string[]): Promise<string> {
  const result = await new Deno.Command(command, { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr);
  if (!result.success) throw new Error(`${command} ${args.join(" ")} failed:\n${text}`);
  return text;
}

interface Load {
  name: string;
  /** Runs the load; returns how many requests it made. */
  run: () => Promise<number>;
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`.padStart(6);
}

async function main(): Promise<void> {
  const parsed = commandLine(
    "profile",
    flagsOf(PROFILE_FLAGS),
    `profile.ts: CPU profiles of the index under the bench's loads\n\n${usageFlags(PROFILE_FLAGS)}`,
  );
  if (parsed === null) return;
  const outDir = String(parsed.values.out);
  await Deno.mkdir(outDir, { recursive: true });
  const dir = await Deno.makeTempDir({ prefix: "mkv-profile-" });
  await Deno.chmod(dir, 0o777);
  const ports = new Set<number>();
  while (ports.size < 5) ports.add(freePort());
  const [port, inspectPort, ...volumePorts] = [...ports];
  const volumes: ClusterProcess[] = [];
  let index: ClusterProcess | null = null;
  try {
    for (const [i, volumePort] of volumePorts.entries()) {
      volumes.push(await spawnVolume({ port: volumePort, dir: join(dir, `volume${i + 1}`) }));
    }
    const inspect = parsed.values.inspect as boolean;
    index = await new ClusterProcess(`index :${port}`, port, [
      ...(inspect ? [`--inspect=127.0.0.1:${inspectPort}`] : []),
      join(ROOT, "index.ts"),
      "server",
      "--port",
      String(port),
      "--db",
      join(dir, "index"),
      "--volumes",
      volumePorts.map((p) => `localhost:${p}`).join(","),
      "--replicas",
      "3",
    ]).ready();
    const url = `http://127.0.0.1:${port}`;
    const indexNginx = await descendants(index.pid);
    const volumeNginx = (await Promise.all(volumes.map((v) => descendants(v.pid)))).flat();
    const groups: [string, number[]][] = [
      ["index (Deno)", [index.pid]],
      ["index's nginx", indexNginx],
      ["volumes' nginx", volumeNginx],
      ["volumes (Deno)", volumes.map((v) => v.pid)],
    ];
    const allPids = groups.flatMap(([, pids]) => pids);

    const present = "/profile-present";
    await (await fetch(`${url}${present}`, { method: "PUT", body: "present" })).body?.cancel();
    const seconds = parsed.values.seconds as number;
    const wrk = async (path: string) => {
      const text = await output("wrk", ["-t2", "-c100", `-d${seconds}s`, `${url}${path}`]);
      const requests = Number(text.match(/(\d+) requests in/)?.[1]);
      console.log(`  wrk: ${text.match(/Requests\/sec:.*/)?.[0]}`);
      return requests;
    };
    const cycles = parsed.values.cycles as number;
    const wanted = splitList(String(parsed.values.loads));
    const loads: Load[] = ([
      { name: "missing", run: () => wrk("/profile-missing") },
      { name: "present", run: () => wrk(present) },
      {
        name: "thrash",
        run: async () => {
          const result = await runThrasher({ url, count: cycles, concurrency: 16 });
          console.log(`  thrasher: ${Math.round(result.rate)} cycles/s`);
          return cycles;
        },
      },
      {
        name: "put1m",
        run: async () => {
          using blobs = new BlobLoad({
            url,
            prefix: "/profile-1m/",
            count: 256,
            sizeBytes: 1024 * 1024,
            concurrency: 16,
          });
          const phase = await blobs.put();
          console.log(`  1 MiB PUTs: ${(phase.bytes / 1e6 / phase.seconds).toFixed(0)} MB/s`);
          return phase.requests;
        },
      },
    ] as Load[]).filter((load) => wanted.includes(load.name));

    const inspector = inspect ? await Inspector.connect(inspectPort) : null;
    try {
      await inspector?.send("Profiler.enable");
      await inspector?.send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
      for (const load of loads) {
        console.log(`\n## ${load.name}`);
        const before = await cpuSeconds(allPids);
        const generatorBefore = await childrenCpuSeconds();
        await inspector?.send("Profiler.start");
        const requests = await load.run();
        const profile = (await inspector?.send<{ profile: CpuProfile }>("Profiler.stop"))?.profile;
        const after = await cpuSeconds(allPids);
        const generatorAfter = await childrenCpuSeconds();
        const rows: [string, number, number][] = [[
          "load generator",
          generatorAfter.user - generatorBefore.user,
          generatorAfter.system - generatorBefore.system,
        ]];
        console.log(`  CPU per ${load.name === "thrash" ? "cycle" : "request"} (user+system µs):`);
        for (const [group, pids] of groups) {
          let user = 0;
          let system = 0;
          for (const pid of pids) {
            user += (after.get(pid)?.user ?? 0) - (before.get(pid)?.user ?? 0);
            system += (after.get(pid)?.system ?? 0) - (before.get(pid)?.system ?? 0);
          }
          rows.unshift([group, user, system]);
        }
        for (const [group, user, system] of rows.reverse()) {
          const perRequestUs = ((user + system) / requests) * 1e6;
          console.log(
            `    ${group.padEnd(16)} ${perRequestUs.toFixed(1).padStart(8)} µs ` +
              `(user ${(user / requests * 1e6).toFixed(1)}, system ${
                (system / requests * 1e6).toFixed(1)
              })`,
          );
        }
        if (profile === undefined) continue;
        const file = join(outDir, `index-${load.name}.cpuprofile`);
        await Deno.writeTextFile(file, JSON.stringify(profile));
        console.log(`  profile: ${file}`);
        const summary = summarizeProfile(profile);
        const times = summary.functions;
        console.log(
          `  JS thread idle ${pct(summary.idleShare)} of samples, inspector ` +
            `${pct(summary.inspectorShare)} (left out); shares below are of the busy rest`,
        );
        console.log("  self time:");
        for (
          const t of times.toSorted((a, b) => b.selfShare - a.selfShare).slice(0, TOP_FUNCTIONS)
        ) {
          console.log(`    ${pct(t.selfShare)}  ${t.name}`);
        }
        console.log("  total time (mkv.ts code):");
        const ours = times.filter((t) => /\b(lib|index)\b.*\.ts:/.test(t.name));
        for (
          const t of ours.toSorted((a, b) => b.totalShare - a.totalShare).slice(0, TOP_FUNCTIONS)
        ) {
          console.log(`    ${pct(t.totalShare)}  ${t.name}`);
        }
      }
    } finally {
      await inspector?.close();
    }
  } finally {
    await index?.stop();
    await Promise.all(volumes.map((volume) => volume.stop()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
