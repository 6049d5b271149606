// The files of an index directory (`--db`): the directory, made its owner's alone; its lock file,
// held by the one process that writes the index; and the Deno KV file (SQLite), opened twice —
// one handle for commits, one for reads (lib/core/store.ts says why). Errors an operator may meet
// (another user, another process) are one line.

import { firstLine } from "../errors.ts";
import { kvPath } from "./layout.ts";

/** The mode of the --db directory: the owner's alone. */
const DB_DIR_MODE = 0o700;
/** The mode of the lock file: the owner's alone. */
const LOCK_FILE_MODE = 0o600;
/** The mode of the KV file and SQLite's files beside it: the owner's alone. */
const KV_FILE_MODE = 0o600;

/** The database is locked by another process, or another failure to open it; one line. */
export class StoreError extends Error {
  override name = "StoreError";
}

/** An index directory's open files: its lock (held) and two handles on its KV. */
export interface IndexFiles {
  kv: Deno.Kv;
  reader: Deno.Kv;
  lockFile: Deno.FsFile;
}

/** Closes what `openIndexFiles` opened, the lock last. */
export function closeIndexFiles(files: IndexFiles): void {
  files.reader.close();
  files.kv.close();
  files.lockFile.close();
}

/**
 * Opens the index in directory `db` (created if missing) and takes its lock, so that no other
 * process writes it meanwhile. Throws StoreError if another process holds it, or in one line for
 * any other failure.
 */
export async function openIndexFiles(db: string): Promise<IndexFiles> {
  const lockFile = await lockIndexDir(db);
  try {
    // The index is no one else's to read: a new KV file is made 0600 before SQLite opens it
    // (SQLite gives its -wal and -shm files the same mode), and an older one is set so.
    await Deno.writeFile(kvPath(db), new Uint8Array(), { createNew: true, mode: KV_FILE_MODE })
      .catch((err) => {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      });
    const kv = await Deno.openKv(kvPath(db));
    try {
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.chmod(kvPath(db) + suffix, KV_FILE_MODE).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        });
      }
      return { kv, reader: await Deno.openKv(kvPath(db)), lockFile };
    } catch (err) {
      kv.close();
      throw err;
    }
  } catch (err) {
    lockFile.close();
    throw new StoreError(`cannot open index ${kvPath(db)}: ${firstLine(err)}`);
  }
}

/** Makes `db` its owner's alone (0700, created if missing) and takes its lock file. */
async function lockIndexDir(db: string): Promise<Deno.FsFile> {
  // The index's directory holds the records and the admin socket, through which the operations
  // run. A new one is made 0700; an existing one is set so.
  let lockFile: Deno.FsFile;
  try {
    await Deno.mkdir(db, { recursive: true, mode: DB_DIR_MODE });
    await Deno.chmod(db, DB_DIR_MODE);
    lockFile = await Deno.open(`${db}/lock`, { create: true, write: true, mode: LOCK_FILE_MODE });
    await Deno.chmod(`${db}/lock`, LOCK_FILE_MODE);
  } catch (err) {
    // Another user (an operator without sudo) gets one line, not a stack trace.
    if (!(err instanceof Deno.errors.PermissionDenied)) throw err;
    throw new StoreError(
      `cannot open index ${db}: permission denied; run as the user the index runs as (or root)`,
    );
  }
  if (!await lockFile.tryLock(true)) {
    lockFile.close();
    throw new StoreError(`index ${db} is in use by another mkv.ts process (${db}/lock)`);
  }
  return lockFile;
}
