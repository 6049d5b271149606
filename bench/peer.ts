// The bench's second server: one the bench starts itself on the same volumes as its own index, so
// that both are measured side by side in one run. Either a minikeyvalue binary (`--peer PATH`;
// geohot/minikeyvalue, Go; bench/README.md says how to build one), or a second mkv.ts index of the
// same code with some flags of its own (`--vs-flags "--metrics=false"`: what those flags cost).
// Each gets its own database directory and free port, and the same replicas and subvolumes as the
// bench's index. minikeyvalue's stderr (it logs every request) goes to a file, never to the bench's
// output; the second index's last lines are kept by dev/cluster.ts and shown if it fails to start.

import { freePort, spawnIndex } from "../dev/cluster.ts";
import { FlagError, parseFlags } from "../lib/flags.ts";
import { INDEX_FLAGS } from "../lib/config.ts";
import { descendants } from "./proc.ts";

/** How long the peer may take to answer on its port. */
const PEER_START_TIMEOUT_MS = 20_000;
/** How long the peer may take to stop on SIGTERM before it is killed. */
const PEER_STOP_TIMEOUT_MS = 10_000;
/** One readiness probe's bound. */
const PROBE_TIMEOUT_MS = 1_000;
/** Characters of the peer's log quoted when it fails to start. */
const LOG_QUOTED_CHARS = 2_000;
/** Index flags the bench sets itself, the same for both of its indexes: not for --vs-flags. */
const BENCH_SET_INDEX_FLAGS = ["port", "db", "volumes", "replicas", "subvolumes"];

/** Which second server: a minikeyvalue binary, or mkv.ts's own index with extra flags. */
export type PeerKind =
  | { kind: "minikeyvalue"; binary: string }
  | { kind: "mkv"; flags: string[] };

export interface PeerOptions {
  peer: PeerKind;
  /** `host:port` of each volume, as the index was given them. */
  volumes: string[];
  replicas: number;
  subvolumes: number;
  /** Its database directory, LevelDB's or the index's `--db` (created if missing). */
  dbDir: string;
  /** Where minikeyvalue's stderr goes. */
  logFile: string;
}

/** A running peer; stopped on dispose. */
export interface Peer extends AsyncDisposable {
  name: string;
  /** Its main process: minikeyvalue, or the index's Deno process. */
  pid: number;
  /** Every process whose CPU time is its own: minikeyvalue; the index and its nginx. */
  pids: number[];
  /** Whether `pid` is a Deno index, whose JavaScript thread is worth a figure of its own. */
  jsThread: boolean;
  port: number;
  url: string;
  /** Where its log is, for the bench's own log. */
  logNote: string;
}

// ---- pure ----

/**
 * minikeyvalue's command line (its flags are Go's: one dash, then the command, `server` unless
 * told; without a port for a command that serves nothing, `rebuild`).
 */
export function peerArgs(
  options: {
    port?: number;
    volumes: string[];
    replicas: number;
    subvolumes: number;
    dbDir: string;
    command?: "server" | "rebuild";
  },
): string[] {
  return [
    ...(options.port === undefined ? [] : ["-port", String(options.port)]),
    "-volumes",
    options.volumes.join(","),
    "-replicas",
    String(options.replicas),
    "-subvolumes",
    String(options.subvolumes),
    "-db",
    options.dbDir,
    options.command ?? "server",
  ];
}

/** The flags of a bench index after `--port`, `--db` and `--volumes`: the same for both. */
export function benchIndexArgs(
  options: { replicas: number; subvolumes: number; flags: string[] },
): string[] {
  return [
    "--replicas",
    String(options.replicas),
    "--subvolumes",
    String(options.subvolumes),
    ...options.flags,
  ];
}

/**
 * The flags of `--vs-flags` (`"--metrics=false"`), split on white space and checked against the
 * index's own flags, so that a typo fails before anything starts. Refuses a command, and the flags
 * the bench sets itself for both indexes (a second index on other volumes, or with other replicas,
 * would measure something else than the flags).
 */
export function parseIndexFlags(text: string): string[] {
  const flags = text.split(/\s+/).filter((word) => word !== "");
  if (flags.length === 0) throw new FlagError("--vs-flags: no flags given");
  for (const word of flags) {
    if (!word.startsWith("-")) continue;
    const name = word.replace(/^--?/, "").split("=")[0];
    if (BENCH_SET_INDEX_FLAGS.includes(name)) {
      throw new FlagError(`--vs-flags: ${word}: the bench sets -${name} itself, for both indexes`);
    }
  }
  let parsed;
  try {
    parsed = parseFlags(flags, INDEX_FLAGS);
  } catch (err) {
    if (err instanceof FlagError) throw new FlagError(`--vs-flags: ${err.message}`);
    throw err;
  }
  if (parsed.help) throw new FlagError("--vs-flags: -help is not a flag to measure");
  if (parsed.positionals.length > 0) {
    throw new FlagError(
      `--vs-flags: unexpected argument ${JSON.stringify(parsed.positionals[0])} (flags only)`,
    );
  }
  return flags;
}

/** The name a peer goes by in the table: `minikeyvalue`, or `mkv.ts --metrics=false`. */
export function peerName(peer: PeerKind): string {
  return peer.kind === "minikeyvalue" ? "minikeyvalue" : `mkv.ts ${peer.flags.join(" ")}`;
}

// ---- I/O ----

async function logTail(logFile: string): Promise<string> {
  const text = await Deno.readTextFile(logFile).catch(() => "");
  return text.slice(-LOG_QUOTED_CHARS);
}

/** Starts minikeyvalue on a free port; resolves once it answers a GET of a missing key with 404. */
async function startMinikeyvalue(options: PeerOptions, binary: string): Promise<Peer> {
  const port = freePort();
  await Deno.mkdir(options.dbDir, { recursive: true });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(binary, {
      args: peerArgs({ ...options, port }),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) {
      throw new Error(`peer ${binary}: cannot run it: ${err.message}`);
    }
    throw err;
  }
  const log = await Deno.open(options.logFile, { write: true, create: true, truncate: true });
  const logged = child.stderr.pipeTo(log.writable).catch(() => {});
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, PEER_STOP_TIMEOUT_MS);
      await status;
      clearTimeout(timer);
    }
    await logged;
  };
  const url = `http://localhost:${port}`;
  try {
    const deadline = Date.now() + PEER_START_TIMEOUT_MS;
    while (true) {
      if (exited) {
        await logged;
        throw new Error(`peer :${port} exited while starting:\n${await logTail(options.logFile)}`);
      }
      const answer = await fetch(`${url}/bench-peer-probe`, {
        redirect: "manual",
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      }).then(async (response) => {
        await response.body?.cancel();
        return response.status;
      }, (err: Error) => err.message);
      if (answer === 404) break;
      if (Date.now() > deadline) throw new Error(`peer :${port} did not answer: ${answer}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name: peerName({ kind: "minikeyvalue", binary }),
    pid: child.pid,
    pids: [child.pid],
    jsThread: false,
    port,
    url,
    logNote: options.logFile,
    [Symbol.asyncDispose]: stop,
  };
}

/** Starts a second index of this checkout on a free port, as dev/cluster.ts starts the first. */
async function startIndexPeer(options: PeerOptions, flags: string[]): Promise<Peer> {
  const port = freePort();
  const index = await spawnIndex({
    port,
    db: options.dbDir,
    volumes: options.volumes,
    args: benchIndexArgs({ ...options, flags }),
  });
  try {
    return {
      name: peerName({ kind: "mkv", flags }),
      pid: index.pid,
      // Its nginx has started once it serves; the index spawns no process later.
      pids: [index.pid, ...await descendants(index.pid)],
      jsThread: true,
      port,
      url: index.url,
      logNote: "kept in memory, printed if it fails",
      [Symbol.asyncDispose]: () => index.stop(),
    };
  } catch (err) {
    await index.stop();
    throw err;
  }
}

/** Starts the peer on the volumes; resolves once it answers. */
export async function startPeer(options: PeerOptions): Promise<Peer> {
  return options.peer.kind === "minikeyvalue"
    ? await startMinikeyvalue(options, options.peer.binary)
    : await startIndexPeer(options, options.peer.flags);
}
