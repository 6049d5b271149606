// File steps that never follow a symbolic link, for a program run as root that works inside a
// directory another account can write (a volume's directory belongs to nginx's workers). A link
// planted there would make root write, chown or chmod whatever it points to; each step here opens
// the path itself with O_NOFOLLOW and changes it through that handle, so a link is refused with a
// one-line NginxError instead. Deno.open has no O_NOFOLLOW, hence Node's fs layer, loaded on first
// use (the index imports the volume modules for their parsers only).

import { NginxError } from "./runtime.ts";

type FileHandle = import("node:fs/promises").FileHandle;

/** Owner and mode a directory is given, through a handle of the directory itself. */
export interface DirOwnership {
  /** Permission bits, sticky bit included (`0o1770`). */
  mode: number;
  /** Owner and group; absent: left as they are (a program not run as root cannot chown). */
  uid?: number;
  gid?: number;
}

async function fs() {
  return await import("node:fs");
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/** The one line that refuses a planted link. Pure. */
function plantedLinkMessage(path: string): string {
  return `${path} is a symbolic link, which is never followed here (it may have been planted); ` +
    `run: rm ${path}`;
}

/**
 * Opens the directory `path` itself, read-only: a symbolic link in its place is refused with
 * plantedLinkMessage, anything else but a directory with a one-line NginxError.
 */
async function openDirNoFollow(path: string): Promise<FileHandle> {
  const { constants, promises } = await fs();
  try {
    return await promises.open(
      path,
      constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
    );
  } catch (err) {
    const code = errorCode(err);
    if (code !== "ELOOP" && code !== "ENOTDIR") throw err;
    const info = await Deno.lstat(path).catch(() => null);
    if (info?.isSymlink) throw new NginxError(plantedLinkMessage(path));
    throw new NginxError(`${path} is not a directory; run: rm ${path}`);
  }
}

/**
 * Makes the directory `path` unless it exists, then gives it `ownership` through a handle of the
 * directory itself, never a link's target. One that existed already must belong to
 * `existingOwner` (someone else may have made it first, with what they like inside): else it is
 * left as it is and refused with a one-line NginxError.
 */
export async function ensureDirNoFollow(
  path: string,
  ownership: DirOwnership,
  existingOwner: number,
): Promise<void> {
  let made = true;
  try {
    await Deno.mkdir(path, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    made = false;
  }
  const dir = await openDirNoFollow(path);
  try {
    const before = await dir.stat();
    if (!made && before.uid !== existingOwner) {
      throw new NginxError(
        `${path} belongs to uid ${before.uid}, not to uid ${existingOwner} as it should; ` +
          `run: rm -r ${path}`,
      );
    }
    if (ownership.uid !== undefined) {
      await dir.chown(ownership.uid, ownership.gid ?? before.gid);
    }
    await dir.chmod(ownership.mode);
  } finally {
    await dir.close();
  }
}

/**
 * Writes `data` to `path`, a file that must not exist yet (O_EXCL): a link or file in its place
 * is never written through. The caller renames it into place.
 */
export async function writeNewFile(path: string, data: string, mode: number): Promise<void> {
  const { constants, promises } = await fs();
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const file = await promises.open(path, flags, mode);
  try {
    await file.writeFile(data);
    // The umask may have taken bits away from what others are meant to read.
    await file.chmod(mode);
  } finally {
    await file.close();
  }
}

/**
 * Creates the regular file `path` with `mode` if it is missing, never through a link; an existing
 * one is left as it is. Fails if a link, or anything but a regular file, is in its place.
 */
export async function createFileNoFollow(path: string, mode: number): Promise<void> {
  const { constants, promises } = await fs();
  // Non-blocking: a FIFO in its place must not hang the start.
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT |
    constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let file: FileHandle;
  try {
    file = await promises.open(path, flags, mode);
  } catch (err) {
    if (errorCode(err) === "ELOOP") throw new NginxError(plantedLinkMessage(path));
    throw err;
  }
  try {
    if (!(await file.stat()).isFile()) throw new Error("not a regular file");
  } finally {
    await file.close();
  }
}
