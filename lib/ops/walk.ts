// The walk of the volumes' files, for the operations that start from the files rather than from
// the index (rebuild, gc): every key's replicas found on the volumes, one `HH/hh` directory at a
// time (each file with its version: lib/placement.ts, versionPath), and the files that are not a
// key's; the listings asked for in pipelined batches per volume (Volumes.listMany).
// forEachOnVolumes runs a function on each, in the walk's order or in key order (lib/ops/spool.ts),
// counting the directories done as the run's progress.

import { HEX_DIR, parseFilePath, SUBVOLUME_DIR } from "../placement.ts";
import type { KeyRecord } from "../core/mod.ts";
import type { Volumes } from "../volumes/mod.ts";
import type { OperationRequest } from "./protocol.ts";
import { forEachLimited, type OperationRun } from "./runner.ts";
import { inKeyOrder } from "./spool.ts";

/** `HH/hh` directory pairs of the layout: the unit of progress of a walk of the volumes. */
const PREFIX_PAIRS = 65536;
/**
 * `HH/hh` directories listed together: each volume gets the listings of those it has in one batch
 * on one connection (Volumes.listMany), since one request per directory cost a round trip, and a
 * wake-up of the volume's nginx, per directory per volume (65,536 of them whatever the number of
 * keys). The walk works on one batch while the next is listed: memory holds two batches' files.
 */
const BATCH_DIRS = 64;
/**
 * Batches listed ahead of the directory worked on: each volume's nginx answers a batch while the
 * walk waits for another's, and a batch's files are few (a thousandth of the keys per 64 dirs).
 */
const BATCHES_AHEAD = 4;

/**
 * A file of a key as found on the volumes: where, which version (undefined: the key's plain file),
 * its size, and its md5 if rebuild read it.
 */
export interface FoundReplica {
  location: string;
  version?: string;
  sizeBytes: number;
  md5?: string;
}

/** Keys in key order whose records are read together (`prefetch`). */
const PREFETCH_KEYS = 256;

/** An entry of a volume's directory listing. */
type VolumeEntry = Awaited<ReturnType<Volumes["list"]>>[number];

/** Files of one key found on the volumes. */
export interface KeyFiles {
  key: string;
  found: FoundReplica[];
}

/** A file that is not a key's (its name does not decode to a key's file or a version of it). */
export interface StrayFile {
  stray: string;
}

/**
 * Whether a file found holds the value that `record` names: by md5 when both are known, else by
 * length when the record has one, else "unknown" (a record written without md5 or size). A file
 * that holds it, or may, is a copy of the key's value wherever it is: rebuild may add it to the
 * record, gc never removes it.
 */
export function holdsValue(record: KeyRecord, replica: FoundReplica): boolean | "unknown" {
  if (record.md5 !== "" && replica.md5 !== undefined) return replica.md5 === record.md5;
  if (record.info !== undefined) return replica.sizeBytes === record.info.size;
  return "unknown";
}

/**
 * Lists a directory and everything under it (base64 with `/` nests), as file paths, given its own
 * listing. `dir` is the path as on disk; names are percent-encoded in URLs, since a stray file may
 * be called anything.
 */
async function treeOf(
  volumes: Volumes,
  location: string,
  dir: string,
  entries: VolumeEntry[],
): Promise<{ path: string; sizeBytes: number }[]> {
  const out: { path: string; sizeBytes: number }[] = [];
  for (const entry of entries) {
    if (entry.type === "directory") {
      const sub = `${dir}${entry.name}/`;
      const url = sub.split("/").map(encodeURIComponent).join("/");
      out.push(...await treeOf(volumes, location, sub, await volumes.list(location, url)));
    } else if (entry.type === "file") {
      out.push({ path: `${dir}${entry.name}`, sizeBytes: entry.size ?? 0 });
    }
  }
  return out;
}

/** The listings of one `HH/hh` directory on the roots that have it, asked for. */
interface DirectoryListing {
  /** The `HH/hh` pairs done once this directory is. */
  position: number;
  roots: string[];
  trees: Promise<{ path: string; sizeBytes: number }[][]>;
}

/** The files of one directory's listings, key by key in key order, stray files first. */
async function* filesOf(
  listing: DirectoryListing,
  position: { done: number },
): AsyncGenerator<KeyFiles | StrayFile> {
  const trees = await listing.trees;
  const byKey = new Map<string, FoundReplica[]>();
  const strays: string[] = [];
  trees.forEach((files, i) => {
    for (const file of files) {
      const parsed = parseFilePath(file.path);
      if (parsed === null) {
        strays.push(`${listing.roots[i]}${file.path}`);
        continue;
      }
      const { key, version } = parsed;
      byKey.set(key, [...(byKey.get(key) ?? []), {
        location: listing.roots[i],
        ...(version !== undefined && { version }),
        sizeBytes: file.sizeBytes,
      }]);
    }
  });
  for (const stray of strays) yield { stray };
  for (const key of [...byKey.keys()].sort()) yield { key, found: byKey.get(key)! };
  position.done = listing.position;
}

/**
 * The files of every key on the volumes, key by key, one `HH/hh` directory at a time (on every
 * volume and subvolume at once, since a key's directory is the same everywhere), so that memory
 * holds a few directories' worth: the next BATCH_DIRS directories are listed, in a batch per
 * volume, while those before them are worked on. The subvolume directories are found, not assumed: a cluster written with another
 * --subvolumes is read all the same. `position` counts the `HH/hh` pairs done.
 */
async function* walkVolumes(
  volumes: Volumes,
  hosts: string[],
  position: { done: number },
): AsyncGenerator<KeyFiles | StrayFile> {
  const rootsByPrefix = new Map<string, string[]>();
  const addRoot = (prefix: string, root: string) => {
    const roots = rootsByPrefix.get(prefix) ?? [];
    roots.push(root);
    rootsByPrefix.set(prefix, roots);
  };
  for (const host of hosts) {
    for (const entry of await volumes.list(host, "/")) {
      if (entry.type !== "directory") continue;
      if (HEX_DIR.test(entry.name)) addRoot(entry.name, host);
      if (SUBVOLUME_DIR.test(entry.name)) {
        const root = `${host}/${entry.name}`;
        for (const sub of await volumes.list(root, "/")) {
          if (sub.type === "directory" && HEX_DIR.test(sub.name)) addRoot(sub.name, root);
        }
      }
    }
  }
  const ahead: DirectoryListing[] = [];
  let batch: { dir: string; position: number; roots: string[] }[] = [];
  // The batch's directories, listed on each root that has them in one request each.
  const listBatch = () => {
    const byRoot = new Map<string, string[]>();
    for (const { dir, roots } of batch) {
      for (const root of roots) byRoot.set(root, [...(byRoot.get(root) ?? []), dir]);
    }
    const listed = new Map<string, Promise<Map<string, VolumeEntry[]>>>();
    for (const [root, dirs] of byRoot) {
      listed.set(
        root,
        volumes.listMany(root, dirs).then((all) => new Map(dirs.map((dir, i) => [dir, all[i]]))),
      );
    }
    for (const { dir, position, roots } of batch) {
      const trees = Promise.all(roots.map(async (root) => {
        const entries = (await listed.get(root)!).get(dir)!;
        return await treeOf(volumes, root, dir, entries);
      }));
      // A listing that fails before its turn fails the walk then, not as an unhandled rejection.
      trees.catch(() => {});
      ahead.push({ position, roots, trees });
    }
    batch = [];
  };
  // Every root's `HH` directories are listed first, in one batch per root: which `HH/hh` exist
  // where (at most 65,536 names per root, whatever the number of keys).
  const prefixesByRoot = new Map<string, string[]>();
  for (const [hh, roots] of rootsByPrefix) {
    for (const root of roots) prefixesByRoot.set(root, [...(prefixesByRoot.get(root) ?? []), hh]);
  }
  const rootsByPair = new Map<string, string[]>();
  await Promise.all([...prefixesByRoot].map(async ([root, prefixes]) => {
    const listings = await volumes.listMany(root, prefixes.map((hh) => `/${hh}/`));
    listings.forEach((entries, i) => {
      for (const entry of entries) {
        if (entry.type !== "directory" || !HEX_DIR.test(entry.name)) continue;
        const pair = `${prefixes[i]}/${entry.name}`;
        rootsByPair.set(pair, [...(rootsByPair.get(pair) ?? []), root]);
      }
    });
  }));
  for (const pair of [...rootsByPair.keys()].sort()) {
    const done = parseInt(pair.replace("/", ""), 16) + 1;
    batch.push({ dir: `/${pair}/`, position: done, roots: rootsByPair.get(pair)! });
    if (batch.length < BATCH_DIRS) continue;
    listBatch();
    while (ahead.length > BATCHES_AHEAD * BATCH_DIRS) yield* filesOf(ahead.shift()!, position);
  }
  listBatch();
  while (ahead.length > 0) yield* filesOf(ahead.shift()!, position);
  position.done = PREFIX_PAIRS;
}

/**
 * Runs `fn` on each key's files and each stray file on the volumes of `request.placement` that
 * are not down, with at most `request.concurrency` at once; the run's progress counts the `HH/hh`
 * directories done. Each volume that is down is reported `unreachable`. With `keyOrder`, keys come
 * in key order once the walk is done (lib/ops/spool.ts), so that their records are read and
 * written in key order: the progress then counts the walk as its first half and the keys as its
 * second; stray files are reported as the walk finds them.
 */
export async function forEachOnVolumes(
  run: OperationRun,
  volumes: Volumes,
  request: OperationRequest,
  signal: AbortSignal,
  fn: (item: KeyFiles | StrayFile) => Promise<void>,
  options: {
    keyOrder?: boolean;
    /** With keyOrder: called with each group of keys in key order before they go to `fn`. */
    prefetch?: (keys: string[]) => Promise<void>;
  } = {},
): Promise<void> {
  const position = { done: 0 };
  run.total = PREFIX_PAIRS;
  // A volume already marked down is not walked (every listing would wait out a timeout): its
  // files are unknown, which the run reports as work left undone.
  const hosts = request.placement.volumes.filter((host) => volumes.isAlive(host));
  for (const host of request.placement.volumes.filter((host) => !hosts.includes(host))) {
    await run.outcome("unreachable", {
      location: host,
      detail: "volume down: its files were not walked; run it again once the volume is up",
    });
  }
  const share = options.keyOrder ? 0.5 : 1;
  const items = (async function* () {
    for await (const item of walkVolumes(volumes, hosts, position)) {
      run.done = Math.floor(position.done * share);
      yield item;
    }
  })();
  if (!options.keyOrder) {
    await forEachLimited(items, request.concurrency, signal, fn);
    run.done = position.done;
    return;
  }
  const keys = (async function* () {
    for await (const item of items) {
      if (signal.aborted) return;
      if ("stray" in item) await fn(item);
      else yield item;
    }
  })();
  let count = 0;
  let judged = 0;
  const ordered = (async function* () {
    let group: KeyFiles[] = [];
    const flush = async function* () {
      await options.prefetch?.(group.map((item) => item.key));
      for (const item of group) {
        judged++;
        run.done = Math.floor(PREFIX_PAIRS * (share + share * judged / count));
        yield item;
      }
      group = [];
    };
    for await (const item of inKeyOrder(keys, (all) => count = all)) {
      group.push(item);
      if (group.length >= PREFETCH_KEYS) yield* flush();
    }
    yield* flush();
  })();
  await forEachLimited(ordered, request.concurrency, signal, fn);
  if (!signal.aborted) run.done = PREFIX_PAIRS;
}
