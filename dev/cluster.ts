// A local cluster of real processes: volumes (volume.ts) and an index (index.ts), each spawned as
// its own `deno run`, on ports that answer before spawning resolves. `deno task start` runs one
// (three volumes and the index on :3000, data under ./data) until Ctrl-C; the tests and the bench
// spawn theirs with `spawnVolume`/`spawnIndex`/`spawnCluster` (on ports from `freePort`) and stop
// them with `await using`. Not part of the store: the programs never import it.
//
//   deno task start

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { commandLine, FlagError, parseFlags } from "../lib/flags.ts";
import { pidFileFor, stopLeftover } from "../lib/nginx/runtime.ts";

/** Ports handed out by `freePort`: below the kernel's ephemeral range (32768–60999 here). */
const FREE_PORT_LOW = 10_000;
const FREE_PORT_HIGH = 32_000;
const FREE_PORT_TRIES = 100;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** How long a process may take to answer on its port. */
const START_TIMEOUT_MS = 20_000;
/** How long a process may take to stop on SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** Lines of a child's stderr kept to explain a failure. */
const LOG_LINES_KEPT = 200;

export interface ProcessOptions {
  /** Print the child's stderr as it comes (also with MKV_LOG=1 in the environment). */
  echo?: boolean;
  /**
   * Run the child in this network namespace (`ip netns exec NAME`), as a host of its own: the
   * several-hosts tests (tests/netns.ts).
   */
  netns?: string;
  /** The address clients reach the child at, for `url` (an IPv6 one bare); localhost if absent. */
  hostname?: string;
}

/**
 * A free TCP port on this machine, for a process of a cluster: drawn at random below Linux's
 * ephemeral range (32768 and up), where the kernel hands out ports for outgoing connections and
 * for `port: 0`. So a port that a test frees (a volume killed, to be started again on it) is not
 * soon handed to another process, as the kernel's own choice could be.
 */
export function freePort(): number {
  for (let attempt = 0; attempt < FREE_PORT_TRIES; attempt++) {
    const port = FREE_PORT_LOW + Math.floor(Math.random() * (FREE_PORT_HIGH - FREE_PORT_LOW));
    try {
      Deno.listen({ hostname: "0.0.0.0", port }).close();
      return port;
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  throw new Error(
    `no free port in ${FREE_PORT_LOW}-${FREE_PORT_HIGH} after ${FREE_PORT_TRIES} tries`,
  );
}

/** A child process of the cluster, answering on `port`. */
export class ClusterProcess {
  readonly name: string;
  readonly port: number;
  readonly args: string[];
  readonly hostname: string;
  #child: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus>;
  #log: string[] = [];
  #stderrDone: Promise<void>;
  #exited = false;
  #serving = false;

  constructor(name: string, port: number, args: string[], options: ProcessOptions = {}) {
    this.name = name;
    this.port = port;
    this.args = args;
    this.hostname = options.hostname ?? "localhost";
    const command = [Deno.execPath(), "run", "-A", "--config", join(ROOT, "deno.json"), ...args];
    // `ip netns exec` execs the command in place: the child's pid stays the program's own.
    if (options.netns !== undefined) command.unshift("ip", "netns", "exec", options.netns);
    this.#child = new Deno.Command(command[0], {
      args: command.slice(1),
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const echo = options.echo ?? Deno.env.get("MKV_LOG") === "1";
    this.#stderrDone = Promise.all([
      this.#pump(this.#child.stdout, echo),
      this.#pump(this.#child.stderr, echo),
    ]).then(() => {});
    this.#status = this.#child.status.then((status) => {
      this.#exited = true;
      return status;
    });
  }

  get pid(): number {
    return this.#child.pid;
  }

  get url(): string {
    const host = this.hostname.includes(":") ? `[${this.hostname}]` : this.hostname;
    return `http://${host}:${this.port}`;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** What the child printed so far (stdout and stderr), last lines. */
  get log(): string {
    return this.#log.join("\n");
  }

  get status(): Promise<Deno.CommandStatus> {
    return this.#status;
  }

  async #pump(stream: ReadableStream<Uint8Array>, echo: boolean): Promise<void> {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (echo) console.error(`[${this.name}] ${line}`);
        if (/^(index|volume): serving /.test(line)) this.#serving = true;
        this.#log.push(line);
        if (this.#log.length > LOG_LINES_KEPT) this.#log.shift();
      }
    }
    if (pending) this.#log.push(pending);
  }

  /**
   * Resolves once the child says it serves (after its nginx answers: the port alone could be a
   * leftover nginx of a killed run); rejects with the child's last words if it exits first.
   */
  async ready(): Promise<this> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!this.#serving) {
      if (this.#exited) {
        await this.#stderrDone;
        throw new Error(`${this.name} exited while starting:\n${this.log}`);
      }
      if (Date.now() > deadline) throw new Error(`${this.name} did not start:\n${this.log}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return this;
  }

  /** Sends a signal to the child (Deno's process, not its nginx). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (!this.#exited) this.#child.kill(signal);
  }

  /** Waits for the child to exit, then for its output to be read; returns its status. */
  async wait(): Promise<Deno.CommandStatus> {
    const status = await this.#status;
    await this.#stderrDone;
    return status;
  }

  /**
   * Stops the child with SIGTERM (SIGKILL if it takes too long) and any nginx it left behind,
   * e.g. after a kill -9 in a test.
   */
  async stop(): Promise<void> {
    if (!this.#exited) {
      this.kill("SIGTERM");
      const timer = setTimeout(() => this.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await this.#status;
      clearTimeout(timer);
    }
    await this.#stderrDone;
    await stopLeftover(pidFileFor(this.port));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** The child once it serves; if it does not, it is stopped and the reason thrown. */
async function readyOrStopped(child: ClusterProcess): Promise<ClusterProcess> {
  try {
    return await child.ready();
  } catch (err) {
    await child.stop();
    throw err;
  }
}

/**
 * Starts `volume.ts` on `port` serving `dir`; resolves once it answers. With `index` (the index's
 * URL), the volume sends a client that finds no file back there (`--index`).
 */
export async function spawnVolume(
  options: { port: number; dir: string; index?: string; args?: string[] } & ProcessOptions,
): Promise<ClusterProcess> {
  const index = options.index === undefined ? [] : ["--index", options.index];
  const child = new ClusterProcess(
    `volume :${options.port}`,
    options.port,
    [
      "volume.ts",
      "--port",
      String(options.port),
      "--dir",
      options.dir,
      ...index,
      ...(options.args ?? []),
    ],
    options,
  );
  return await readyOrStopped(child);
}

/** Starts `index.ts server` on `port`; `args` are further flags. Resolves once it answers. */
export async function spawnIndex(
  options: { port: number; db: string; volumes: string[]; args?: string[] } & ProcessOptions,
): Promise<ClusterProcess> {
  const child = new ClusterProcess(`index :${options.port}`, options.port, [
    "index.ts",
    "server",
    "--port",
    String(options.port),
    "--db",
    options.db,
    "--volumes",
    options.volumes.join(","),
    ...(options.args ?? []),
  ], options);
  return await readyOrStopped(child);
}

/** Volumes and an index, stopped together. */
export class Cluster {
  readonly volumes: ClusterProcess[];
  readonly index: ClusterProcess;

  constructor(volumes: ClusterProcess[], index: ClusterProcess) {
    this.volumes = volumes;
    this.index = index;
  }

  get url(): string {
    return this.index.url;
  }

  async stop(): Promise<void> {
    await this.index.stop();
    await Promise.all(this.volumes.map((volume) => volume.stop()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

export interface ClusterOptions extends ProcessOptions {
  /** Where the data goes: `dir/volumeN` and `dir/index`. */
  dir: string;
  port: number;
  volumePorts: number[];
  /** Further flags for the index, e.g. `["--replicas", "2"]`. */
  indexArgs?: string[];
  /** Further flags for every volume, e.g. `["--keepalive", "1s"]`. */
  volumeArgs?: string[];
  /**
   * Whether the volumes send misses back to the index (`--index`, so that the index's GETs trust
   * them without a check); true if absent. False: volumes as minikeyvalue's, checked per GET.
   */
  volumeIndex?: boolean;
}

/** Starts the volumes, then the index; on a failure stops what did start. */
export async function spawnCluster(options: ClusterOptions): Promise<Cluster> {
  const indexHost = (options.hostname ?? "localhost").includes(":")
    ? `[${options.hostname}]`
    : options.hostname ?? "localhost";
  // An index with a certificate serves HTTPS on its port: misses go back there over TLS.
  const scheme = options.indexArgs?.includes("--tls-cert") ? "https" : "http";
  const volumes = await Promise.allSettled(
    options.volumePorts.map((port, i) =>
      spawnVolume({
        ...options,
        port,
        dir: join(options.dir, `volume${i + 1}`),
        ...(options.volumeIndex !== false && { index: `${scheme}://${indexHost}:${options.port}` }),
        args: options.volumeArgs,
      })
    ),
  );
  const started = volumes.flatMap((v) => v.status === "fulfilled" ? [v.value] : []);
  const failed = volumes.find((v) => v.status === "rejected");
  if (failed) {
    await Promise.all(started.map((volume) => volume.stop()));
    throw failed.reason;
  }
  try {
    const index = await spawnIndex({
      ...options,
      db: join(options.dir, "index"),
      volumes: options.volumePorts.map((port) => `localhost:${port}`),
      args: options.indexArgs,
    });
    return new Cluster(started, index);
  } catch (err) {
    await Promise.all(started.map((volume) => volume.stop()));
    throw err;
  }
}

const USAGE = `dev/cluster.ts: a local cluster for trying mkv.ts: three volumes on :3001-:3003 and
the index on :3000, data under ./data, until Ctrl-C. It takes no flags.

usage: deno task start`;

/** The cluster's command line: none but --help. */
function parseClusterArgs(args: string[]): Record<string, never> | "help" {
  const { positionals, help } = parseFlags(args, {});
  if (help) return "help";
  if (positionals.length > 0) throw new FlagError(`unexpected argument ${positionals[0]}`);
  return {};
}

async function main(): Promise<void> {
  if (commandLine("cluster", parseClusterArgs, USAGE) === null) return;
  const cluster = await spawnCluster({
    dir: join(ROOT, "data"),
    port: 3000,
    volumePorts: [3001, 3002, 3003],
    echo: true,
  });
  console.error(
    `cluster: index on ${cluster.url}, volumes on :3001 :3002 :3003, data in ./data\n` +
      `cluster: try  curl -L -X PUT -d bigswag localhost:3000/wehave; ` +
      `curl -L localhost:3000/wehave   (Ctrl-C stops everything)`,
  );
  let stopping = false;
  const stop = async () => {
    stopping = true;
    await cluster.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const exited = await Promise.race([cluster.index, ...cluster.volumes].map(async (p) => {
    await p.wait();
    return p;
  }));
  if (stopping) return;
  console.error(`cluster: ${exited.name} exited; stopping the rest`);
  await cluster.stop();
  Deno.exit(1);
}

if (import.meta.main) await main();
