// The files a running cluster keeps on local disk are no one else's: the runtime
// directory with the pid, lock and temp-list files is ours alone, the index's socket takes
// connections from nginx's workers and root only, the --db directory is 0700, the admin socket,
// the lock and the KV files are 0600.

import assert from "node:assert/strict";
import { join } from "node:path";
import { pidFileFor, runtimeDir } from "../lib/runtime.ts";
import { DEFAULT_WORKER_USER, workerAccount } from "../nginx.ts";
import { getFollow, put, testCluster } from "./helpers.ts";

/** The uid of `nobody`: another daemon's account, no longer nginx's workers'. */
const NOBODY_UID = 65534;
/** The account of nginx's workers when root starts the programs; null otherwise. */
const WORKERS = await workerAccount(DEFAULT_WORKER_USER);
/** A uid no one on the machine has: a stranger. */
const STRANGER_UID = 43210;

function modeOf(info: Deno.FileInfo): number {
  return (info.mode ?? 0) & 0o7777;
}

/** Whether a process running as `uid` can connect to the unix socket `path` (perl, as root). */
async function canConnect(uid: number, path: string): Promise<boolean> {
  const { code } = await new Deno.Command("perl", {
    args: ["-MIO::Socket::UNIX", "-e", "IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 13", path],
    uid,
    gid: uid,
    stdout: "null",
    stderr: "null",
  }).output();
  return code === 0;
}

Deno.test("a running cluster's local files and sockets are reachable only as they should", async () => {
  await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1"] });
  const uid = Deno.uid()!;
  const root = uid === 0;

  const runtime = await Deno.lstat(runtimeDir());
  assert.ok(runtime.isDirectory);
  assert.equal(runtime.uid, uid);
  assert.equal(modeOf(runtime) & 0o022, 0, "the runtime directory is writable by others");
  for (const port of [cluster.index.port, cluster.volumes[0].port]) {
    const pidFile = pidFileFor(port);
    assert.ok(pidFile.startsWith(`${runtimeDir()}/`));
    assert.equal((await Deno.stat(pidFile)).uid, uid);
  }

  // The index's run directory is listed beside its pid file, for a run after a crash to remove.
  const listed: string[] = JSON.parse(
    await Deno.readTextFile(pidFileFor(cluster.index.port).replace(/\.pid$/, ".files")),
  );
  const runDir = listed.find((path) => /\/mkv-index-[^/]+$/.test(path));
  assert.ok(runDir, JSON.stringify(listed));
  const socket = await Deno.stat(join(runDir, "index.sock"));
  const dir = await Deno.stat(runDir);
  assert.equal(modeOf(socket), 0o600);
  assert.equal(socket.uid, WORKERS?.uid ?? uid);
  assert.equal(dir.uid, uid);
  assert.equal(modeOf(dir), root ? 0o711 : 0o700);
  if (root) {
    assert.ok(await canConnect(WORKERS!.uid, join(runDir, "index.sock")), "workers cannot connect");
    assert.ok(!await canConnect(NOBODY_UID, join(runDir, "index.sock")), "nobody can connect");
    assert.ok(!await canConnect(STRANGER_UID, join(runDir, "index.sock")), "a stranger can");
  }

  // The index works through it, and its database is written.
  assert.equal(await put(cluster.url, "/perm", "private"), 201);
  assert.equal((await getFollow(cluster.url, "/perm")).body, "private");
  const db = join(cluster.dir, "index");
  assert.equal(modeOf(await Deno.stat(db)), 0o700, "the --db directory");
  assert.equal(modeOf(await Deno.stat(join(db, "lock"))), 0o600, "the --db lock file");
  assert.equal(modeOf(await Deno.stat(join(db, "admin.sock"))), 0o600);
  for (const name of ["index.kv", "index.kv-wal", "index.kv-shm"]) {
    const info = await Deno.stat(join(db, name)).catch(() => null);
    if (name === "index.kv") assert.ok(info, "no index.kv");
    if (info) assert.equal(modeOf(info), 0o600, name);
  }
  if (root) assert.ok(!await canConnect(STRANGER_UID, join(db, "admin.sock")), "a stranger can");
});
