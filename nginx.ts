// What the volume and the index share: rendering an nginx config from options (pure, golden-tested
// in tests/nginx_test.ts) and running nginx as a child safely. The child runs in the foreground
// with its own prefix directory, pid file and temp paths, logs to our stderr, is stopped with us,
// is restarted if it dies on its own, and is replaced if a crashed run of ours left it behind.
//
// Not an entry point: volume.ts and index.ts import it.

/** How long nginx may take to answer on its port after starting. */
const START_TIMEOUT_MS = 10_000;
/** How long a stopping nginx may take before it is killed. */
const STOP_TIMEOUT_MS = 5_000;
/** A child that dies this many times within RESTART_WINDOW_MS is given up. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** The user nginx's workers run as when root starts nginx; directories it writes must allow it. */
const WORKER_USER = "nobody";
const WORKER_UID = 65534;
/** Our config files start with this, which is how a leftover nginx of ours is recognised. */
const CONF_PREFIX = "mkv-nginx-";
/** Lines of nginx's stderr kept to explain a failed start. */
const STDERR_LINES_KEPT = 20;

/** A failure to run nginx; the message is one line, fit to print before exiting. */
export class NginxError extends Error {
  override name = "NginxError";
}

export interface ConfigOptions {
  /** nginx's prefix directory: pid file and temp paths go here. */
  prefixDir: string;
  /** The pid file; derived from the port so that a leftover of a crashed run can be found. */
  pidFile: string;
  port: number;
  /** Also listen on [::] (when the machine has IPv6), so `localhost` works either way. */
  ipv6: boolean;
  workerProcesses: number;
  /** The `location` blocks of the server and any http-level blocks before it. */
  httpBlocks?: string;
  locations: string;
}

export interface VolumeLocationOptions {
  dir: string;
}

export interface ProxyOptions {
  /** Unix socket of the Deno server behind nginx. */
  socketPath: string;
  /** Keep-alive connections nginx keeps to the Deno server. */
  keepalive: number;
}

function quote(text: string): string {
  return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** Renders a whole nginx config: foreground, logs to stderr, temp paths inside the prefix. */
export function renderConfig(options: ConfigOptions): string {
  const temp = (name: string) => quote(`${options.prefixDir}/${name}`);
  const listen = [`    listen ${options.port};`];
  if (options.ipv6) listen.push(`    listen [::]:${options.port};`);
  return [
    `# mkv.ts: rendered by nginx.ts; lives only as long as the program that wrote it.`,
    `daemon off;`,
    `master_process on;`,
    `worker_processes ${options.workerProcesses};`,
    `pid ${quote(options.pidFile)};`,
    `error_log stderr warn;`,
    `events {`,
    `  worker_connections 4096;`,
    `}`,
    `http {`,
    `  access_log off;`,
    `  server_tokens off;`,
    `  sendfile on;`,
    `  tcp_nopush on;`,
    `  keepalive_requests 1000000;`,
    `  merge_slashes off;`,
    `  large_client_header_buffers 4 16k;`,
    `  client_body_temp_path ${temp("client_body")};`,
    `  proxy_temp_path ${temp("proxy")};`,
    `  fastcgi_temp_path ${temp("fastcgi")};`,
    `  uwsgi_temp_path ${temp("uwsgi")};`,
    `  scgi_temp_path ${temp("scgi")};`,
    `  types {`,
    `    application/octet-stream bin;`,
    `  }`,
    `  default_type application/octet-stream;`,
    ...(options.httpBlocks ? [options.httpBlocks] : []),
    `  server {`,
    ...listen,
    options.locations,
    `  }`,
    `}`,
    ``,
  ].join("\n");
}

/**
 * A WebDAV volume serving `dir`: GET/HEAD/PUT/DELETE, parent directories made on PUT, no body
 * limit, JSON directory listings, byte ranges. Uploads are spooled in `dir/.tmp` so that the
 * final rename stays on one filesystem and a partial upload never appears under its name.
 */
export function renderVolumeLocations(options: VolumeLocationOptions): string {
  const root = quote(options.dir);
  return [
    `    root ${root};`,
    `    location / {`,
    `      client_body_temp_path ${quote(`${options.dir}/.tmp`)};`,
    `      client_max_body_size 0;`,
    `      dav_methods PUT DELETE;`,
    `      dav_access user:rw group:r all:r;`,
    `      create_full_put_path on;`,
    `      autoindex on;`,
    `      autoindex_format json;`,
    `    }`,
    `    location ^~ /. {`,
    `      return 404;`,
    `    }`,
  ].join("\n");
}

/** The `upstream` block for the index's Deno server, to go in `httpBlocks`. */
export function renderProxyUpstream(options: ProxyOptions): string {
  return [
    `  upstream mkv_index {`,
    `    server ${quote(`unix:${options.socketPath}`)};`,
    `    keepalive ${options.keepalive};`,
    `    keepalive_requests 1000000;`,
    `  }`,
  ].join("\n");
}

/** Passes every request unchanged to the index's Deno server; request bodies stream through. */
export function renderProxyLocations(): string {
  return [
    `    client_max_body_size 0;`,
    // nginx answers a Transfer-Encoding it does not know with 501; it is the client's mistake.
    `    error_page 501 = @unsupported;`,
    `    location @unsupported {`,
    `      return 400 "unsupported Transfer-Encoding\\n";`,
    `    }`,
    `    location / {`,
    `      proxy_pass http://mkv_index;`,
    `      proxy_http_version 1.1;`,
    `      proxy_set_header Connection "";`,
    `      proxy_request_buffering off;`,
    // Bodies pass through in pieces of this size: larger pieces, fewer writes per byte.
    `      client_body_buffer_size 256k;`,
    // Answers are small (redirects, listings): buffered, nginx sends head and body in one
    // write, measurably cheaper per request; a large listing is passed on, never spooled to disk.
    `      proxy_buffering on;`,
    `      proxy_max_temp_file_size 0;`,
    `      proxy_redirect off;`,
    `      proxy_read_timeout 1h;`,
    `      proxy_send_timeout 1h;`,
    `    }`,
  ].join("\n");
}

/** The pid file nginx on `port` writes; fixed per port so that a leftover can be found. */
export function pidFileFor(port: number): string {
  return `${tempDir()}/mkv.ts-nginx-${port}.pid`;
}

/** Where temp files go, as Deno.makeTempFile puts them. */
function tempDir(): string {
  return (Deno.env.get("TMPDIR") ?? "/tmp").replace(/\/+$/, "") || "/";
}

/**
 * The lock file of `port`: the program that runs nginx on the port holds it for its whole life,
 * and the kernel lets go of it when that program dies, however it dies. So an nginx on the pid
 * file while the lock is free is a leftover; while it is held, it belongs to a live program.
 */
export function lockFileFor(port: number): string {
  return pidFileFor(port).replace(/\.pid$/, ".lock");
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

/** Whether nginx's workers would be able to create files in a directory with this stat. */
export function writableByWorkers(info: { uid: number | null; mode: number | null }): boolean {
  const mode = info.mode ?? 0;
  return (info.uid === WORKER_UID && (mode & 0o300) === 0o300) || (mode & 0o003) === 0o003;
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

/**
 * Fails with a one-line reason unless nginx's workers can write `dir` (and reach it). As root, a
 * directory that does not exist yet is created for them; an existing one is never changed.
 */
export async function prepareWritableDir(dir: string): Promise<void> {
  let created = false;
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new NginxError(`${dir} is not a directory`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await Deno.mkdir(dir, { recursive: true });
    created = true;
  }
  if (!isRoot()) {
    await Deno.makeTempFile({ dir, prefix: ".mkv-write-check-" }).then(Deno.remove).catch(() => {
      throw new NginxError(`directory ${dir} is not writable`);
    });
    return;
  }
  if (created) await Deno.chown(dir, WORKER_UID, WORKER_UID);
  const info = await Deno.stat(dir);
  if (!writableByWorkers(info)) {
    throw new NginxError(
      `directory ${dir} is not writable by nginx's workers (user ${WORKER_USER}); ` +
        `run: chown -R ${WORKER_USER}: ${dir}`,
    );
  }
  let parent = await Deno.realPath(dir);
  while (parent !== "/") {
    parent = parent.slice(0, parent.lastIndexOf("/")) || "/";
    const mode = (await Deno.stat(parent)).mode ?? 0;
    if ((mode & 0o001) === 0) {
      throw new NginxError(
        `directory ${dir} cannot be reached by nginx's workers (user ${WORKER_USER}): ` +
          `${parent} is not searchable by others; run: chmod o+x ${parent}`,
      );
    }
  }
}

/** Whether the machine can listen on IPv6 loopback. */
export function hasIpv6(): boolean {
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

/** A free TCP port on this machine, for tests and the private side of programs. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
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

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/**
 * Stops an nginx of ours that a crashed run left on `pidFile`, and removes that run's temp files.
 * An nginx that is not ours (its command line does not name one of our configs) is left alone,
 * and so is one whose program is alive (it holds the port's lock) unless the caller holds that
 * lock.
 */
export async function stopLeftover(
  pidFile: string,
  options: { portLocked?: boolean } = {},
): Promise<void> {
  if (!options.portLocked) {
    if (!await exists(pidFile) && !await exists(tempListFor(pidFile))) return;
    const lockFile = pidFile.replace(/\.pid$/, ".lock");
    const lock = await Deno.open(lockFile, { create: true, write: true });
    try {
      if (!await lock.tryLock(true)) return;
      await stopLeftover(pidFile, { portLocked: true });
      await Deno.remove(lockFile).catch(() => {});
    } finally {
      lock.close();
    }
    return;
  }
  await killLeftover(pidFile);
  await removeListedFiles(tempListFor(pidFile));
}

/** Whether a file or directory exists (a symbolic link counts, whatever it points to). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** The file that lists the temp files and directories of the nginx writing `pidFile`. */
function tempListFor(pidFile: string): string {
  return pidFile.replace(/\.pid$/, ".files");
}

async function killLeftover(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(pidFile)).trim());
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  let cmdline: string[] = [];
  try {
    cmdline = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0");
  } catch {
    // The process is gone: the pid file is stale.
  }
  const conf = cmdline[cmdline.indexOf("-c") + 1] ?? "";
  if (cmdline[0]?.includes("nginx") && conf.includes(CONF_PREFIX)) {
    console.error(`nginx: stopping leftover nginx (pid ${pid}) of an earlier run`);
    Deno.kill(pid, "SIGTERM");
    if (!await waitGone(pid, STOP_TIMEOUT_MS)) Deno.kill(pid, "SIGKILL");
    await waitGone(pid, STOP_TIMEOUT_MS);
  }
  await Deno.remove(pidFile).catch(() => {});
}

/** Removes what a list of temp paths names, if it is ours (`$TMPDIR/mkv-...`), then the list. */
async function removeListedFiles(listFile: string): Promise<void> {
  let paths: unknown;
  try {
    paths = JSON.parse(await Deno.readTextFile(listFile));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    if (!(err instanceof SyntaxError)) throw err;
  }
  const ours = new RegExp(`^${tempDir().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/mkv-[^/]+$`);
  for (const path of Array.isArray(paths) ? paths : []) {
    if (typeof path === "string" && ours.test(path)) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
  await Deno.remove(listFile).catch(() => {});
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

export interface NginxOptions {
  /** Names the program in log lines, e.g. `volume :3001`. */
  name: string;
  port: number;
  workerProcesses?: number;
  httpBlocks?: string;
  locations: string;
  /** Called once nginx died on its own too often to restart; the program should exit non-zero. */
  onGiveUp?: (reason: string) => void;
  /**
   * More temp paths of the program (`$TMPDIR/mkv-...`), removed with nginx's own, and by the
   * next run on the port if this one crashes.
   */
  tempPaths?: string[];
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
    const nginx = new Nginx(options);
    nginx.#portLock = await lockPort(options.port);
    try {
      await stopLeftover(pidFileFor(options.port), { portLocked: true });
      checkPortFree(options.port);
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
      pidFile: pidFileFor(options.port),
      port: options.port,
      ipv6: hasIpv6(),
      workerProcesses: options.workerProcesses ?? 1,
      httpBlocks: options.httpBlocks,
      locations: options.locations,
    });
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
    while (!exited && !await portAnswers(this.#options.port)) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await status;
        throw new NginxError(`${this.#options.name}: nginx did not answer within 10s`);
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
      for (const line of lines) {
        console.error(`${this.#options.name}: ${line}`);
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
      this.#options.onGiveUp?.(err instanceof Error ? err.message : String(err));
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
    const child = this.#child;
    if (child) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited in the meantime.
        }
      }, STOP_TIMEOUT_MS);
      await child.status;
      clearTimeout(timer);
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
