// Volume signatures and private reads (the volume's nginx secure_link check) on real volumes and
// clusters: unsigned, expired and re-targeted writes get 403 and change nothing, nginx accepts our
// signatures, the index's API and its operations work with signed volumes, a private read's
// Location works with fetch and `curl -L` until it expires, and the secret appears in no process's
// arguments, no log, and only in a 0600 temp config that is removed on exit. The signing function
// itself is in tests/unit/signing_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnVolume } from "../../dev/cluster.ts";
import { keyToPath, keyToVolumes } from "../../lib/placement.ts";
import { pidFileFor, tempListFor } from "../../lib/nginx/mod.ts";
import { signVolumeUrl } from "../../lib/volumes/signing.ts";
import { target } from "../../lib/volumes/protocol.ts";
import {
  ANSWER_TIMEOUT_MS,
  curl,
  eventually,
  exists,
  fileOnDisk,
  freePort,
  getFollow,
  POLL_TIMEOUT_MS,
  put,
  request,
  runScript,
  SCRIPT_TIMEOUT_MS,
  type ScriptResult,
  tempDir,
  testCluster,
} from "../helpers.ts";

const SECRET = "0123456789abcdefSECRET";
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Real volumes

/** A secret file (0600) in `dir`. */
async function secretFile(dir: string): Promise<string> {
  const file = join(dir, "volume.secret");
  await Deno.writeTextFile(file, `${SECRET}\n`, { mode: 0o600 });
  await Deno.chmod(file, 0o600);
  return file;
}

/** One request as raw bytes (`Connection: close`), the target sent exactly as given. */
async function raw(port: number, method: string, target: string, body = "") {
  const head = [
    `${method} ${target} HTTP/1.1`,
    "Host: localhost",
    "Connection: close",
    `Content-Length: ${encoder.encode(body).length}`,
  ];
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), ANSWER_TIMEOUT_MS);
  try {
    await conn.write(encoder.encode(head.join("\r\n") + "\r\n\r\n" + body));
    const text = await new Response(conn.readable).text();
    return {
      status: Number(text.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0),
      body: text.slice(text.indexOf("\r\n\r\n") + 4),
    };
  } finally {
    clearTimeout(timer);
  }
}

const now = () => Math.floor(Date.now() / 1000);
const sign = (method: string, path: string, expiresAt = now() + 60) =>
  signVolumeUrl({ method, path, expiresAt, secret: SECRET });

async function readOrNull(file: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

Deno.test("a volume with a secret: only signed writes, for their path, method and time", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  const port = freePort();
  await using _volume = await spawnVolume({
    port,
    dir: data,
    args: ["--volume-secret-file", await secretFile(dir.path)],
  });
  const path = "/5d/41/aGVsbG8=";
  const other = "/5d/41/aGVsbG9=";
  const file = join(data, path);
  const refused = async (method: string, target: string, body = "") => {
    const answer = await raw(port, method, target, body);
    assert.equal(answer.status, 403, `${method} ${target}: ${answer.status}`);
  };
  // Unsigned, expired, for another path, for another method, tampered expiry: 403, no file.
  await refused("PUT", path, "x");
  await refused("PUT", sign("PUT", path, now() - 5), "x");
  await refused("PUT", sign("PUT", other).replace(other, path), "x");
  await refused("PUT", sign("DELETE", path), "x");
  await refused("PUT", sign("PUT", path).replace(/expires=\d+/, `expires=${now() + 3600}`), "x");
  await refused("PUT", `${path}?md5=&expires=${now() + 60}`, "x");
  await refused("PUT", `${path}?md5=${sign("PUT", path).split("md5=")[1].split("&")[0]}`, "x");
  assert.equal(await readOrNull(file), null);
  // Signed by us: nginx computes the same signature and takes it.
  assert.equal((await raw(port, "PUT", sign("PUT", path), "value")).status, 201);
  assert.equal(await readOrNull(file), "value");
  // Reads stay open without --private-reads.
  assert.deepEqual(await raw(port, "GET", path), { status: 200, body: "value" });
  assert.equal((await raw(port, "GET", "/")).status, 200);
  // An overwrite or delete that is not signed rightly changes nothing.
  await refused("PUT", path, "evil");
  await refused("PUT", sign("PUT", path, now() - 1), "evil");
  await refused("PUT", sign("PUT", other).replace(other, path), "evil");
  await refused("DELETE", path);
  await refused("DELETE", sign("DELETE", path, now() - 5));
  await refused("DELETE", sign("PUT", path));
  await refused("DELETE", sign("DELETE", other).replace(other, path));
  await refused("DELETE", sign("DELETE", "/"));
  await refused("MKCOL", sign("MKCOL", "/ab/"));
  await refused("MOVE", sign("MOVE", path));
  assert.equal(await readOrNull(file), "value");
  // The write probe is signed too.
  await refused("PUT", "/.mkv-probe", "p");
  assert.ok([201, 204].includes((await raw(port, "PUT", sign("PUT", "/.mkv-probe"), "p")).status));
  assert.equal((await raw(port, "DELETE", sign("DELETE", path))).status, 204);
  assert.equal(await readOrNull(file), null);
});

Deno.test("a volume with --private-reads: GET/HEAD of files and listings need a signature", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  const port = freePort();
  await using _volume = await spawnVolume({
    port,
    dir: data,
    args: ["--volume-secret-file", await secretFile(dir.path), "--private-reads"],
  });
  const path = "/5d/41/aGVsbG8=";
  const other = "/5d/41/aGVsbG9=";
  assert.equal((await raw(port, "PUT", sign("PUT", path), "value")).status, 201);
  for (const method of ["GET", "HEAD"]) {
    assert.equal((await raw(port, method, path)).status, 403, method);
    assert.equal((await raw(port, method, sign("GET", path, now() - 2))).status, 403, method);
    assert.equal((await raw(port, method, sign("GET", other).replace(other, path))).status, 403);
    assert.equal((await raw(port, method, sign("GET", path))).status, 200, method);
    // A write's signature is not a read's.
    assert.equal((await raw(port, method, sign("PUT", path))).status, 403, method);
  }
  assert.deepEqual(await raw(port, "GET", sign("GET", path)), { status: 200, body: "value" });
  for (const listing of ["/", "/5d/", "/5d/41/"]) {
    assert.equal((await raw(port, "GET", listing)).status, 403, listing);
    // fetch, as the index does: nginx sends listings chunked.
    const answer = await request(`http://localhost:${port}${sign("GET", listing)}`);
    assert.equal(answer.status, 200, listing);
    assert.ok(Array.isArray(JSON.parse(answer.body)), listing);
  }
  assert.equal((await raw(port, "GET", "/.mkv-probe")).status, 403);
});

Deno.test("a secret file that others can read is refused by volume.ts and index.ts", async () => {
  await using dir = await tempDir();
  const file = await secretFile(dir.path);
  await Deno.chmod(file, 0o640);
  const port = freePort();
  const volume = await runScript([
    "volume.ts",
    "--port",
    String(port),
    "--dir",
    join(dir.path, "v"),
    "--volume-secret-file",
    file,
  ]);
  assert.equal(volume.code, 1, volume.stderr);
  assert.equal(
    volume.stderr.trim(),
    `volume: volume secret file ${file} is readable or writable by others; run: chmod 600 ${file}`,
  );
  const index = await runScript([
    "index.ts",
    "server",
    "--port",
    String(port),
    "--db",
    join(dir.path, "i"),
    "--volumes",
    "localhost:1",
    "--replicas",
    "1",
    "--volume-secret-file",
    file,
  ]);
  assert.equal(index.code, 1, index.stderr);
  assert.match(index.stderr, /^index: volume secret file .* run: chmod 600 /m);
  assert.equal(await exists(join(dir.path, "v")), false);
});

// ---------------------------------------------------------------------------------------------
// Clusters

type TestCluster = Awaited<ReturnType<typeof testCluster>>;

function explain(result: ScriptResult): string {
  return `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

function runIndexCommand(args: string[]): Promise<ScriptResult> {
  return runScript(["index.ts", ...args], { timeoutMs: SCRIPT_TIMEOUT_MS });
}

function hosts(cluster: TestCluster): string[] {
  return cluster.volumes.map((volume) => `localhost:${volume.port}`);
}

/** Every process's command line and environment, to look for the secret in. */
async function processArgsContaining(text: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    for (const what of ["cmdline", "environ"]) {
      try {
        const content = await Deno.readTextFile(`/proc/${entry.name}/${what}`);
        if (content.includes(text)) found.push(`${entry.name}/${what}: ${content}`);
      } catch {
        // Gone, or not ours to read.
      }
    }
  }
  return found;
}

/** The volume's rendered nginx config: the first temp file its program listed. */
async function configOf(port: number): Promise<string> {
  return (JSON.parse(await Deno.readTextFile(tempListFor(pidFileFor(port)))) as string[])[0];
}

Deno.test("a signed cluster: the API works, direct writes are refused, the secret stays private", async () => {
  await using dir = await tempDir();
  const secret = await secretFile(dir.path);
  const signing = ["--volume-secret-file", secret];
  await using cluster = await testCluster({ indexArgs: signing, volumeArgs: signing });
  assert.equal(await put(cluster.url, "/k1", "one"), 201);
  assert.equal((await getFollow(cluster.url, "/k1")).body, "one");
  const redirect = await request(`${cluster.url}/k1`);
  assert.equal(redirect.status, 302);
  const location = redirect.headers.get("location")!;
  assert.ok(!location.includes("md5="), "reads are not signed without --private-reads");
  // The value's file, written by the index with signatures; nobody else may overwrite it.
  const where = redirect.headers.get("key-volumes")!.split(",")[0];
  const url = new URL(location);
  const overwrite = await raw(Number(url.port), "PUT", url.pathname, "evil");
  assert.equal(overwrite.status, 403);
  assert.equal((await raw(Number(url.port), "DELETE", url.pathname)).status, 403);
  assert.equal(await Deno.readTextFile(fileOnDisk(cluster, where, keyToPath("/k1"))), "one");
  // A large value takes the streamed path (its own signed sockets).
  const big = "b".repeat(600 * 1024);
  assert.equal(await put(cluster.url, "/big", big), 201);
  assert.equal((await getFollow(cluster.url, "/big")).body, big);
  assert.equal((await request(`${cluster.url}/k1`, { method: "DELETE" })).status, 204);
  assert.equal((await request(`${cluster.url}/k1`)).status, 404);
  // The files go just after the 204 (README, "HTTP API").
  const gone = () => exists(fileOnDisk(cluster, where, keyToPath("/k1"))).then((found) => !found);
  assert.ok(await eventually(gone, POLL_TIMEOUT_MS), "the DELETE's file is still on the volume");
  // The secret: in no process's arguments or environment, in no log line, and only in the
  // volumes' configs, which are 0600.
  assert.deepEqual(await processArgsContaining(SECRET), []);
  for (const process of [cluster.index, ...cluster.volumes]) {
    assert.ok(!process.log.includes(SECRET), `${process.name} logged the secret`);
  }
  const config = await configOf(cluster.volumes[0].port);
  assert.equal((await Deno.stat(config)).mode! & 0o777, 0o600);
  assert.ok((await Deno.readTextFile(config)).includes(SECRET));
  await cluster.volumes[0].stop();
  assert.equal(await exists(config), false, "the config with the secret outlived its volume");
});

Deno.test("with signed volumes, rebalance, verify --repair and gc work, online and offline", async () => {
  await using dir = await tempDir();
  const secret = await secretFile(dir.path);
  const signing = ["--volume-secret-file", secret];
  await using cluster = await testCluster({
    indexArgs: [...signing, "--replicas", "2"],
    volumeArgs: signing,
  });
  const keys = Array.from({ length: 20 }, (_, i) => `/r${i}`);
  for (const key of keys) assert.equal(await put(cluster.url, key, key), 201);
  const port4 = freePort();
  await using volume4 = await spawnVolume({
    port: port4,
    dir: join(cluster.dir, "volume4"),
    args: signing,
  });
  const four = [...hosts(cluster), `localhost:${port4}`];
  const db = join(cluster.dir, "index");
  const common = (
    volumes: string[],
  ) => ["--db", db, "--volumes", volumes.join(","), "--replicas", "2"];

  const rebalance = await runIndexCommand(["rebalance", ...common(four)]);
  assert.equal(rebalance.code, 0, explain(rebalance));
  assert.match(rebalance.stdout, /moved [1-9]/, explain(rebalance));
  const disks = [...cluster.volumes, volume4].map((_, i) => join(cluster.dir, `volume${i + 1}`));
  const onDisk = (location: string, key: string) => {
    const { host, path } = target(location, keyToPath(key));
    return join(disks[four.indexOf(host)], path);
  };
  const placement = { volumes: four, replicas: 2, subvolumes: 10 };
  for (const key of keys) {
    for (const location of keyToVolumes(key, placement)) {
      assert.equal(await readOrNull(onDisk(location, key)), key, `${key} at ${location}`);
    }
    assert.equal((await getFollow(cluster.url, key)).body, key);
  }

  // A lost replica, repaired online.
  const [lostAt] = keyToVolumes("/r3", placement);
  await Deno.remove(onDisk(lostAt, "/r3"));
  const repair = await runIndexCommand(["verify", "--repair", ...common(four)]);
  assert.equal(repair.code, 0, explain(repair));
  assert.match(repair.stdout, /repaired "\/r3"/, explain(repair));
  assert.equal(await readOrNull(onDisk(lostAt, "/r3")), "/r3");

  // An orphan written straight to a volume (signed, as only the index can), collected online.
  const [orphanAt] = keyToVolumes("/orphan", placement);
  const { host: orphanHost, path: orphanPath } = target(orphanAt, keyToPath("/orphan"));
  const orphanPort = Number(orphanHost.split(":")[1]);
  assert.equal((await raw(orphanPort, "PUT", sign("PUT", orphanPath), "lost")).status, 201);
  const gc = await runIndexCommand(["gc", ...common(four)]);
  assert.equal(gc.code, 0, explain(gc));
  assert.match(gc.stdout, /removed 1\b/, explain(gc));
  assert.equal(await exists(onDisk(orphanAt, "/orphan")), false);

  // Offline: the command signs with the same flag; without it, the volumes refuse its writes.
  await cluster.index.stop();
  await Deno.remove(onDisk(lostAt, "/r3"));
  const unsigned = await runIndexCommand(["verify", "--repair", ...common(four)]);
  assert.equal(unsigned.code, 1, explain(unsigned));
  assert.equal(await exists(onDisk(lostAt, "/r3")), false);
  const offline = await runIndexCommand([
    "verify",
    "--md5",
    "--repair",
    ...common(four),
    ...signing,
  ]);
  assert.equal(offline.code, 0, explain(offline));
  assert.equal(await readOrNull(onDisk(lostAt, "/r3")), "/r3");
  assert.equal((await raw(orphanPort, "PUT", sign("PUT", orphanPath), "lost")).status, 201);
  const gcOffline = await runIndexCommand(["gc", ...common(four), ...signing]);
  assert.equal(gcOffline.code, 0, explain(gcOffline));
  assert.equal(await exists(onDisk(orphanAt, "/orphan")), false);
});

Deno.test("private reads: a signed Location works with fetch and curl -L, until it expires", async () => {
  await using dir = await tempDir();
  const secret = await secretFile(dir.path);
  const signing = ["--volume-secret-file", secret];
  await using cluster = await testCluster({
    indexArgs: [...signing, "--private-reads", "--read-expiry", "2s", "--replicas", "2"],
    volumeArgs: [...signing, "--private-reads"],
  });
  assert.equal(await put(cluster.url, "/p", "private"), 201);
  const followed = await getFollow(cluster.url, "/p");
  assert.deepEqual([followed.status, followed.body], [200, "private"]);
  const redirect = await request(`${cluster.url}/p`);
  assert.equal(redirect.status, 302);
  const location = redirect.headers.get("location")!;
  assert.match(
    location,
    /^http:\/\/localhost:\d+\/sv[0-9A-F]{2}\/[0-9a-f]{2}\/[0-9a-f]{2}\/[^?]+\?md5=[\w-]{22}&expires=\d+$/,
  );
  const signed = await request(location);
  assert.deepEqual([signed.status, signed.body], [200, "private"]);
  assert.equal((await request(location, { method: "HEAD" })).status, 200);
  // The same URL without its signature is refused; so is a listing of the volume.
  const unsigned = location.slice(0, location.indexOf("?"));
  assert.equal((await request(unsigned)).status, 403);
  assert.equal((await request(`${new URL(location).origin}/`)).status, 403);
  const viaCurl = await curl(["-L", `${cluster.url}/p`]);
  assert.equal(viaCurl.code, 0, viaCurl.stderr);
  assert.equal(viaCurl.stdout, "private");
  // Past its expiry (2 s, rounded up to the second, and nginx's whole-second clock) it is refused.
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  assert.equal((await request(location)).status, 403);
  const late = await curl(["-o", "/dev/null", "-w", "%{http_code}", location]);
  assert.equal(late.stdout, "403", late.stderr);
  // The index's own reads are signed: the GET after its 2 s trust re-checks the replicas with a
  // HEAD (a 410 if that were refused), and the new Location works.
  assert.equal((await getFollow(cluster.url, "/p")).body, "private");
  assert.equal((await curl(["-L", `${cluster.url}/p`])).stdout, "private");
  // Operations read files and listings with signatures: verify --md5 and gc online, rebuild too.
  const db = join(cluster.dir, "index");
  const common = ["--db", db, "--volumes", hosts(cluster).join(","), "--replicas", "2"];
  for (const command of [["verify", "--md5"], ["gc", "--dry-run"], ["rebuild"]]) {
    const result = await runIndexCommand([...command, ...common]);
    assert.equal(result.code, 0, explain(result));
    assert.doesNotMatch(result.stdout + result.stderr, /403|failed|error/i, explain(result));
  }
  assert.deepEqual(await processArgsContaining(SECRET), []);
  for (const process of [cluster.index, ...cluster.volumes]) {
    assert.ok(!process.log.includes(SECRET), `${process.name} logged the secret`);
  }
});

Deno.test("signed volumes with private reads: an overwrite's versioned file is written, read and removed", async () => {
  await using dir = await tempDir();
  const secret = await secretFile(dir.path);
  const signing = ["--volume-secret-file", secret];
  await using cluster = await testCluster({
    indexArgs: [...signing, "--private-reads"],
    volumeArgs: [...signing, "--private-reads"],
  });
  const s3 = { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" };
  assert.equal((await request(`${cluster.url}/bkt`, { method: "PUT", headers: s3 })).status, 200);
  for (const value of ["one", "two", "three"]) {
    const stored = await request(`${cluster.url}/bkt/k`, {
      method: "PUT",
      headers: s3,
      body: value,
    });
    assert.equal(stored.status, 200, stored.body);
  }
  const location = (await request(`${cluster.url}/bkt/k`)).headers.get("location")!;
  assert.match(location, /~\/[0-9a-f]{16}\?md5=/);
  assert.equal((await getFollow(cluster.url, "/bkt/k")).body, "three");
  assert.equal((await request(`${cluster.url}/bkt/k`, { headers: s3 })).body, "three");
  // The replaced values' files and then the key's own go, through signed DELETEs.
  const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);
  const where = keyToVolumes("/bkt/k", { volumes: hosts, replicas: 3, subvolumes: 10 });
  const dirOf = (location: string) => `${fileOnDisk(cluster, location, keyToPath("/bkt/k"))}~`;
  const count = async () => {
    let files = 0;
    for (const location of where) for await (const _ of Deno.readDir(dirOf(location))) files++;
    return files;
  };
  assert.ok(
    await eventually(async () => await count() === 3, POLL_TIMEOUT_MS),
    `${await count()} files`,
  );
  assert.equal(
    (await request(`${cluster.url}/bkt/k`, { method: "DELETE", headers: s3 })).status,
    204,
  );
  assert.ok(
    await eventually(async () => await count() === 0, POLL_TIMEOUT_MS),
    `${await count()} files`,
  );
});
