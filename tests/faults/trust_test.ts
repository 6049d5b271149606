// Fault tests of the GET without a volume check (docs/design.md, "A GET trusts the record"): the
// index redirects to a volume started with --index without asking it, so a volume that dies must
// be avoided at once (its pooled socket closes; the probe keeps one), one that hangs must not be
// trusted once its probe is late, and a file lost behind the index's back must bring the client
// back to the index, which sends it to another replica, or answers 410 when none holds it. A
// volume without --index is still checked on a GET, and S3 reads are always checked.
//
//   deno test -A tests/faults/trust_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ClusterProcess, spawnIndex } from "../../dev/cluster.ts";
import { keyToPath, keyToVolumes, locationHost, type Placement } from "../../lib/placement.ts";
import { VERIFIED_TTL_MS } from "../../lib/core/mod.ts";
import { volumeUrl } from "../../lib/volumes/protocol.ts";
import { Http1Pool } from "../../lib/volumes/http1.ts";
import {
  fileOnDisk,
  freePort,
  GET_SLACK_MS,
  killVolume,
  nginxPids,
  put,
  request,
  sleep,
  testCluster,
  VOLTIMEOUT_MS,
  waitFor,
} from "../helpers.ts";

/** Bound on any single request of these tests, so that a hang fails instead of stalling CI. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Redirects a client follows at most: index, volume, the index's miss route, another volume. */
const MAX_HOPS = 5;
/** A probe round (1 s) and its lateness (250 ms), with room: a hung volume is no longer trusted. */
const PROBE_LATE_NOTICE_MS = 1_500;
/** The index's --subvolumes in these tests: its default, minikeyvalue's. */
const SUBVOLUMES = 10;

type TestCluster = Awaited<ReturnType<typeof testCluster>>;

/** The value stored under `key`: recognisable. */
function valueOf(key: string): string {
  return `value of ${key};`;
}

function placementOf(cluster: { volumes: ClusterProcess[] }, replicas: number): Placement {
  return {
    volumes: cluster.volumes.map((volume) => `localhost:${volume.port}`),
    replicas,
    subvolumes: SUBVOLUMES,
  };
}

/**
 * A request followed through its redirects as `curl -L` does (HEAD stays HEAD): the last answer's
 * status, body and headers, and every URL visited.
 */
async function follow(url: string, method = "GET") {
  const hops = [url];
  while (true) {
    const answer = await request(hops.at(-1)!, {
      method,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const location = answer.headers.get("location");
    if (answer.status !== 302 || location === null) return { ...answer, hops };
    assert.ok(hops.length <= MAX_HOPS, `redirect loop: ${hops.join(" -> ")} -> ${location}`);
    hops.push(new URL(location, hops.at(-1)).href);
  }
}

/** Removes the key's file from the volume of `location`, behind the index's back. */
async function removeFile(cluster: TestCluster, location: string, key: string): Promise<void> {
  await Deno.remove(fileOnDisk(cluster, location, keyToPath(key)));
}

Deno.test("a killed volume: none of 60 GETs at once is sent to it, though no GET went there before", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const victim = cluster.volumes[1];
  const victimHost = `localhost:${victim.port}`;
  const stored = Array.from({ length: 60 }, (_, i) => `/killed/${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  // A new index: no replica seen present, no socket left from the writes; only its probes' own.
  await cluster.index.stop();
  await using index = await spawnIndex({
    port: cluster.index.port,
    db: join(cluster.dir, "index"),
    volumes: placementOf(cluster, 2).volumes,
    args: ["--replicas", "2"],
  });
  // Past a probe round: each volume has announced --index and left its probe's socket pooled.
  await sleep(1_200);
  await killVolume(victim);
  const answers = await Promise.all(stored.map(async (key) => {
    const answer = await request(`${index.url}${key}`, {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    return { key, answer };
  }));
  const sentThere = answers.filter(({ answer }) =>
    answer.headers.get("location")?.startsWith(`http://${victimHost}/`)
  ).map(({ key }) => key);
  assert.deepEqual(sentThere, [], `GETs sent to the dead volume ${victimHost}`);
  for (const { key, answer } of answers) {
    assert.equal(answer.status, 302, `GET ${key} with ${victimHost} dead: ${answer.body}`);
    const value = await request(answer.headers.get("location")!);
    assert.equal(value.body, valueOf(key));
  }
});

Deno.test("a file lost from one replica: GET and HEAD come back to the index and read the other", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const placement = placementOf(cluster, 2);
  const stored = Array.from({ length: 20 }, (_, i) => `/lost/${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  const lostOn = new Map<string, string>();
  for (const key of stored) {
    const location = keyToVolumes(key, placement)[0];
    await removeFile(cluster, location, key);
    lostOn.set(key, location);
  }
  // Past the trust in what was just written: a GET then picks either replica, unchecked.
  await sleep(VERIFIED_TTL_MS + 250);
  let cameBack = 0;
  for (const key of stored) {
    const got = await follow(`${cluster.url}${key}`);
    assert.equal(got.status, 200, `GET ${key}: ${got.hops.join(" -> ")}: ${got.body}`);
    assert.equal(got.body, valueOf(key));
    if (got.hops.some((hop) => new URL(hop).pathname.startsWith("/-/miss/"))) cameBack++;
  }
  // Each key's first GET picked the replica without its file half of the time.
  assert.ok(cameBack > 0, "no GET was sent to a replica without the file: the GET still checks");
  // The volume itself sends a client that finds no file back to the index, GET and HEAD alike.
  for (const key of stored.slice(0, 3)) {
    const missing = volumeUrl({ host: locationHost(lostOn.get(key)!), path: keyToPath(key) });
    for (const method of ["GET", "HEAD"]) {
      const got = await follow(missing, method);
      assert.equal(got.status, 200, `${method} ${missing}: ${got.hops.join(" -> ")}`);
      assert.equal(got.hops.length, 3, `${method} ${missing}: ${got.hops.join(" -> ")}`);
      assert.ok(new URL(got.hops[1]).pathname.startsWith("/-/miss/"), got.hops.join(" -> "));
      assert.equal(new URL(got.hops[2]).host, locationHost(keyToVolumes(key, placement)[1]));
      assert.equal(got.body, method === "GET" ? valueOf(key) : "");
      if (method === "HEAD") {
        assert.equal(got.headers.get("content-length"), String(valueOf(key).length));
      }
    }
  }
  // The index says which volume lost which file.
  await waitFor("the replica_missing event", () => cluster.index.log.includes("replica_missing"));
  // Gone from every replica: 410 at the end of the redirects, no loop.
  const key = stored[0];
  await removeFile(cluster, keyToVolumes(key, placement)[1], key);
  await sleep(VERIFIED_TTL_MS + 250);
  for (const method of ["GET", "HEAD"]) {
    const got = await follow(`${cluster.url}${key}`, method);
    assert.equal(got.status, 410, `${method} ${key} lost everywhere: ${got.hops.join(" -> ")}`);
  }
  // A path that is no key's file, or a key never written: 404, nothing redirected.
  const unknown = await request(`${cluster.url}/-/miss/00/00/bm9uZQ==?volume=x`);
  assert.equal(unknown.status, 404);
  const absent = await request(`${cluster.url}/-/miss${keyToPath("/never")}?volume=x`);
  assert.equal(absent.status, 404);
});

Deno.test("a hung volume with --index: once its probe is late, GETs check and read elsewhere", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const stored = Array.from({ length: 20 }, (_, i) => `/hung/${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  // A stopped nginx closes no socket: only its probe, late, tells.
  const hung = await nginxPids(cluster.volumes[1].port);
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  try {
    await sleep(Math.max(PROBE_LATE_NOTICE_MS, VERIFIED_TTL_MS + 250));
    for (const key of stored) {
      const started = performance.now();
      const answer = await request(`${cluster.url}${key}`, {
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const latencyMs = performance.now() - started;
      assert.equal(answer.status, 302, `GET ${key} with a hung volume: ${answer.body}`);
      assert.ok(latencyMs < VOLTIMEOUT_MS + GET_SLACK_MS, `GET ${key} took ${latencyMs}ms`);
      const value = await request(answer.headers.get("location")!, {
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      assert.equal(value.body, valueOf(key));
    }
  } finally {
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
});

Deno.test("volumes without --index: a missing file is their 404, and the index checks each GET", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"], volumeIndex: false });
  const placement = placementOf(cluster, 2);
  const stored = Array.from({ length: 10 }, (_, i) => `/checked/${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  for (const key of stored) await removeFile(cluster, keyToVolumes(key, placement)[0], key);
  const missing = volumeUrl({
    host: locationHost(keyToVolumes(stored[0], placement)[0]),
    path: keyToPath(stored[0]),
  });
  assert.equal((await request(missing)).status, 404);
  await sleep(VERIFIED_TTL_MS + 250);
  for (const key of stored) {
    const answer = await request(`${cluster.url}${key}`);
    assert.equal(answer.status, 302);
    const host = new URL(answer.headers.get("location")!).host;
    assert.equal(host, locationHost(keyToVolumes(key, placement)[1]), `GET ${key}`);
  }
});

Deno.test("S3 reads stay checked: an object lost from one replica reads from the other", async () => {
  const s3Port = freePort();
  await using cluster = await testCluster({
    indexArgs: ["--replicas", "2", "--s3-port", String(s3Port)],
  });
  const placement = placementOf(cluster, 2);
  const stored = Array.from({ length: 10 }, (_, i) => `/bucket/lost-${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  for (const key of stored) await removeFile(cluster, keyToVolumes(key, placement)[0], key);
  await sleep(VERIFIED_TTL_MS + 250);
  for (const key of stored) {
    // Plain HTTP on --s3-port is S3's GetObject and HeadObject: the index's nginx reads the value.
    const got = await request(`http://localhost:${s3Port}${key}`);
    assert.equal(got.status, 200, `S3 GET ${key}: ${got.body}`);
    assert.equal(got.body, valueOf(key));
    const head = await request(`http://localhost:${s3Port}${key}`, { method: "HEAD" });
    assert.equal(head.status, 200, `S3 HEAD ${key}`);
  }
});

Deno.test("the probe's connection stays pooled while none young is, and tells when nginx dies", async () => {
  await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1"] });
  const host = `localhost:${cluster.volumes[0].port}`;
  const closedBy: string[] = [];
  const pool = new Http1Pool({ onServerClose: (closed) => closedBy.push(closed) });
  try {
    const announced: (true | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      const status = await pool.request(host, "HEAD", "/", {
        timeoutMs: REQUEST_TIMEOUT_MS,
        fresh: true,
        park: true,
        onHead: (head) => announced.push(head.sendsMisses),
      });
      assert.equal(status, 200);
    }
    // One kept, not one per probe; and the volume said it sends misses back (--index).
    assert.equal(pool.idleCount(host), 1);
    assert.deepEqual(announced, [true, true, true]);
    for (const pid of await nginxPids(cluster.volumes[0].port)) Deno.kill(pid, "SIGKILL");
    await waitFor("the pooled socket's close", () => closedBy.includes(host));
    assert.equal(pool.idleCount(host), 0);
  } finally {
    pool.close();
  }
});
