// The volume's removal of empty directories. nginx creates a key's `HH/hh` directories (and the
// deeper ones a `/` inside a base64 name makes) when it stores the file, and never removes them
// when the file is deleted: after churn, a volume holds far more empty directories than files,
// and every walk of it (gc, rebuild) lists them all. volume.ts runs a pass at start and every
// PRUNE_INTERVAL_MS, in the background, beside nginx, on the directory itself.
//
// Racing a PUT: nginx stores a value by renaming its temp file into place; if the directory is
// missing it creates the path (mkdir of each level) and renames again. A directory is removed
// only if it was empty and unchanged (its mtime) for PRUNE_AGE_MS, and by rmdir, which fails on a
// directory that is not empty: a rename into it either happens first (the rmdir fails) or after
// (the rename fails, nginx creates the path and renames again). The one window left is between
// nginx's mkdir of a parent that exists and its mkdir of the child, if the parent, empty and
// untouched for PRUNE_AGE_MS, is removed within those microseconds: that PUT then fails whole
// (nginx answers 500 and drops its temp file; the index answers an error and keeps nothing), and
// no stored value is ever touched.
//
// The directories pruned are the workers' own: they could swap one for a link between the walk's
// look and its rmdir. Started by root, volume.ts therefore runs each pass as the workers' account
// (lib/volumes/prunepass.ts under `setpriv`), which can remove nothing that account could not
// remove itself; root never walks or removes through them.

import { firstLine } from "../errors.ts";
import { HEX_DIR, SUBVOLUME_DIR } from "../placement.ts";
import { passCommand } from "./_prune.ts";

/** How often a pass starts. */
const PRUNE_INTERVAL_MS = 10 * 60_000;
/** A directory is removed only once it has been empty and unchanged for this long. */
const PRUNE_AGE_MS = 10 * 60_000;
/** Directories looked at between two pauses, so that a pass never hogs the disk or the loop. */
const BATCH_DIRS = 1000;
/** The pause between two batches. */
const BATCH_PAUSE_MS = 5;

export interface PruneResult {
  /** Directories removed. */
  removed: number;
  /** Directories looked at. */
  scanned: number;
  /** Empty directories that could not be removed: permission denied. */
  refused: number;
  elapsedMs: number;
}

export interface PruneOptions {
  /** A directory is removed once empty and unchanged for this long. */
  ageMs: number;
  /** Ends the pass early (between two directories). */
  signal?: AbortSignal;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether an error says that a directory was not empty, or already gone: both leave it be. */
function raced(err: unknown): boolean {
  if (err instanceof Deno.errors.NotFound) return true;
  const code = (err as { code?: string }).code;
  return code === "ENOTEMPTY" || code === "EEXIST";
}

/** The directories of the layout under `dir`: `HH` at its top and in each `svXX`. */
async function layoutRoots(dir: string): Promise<string[]> {
  const roots: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory) continue;
    if (HEX_DIR.test(entry.name)) roots.push(`${dir}/${entry.name}`);
    if (!SUBVOLUME_DIR.test(entry.name)) continue;
    for await (const sub of Deno.readDir(`${dir}/${entry.name}`)) {
      if (sub.isDirectory && HEX_DIR.test(sub.name)) roots.push(`${dir}/${entry.name}/${sub.name}`);
    }
  }
  return roots.sort();
}

/**
 * One pass over the volume directory `dir`: removes every empty directory of the layout (`HH`,
 * `HH/hh` and deeper, at the top and in each `svXX`) that has been unchanged for `ageMs`,
 * deepest first, so that a tree left empty goes in one pass. Files, and anything outside the
 * layout (nginx's `.tmp`, the volume's own files), are never touched.
 */
export async function pruneEmptyDirs(dir: string, options: PruneOptions): Promise<PruneResult> {
  const started = performance.now();
  const result = { removed: 0, scanned: 0, refused: 0 };
  const cutoffMs = Date.now() - options.ageMs;
  /** Prunes under `path`, then `path` itself; whether it is gone. */
  const prune = async (path: string): Promise<boolean> => {
    if (options.signal?.aborted) return false;
    if (++result.scanned % BATCH_DIRS === 0) await sleep(BATCH_PAUSE_MS);
    let mtimeMs: number;
    let left = 0;
    try {
      // Read before its entries: a change made during the pass keeps it.
      mtimeMs = (await Deno.stat(path)).mtime?.getTime() ?? Date.now();
      for await (const entry of Deno.readDir(path)) {
        if (entry.isDirectory && await prune(`${path}/${entry.name}`)) continue;
        left++;
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return true;
      throw err;
    }
    if (left > 0 || mtimeMs > cutoffMs || options.signal?.aborted) return false;
    try {
      await Deno.remove(path);
    } catch (err) {
      if (raced(err)) return false;
      if (!(err instanceof Deno.errors.PermissionDenied)) throw err;
      result.refused++;
      return false;
    }
    result.removed++;
    return true;
  };
  for (const root of await layoutRoots(dir)) await prune(root);
  return { ...result, elapsedMs: performance.now() - started };
}

/** One pass over `dir` run as `account` in a child process; its result as the child prints it. */
async function passAs(
  dir: string,
  options: { account: { uid: number; gid: number }; ageMs: number; signal: AbortSignal },
): Promise<PruneResult> {
  const [command, ...args] = passCommand(dir, {
    ...options,
    deno: Deno.execPath(),
    script: new URL("./prunepass.ts", import.meta.url).pathname,
  });
  const output = await new Deno.Command(command, {
    args,
    stdin: "null",
    signal: options.signal,
  }).output();
  const text = new TextDecoder();
  if (!output.success) {
    const why = text.decode(output.stderr).trim().split("\n").at(-1) ?? "";
    throw new Error(`the pass as uid ${options.account.uid} failed (${output.code}): ${why}`);
  }
  return JSON.parse(text.decode(output.stdout)) as PruneResult;
}

/**
 * Runs a pass over `dir` now and every `intervalMs`, one at a time, until `stop()`; with
 * `account` (the workers', when root runs the volume), each pass as that account. Each pass that
 * removed something is reported; a pass that fails is reported and the next one tries again.
 */
export function startPruner(
  dir: string,
  options: {
    report: (message: string) => void;
    intervalMs?: number;
    ageMs?: number;
    account?: { uid: number; gid: number };
  },
): { stop(): Promise<void> } {
  const abort = new AbortController();
  const ageMs = options.ageMs ?? PRUNE_AGE_MS;
  const pass = async () => {
    try {
      const result = options.account === undefined
        ? await pruneEmptyDirs(dir, { ageMs, signal: abort.signal })
        : await passAs(dir, { account: options.account, ageMs, signal: abort.signal });
      if (result.removed > 0 || result.refused > 0) {
        options.report(
          `removed ${result.removed} empty directories of ${result.scanned} in ` +
            `${(result.elapsedMs / 1000).toFixed(1)}s` +
            (result.refused > 0 ? `; ${result.refused} refused: permission denied` : ""),
        );
      }
    } catch (err) {
      if (abort.signal.aborted) return;
      options.report(`cannot remove empty directories: ${firstLine(err)}`);
    }
  };
  let running: Promise<void> | null = null;
  // A pass still running when the next is due is not doubled: the next tick starts one.
  const start = () => {
    running ??= pass().finally(() => {
      running = null;
    });
  };
  start();
  const timer = setInterval(start, options.intervalMs ?? PRUNE_INTERVAL_MS);
  return {
    async stop() {
      clearInterval(timer);
      abort.abort();
      await running;
    },
  };
}
