// The runtime files of the nginx a program runs, and what a crashed run left behind. Each nginx
// writes its pid to `nginx-PORT.pid` in the runtime directory, beside the port's lock file (held by
// the program for its whole life) and the list of its temp files (`nginx-PORT.files`). A program
// started after a crash finds them there: it stops the leftover nginx, if it is really ours, and
// removes the temp files listed. process.ts uses this when it starts nginx; the local-cluster
// harness (dev/cluster.ts) when it stops a process it killed.

import { firstLine } from "../errors.ts";

/** How long a leftover nginx may take to stop on SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 5_000;

/**
 * The account nginx's workers run as when root starts a program (`--user`): a system account of
 * their own, never a shared one such as `nobody`, whose other processes could then change every
 * value, read the workers' memory (the volume secret, TLS keys) and talk to the index's socket.
 */
export const DEFAULT_WORKER_USER = "mkv";

/**
 * A failure to run nginx; the message is one line, fit to print before exiting. Defined here, where
 * the first such failures arise, and exported by mod.ts, where the programs take it from.
 */
export class NginxError extends Error {
  override name = "NginxError";
}

/** Root's runtime directory: /run is root's alone, so no one else can make it before us. */
const ROOT_RUNTIME_DIR = "/run/mkv.ts";

/**
 * The directory of our runtime files (pid, lock and temp-list files per port): systemd's
 * `$RUNTIME_DIRECTORY` (RuntimeDirectory=) if set, else `$XDG_RUNTIME_DIR/mkv.ts`, else for root
 * `/run/mkv.ts`, else `$TMPDIR/mkv.ts-UID`. Only we may write it, since a file planted there would
 * make us signal the process it names or remove what it lists; `ensureRuntimeDir` makes it and
 * checks that. In a shared /tmp another user can make `mkv.ts-UID` first, which stops the start
 * with the command that fixes it; root's never depends on /tmp.
 */
export function runtimeDir(): string {
  // systemd lists several directories separated by colons when the unit names several.
  const systemd = Deno.env.get("RUNTIME_DIRECTORY")?.split(":")[0].replace(/\/+$/, "");
  if (systemd?.startsWith("/")) return systemd;
  const xdg = Deno.env.get("XDG_RUNTIME_DIR")?.replace(/\/+$/, "");
  // The XDG spec says to ignore a relative path.
  if (xdg?.startsWith("/")) return `${xdg}/mkv.ts`;
  if (Deno.uid() === 0 && isDirectory("/run")) return ROOT_RUNTIME_DIR;
  return `${tempDir()}/mkv.ts-${Deno.uid()}`;
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Creates `dir` (mode 0700) if it is missing, and fails with a one-line NginxError, naming the
 * command that fixes it, unless it is a real directory (not a symbolic link) that we own and that
 * neither its group nor others can write.
 */
export async function ensureRuntimeDir(dir: string = runtimeDir()): Promise<string> {
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) {
      throw new NginxError(`cannot create runtime directory ${dir}: ${firstLine(err)}`);
    }
  }
  await checkPrivateDir(dir);
  return dir;
}

/** Fails with a one-line NginxError unless `dir` is a directory that only we can write. */
async function checkPrivateDir(dir: string): Promise<void> {
  const info = await Deno.lstat(dir);
  const what = `runtime directory ${dir}`;
  if (info.isSymlink) throw new NginxError(`${what} is a symbolic link; run: rm ${dir}`);
  if (!info.isDirectory) throw new NginxError(`${what} is not a directory; run: rm ${dir}`);
  const uid = Deno.uid();
  if (info.uid !== uid) {
    throw new NginxError(
      `${what} is owned by uid ${info.uid}, not by us (uid ${uid}); ` +
        `run: sudo rm -r ${dir}`,
    );
  }
  const mode = info.mode ?? 0;
  if ((mode & 0o022) !== 0) {
    const by = (mode & 0o002) !== 0 ? "others" : "its group";
    throw new NginxError(`${what} is writable by ${by}; run: chmod 700 ${dir}`);
  }
}

/** The pid file nginx on `port` writes; fixed per port so that a leftover can be found. */
export function pidFileFor(port: number): string {
  return `${runtimeDir()}/nginx-${port}.pid`;
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

/** Whether a process is alive (signal 0 is not offered by Deno.kill; SIGCONT is harmless). */
export function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/** Whether `pid` is gone within `timeoutMs`. */
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
 * An nginx that is not ours (another user's, or not running a config listed beside the pid file)
 * is left alone, and so is one whose program is alive (it holds the port's lock) unless the
 * caller holds that lock. The pid file's directory must be one only we can write (NginxError).
 */
export async function stopLeftover(
  pidFile: string,
  options: { portLocked?: boolean } = {},
): Promise<void> {
  if (!options.portLocked) {
    if (!await exists(pidFile) && !await exists(tempListFor(pidFile))) return;
    await checkPrivateDir(dirname(pidFile));
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
  const listed = await readTempList(tempListFor(pidFile));
  await killLeftover(pidFile, listed.filter((path) => path.endsWith(".conf")));
  await removeListedFiles(tempListFor(pidFile), listed);
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

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** The file that lists the temp files and directories of the nginx writing `pidFile`. */
export function tempListFor(pidFile: string): string {
  return pidFile.replace(/\.pid$/, ".files");
}

/** The paths a temp list names that are temp paths of ours (`$TMPDIR/mkv-...`); [] if none. */
async function readTempList(listFile: string): Promise<string[]> {
  let paths: unknown;
  try {
    paths = JSON.parse(await Deno.readTextFile(listFile));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof SyntaxError) return [];
    throw err;
  }
  const ours = new RegExp(`^${tempDir().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/mkv-[^/]+$`);
  return Array.isArray(paths) ? paths.filter((p) => typeof p === "string" && ours.test(p)) : [];
}

/**
 * Whether `pid` is an nginx master of ours running one of `configs`: it runs as our user, and
 * its command line is nginx's with `-c CONFIG` last, as we start it. A pid alone proves nothing:
 * the process may have died and its pid gone to another program since.
 */
async function isOurNginx(pid: number, configs: string[]): Promise<boolean> {
  let status: string;
  let cmdline: string;
  try {
    status = await Deno.readTextFile(`/proc/${pid}/status`);
    cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
  } catch {
    return false; // Gone: the pid file is stale.
  }
  if (Number(status.match(/^Uid:\s+(\d+)/m)?.[1]) !== Deno.uid()) return false;
  // Once running, nginx's master replaces its arguments with one line, its title:
  // `nginx: master process /usr/sbin/nginx -e stderr -p DIR -c CONFIG`. Before that they are
  // separated by NULs.
  const line = cmdline.replace(/\0+$/, "").replaceAll("\0", " ");
  const program = line.startsWith("nginx: master process ")
    ? "nginx"
    : line.split(" ")[0].split("/").at(-1);
  return program === "nginx" && configs.some((config) => line.endsWith(` -c ${config}`));
}

/** Stops the nginx that `pidFile` names if it is ours, running one of `configs`; removes the file. */
async function killLeftover(pidFile: string, configs: string[]): Promise<void> {
  let text: string;
  try {
    text = (await Deno.readTextFile(pidFile)).trim();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  const pid = Number(text);
  if (/^\d+$/.test(text) && pid > 1 && await isOurNginx(pid, configs)) {
    console.error(`nginx: stopping leftover nginx (pid ${pid}) of an earlier run`);
    try {
      Deno.kill(pid, "SIGTERM");
      if (!await waitGone(pid, STOP_TIMEOUT_MS)) Deno.kill(pid, "SIGKILL");
    } catch (err) {
      // It exited on its own meanwhile.
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    await waitGone(pid, STOP_TIMEOUT_MS);
  }
  await Deno.remove(pidFile).catch(() => {});
}

/** Removes the temp paths of ours a list named (see readTempList), then the list. */
export async function removeListedFiles(listFile: string, listed?: string[]): Promise<void> {
  for (const path of listed ?? await readTempList(listFile)) {
    await Deno.remove(path, { recursive: true }).catch(() => {});
  }
  await Deno.remove(listFile).catch(() => {});
}
