// Overwrites against real clusters (docs/design.md, "Overwrites" and "Versioned files"): a value
// written over another goes to a new version's file and never over a file a record names, so that a
// kill -9 of the index at the last byte of any kind of overwrite (S3 PutObject, CopyObject,
// CompleteMultipartUpload, a plain PUT over an unlinked key) leaves the old value or the new one,
// whole, with its own ETag and length; readers racing overwrites get one value or the other, whole,
// with its own headers; and verify, gc and rebuild read the versioned files.
//
//   node_modules/.bin/deno test -A tests/faults/overwrite_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnIndex } from "../../dev/cluster.ts";
import {
  keyToPath,
  keyToVolumes,
  locationHost,
  type Placement,
  versionPath,
} from "../../lib/placement.ts";
import {
  eventually,
  fileOnDisk,
  getFollow,
  keysPlaced,
  md5Hex,
  nginxPids,
  put,
  request,
  runScript,
  SCRIPT_TIMEOUT_MS,
  type ScriptResult,
  testCluster,
} from "../helpers.ts";

/** Makes a request S3's on the main port of an index without --credentials. */
const S3 = { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" };
const MIB = 1024 * 1024;
/** How long the index may take to come back and settle what a kill left. */
const RECOVERY_MS = 10_000;
/** How long a kill waits at most for the new file to appear. */
const FILE_WAIT_MS = 30_000;
/** How long each phase of readers racing a writer lasts. */
const RACE_MS = 3_000;

type TestCluster = Awaited<ReturnType<typeof testCluster>>;

/** A value `sizeBytes` long made of `label`, recognisable on disk. */
function valueOf(label: string, sizeBytes: number): string {
  const base = `${label};`;
  return base.repeat(Math.ceil(sizeBytes / base.length)).slice(0, sizeBytes);
}

function placementOf(cluster: TestCluster): Placement {
  return {
    volumes: cluster.volumes.map((volume) => `localhost:${volume.port}`),
    replicas: 3,
    subvolumes: 10,
  };
}

function explain(result: ScriptResult): string {
  return `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

function indexCommand(cluster: TestCluster, args: string[]): Promise<ScriptResult> {
  return runScript([
    "index.ts",
    ...args,
    "--db",
    join(cluster.dir, "index"),
    "--volumes",
    placementOf(cluster).volumes.join(","),
  ], { timeoutMs: SCRIPT_TIMEOUT_MS });
}

/** The files of `key` (its plain one and its versions) on the volumes the placement gives it. */
async function filesOfKey(cluster: TestCluster, key: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  for (const location of keyToVolumes(key, placementOf(cluster))) {
    const plain = fileOnDisk(cluster, location, keyToPath(key));
    try {
      files.set(plain, (await Deno.stat(plain)).ino!);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    try {
      for await (const entry of Deno.readDir(`${plain}~`)) {
        const file = `${plain}~/${entry.name}`;
        files.set(file, (await Deno.stat(file)).ino!);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return files;
}

/** Resolves once a file of `key` appears that is not among `before` (a new name or inode). */
async function newFileOf(
  cluster: TestCluster,
  key: string,
  before: Map<string, number>,
): Promise<string> {
  const deadline = Date.now() + FILE_WAIT_MS;
  while (Date.now() < deadline) {
    for (const [file, ino] of await filesOfKey(cluster, key)) {
      if (before.get(file) !== ino) return file;
    }
  }
  throw new Error(`no new file of ${key} appeared within ${FILE_WAIT_MS / 1000}s`);
}

/** The volume whose nginx killAtNewFile stops: the host of the key's last replica. */
function heldHost(cluster: TestCluster, key: string): string {
  return locationHost(keyToVolumes(key, placementOf(cluster))[2]);
}

/**
 * Starts `write` (an overwrite of `key`) with the nginx of one of the key's volumes stopped
 * (SIGSTOP), so that the index waits for it; kills the index with SIGKILL as soon as a new file of
 * the key appears on another volume (the value's last byte is there, and the index has not
 * committed); lets the stopped volume go on and starts the index again.
 */
async function killAtNewFile(
  cluster: TestCluster,
  key: string,
  write: () => Promise<unknown>,
): Promise<TestCluster> {
  const before = await filesOfKey(cluster, key);
  const held = heldHost(cluster, key);
  const pids = await nginxPids(Number(held.slice(held.lastIndexOf(":") + 1)));
  for (const pid of pids) Deno.kill(pid, "SIGSTOP");
  try {
    const writing = write().catch(() => {});
    await newFileOf(cluster, key, before);
    cluster.index.kill("SIGKILL");
    await cluster.index.status;
    await writing;
  } finally {
    for (const pid of pids) Deno.kill(pid, "SIGCONT");
  }
  const index = await spawnIndex({
    port: cluster.index.port,
    db: join(cluster.dir, "index"),
    volumes: placementOf(cluster).volumes,
  });
  // The cluster's disposal stops this index in place of the killed one.
  return Object.assign(cluster, { index });
}

/** S3 GETs and HEADs of `/bkt/k` give one of `values`, whole, with its own ETag and length. */
async function assertWhole(cluster: TestCluster, path: string, values: string[]): Promise<string> {
  const head = await request(`${cluster.url}${path}`, { method: "HEAD", headers: S3 });
  assert.equal(head.status, 200);
  const etag = head.headers.get("etag");
  const value = values.find((v) => `"${md5Hex(v)}"` === etag);
  assert.ok(value !== undefined, `HEAD ${path}: ETag ${etag} is none of the values'`);
  assert.equal(head.headers.get("content-length"), String(value.length));
  // Each GET picks a replica at random: enough of them read every one.
  for (let i = 0; i < 12; i++) {
    const got = await request(`${cluster.url}${path}`, { headers: S3 });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("etag"), etag);
    assert.equal(got.headers.get("content-length"), String(value.length));
    assert.equal(md5Hex(got.body), md5Hex(value), `GET ${path}: a body not its ETag's`);
  }
  return value;
}

/**
 * The restarted index's start-up sweep removes the interrupted write's files (the kill always lands
 * before the commit: killAtNewFile), leaving the key its three; verify --md5 says ok; gc finds
 * nothing of the key to remove.
 */
async function assertClean(cluster: TestCluster, key: string): Promise<void> {
  const swept = await eventually(
    async () => (await filesOfKey(cluster, key)).size === 3,
    RECOVERY_MS,
  );
  assert.ok(swept, `files of ${key}: ${[...(await filesOfKey(cluster, key)).keys()].join(", ")}`);
  const verify = await indexCommand(cluster, ["verify", "--md5"]);
  assert.equal(verify.code, 0, explain(verify));
  const gc = await indexCommand(cluster, ["gc"]);
  assert.equal(gc.code, 0, explain(gc));
  assert.doesNotMatch(gc.stdout, /removed/, explain(gc));
  assert.equal((await filesOfKey(cluster, key)).size, 3);
}

async function createBucket(cluster: TestCluster, bucket: string): Promise<void> {
  const made = await request(`${cluster.url}/${bucket}`, { method: "PUT", headers: S3 });
  assert.equal(made.status, 200, made.body);
}

async function s3Put(cluster: TestCluster, path: string, value: string, headers = {}) {
  const stored = await request(`${cluster.url}${path}`, {
    method: "PUT",
    headers: { ...S3, ...headers },
    body: value,
  });
  assert.equal(stored.status, 200, stored.body);
}

const OLD = valueOf("the old value", MIB + 11);
const NEW = valueOf("the new value", 2 * MIB + 7);

Deno.test("kill -9 of the index at the last byte of an S3 PutObject over a value", async () => {
  const cluster = await testCluster();
  await using _ = cluster;
  await createBucket(cluster, "bkt");
  await s3Put(cluster, "/bkt/put", OLD);
  await killAtNewFile(
    cluster,
    "/bkt/put",
    () => request(`${cluster.url}/bkt/put`, { method: "PUT", headers: S3, body: NEW }),
  );
  await assertWhole(cluster, "/bkt/put", [OLD, NEW]);
  await assertClean(cluster, "/bkt/put");
});

Deno.test("kill -9 of the index at the last byte of an S3 CopyObject over a value", async () => {
  // Four volumes: the source is on three that leave out the one held back (killAtNewFile).
  const cluster = await testCluster({ volumes: 4 });
  await using _ = cluster;
  await createBucket(cluster, "bkt");
  const [source] = keysPlaced({
    prefix: "/bkt/source",
    placement: placementOf(cluster),
    host: heldHost(cluster, "/bkt/copy"),
    onHost: false,
    count: 1,
  });
  await s3Put(cluster, source, NEW);
  await s3Put(cluster, "/bkt/copy", OLD);
  await killAtNewFile(cluster, "/bkt/copy", () =>
    request(`${cluster.url}/bkt/copy`, {
      method: "PUT",
      headers: { ...S3, "x-amz-copy-source": source },
    }));
  await assertWhole(cluster, "/bkt/copy", [OLD, NEW]);
  await assertClean(cluster, "/bkt/copy");
});

Deno.test("kill -9 of the index at the last byte of an S3 CompleteMultipartUpload over a value", async () => {
  const cluster = await testCluster();
  await using _ = cluster;
  await createBucket(cluster, "bkt");
  await s3Put(cluster, "/bkt/mpu", OLD);
  const created = await request(`${cluster.url}/bkt/mpu?uploads`, { method: "POST", headers: S3 });
  assert.equal(created.status, 200, created.body);
  const uploadId = created.body.match(/<UploadId>([^<]+)<\/UploadId>/)![1];
  const part = await request(`${cluster.url}/bkt/mpu?partNumber=1&uploadId=${uploadId}`, {
    method: "PUT",
    headers: S3,
    body: NEW,
  });
  assert.equal(part.status, 200, part.body);
  const etag = part.headers.get("etag")!;
  const complete = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>" +
    `<ETag>${etag}</ETag></Part></CompleteMultipartUpload>`;
  await killAtNewFile(
    cluster,
    "/bkt/mpu",
    () =>
      request(`${cluster.url}/bkt/mpu?uploadId=${uploadId}`, {
        method: "POST",
        headers: S3,
        body: complete,
      }),
  );
  // A multipart value's ETag is the md5 of its parts' md5s: the body is checked by its md5.
  const head = await request(`${cluster.url}/bkt/mpu`, { method: "HEAD", headers: S3 });
  assert.equal(head.status, 200);
  const etagNow = head.headers.get("etag")!;
  const value = etagNow === `"${md5Hex(OLD)}"` ? OLD : NEW;
  if (value === NEW) assert.match(etagNow, /-1"$/);
  assert.equal(head.headers.get("content-length"), String(value.length));
  for (let i = 0; i < 12; i++) {
    const got = await request(`${cluster.url}/bkt/mpu`, { headers: S3 });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("etag"), etagNow);
    assert.equal(got.headers.get("content-length"), String(value.length));
    assert.equal(md5Hex(got.body), md5Hex(value), "GET /bkt/mpu: a body not its ETag's");
  }
  await assertClean(cluster, "/bkt/mpu");
});

Deno.test("kill -9 of the index at the last byte of a PUT over an unlinked key: neither value is lost", async () => {
  const cluster = await testCluster();
  await using _ = cluster;
  const key = "/unlinked-last-byte";
  assert.equal(await put(cluster.url, key, OLD), 201);
  assert.equal((await request(`${cluster.url}${key}`, { method: "UNLINK" })).status, 204);
  await killAtNewFile(
    cluster,
    key,
    () => request(`${cluster.url}${key}`, { method: "PUT", body: NEW }),
  );
  const live = await getFollow(cluster.url, key);
  if (live.status === 200) {
    assert.equal(md5Hex(live.body), md5Hex(NEW), "the live value is the new one, whole");
  } else {
    // The write is undone: the unlinked value is back, whole on each of its files.
    assert.equal(live.status, 404);
    const back = await eventually(async () => {
      const listed = await request(`${cluster.url}/?unlinked`);
      return (JSON.parse(listed.body) as { keys: string[] }).keys.includes(key);
    }, RECOVERY_MS);
    assert.ok(back, "the unlinked value is lost");
    const plain = keyToVolumes(key, placementOf(cluster)).map((location) =>
      fileOnDisk(cluster, location, keyToPath(key))
    );
    for (const file of plain) assert.equal(md5Hex(await Deno.readFile(file)), md5Hex(OLD), file);
  }
  await assertClean(cluster, key);
});

/**
 * One writer alternating a 1 MiB and a 3 MiB value of `/bkt/race` over S3, three readers GETting it
 * meanwhile, for RACE_MS: every 200 has a body whose md5 is its ETag and whose length is its
 * Content-Length, and no read breaks.
 */
async function raceReaders(cluster: TestCluster, meta: Record<string, string>): Promise<number> {
  const values = [valueOf("one", MIB), valueOf("three", 3 * MIB)];
  await s3Put(cluster, "/bkt/race", values[0], meta);
  const until = Date.now() + RACE_MS;
  const writer = (async () => {
    for (let i = 1; Date.now() < until; i++) await s3Put(cluster, "/bkt/race", values[i % 2], meta);
  })();
  const bad: string[] = [];
  let good = 0;
  const reader = async () => {
    while (Date.now() < until) {
      try {
        const response = await fetch(`${cluster.url}/bkt/race`, { headers: S3 });
        const body = new Uint8Array(await response.arrayBuffer());
        if (response.status !== 200) {
          bad.push(`status ${response.status}`);
          continue;
        }
        const etag = response.headers.get("etag");
        const length = response.headers.get("content-length");
        if (etag !== `"${md5Hex(body)}"` || length !== String(body.length)) {
          bad.push(`${body.length} bytes md5 ${md5Hex(body)} with ETag ${etag} length ${length}`);
        } else good++;
      } catch (err) {
        bad.push(`broken read: ${err}`);
      }
    }
  };
  await Promise.all([writer, reader(), reader(), reader()]);
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} bad reads of ${bad.length + good}`);
  return good;
}

Deno.test("S3 readers racing overwrites get one value or the other, whole, with its own headers", async () => {
  const cluster = await testCluster();
  await using _ = cluster;
  await createBucket(cluster, "bkt");
  assert.ok(await raceReaders(cluster, {}) > 0);
  // With metadata the index streams the body itself rather than nginx's internal redirect.
  assert.ok(await raceReaders(cluster, { "x-amz-meta-tag": "raced" }) > 0);
});

Deno.test("versioned files: the record names the current one; verify, gc and rebuild read them", async () => {
  const cluster = await testCluster();
  await using _ = cluster;
  await createBucket(cluster, "bkt");
  const key = "/bkt/versions";
  await s3Put(cluster, key, "first");
  await s3Put(cluster, key, "second");
  const placement = placementOf(cluster);
  const locations = keyToVolumes(key, placement);
  // The first value's plain file goes once its grace is over; the second is a version's.
  const settled = await eventually(async () => (await filesOfKey(cluster, key)).size === 3, 5000);
  assert.ok(settled, `files: ${[...(await filesOfKey(cluster, key)).keys()]}`);
  const [current] = [...(await filesOfKey(cluster, key)).keys()];
  const version = current.slice(current.lastIndexOf("/") + 1);
  assert.match(version, /^[0-9a-f]{16}$/);
  assert.equal(await Deno.readTextFile(current), "second");
  const located = await request(`${cluster.url}${key}`);
  assert.equal(located.status, 302);
  assert.match(located.headers.get("location")!, new RegExp(`~/${version}$`));
  assert.equal((await getFollow(cluster.url, key)).body, "second");
  const range = await request(`${cluster.url}${key}`, { headers: { ...S3, range: "bytes=1-3" } });
  assert.equal(range.status, 206);
  assert.equal(range.body, "eco");

  // Leftovers no record names: an older version on one volume, an interrupted newer one on two.
  const older = "0000000000000001";
  const newer = "ffffffffffff0000";
  const place = async (location: string, v: string, text: string) => {
    const file = fileOnDisk(cluster, location, versionPath(keyToPath(key), v));
    await Deno.writeTextFile(file, text);
  };
  await place(locations[0], older, "older");
  await place(locations[1], newer, "interrupted");
  await place(locations[2], newer, "interrupted");
  const verify = await indexCommand(cluster, ["verify", "--md5"]);
  assert.equal(verify.code, 0, explain(verify));
  // An online rebuild keeps the version the record names.
  const rebuild = await indexCommand(cluster, ["rebuild"]);
  assert.equal(rebuild.code, 0, explain(rebuild));
  assert.equal((await getFollow(cluster.url, key)).body, "second");
  const dry = await indexCommand(cluster, ["gc", "--dry-run"]);
  assert.match(dry.stdout, new RegExp(`orphan "${key}" at ${locations[0]}: .*${older}`));
  const gc = await indexCommand(cluster, ["gc"]);
  assert.equal(gc.code, 0, explain(gc));
  assert.deepEqual(
    [...(await filesOfKey(cluster, key)).keys()].sort(),
    [
      ...locations.map((location) =>
        fileOnDisk(cluster, location, versionPath(keyToPath(key), version))
      ),
    ].sort(),
  );

  // A rebuild from the volumes alone takes the newest version whole on the volumes: here one
  // left whole on every replica, as an overwrite interrupted after its files were complete.
  for (const location of locations) await place(location, newer, "interrupted");
  await cluster.index.stop();
  await Deno.remove(join(cluster.dir, "index"), { recursive: true });
  const fresh = await indexCommand(cluster, ["rebuild"]);
  assert.equal(fresh.code, 0, explain(fresh));
  Object.assign(cluster, {
    index: await spawnIndex({
      port: cluster.index.port,
      db: join(cluster.dir, "index"),
      volumes: placement.volumes,
    }),
  });
  assert.equal((await getFollow(cluster.url, key)).body, "interrupted");
  const after = await indexCommand(cluster, ["verify", "--md5"]);
  assert.equal(after.code, 0, explain(after));
  const gcAfter = await indexCommand(cluster, ["gc"]);
  assert.equal(gcAfter.code, 0, explain(gcAfter));
  assert.equal((await filesOfKey(cluster, key)).size, 3);
});

Deno.test("an S3 overwrite that one volume refuses leaves the old value untouched everywhere", async () => {
  const cluster = await testCluster();
  await using _ = cluster;
  await createBucket(cluster, "bkt");
  const key = "/bkt/refused";
  await s3Put(cluster, key, OLD);
  const before = await filesOfKey(cluster, key);
  assert.equal(before.size, 3);
  // The key's directory on one volume becomes read-only: nginx there cannot store the new value,
  // while the two others store it whole.
  const [refusing] = [...before.keys()];
  const dir = refusing.slice(0, refusing.lastIndexOf("/"));
  await Deno.chmod(dir, 0o555);
  try {
    const answer = await request(`${cluster.url}${key}`, { method: "PUT", headers: S3, body: NEW });
    assert.equal(answer.status, 503, answer.body);
  } finally {
    await Deno.chmod(dir, 0o755);
  }
  // The same files, never written over, and none of the new value's left.
  assert.deepEqual(await filesOfKey(cluster, key), before);
  for (const file of before.keys()) assert.equal(md5Hex(await Deno.readFile(file)), md5Hex(OLD));
  await assertWhole(cluster, key, [OLD]);
});
