// The account nginx's workers run as and what they may touch: the account itself (when root starts
// a program, never root and never a shared one), a volume's directory readied for them, the
// index's socket shared with them alone, and the access log made private before nginx opens it.
// Each step as root works without following a link (nofollow.ts); see docs/security.md, Local
// users and root.

import { VOLUME_OWN_DIR } from "../volumes/mod.ts";
import { firstLine } from "../errors.ts";
import {
  missingAccountMessage,
  parseAccount,
  VOLUME_DIR_MODE,
  volumeDirProblem,
  type WorkerAccount,
} from "./_account.ts";
import { createFileNoFollow, ensureDirNoFollow } from "./nofollow.ts";
import { NginxError } from "./runtime.ts";
import { VOLUME_SPOOL } from "./volumeconf.ts";

export type { WorkerAccount };

/** The volume's own directory: root's (or ours), readable by the workers' group. */
const VOLUME_OWN_DIR_MODE = 0o750;

/** Whether we run as root, when nginx's master does too and its workers need an account. */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/**
 * The line of `key` (a name, or for groups a gid) in the system's `database` (passwd, group) as
 * getent finds it (NSS too), or in /etc's file where getent is missing; "" if there is none.
 */
async function getent(database: "passwd" | "group", key: string): Promise<string> {
  try {
    const { code, stdout } = await new Deno.Command("getent", {
      args: [database, key],
      stdout: "piped",
      stderr: "null",
    }).output();
    return code === 0 ? new TextDecoder().decode(stdout) : "";
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const field = database === "group" && /^\d+$/.test(key) ? 2 : 0;
  const lines = (await Deno.readTextFile(`/etc/${database}`)).split("\n");
  return lines.find((line) => line.split(":")[field] === key) ?? "";
}

/**
 * The account nginx's workers run as: `name`'s when we are root (fails with the command that
 * makes it if it does not exist; root itself is refused), null otherwise, when the workers run
 * as we do and `name` does not matter.
 */
export async function workerAccount(name: string): Promise<WorkerAccount | null> {
  if (!isRoot()) return null;
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(name)) throw new NginxError(`bad user name ${name}`);
  const passwd = await getent("passwd", name);
  const gid = passwd.split(":")[3] ?? "";
  const account = passwd === "" ? null : parseAccount(passwd, await getent("group", gid));
  if (account === null) throw new NginxError(missingAccountMessage(name));
  if (account.uid === 0 || account.gid === 0) {
    throw new NginxError(`user ${name} is root's uid or gid: nginx's workers must not be root`);
  }
  return account;
}

/**
 * Readies a volume's directory for nginx's workers, failing with a one-line reason: `dir`
 * (made if missing), the volume's own directory in it and nginx's upload spool. As root, with
 * the workers' `account`: `dir` is root's, group the account's, mode 1770 (see volumeDirProblem;
 * an existing one is checked, never changed), the own directory root's and the spool the
 * workers', each made and changed without following a link. Otherwise all of it is ours.
 */
export async function prepareVolumeDir(dir: string, account: WorkerAccount | null): Promise<void> {
  let info = await Deno.stat(dir).catch((err) => {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  });
  if (info === null) {
    // Parents as mkdir -p makes them; the directory itself without following a link.
    await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")) || "/", { recursive: true });
    await ensureDirNoFollow(
      dir,
      account ? { mode: VOLUME_DIR_MODE, uid: 0, gid: account.gid } : { mode: 0o700 },
      Deno.uid()!,
    );
    info = await Deno.stat(dir);
  }
  if (!info.isDirectory) throw new NginxError(`${dir} is not a directory`);
  if (account) {
    const problem = volumeDirProblem(dir, info, account);
    if (problem !== null) throw new NginxError(problem);
    await checkReachable(dir, account);
  } else {
    await Deno.makeTempFile({ dir, prefix: ".mkv-write-check-" }).then(Deno.remove).catch(() => {
      throw new NginxError(`directory ${dir} is not writable`);
    });
  }
  const own = `${dir}${VOLUME_OWN_DIR}`;
  const uid = Deno.uid()!;
  await ensureDirNoFollow(own, {
    mode: VOLUME_OWN_DIR_MODE,
    ...(account && { uid: 0, gid: account.gid }),
  }, uid);
  // The own directory is root's and cannot be renamed (sticky): nothing below it can be planted.
  await ensureDirNoFollow(`${dir}${VOLUME_SPOOL}`, {
    mode: 0o700,
    ...(account && { uid: account.uid, gid: account.gid }),
  }, account?.uid ?? uid);
}

/** Fails with a one-line reason unless the workers can reach `dir` through its parents. */
async function checkReachable(dir: string, account: WorkerAccount): Promise<void> {
  let parent = await Deno.realPath(dir);
  while (parent !== "/") {
    parent = parent.slice(0, parent.lastIndexOf("/")) || "/";
    const info = await Deno.stat(parent);
    const mode = info.mode ?? 0;
    const searchable = (mode & 0o001) !== 0 || (info.gid === account.gid && (mode & 0o010) !== 0);
    if (!searchable) {
      throw new NginxError(
        `directory ${dir} cannot be reached by nginx's workers (user ${account.name}): ` +
          `${parent} is not searchable by others; run: chmod o+x ${parent}`,
      );
    }
  }
}

/**
 * Lets nginx's workers, and no one else but root, connect to the unix socket `socketPath` in the
 * directory `dir` (ours, mode 0700, as Deno.makeTempDir makes it, while the socket is made).
 * Connecting takes write permission on the socket. As root, the socket becomes the workers'
 * `account`'s, mode 0600, and the directory 0711, which lets others pass through but not list or
 * change it, so that the workers cannot replace the socket either. Otherwise the workers run as
 * we do, and the socket stays ours, 0600 in a 0700 directory.
 */
export async function shareSocketWithWorkers(
  dir: string,
  socketPath: string,
  account: WorkerAccount | null,
): Promise<void> {
  await Deno.chmod(socketPath, 0o600);
  if (account === null) return;
  await Deno.chown(socketPath, account.uid, account.gid);
  await Deno.chmod(dir, 0o711);
}

/**
 * Creates the access log file `path` with mode 0600 if it is missing, before nginx opens it (its
 * master, as root when we are root, would create it 0644: a key is in every line). An existing
 * file is appended to and keeps its mode. Fails with a one-line reason if it cannot be opened.
 */
export async function prepareAccessLog(path: string): Promise<void> {
  try {
    const info = await Deno.lstat(path).catch((err) => {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    });
    if (info !== null && !info.isFile) throw new Error("not a regular file");
    // A link put in its place after that look is not followed either.
    await createFileNoFollow(path, 0o600);
  } catch (err) {
    throw new NginxError(`cannot open access log ${path}: ${firstLine(err)}`);
  }
}
