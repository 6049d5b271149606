// Tests of the operations: `index.ts rebuild|rebalance|verify|gc` run as real subprocesses against
// real clusters: a rebalance online under a reading client, a rebuild after the index is lost, a
// corrupt replica found and repaired, orphans and interrupted writes collected, and a cluster laid
// out by hand in minikeyvalue's layout rebuilt and served. The pure parts of lib/ops/ are in
// tests/unit/ops_test.ts.

import { DEFAULT_WORKER_USER, workerAccount } from "../../nginx.ts";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { spawnIndex, spawnVolume } from "../../dev/cluster.ts";
import { keyToPath, keyToVolumes, locationHost, type Placement } from "../../lib/placement.ts";
import { Store } from "../../lib/core/store.ts";
import {
  ANSWER_TIMEOUT_MS,
  exists,
  fileOnDisk,
  freePorts,
  getFollow,
  md5Hex,
  put,
  request,
  runScript,
  SCRIPT_TIMEOUT_MS,
  type ScriptResult,
  tempDir,
  testCluster,
} from "../helpers.ts";

/** Bound on the reading client of the rebalance test. */
const READ_LOOP_MS = 90_000;
/** nginx's workers' account (ours unless root): files placed by hand must be theirs. */
const WORKERS = await workerAccount(DEFAULT_WORKER_USER);
const WORKERS_UID = WORKERS?.uid ?? Deno.uid()!;
const WORKERS_GID = WORKERS?.gid ?? Deno.gid()!;
const SUBVOLUMES = 10;

type TestCluster = Awaited<ReturnType<typeof testCluster>>;

/** A key whose base64 has a `/` inside, so that its file nests one directory deeper. */
function nestedKey(): string {
  for (let i = 0; i < 1000; i++) {
    const key = `/nest${i}~ÿ>~`;
    const b64 = keyToPath(key).split("/").slice(3).join("/");
    if (b64.includes("/") && !b64.endsWith("/")) return key;
  }
  throw new Error("no nested key found");
}

function volumeHosts(cluster: TestCluster): string[] {
  return cluster.volumes.map((volume) => `localhost:${volume.port}`);
}

/** The flags of an operation on the cluster's index with 2 replicas over `volumes`. */
function indexArgs(cluster: TestCluster, volumes: string[]): string[] {
  return ["--db", join(cluster.dir, "index"), "--volumes", volumes.join(","), "--replicas", "2"];
}

/** Runs `index.ts COMMAND ARGS...` to its end. */
function runIndexCommand(args: string[]): Promise<ScriptResult> {
  return runScript(["index.ts", ...args], { timeoutMs: SCRIPT_TIMEOUT_MS });
}

function explain(result: ScriptResult): string {
  return `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

/** Writes a file the way a volume's nginx would own it: directories 0700, file 0600, its workers'. */
async function placeFile(root: string, relPath: string, content: string): Promise<void> {
  const parts = relPath.split("/").filter((part) => part !== "");
  let dir = root;
  for (const part of parts.slice(0, -1)) {
    dir = join(dir, part);
    await Deno.mkdir(dir, { mode: 0o700 }).catch((err) => {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    });
    await Deno.chown(dir, WORKERS_UID, WORKERS_GID);
  }
  const file = join(dir, parts[parts.length - 1]);
  await Deno.writeTextFile(file, content, { mode: 0o600 });
  await Deno.chmod(file, 0o600);
  await Deno.chown(file, WORKERS_UID, WORKERS_GID);
}

/** The relative path of a key's file under a volume's directory, for `host:port/svXX`. */
function relativePath(location: string, key: string): string {
  const slash = location.indexOf("/");
  return (slash === -1 ? "" : location.slice(slash)) + keyToPath(key);
}

async function head(base: string, key: string) {
  return await request(`${base}${encodeURI(key)}`, { method: "HEAD" });
}

Deno.test("rebalance online to a 4th volume: every key readable throughout, then at its new place", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const values = new Map<string, string>();
  for (let i = 0; i < 40; i++) values.set(`/rb${i}`, `value of rb${i} `.repeat(i + 1));
  values.set(nestedKey(), "nested");
  for (const [key, value] of values) assert.equal(await put(cluster.url, key, value), 201);
  const oldVolumes = new Map<string, string[]>();
  for (const key of values.keys()) {
    oldVolumes.set(key, (await head(cluster.url, key)).headers.get("key-volumes")!.split(","));
  }

  const [port4] = freePorts(1);
  const dir4 = join(cluster.dir, "volume4");
  await using _volume4 = await spawnVolume({ port: port4, dir: dir4 });
  const placement: Placement = {
    volumes: [...volumeHosts(cluster), `localhost:${port4}`],
    replicas: 2,
    subvolumes: SUBVOLUMES,
  };
  const moving = [...values.keys()].filter((key) =>
    keyToVolumes(key, placement).join(",") !== oldVolumes.get(key)!.join(",")
  );
  assert.ok(moving.length > 0, "some keys must move for this test to mean anything");

  // The client reads every key in a loop, from before the rebalance starts until it has ended.
  let stop = false;
  let rebalancing = false;
  let readsDuring = 0;
  const failures: string[] = [];
  let firstPassDone: () => void = () => {};
  const firstPass = new Promise<void>((resolve) => firstPassDone = resolve);
  const reader = (async () => {
    const deadline = Date.now() + READ_LOOP_MS;
    try {
      while (!stop && Date.now() < deadline) {
        for (const [key, value] of values) {
          const answer = await getFollow(cluster.url, encodeURI(key), {
            signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
          });
          if (rebalancing) readsDuring++;
          if (answer.status !== 200 || answer.body !== value) {
            failures.push(`${key}: ${answer.status}`);
          }
        }
        firstPassDone();
      }
    } finally {
      firstPassDone();
    }
  })();
  let result: ScriptResult;
  try {
    await firstPass;
    rebalancing = true;
    result = await runIndexCommand(["rebalance", ...indexArgs(cluster, placement.volumes)]);
    rebalancing = false;
  } finally {
    stop = true;
    await reader;
  }
  assert.equal(result.code, 0, explain(result));
  assert.match(
    result.stdout,
    new RegExp(`rebalance: .*moved ${moving.length}\\b`),
    explain(result),
  );
  assert.deepEqual(failures, []);
  assert.ok(
    readsDuring >= values.size,
    `the client read every key during the rebalance (${readsDuring} reads)`,
  );

  const diskPath = (location: string, key: string) => {
    const i = placement.volumes.indexOf(locationHost(location));
    return join(cluster.dir, `volume${i + 1}`, relativePath(location, key));
  };
  for (const [key, value] of values) {
    const answer = await head(cluster.url, key);
    const want = keyToVolumes(key, placement);
    assert.equal(answer.headers.get("key-volumes"), want.join(","), key);
    assert.equal(answer.headers.get("key-balance"), "balanced", key);
    for (const location of want) {
      assert.equal(
        await Deno.readTextFile(diskPath(location, key)),
        value,
        `${key} at ${location}`,
      );
    }
    for (const location of oldVolumes.get(key)!.filter((l) => !want.includes(l))) {
      assert.equal(await exists(diskPath(location, key)), false, `${key} left at ${location}`);
    }
  }
  // The server switched its placement: a new key goes where the new placement says.
  assert.equal(await put(cluster.url, "/after", "after"), 201);
  const after = await head(cluster.url, "/after");
  assert.equal(after.headers.get("key-volumes"), keyToVolumes("/after", placement).join(","));
  assert.equal(after.headers.get("key-balance"), "balanced");

  // Run again: nothing left to move.
  const again = await runIndexCommand(["rebalance", ...indexArgs(cluster, placement.volumes)]);
  assert.equal(again.code, 0, explain(again));
  assert.doesNotMatch(again.stdout, /moved/, explain(again));
});

Deno.test("rebalance copies to a target whose replica was lost, and removes no copy before", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const keys = Array.from({ length: 40 }, (_, i) => `/lost${i}`);
  for (const key of keys) assert.equal(await put(cluster.url, key, `v${key}`), 201);
  const [port4] = freePorts(1);
  await using _volume4 = await spawnVolume({ port: port4, dir: join(cluster.dir, "volume4") });
  const placement: Placement = {
    volumes: [...volumeHosts(cluster), `localhost:${port4}`],
    replicas: 2,
    subvolumes: SUBVOLUMES,
  };
  // Keys that keep one location and move the other: the kept one loses its file behind the
  // index's back, so that the copy being moved away is the last good one.
  const damaged: string[] = [];
  for (const key of keys) {
    const old = (await head(cluster.url, key)).headers.get("key-volumes")!.split(",");
    const kept = keyToVolumes(key, placement).filter((location) => old.includes(location));
    if (kept.length !== 1) continue;
    const i = placement.volumes.indexOf(locationHost(kept[0]));
    await Deno.remove(join(cluster.dir, `volume${i + 1}`, relativePath(kept[0], key)));
    damaged.push(key);
  }
  assert.ok(damaged.length > 0, "some keys must keep one location for this test to mean anything");

  const common = indexArgs(cluster, placement.volumes);
  const result = await runIndexCommand(["rebalance", ...common]);
  assert.equal(result.code, 0, explain(result));
  const verify = await runIndexCommand(["verify", "--md5", ...common]);
  assert.equal(verify.code, 0, `after the rebalance, verify: ${explain(verify)}`);
  for (const key of keys) {
    for (const location of keyToVolumes(key, placement)) {
      const i = placement.volumes.indexOf(locationHost(location));
      const file = join(cluster.dir, `volume${i + 1}`, relativePath(location, key));
      assert.equal(await Deno.readTextFile(file), `v${key}`, `${key} at ${location}`);
    }
  }
});

Deno.test("rebalance to a volume that is down keeps every record and value where it was", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const keys = Array.from({ length: 12 }, (_, i) => `/stay${i}`);
  for (const key of keys) assert.equal(await put(cluster.url, key, `v${key}`), 201);
  const before = new Map<string, string | null>();
  for (const key of keys) {
    before.set(key, (await head(cluster.url, key)).headers.get("key-volumes"));
  }
  const [deadPort] = freePorts(1);
  const volumes = [...volumeHosts(cluster), `localhost:${deadPort}`];
  const placement = { volumes, replicas: 2, subvolumes: SUBVOLUMES };
  const moving = keys.filter((key) =>
    keyToVolumes(key, placement).some((l) => locationHost(l) === `localhost:${deadPort}`)
  );
  assert.ok(moving.length > 0, "some keys must want the dead volume");

  const result = await runIndexCommand(["rebalance", ...indexArgs(cluster, volumes)]);
  assert.equal(result.code, 1, explain(result));
  assert.match(result.stdout, new RegExp(`failed ${moving.length}\\b`), explain(result));
  for (const key of moving) {
    assert.match(result.stdout, new RegExp(`failed "${key}": kept at`), explain(result));
  }
  for (const key of keys) {
    const answer = await getFollow(cluster.url, key);
    assert.equal(answer.status, 200, key);
    assert.equal(answer.body, `v${key}`, key);
    if (moving.includes(key)) {
      assert.equal((await head(cluster.url, key)).headers.get("key-volumes"), before.get(key), key);
    }
  }
});

Deno.test("rebuild online, through the server: found keys are served at once, unlinked stay so", async () => {
  await using cluster = await testCluster();
  assert.equal(await put(cluster.url, "/live", "live"), 201);
  assert.equal(await put(cluster.url, "/hidden", "hidden"), 201);
  assert.equal((await request(`${cluster.url}/hidden`, { method: "UNLINK" })).status, 204);
  const hosts = volumeHosts(cluster);
  const placement = { volumes: hosts, replicas: 3, subvolumes: SUBVOLUMES };
  for (const location of keyToVolumes("/byhand", placement)) {
    const i = hosts.indexOf(locationHost(location));
    await placeFile(join(cluster.dir, `volume${i + 1}`), relativePath(location, "/byhand"), "hand");
  }
  // The server has answered (and cached) that the key is absent.
  assert.equal((await head(cluster.url, "/byhand")).status, 404);

  const common = ["--db", join(cluster.dir, "index"), "--volumes", hosts.join(",")];
  const result = await runIndexCommand(["rebuild", ...common]);
  assert.equal(result.code, 0, explain(result));
  assert.match(result.stdout, /rebuild: added 1, unchanged 2 in/, explain(result));
  const answer = await getFollow(cluster.url, "/byhand");
  assert.equal(answer.status, 200);
  assert.equal(answer.body, "hand");
  assert.equal((await head(cluster.url, "/byhand")).headers.get("content-md5"), md5Hex("hand"));
  // The rebuilt record keeps the value's size: the stored bytes count it (4 + 4).
  const metrics = (await request(`${cluster.url}/-/metrics`)).body;
  assert.match(metrics, /^mkv_bytes\{state="live"\} 8$/m);
  assert.equal((await head(cluster.url, "/hidden")).status, 404);
  assert.deepEqual(JSON.parse((await request(`${cluster.url}/?unlinked`)).body).keys, ["/hidden"]);
});

Deno.test("rebuild after the index is lost gives back the same keys, volumes and md5s", async () => {
  await using cluster = await testCluster();
  const keys = ["/one", "/two/deeper", "/éàü", "/a b", nestedKey()];
  for (let i = 0; i < 20; i++) keys.push(`/many/${i}`);
  for (const key of keys) assert.equal(await put(cluster.url, encodeURI(key), `v:${key}`), 201);
  const before = new Map<string, [string | null, string | null]>();
  for (const key of keys) {
    const answer = await head(cluster.url, key);
    before.set(key, [answer.headers.get("key-volumes"), answer.headers.get("content-md5")]);
    assert.equal(answer.headers.get("content-md5"), md5Hex(`v:${key}`));
  }
  const db = join(cluster.dir, "index");
  await cluster.index.stop();
  await Deno.remove(db, { recursive: true });

  const result = await runIndexCommand([
    "rebuild",
    "--db",
    db,
    "--volumes",
    volumeHosts(cluster).join(","),
  ]);
  assert.equal(result.code, 0, explain(result));
  assert.match(result.stdout, new RegExp(`rebuild: added ${keys.length} in`), explain(result));

  const [port] = freePorts(1);
  await using index = await spawnIndex({ port, db, volumes: volumeHosts(cluster) });
  for (const key of keys) {
    const answer = await head(index.url, key);
    assert.equal(answer.status, 302, key);
    assert.deepEqual(
      [answer.headers.get("key-volumes"), answer.headers.get("content-md5")],
      before.get(key),
      key,
    );
    assert.equal((await getFollow(index.url, encodeURI(key))).body, `v:${key}`);
  }
  const listed = JSON.parse((await request(`${index.url}/?list`)).body);
  assert.deepEqual(
    listed.keys,
    [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
  );
});

Deno.test("verify finds a missing and (with --md5) a corrupt replica; --repair fixes both", async () => {
  await using cluster = await testCluster();
  const value = "the value of a verified key";
  for (let i = 0; i < 10; i++) assert.equal(await put(cluster.url, `/v${i}`, `${value} ${i}`), 201);
  const locationsOf = async (key: string) =>
    (await head(cluster.url, key)).headers.get("key-volumes")!.split(",");
  const [corruptAt] = await locationsOf("/v3");
  const corruptFile = fileOnDisk(cluster, corruptAt, keyToPath("/v3"));
  await Deno.writeTextFile(corruptFile, `${value} X`);
  const missingAt = (await locationsOf("/v7"))[1];
  await Deno.remove(fileOnDisk(cluster, missingAt, keyToPath("/v7")));
  const common = ["--db", join(cluster.dir, "index"), "--volumes", volumeHosts(cluster).join(",")];

  const plain = await runIndexCommand(["verify", ...common]);
  assert.equal(plain.code, 1, explain(plain));
  assert.match(plain.stdout, new RegExp(`missing "/v7" at ${missingAt}`), explain(plain));
  assert.doesNotMatch(plain.stdout, /corrupt/, explain(plain));

  const md5 = await runIndexCommand(["verify", "--md5", "--json", ...common]);
  assert.equal(md5.code, 1, explain(md5));
  const events = md5.stdout.trim().split("\n").map((line) => JSON.parse(line));
  const items = events.filter((e) => e.type === "item").map((e) => [e.outcome, e.key, e.location]);
  assert.deepEqual(items.sort(), [["corrupt", "/v3", corruptAt], ["missing", "/v7", missingAt]]);
  const summary = events[events.length - 1];
  assert.equal(summary.type, "summary");
  assert.deepEqual(summary.counts, { ok: 8, corrupt: 1, missing: 1 });
  assert.equal(summary.undone, 2);

  const repair = await runIndexCommand(["verify", "--md5", "--repair", ...common]);
  assert.equal(repair.code, 0, explain(repair));
  assert.match(repair.stdout, /repaired "\/v3" at .*was corrupt/, explain(repair));
  assert.match(repair.stdout, /repaired "\/v7" at .*was missing/, explain(repair));
  assert.equal(await Deno.readTextFile(corruptFile), `${value} 3`);
  assert.equal(
    await Deno.readTextFile(fileOnDisk(cluster, missingAt, keyToPath("/v7"))),
    `${value} 7`,
  );

  const clean = await runIndexCommand(["verify", "--md5", ...common]);
  assert.equal(clean.code, 0, explain(clean));
  assert.match(clean.stdout, /verify: ok 10 in/, explain(clean));
});

Deno.test("gc finds orphan files (--dry-run lists them) and removes them, online; an extra copy of a value stays", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  for (let i = 0; i < 10; i++) assert.equal(await put(cluster.url, `/g${i}`, `g${i}`), 201);
  const hosts = volumeHosts(cluster);
  const placement = { volumes: hosts, replicas: 2, subvolumes: SUBVOLUMES };
  const onDisk = (location: string, key: string) => fileOnDisk(cluster, location, keyToPath(key));
  // A key with no record at all; a copy of a live key's value where its record does not point
  // (an extra copy, kept); and a file of another value there (an orphan).
  const [orphanAt] = keyToVolumes("/orphan", placement);
  await placeFile(
    join(cluster.dir, `volume${hosts.indexOf(locationHost(orphanAt)) + 1}`),
    relativePath(orphanAt, "/orphan"),
    "lost",
  );
  const elsewhere = (key: string) => {
    const host = hosts.find((h) => !keyToVolumes(key, placement).some((l) => l.startsWith(h)))!;
    return { at: `${host}/sv00`, root: join(cluster.dir, `volume${hosts.indexOf(host) + 1}`) };
  };
  const extra = elsewhere("/g1");
  await placeFile(extra.root, relativePath(extra.at, "/g1"), "g1");
  const stale = elsewhere("/g2");
  await placeFile(stale.root, relativePath(stale.at, "/g2"), "an older g2");
  // A file that is no key's is left alone.
  const stray = join(cluster.dir, "volume1", "sv00", "ab", "cd", "not a key%");
  await placeFile(join(cluster.dir, "volume1"), "sv00/ab/cd/not a key%", "?");
  const common = ["--db", join(cluster.dir, "index"), "--volumes", hosts.join(",")];

  const dry = await runIndexCommand(["gc", "--dry-run", ...common]);
  assert.equal(dry.code, 0, explain(dry));
  assert.match(dry.stdout, new RegExp(`orphan "/orphan" at ${orphanAt}`), explain(dry));
  assert.match(dry.stdout, new RegExp(`orphan "/g2" at ${stale.at}`), explain(dry));
  assert.match(dry.stdout, new RegExp(`extra "/g1" at ${extra.at}`), explain(dry));
  assert.match(dry.stdout, /ignored .*not a key%/, explain(dry));
  assert.equal(await exists(onDisk(orphanAt, "/orphan")), true);
  assert.equal(await exists(onDisk(stale.at, "/g2")), true);

  const real = await runIndexCommand(["gc", ...common]);
  assert.equal(real.code, 0, explain(real));
  assert.match(real.stdout, /gc: extra 1, ignored 1, kept 20, removed 2 in/, explain(real));
  assert.equal(await exists(onDisk(orphanAt, "/orphan")), false);
  assert.equal(await exists(onDisk(stale.at, "/g2")), false);
  assert.equal(await exists(onDisk(extra.at, "/g1")), true);
  assert.equal(await exists(stray), true);
  for (let i = 0; i < 10; i++) assert.equal((await getFollow(cluster.url, `/g${i}`)).body, `g${i}`);
});

Deno.test("gc offline removes an interrupted write: its files and its record", async () => {
  await using cluster = await testCluster();
  assert.equal(await put(cluster.url, "/kept", "kept"), 201);
  const db = join(cluster.dir, "index");
  await cluster.index.stop();
  const hosts = volumeHosts(cluster);
  const locations = keyToVolumes("/w", { volumes: hosts, replicas: 3, subvolumes: SUBVOLUMES });
  for (const location of locations.slice(0, 2)) {
    const i = hosts.indexOf(locationHost(location));
    await placeFile(join(cluster.dir, `volume${i + 1}`), relativePath(location, "/w"), "half");
  }
  const store = await Store.open(db);
  try {
    await store.set("/w", { state: "writing", volumes: locations, md5: "" });
  } finally {
    store.close();
  }
  const common = ["--db", db, "--volumes", hosts.join(",")];

  const dry = await runIndexCommand(["gc", "--dry-run", ...common]);
  assert.equal(dry.code, 0, explain(dry));
  assert.match(dry.stdout, /interrupted "\/w"/, explain(dry));
  assert.doesNotMatch(dry.stdout, /orphan/, explain(dry));

  const real = await runIndexCommand(["gc", ...common]);
  assert.equal(real.code, 0, explain(real));
  assert.match(real.stdout, /cleaned "\/w"/, explain(real));
  for (const location of locations) {
    assert.equal(await exists(fileOnDisk(cluster, location, keyToPath("/w"))), false, location);
  }
  const after = await Store.open(db);
  try {
    assert.equal(await after.get("/w"), null);
    assert.notEqual(await after.get("/kept"), null);
  } finally {
    after.close();
  }
});

for (const subvolumes of [SUBVOLUMES, 1]) {
  Deno.test(`a cluster laid out by hand in minikeyvalue's layout (${subvolumes} subvolumes) is rebuilt and served`, async () => {
    await using dir = await tempDir();
    const ports = freePorts(4);
    const hosts = ports.slice(1).map((port) => `localhost:${port}`);
    const volumeDirs = ports.slice(1).map((_, i) => join(dir.path, `volume${i + 1}`));
    await using v1 = await spawnVolume({ port: ports[1], dir: volumeDirs[0] });
    await using v2 = await spawnVolume({ port: ports[2], dir: volumeDirs[1] });
    await using v3 = await spawnVolume({ port: ports[3], dir: volumeDirs[2] });
    assert.equal([v1, v2, v3].length, 3);
    const placement: Placement = { volumes: hosts, replicas: 2, subvolumes };
    const values = new Map<string, string>([
      ["/hello", "world"],
      ["/wehave", "bigswag"],
      ["/ünïcödé key", "utf-8"],
      [nestedKey(), "nested base64"],
    ]);
    for (let i = 0; i < 10; i++) values.set(`/file${i}.txt`, `contents ${i}`);
    for (const [key, value] of values) {
      for (const location of keyToVolumes(key, placement)) {
        const i = hosts.indexOf(locationHost(location));
        await placeFile(volumeDirs[i], relativePath(location, key), value);
      }
    }
    // Two replicas of one key that disagree: rebuild must not pick one.
    const [c1, c2] = keyToVolumes("/conflicted", placement);
    await placeFile(
      volumeDirs[hosts.indexOf(locationHost(c1))],
      relativePath(c1, "/conflicted"),
      "one",
    );
    await placeFile(
      volumeDirs[hosts.indexOf(locationHost(c2))],
      relativePath(c2, "/conflicted"),
      "two",
    );

    const db = join(dir.path, "index");
    const result = await runIndexCommand([
      "rebuild",
      "--db",
      db,
      "--volumes",
      hosts.join(","),
      "--replicas",
      "2",
      "--subvolumes",
      String(subvolumes),
    ]);
    assert.equal(result.code, 1, explain(result));
    assert.match(result.stdout, /conflict "\/conflicted": replicas differ/, explain(result));
    assert.match(result.stdout, new RegExp(`added ${values.size}, conflict 1`), explain(result));

    await using index = await spawnIndex({
      port: ports[0],
      db,
      volumes: hosts,
      args: ["--replicas", "2", "--subvolumes", String(subvolumes)],
    });
    for (const [key, value] of values) {
      const answer = await head(index.url, key);
      assert.equal(answer.status, 302, key);
      assert.equal(answer.headers.get("key-balance"), "balanced", key);
      assert.equal(answer.headers.get("key-volumes"), keyToVolumes(key, placement).join(","), key);
      assert.equal(answer.headers.get("content-md5"), md5Hex(value), key);
      const read = await getFollow(index.url, encodeURI(key));
      assert.equal(read.status, 200, key);
      assert.equal(read.body, value, key);
    }
    assert.equal((await head(index.url, "/conflicted")).status, 404);
  });
}

Deno.test("an operation on an index held by a server that does not answer says so", async () => {
  await using dir = await tempDir();
  const db = join(dir.path, "index");
  const store = await Store.open(db);
  try {
    const result = await runIndexCommand([
      "verify",
      "--db",
      db,
      "--volumes",
      "localhost:1",
      "--replicas",
      "1",
    ]);
    assert.equal(result.code, 1, explain(result));
    assert.match(
      result.stderr,
      /in use by another mkv.ts process.*no server answers/,
      explain(result),
    );
  } finally {
    store.close();
  }
});
