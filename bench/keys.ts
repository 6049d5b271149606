// The bench at many keys (`deno task bench --keys N [--peer PATH]`): what a store of N keys costs
// to rebuild, list, read and write, side by side with minikeyvalue on the same volumes. N small
// values are written straight onto three volumes in the shared on-disk layout (as a restore
// would, far faster than through an index), one replica each, no subvolumes; then each index is
// rebuilt from them (mkv.ts with md5 and with --md5sum=false, and the peer), both serve, and the
// figures are taken in alternating rounds: a full `?list` walk in pages of 10,000, GETs of random
// keys under wrk (rate and p99), PUT+DELETE of fresh keys, start-up time, the index's RSS, its
// bytes on disk per key, and mkv.ts's own `verify` and `gc --dry-run` rates; and the time the
// key pages take to build from the rebuilt index's records (which rebuild's time includes). With
// --keys-list-only, the rebuilds (mkv.ts's with --md5sum=false alone) and the listing only. Prints
// a Markdown table and, unless --smoke, writes it and a JSON copy under bench/results/.
//
//   deno task bench --keys 100000 --peer PATH/TO/mkv    # about 2 minutes
//   deno task bench --keys 1000000 --peer PATH/TO/mkv   # about 15 minutes
//   deno task bench --keys 1000000 --peer PATH/TO/mkv --keys-list-only

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ClusterProcess, freePort, spawnVolume } from "../dev/cluster.ts";
import type { Placement } from "../lib/placement.ts";
import { Store } from "../lib/core/store.ts";
import { readRssMib } from "./proc.ts";
import {
  KEYS_LOAD,
  KEYS_SMOKE_LOAD,
  type KeysFigures,
  type KeysOptions,
  type KeysResult,
  renderKeysMarkdown,
  VOLUMES,
} from "./keys_figures.ts";
import { fillVolumes, type Ownership, volumeOwnership } from "./keys_fill.ts";
import { diskBytes, freshWrites, listAll, randomGets, randomKeysScript } from "./keys_measure.ts";
import { indexTool, type Served, serveMkv, servePeer } from "./keys_servers.ts";
import { peerArgs } from "./peer.ts";
import { log, run, timed } from "./tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS_DIR = join(ROOT, "bench", "results");

/** Runs the bench at many keys; resolves with its figures. */
export async function runKeysBench(options: KeysOptions): Promise<KeysResult> {
  const load = options.smoke ? KEYS_SMOKE_LOAD : KEYS_LOAD;
  const date = new Date().toISOString();
  const dir = await Deno.makeTempDir({ prefix: "mkv-bench-keys-" });
  // nginx's workers, another account when root starts the volumes, pass through it.
  await Deno.chmod(dir, 0o755);
  const volumes: ClusterProcess[] = [];
  const servers: Served[] = [];
  try {
    const hosts: string[] = [];
    const dirs = new Map<string, string>();
    const owners = new Map<string, Ownership>();
    // Chosen first: our volumes send misses back to our index (volume.ts --index).
    const ourPort = freePort();
    for (let i = 0; i < VOLUMES; i++) {
      const port = freePort();
      const volumeDir = join(dir, `volume${i + 1}`);
      volumes.push(
        await spawnVolume({ port, dir: volumeDir, index: `http://localhost:${ourPort}` }),
      );
      hosts.push(`localhost:${port}`);
      dirs.set(`localhost:${port}`, volumeDir);
      owners.set(`localhost:${port}`, await volumeOwnership(port, volumeDir));
    }
    const placement: Placement = { volumes: hosts, replicas: 1, subvolumes: 1 };
    log(`writing ${options.keys.toLocaleString("en-US")} values onto the volumes`);
    const [fillSeconds] = await timed(() =>
      Promise.resolve(
        fillVolumes({
          keys: options.keys,
          valueBytes: options.valueBytes,
          placement,
          dirs,
          owners,
        }),
      )
    );
    const volumeFlags = ["--volumes", hosts.join(","), "--replicas", "1", "--subvolumes", "1"];
    const ourDb = join(dir, "mkv-index");
    const noMd5Db = join(dir, "mkv-index-nomd5");
    const peerDb = join(dir, "peer-index");
    log("rebuilding");
    const rebuilds: Record<string, number> = {};
    const rebuildOf = {
      mkv: () => indexTool(["rebuild", "--db", ourDb, ...volumeFlags]),
      mkvNoMd5: () => indexTool(["rebuild", "--db", noMd5Db, ...volumeFlags, "--md5sum=false"]),
      peer: () =>
        run(
          options.peer!,
          peerArgs({
            volumes: hosts,
            replicas: 1,
            subvolumes: 1,
            dbDir: peerDb,
            command: "rebuild",
          }),
        ),
    };
    const order = [
      ...(options.peer === null ? [] : ["peer"]),
      ...(options.listOnly ? [] : ["mkv"]),
      "mkvNoMd5",
    ];
    for (const name of order) {
      [rebuilds[name]] = await timed(rebuildOf[name as keyof typeof rebuildOf]);
      log(`rebuild ${name}: ${rebuilds[name].toFixed(1)} s`);
    }
    const pagesBuildSeconds = await timePagesBuild(options.listOnly ? noMd5Db : ourDb);
    log(`key pages build: ${pagesBuildSeconds.toFixed(2)} s`);
    const ours = await serveMkv(ourPort, options.listOnly ? noMd5Db : ourDb, hosts);
    servers.push(ours);
    const theirs = options.peer === null
      ? null
      : await servePeer(options.peer, freePort(), peerDb, hosts);
    if (theirs !== null) servers.push(theirs);
    const measured = theirs === null ? [ours] : [ours, theirs];
    const script = join(dir, "random-keys.lua");
    await Deno.writeTextFile(script, randomKeysScript(options.keys));
    const best = measured.map(() => ({
      listSeconds: Infinity,
      listedKeys: 0,
      getRps: null as number | null,
      getP99Ms: null as number | null,
      fresh: null as number | null,
      trouble: [] as string[],
    }));
    for (let round = 0; round < load.rounds; round++) {
      for (const [i, server] of measured.entries()) {
        const name = i === 0 ? "mkv.ts" : "minikeyvalue";
        const listed = await listAll(server.url);
        if (listed.keys !== options.keys) {
          best[i].trouble.push(`${name}: ?list gave ${listed.keys} keys of ${options.keys}`);
        }
        best[i].listedKeys = listed.keys;
        best[i].listSeconds = Math.min(best[i].listSeconds, listed.seconds);
        if (options.listOnly) {
          log(`${name} round ${round + 1}: list ${listed.seconds.toFixed(2)} s`);
          continue;
        }
        const gets = await randomGets(server.url, script, load);
        if (gets.rps > (best[i].getRps ?? 0)) {
          best[i].getRps = gets.rps;
          best[i].getP99Ms = gets.p99Ms;
        }
        best[i].trouble.push(...gets.trouble.map((line) => `${name}: wrk: ${line}`));
        best[i].fresh = Math.max(
          best[i].fresh ?? 0,
          await freshWrites(server.url, load.freshKeys, `${i}-${round}`),
        );
        log(
          `${name} round ${round + 1}: list ${listed.seconds.toFixed(2)} s, ` +
            `GET ${Math.round(gets.rps)}/s p99 ${gets.p99Ms.toFixed(2)} ms`,
        );
      }
    }
    const rss = await Promise.all(measured.map((server) => readRssMib(server.pid)));
    const [verifySeconds] = options.listOnly
      ? [null]
      : await timed(() => indexTool(["verify", "--db", ourDb, "--volumes", hosts.join(",")]));
    const [gcSeconds] = options.listOnly
      ? [null]
      : await timed(() =>
        indexTool(["gc", "--dry-run", "--db", ourDb, "--volumes", hosts.join(",")])
      );
    const figuresOf = async (i: number): Promise<KeysFigures> => ({
      rebuildSeconds: (i === 0 ? rebuilds.mkv : rebuilds.peer) ?? null,
      rebuildNoMd5Seconds: i === 0 ? rebuilds.mkvNoMd5 : null,
      pagesBuildSeconds: i === 0 ? pagesBuildSeconds : null,
      startSeconds: measured[i].startSeconds,
      listSeconds: best[i].listSeconds,
      listedKeys: best[i].listedKeys,
      getRps: best[i].getRps,
      getP99Ms: best[i].getP99Ms,
      freshOpsPerSecond: best[i].fresh,
      rssMib: rss[i],
      diskBytesPerKey: await diskBytes(i === 0 ? (options.listOnly ? noMd5Db : ourDb) : peerDb) /
        options.keys,
      verifyKeysPerSecond: i === 0 && verifySeconds !== null ? options.keys / verifySeconds : null,
      gcKeysPerSecond: i === 0 && gcSeconds !== null ? options.keys / gcSeconds : null,
      trouble: best[i].trouble,
    });
    return {
      date,
      keys: options.keys,
      valueBytes: options.valueBytes,
      fillSeconds,
      mkv: await figuresOf(0),
      peer: theirs === null ? null : await figuresOf(1),
    };
  } finally {
    for (const server of servers) await server.stop();
    await Promise.all(volumes.map((volume) => volume.stop()));
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs the bench, prints its table and, unless a smoke run, keeps it under bench/results/. */
export async function keysMain(options: KeysOptions): Promise<number> {
  const result = await runKeysBench(options);
  const table = renderKeysMarkdown(result);
  console.log(table);
  if (!options.smoke) {
    const stamp = result.date.replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
    const base = join(RESULTS_DIR, `keys-${result.keys}-${stamp}`);
    await Deno.writeTextFile(`${base}.md`, table);
    await Deno.writeTextFile(`${base}.json`, JSON.stringify(result, null, 2) + "\n");
    log(`wrote ${base}.md and .json`);
  }
  return 0;
}

/**
 * How long the key pages of a rebuilt index take to build from its records alone: the index is
 * opened, its pages suspended and built again (a rebuild's last step), and closed.
 */
async function timePagesBuild(db: string): Promise<number> {
  const store = await Store.open(db);
  try {
    await store.suspendPages();
    const [seconds] = await timed(() => store.buildPages());
    return seconds;
  } finally {
    store.close();
  }
}
