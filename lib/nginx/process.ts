// The supervisor: nginx run as a child, safely. The child runs in the foreground with its own
// prefix directory, pid file and temp paths, logs to our stderr (secrets redacted), is stopped
// with us, and is restarted if it dies on its own. The port's lock keeps a second program off the
// port; the runtime files and the leftover of a crashed run are runtime.ts's.

import { firstLine } from "../errors.ts";
import { redactSecrets } from "./accesslog.ts";
import { isRoot, prepareAccessLog, type WorkerAccount } from "./account.ts";
import { renderConfig } from "./conf.ts";
import {
  ensureRuntimeDir,
  lockFileFor,
  NginxError,
  pidFileFor,
  removeListedFiles,
  stopLeftover,
  tempListFor,
} from "./runtime.ts";
import { checkTlsFiles, type TlsFiles } from "./tls.ts";

/** How long nginx may take to answer on its port after starting. */
const START_TIMEOUT_MS = 10_000;
/** How long a stopping nginx may take before it is killed. */
const STOP_TIMEOUT_MS = 5_000;
/** A child that dies this many times within RESTART_WINDOW_MS is given up. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** Our config files and nginx's prefix directories start with this. */
const CONF_PREFIX = "mkv-nginx-";
/** Lines of nginx's stderr kept to explain a failed start. */
const STDERR_LINES_KEPT = 20;

/** What Nginx.start runs: the config's parts (conf.ts) and how the child is looked after. */
export interface NginxOptions {
  /** Names the program in log lines, e.g. `volume :3001`. */
  name: string;
  port: number;
  /**
   * The account of nginx's workers (workerAccount): required when we are root, so that they never
   * run as nginx's default, the shared `nobody`; null otherwise.
   */
  user: WorkerAccount | null;
  /** Serve HTTPS; the files are checked (the key must be private) before nginx starts. */
  tls?: TlsFiles;
  workerProcesses?: number;
  httpBlocks?: string;
  locations: string;
  /** A second server on another port (the index's --s3-port); see conf.ts, ConfigOptions. */
  second?: { port: number; locations: string };
  /** Called once nginx died on its own too often to restart; the program should exit non-zero. */
  onGiveUp?: (reason: string) => void;
  /** The access log (conf.ts, ConfigOptions.accessLog); a file is made mode 0600 if missing. */
  accessLog?: string;
  /**
   * More temp paths of the program (`$TMPDIR/mkv-...`), removed with nginx's own, and by the
   * next run on the port if this one crashes.
   */
  tempPaths?: string[];
}

/**
 * Stops a child process with `signal`, then SIGKILL if it has not exited within `timeoutMs`;
 * resolves once it has exited. A child that exited already is fine.
 */
export async function stopChild(
  child: Deno.ChildProcess,
  options: { signal: Deno.Signal; timeoutMs: number },
): Promise<void> {
  try {
    child.kill(options.signal);
  } catch {
    // Exited already.
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited in the meantime.
    }
  }, options.timeoutMs);
  await child.status;
  clearTimeout(timer);
}

/** Takes the lock of `port`, or fails with a one-line reason if a live program of ours has it. */
async function lockPort(port: number): Promise<Deno.FsFile> {
  const file = await Deno.open(lockFileFor(port), { create: true, write: true });
  if (!await file.tryLock(true)) {
    file.close();
    throw new NginxError(`port ${port} is busy: another mkv.ts program runs nginx on it`);
  }
  return file;
}

/** Whether the machine can listen on IPv6 loopback. */
function hasIpv6(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** Fails with a one-line reason if something already listens on `port`. */
export function checkPortFree(port: number): void {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) throw new NginxError(`port ${port} is busy`);
    throw err;
  }
}

async function nginxAvailable(): Promise<void> {
  try {
    await new Deno.Command("nginx", { args: ["-v"], stdout: "null", stderr: "null" }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new NginxError("nginx not found on PATH: install it with `apt-get install -y nginx`");
    }
    throw err;
  }
}

/** Whether something accepts connections on `port` of this machine. */
export async function portAnswers(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** A running nginx child, restarted if it dies on its own, stopped by `stop()`. */
export class Nginx {
  #options: NginxOptions;
  #child: Deno.ChildProcess | null = null;
  #prefixDir = "";
  #confFile = "";
  #stopping = false;
  #restarts: number[] = [];
  #stderrTail: string[] = [];
  #supervised: Promise<void> = Promise.resolve();
  #portLock: Deno.FsFile | null = null;

  private constructor(options: NginxOptions) {
    this.#options = options;
  }

  /** Starts nginx and resolves once its port answers; rejects with a one-line NginxError. */
  static async start(options: NginxOptions): Promise<Nginx> {
    await nginxAvailable();
    if (isRoot() && options.user === null) {
      throw new NginxError(`${options.name}: root runs nginx only with an account for its workers`);
    }
    if (options.tls) await checkTlsFiles(options.tls);
    await ensureRuntimeDir();
    if (options.accessLog !== undefined && options.accessLog !== "stderr") {
      await prepareAccessLog(options.accessLog);
    }
    const nginx = new Nginx(options);
    nginx.#portLock = await lockPort(options.port);
    try {
      await stopLeftover(pidFileFor(options.port), { portLocked: true });
      checkPortFree(options.port);
      if (options.second !== undefined) checkPortFree(options.second.port);
    } catch (err) {
      await Deno.remove(lockFileFor(options.port)).catch(() => {});
      nginx.#portLock.close();
      throw err;
    }
    nginx.#prefixDir = await Deno.makeTempDir({ prefix: CONF_PREFIX });
    await Deno.chmod(nginx.#prefixDir, 0o755);
    nginx.#confFile = await Deno.makeTempFile({ prefix: CONF_PREFIX, suffix: ".conf" });
    // Listed where a run after a crash of this one looks, so that it can remove them.
    await Deno.writeTextFile(
      tempListFor(pidFileFor(options.port)),
      JSON.stringify([nginx.#confFile, nginx.#prefixDir, ...(options.tempPaths ?? [])]),
    );
    const config = renderConfig({
      prefixDir: nginx.#prefixDir,
      ...(options.user && { user: options.user }),
      pidFile: pidFileFor(options.port),
      port: options.port,
      ipv6: hasIpv6(),
      workerProcesses: options.workerProcesses ?? 1,
      httpBlocks: options.httpBlocks,
      locations: options.locations,
      second: options.second,
      tls: options.tls,
      accessLog: options.accessLog,
    });
    // makeTempFile made it 0600: only we (and nginx's master, as us or root) read it.
    await Deno.writeTextFile(nginx.#confFile, config);
    try {
      await nginx.#spawn();
    } catch (err) {
      await nginx.#removeTempFiles();
      throw err;
    }
    return nginx;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  async #spawn(): Promise<void> {
    const child = new Deno.Command("nginx", {
      args: ["-e", "stderr", "-p", this.#prefixDir, "-c", this.#confFile],
      stdin: "null",
      stdout: "inherit",
      stderr: "piped",
      // Its own process group: a Ctrl-C on the terminal reaches us, and we stop nginx, rather
      // than nginx dying first and looking like a crash.
      detached: true,
    }).spawn();
    this.#child = child;
    const stderrDone = this.#pumpStderr(child.stderr);
    let exited = false;
    const status = child.status.then(async (s) => {
      exited = true;
      await stderrDone;
      return s;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    // Ready once every port it serves answers: nginx that cannot bind one exits, and that is
    // a failure to start, never a start that dies later.
    const ports = [
      this.#options.port,
      ...(this.#options.second ? [this.#options.second.port] : []),
    ];
    const answering = async () => (await Promise.all(ports.map(portAnswers))).every(Boolean);
    while (!exited && !await answering()) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await status;
        throw new NginxError(
          `${this.#options.name}: nginx did not answer within ${START_TIMEOUT_MS / 1000}s`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (exited) {
      const s = await status;
      const last = this.#stderrTail.at(-1) ?? `exit code ${s.code}`;
      throw new NginxError(`${this.#options.name}: nginx failed to start: ${last}`);
    }
    this.#supervised = status.then((s) => this.#onExit(s));
  }

  async #pumpStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const raw of lines) {
        // nginx's error lines name the request (`request: "PUT /x?md5=..."`): a volume's
        // signature or a presigned URL's must not reach the log.
        const line = redactSecrets(raw);
        console.error(`${this.#options.name}: ${line}`);
        // An access log line (to stderr) is no reason for a failure.
        if (line.startsWith("{")) continue;
        this.#stderrTail.push(line.replace(/^.*?\[\w+\] \d+#\d+: /, ""));
        if (this.#stderrTail.length > STDERR_LINES_KEPT) this.#stderrTail.shift();
      }
    }
  }

  async #onExit(status: Deno.CommandStatus): Promise<void> {
    if (this.#stopping) return;
    const now = Date.now();
    this.#restarts = this.#restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    const reason = `nginx exited on its own (code ${status.code}, signal ${status.signal})`;
    if (this.#restarts.length >= MAX_RESTARTS) {
      await this.#removeTempFiles();
      this.#options.onGiveUp?.(`${reason} ${MAX_RESTARTS} times within a minute`);
      return;
    }
    this.#restarts.push(now);
    console.error(`${this.#options.name}: ${reason}; restarting it`);
    try {
      await this.#spawn();
    } catch (err) {
      await this.#removeTempFiles();
      this.#options.onGiveUp?.(firstLine(err));
    }
  }

  async #removeTempFiles(): Promise<void> {
    await removeListedFiles(tempListFor(pidFileFor(this.#options.port)));
    // Removed while still held, so that no one takes a lock on a file that is going away.
    if (this.#portLock) await Deno.remove(lockFileFor(this.#options.port)).catch(() => {});
    this.#portLock?.close();
    this.#portLock = null;
  }

  /** Stops nginx (fast shutdown, then kill) and removes its temp files. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopping) {
      await this.#supervised;
      return;
    }
    this.#stopping = true;
    if (this.#child) {
      await stopChild(this.#child, { signal: "SIGTERM", timeoutMs: STOP_TIMEOUT_MS });
    }
    await this.#supervised;
    await this.#removeTempFiles();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Runs `stop` on SIGINT or SIGTERM, then exits 0; the program's way to take nginx down with it. */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = async () => {
    if (stopping) return;
    stopping = true;
    await stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", handler);
  Deno.addSignalListener("SIGTERM", handler);
}
