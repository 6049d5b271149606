// The files a running cluster keeps on local disk are no one else's: the runtime
// directory with the pid, lock and temp-list files is ours alone, the index's socket takes
// connections from nginx's workers and root only, the --db directory is 0700, the admin socket,
// the lock and the KV files are 0600.

import assert from "node:assert/strict";
import { join } from "node:path";
import { pidFileFor, runtimeDir } from "../../lib/nginx/mod.ts";
import { DEFAULT_WORKER_USER, workerAccount } from "../../nginx.ts";
import { spawnVolume } from "../../dev/cluster.ts";
import {
  exists,
  freePort,
  getFollow,
  NOBODY_UID,
  portAnswers,
  put,
  ROOT,
  tempDir,
  testCluster,
} from "../helpers.ts";

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

/** Runs `args` as `uid`:`gid` with no supplementary groups (as root); its exit code and stderr. */
async function runAs(
  uid: number,
  gid: number,
  args: string[],
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await new Deno.Command(args[0], {
    args: args.slice(1),
    uid,
    gid,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

/** Every regular file under `dir` but the volume's own (`.mkv/`, the write probe `.mkv-probe`). */
async function valueFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...await valueFiles(path));
    else if (entry.isFile) files.push(path);
  }
  return files;
}

/** The identities the tests try as local attackers: another daemon's account, and a bare uid. */
const OTHERS: [string, number][] = [["nobody", NOBODY_UID], ["uid 43210", STRANGER_UID]];

/** Root-only tests fail instead of being skipped in CI (.ci/run sets CI=true). */
const ROOT_ONLY = { ignore: Deno.uid() !== 0 && Deno.env.get("CI") !== "true" };

Deno.test({
  name: "as root, neither nobody nor a uid with no account reads or changes a stored value",
  ...ROOT_ONLY,
  async fn() {
    assert.ok(WORKERS, "needs root (CI runs the tests as root)");
    await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1"] });
    assert.equal(await put(cluster.url, "/secret", "private value"), 201);
    const volume = join(cluster.dir, "volume1");
    const [file] = await valueFiles(volume);
    assert.ok(file, "no value file");
    const info = await Deno.stat(file);
    assert.deepEqual([info.uid, info.gid, modeOf(info)], [WORKERS.uid, WORKERS.gid, 0o600]);
    const top = await Deno.stat(volume);
    assert.deepEqual([top.uid, top.gid, modeOf(top)], [0, WORKERS.gid, 0o1770]);
    for (const [who, uid] of OTHERS) {
      assert.notEqual((await runAs(uid, uid, ["cat", file])).code, 0, `${who} read the value`);
      assert.notEqual((await runAs(uid, uid, ["ls", volume])).code, 0, `${who} listed the volume`);
      const write = await runAs(uid, uid, ["sh", "-c", 'echo tampered > "$0"', file]);
      assert.notEqual(write.code, 0, `${who} overwrote the value`);
      const remove = await runAs(uid, uid, ["rm", "-f", file]);
      assert.notEqual(remove.code, 0, `${who} removed the value`);
      const plant = await runAs(uid, uid, ["touch", join(volume, "planted")]);
      assert.notEqual(plant.code, 0, `${who} wrote into the volume`);
    }
    assert.equal(await Deno.readTextFile(file), "private value");
    assert.equal((await getFollow(cluster.url, "/secret")).body, "private value");
  },
});

/** What volume.ts says when it refuses to serve `dir` (it must exit 1). */
async function volumeRefusal(dir: string): Promise<string> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "volume.ts", "--port", String(freePort()), "--dir", dir],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stderr);
  assert.equal(code, 1, text);
  return text;
}

/** A file's or directory's content (files), owner and mode: what a followed link would change. */
async function snapshot(path: string): Promise<string> {
  const info = await Deno.lstat(path);
  const content = info.isFile ? await Deno.readTextFile(path) : "(directory)";
  return JSON.stringify({ content, uid: info.uid, gid: info.gid, mode: modeOf(info) });
}

Deno.test({
  name: "links planted by the workers' account where root works are never followed",
  ...ROOT_ONLY,
  async fn() {
    assert.ok(WORKERS, "needs root (CI runs the tests as root)");
    const { uid, gid } = WORKERS;
    // What root must never change: a root file and a root directory the workers cannot reach.
    const safe = await Deno.makeTempDir({ prefix: "mkv-test-target-" });
    try {
      await Deno.chmod(safe, 0o711);
      const targetFile = join(safe, "root-file");
      await Deno.writeTextFile(targetFile, "root's own\n", { mode: 0o600 });
      const targetDir = join(safe, "root-dir");
      await Deno.mkdir(targetDir, { mode: 0o700 });
      const dangling = join(safe, "not-yet");
      const before = [await snapshot(targetFile), await snapshot(targetDir)];

      await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1"] });
      const volume = join(cluster.dir, "volume1");
      const [victim] = cluster.volumes;
      const asWorkers = (args: string[]) => runAs(uid, gid, args);
      await victim.stop();
      // Every name root ever wrote, made or chowned in a volume's directory, and the spool.
      const planted: [string, string][] = [
        [".tmp", targetDir],
        [".mkv-disk", targetFile],
        [".mkv-disk.tmp", targetFile],
        [".mkv-probe", targetFile],
        [".mkv-write-check-x", dangling],
        ["sv00", targetDir],
      ];
      for (const [name, target] of planted) {
        const link = await asWorkers(["ln", "-sfT", target, join(volume, name)]);
        assert.equal(link.code, 0, `${name}: ${link.stderr}`);
      }
      // The volume's own directory is root's: nothing can be planted in it, nor can it be
      // renamed away and replaced by a link.
      for (const name of ["disk.json", "disk.json.tmp", "tmp"]) {
        const into = await asWorkers(["ln", "-sfT", targetFile, join(volume, ".mkv", name)]);
        assert.notEqual(into.code, 0, `planted .mkv/${name}`);
      }
      const moved = await asWorkers(["mv", join(volume, ".mkv"), join(volume, ".mkv-moved")]);
      assert.notEqual(moved.code, 0, "the workers renamed the volume's own directory");

      await using revived = await spawnVolume({ port: victim.port, dir: volume });
      // Two disk reports and a write probe at least.
      await new Promise((resolve) => setTimeout(resolve, 10_500));
      assert.ok(!revived.exited, revived.log);
      assert.deepEqual([await snapshot(targetFile), await snapshot(targetDir)], before);
      assert.ok(!await exists(dangling), "root made a file where a dangling link pointed");
      const disk = await Deno.lstat(join(volume, ".mkv", "disk.json"));
      assert.ok(disk.isFile && disk.uid === 0);
      await revived.stop();

      // A fresh volume directory, set up as docs/security.md says, with a link planted as its own
      // directory before the first start: refused in one line, the target untouched.
      const fresh = join(cluster.dir, "fresh");
      await Deno.mkdir(fresh);
      await Deno.chown(fresh, 0, gid);
      await Deno.chmod(fresh, 0o1770);
      assert.equal((await asWorkers(["ln", "-s", targetDir, join(fresh, ".mkv")])).code, 0);
      const refused = await volumeRefusal(fresh);
      assert.equal(
        refused,
        `volume: ${fresh}/.mkv is a symbolic link, which is never followed here ` +
          `(it may have been planted); run: rm ${fresh}/.mkv\n`,
      );
      // A real directory of theirs in its place, with a link inside: refused, left as it is.
      await Deno.remove(join(fresh, ".mkv"));
      assert.equal((await asWorkers(["mkdir", join(fresh, ".mkv")])).code, 0);
      assert.equal((await asWorkers(["ln", "-s", targetDir, join(fresh, ".mkv", "tmp")])).code, 0);
      assert.equal(
        await volumeRefusal(fresh),
        `volume: ${fresh}/.mkv belongs to uid ${uid}, not to uid 0 as it should; ` +
          `run: rm -r ${fresh}/.mkv\n`,
      );
      assert.equal((await Deno.lstat(join(fresh, ".mkv"))).uid, uid);
      assert.deepEqual([await snapshot(targetFile), await snapshot(targetDir)], before);
    } finally {
      await Deno.remove(safe, { recursive: true });
    }
  },
});

Deno.test({
  name: "as root, a runtime directory another user made in /tmp does not stop a start",
  ...ROOT_ONLY,
  async fn() {
    assert.ok(WORKERS, "needs root (CI runs the tests as root)");
    await using tmp = await tempDir();
    // What any local user can do before root first starts: make root's /tmp runtime directory.
    const squatted = join(tmp.path, `mkv.ts-${Deno.uid()}`);
    await Deno.mkdir(squatted, { mode: 0o700 });
    await Deno.chown(squatted, NOBODY_UID, NOBODY_UID);
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "volume.ts", "--port", String(port), "--dir", join(tmp.path, "v")],
      cwd: ROOT,
      env: { TMPDIR: tmp.path, PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/bin" },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      let answered = false;
      for (let i = 0; i < 200 && !answered; i++) {
        answered = await portAnswers(port);
        if (!answered) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (!answered) {
        child.kill("SIGTERM");
        assert.fail(`the volume did not start: ${await stderr}`);
      }
      assert.ok(await exists(`/run/mkv.ts/nginx-${port}.pid`), "not in /run/mkv.ts");
      assert.deepEqual(await Array.fromAsync(Deno.readDir(squatted)), []);
    } finally {
      try {
        child.kill("SIGTERM");
      } catch {
        // Exited already (a failed start).
      }
      await child.status;
      await stderr;
    }
    // The SIGTERM came as soon as nginx answered, maybe before the volume had finished starting:
    // its nginx went with it all the same.
    assert.equal(await portAnswers(port), false, "the volume's nginx outlived it");
  },
});

Deno.test({
  name: "index.ts verify by a user who cannot open the index says so in one line",
  ...ROOT_ONLY,
  async fn() {
    await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1"] });
    const db = join(cluster.dir, "index");
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "index.ts",
        "verify",
        "--db",
        db,
        "--volumes",
        `localhost:${cluster.volumes[0].port}`,
        "--replicas",
        "1",
      ],
      cwd: ROOT,
      uid: NOBODY_UID,
      gid: NOBODY_UID,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 1, output);
    assert.equal(output.trim().split("\n").length, 1, output);
    assert.match(output, new RegExp(`^index: cannot open index ${db}: permission denied`));
  },
});
