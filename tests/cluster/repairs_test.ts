// Repairs never lose a copy. Online rebuild, gc and rebalance run through the admin socket, one
// after the other, while 16 writers PUT and DELETE values up to 4 MiB: afterwards every value last
// acknowledged reads back whole, its record names all its replicas and each holds it; every key
// last deleted stays gone through another rebuild and gc; gc removes nothing; verify --md5 is ok.
// Then the same rules one at a time, with the files laid out by hand: rebuild never drops a
// location a live record names and adds copies of its value found elsewhere, and a DELETE reaches
// a copy its record does not name.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  isUndone,
  type Operation,
  OPERATION_PATH,
  type OperationRequest,
} from "../../lib/ops/protocol.ts";
import { keyLocations, keyToPath, type Placement } from "../../lib/placement.ts";
import { target, volumeUrl } from "../../lib/volumes/protocol.ts";
import { adminSocketPath } from "../../lib/core/store.ts";
import {
  eventually,
  exists,
  fileOnDisk,
  getFollow,
  md5Hex,
  POLL_TIMEOUT_MS,
  put,
  request,
  testCluster,
} from "../helpers.ts";

/** How long the writers run while the operations go round; RACE_MS=60000 runs a longer race. */
const RACE_MS = Number(Deno.env.get("RACE_MS") ?? 20_000);
const WRITERS = 16;
/** Keys of each writer, its own: no two writers race on one key, so each knows its key's state. */
const KEYS_PER_WRITER = 8;
const MAX_VALUE_BYTES = 4 * 1024 * 1024;
/** Fewer acknowledged PUTs than this would leave the race untried. */
const MIN_ACKNOWLEDGED = 100;

/** What a writer last had acknowledged for a key: its value's md5 (201), or absent (204). */
type Expected = { md5: string; sizeBytes: number } | null;

/**
 * A value of 1 byte to 4 MiB, sliced from `pool` at a random place, stamped so that none repeats.
 * Large values keep the replicas of a write landing at visibly different times.
 */
function valueFrom(pool: Uint8Array, serial: number): Uint8Array<ArrayBuffer> {
  const sizeBytes = 1 + Math.floor(Math.random() * MAX_VALUE_BYTES);
  const start = Math.floor(Math.random() * (pool.byteLength - sizeBytes));
  const value = pool.slice(start, start + sizeBytes);
  if (sizeBytes >= 8) new DataView(value.buffer).setFloat64(0, serial);
  return value;
}

type TestCluster = Awaited<ReturnType<typeof testCluster>>;

/**
 * Runs an operation on the cluster's running server, through its admin socket (as `index.ts
 * COMMAND` does when a server answers); the items it reported and its summary.
 */
async function online(
  cluster: TestCluster,
  placement: Placement,
  command: Operation,
  options: { md5?: boolean; md5sum?: boolean } = {},
) {
  const path = adminSocketPath(join(cluster.dir, "index"));
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
  try {
    const body: OperationRequest = {
      command,
      placement,
      md5sum: options.md5sum ?? true,
      md5: options.md5 ?? false,
      repair: false,
      dryRun: false,
      concurrency: 8,
    };
    const response = await fetch(`http://localhost${OPERATION_PATH}`, {
      method: "POST",
      body: JSON.stringify(body),
      client,
    });
    const text = await response.text();
    assert.equal(response.status, 200, `${command}: ${text}`);
    const events = text.trim().split("\n").map((line) => JSON.parse(line));
    const summary = events[events.length - 1];
    assert.equal(summary.type, "summary", `${command}: ${text}`);
    const items: { outcome: string; key?: string; location?: string; detail: string }[] = events
      .filter((event) => event.type === "item");
    return { items, summary };
  } finally {
    client.close();
  }
}

// Rebuild judges files by length only with --md5sum=false (a quicker walk, so more of them race
// the writers), or reads them for their md5.
for (const [replicas, subvolumes, md5sum] of [[3, 1, false], [2, 10, true]] as const) {
  Deno.test(`online rebuild, gc and rebalance against ${WRITERS} writers lose no copy and bring back no deleted key (${replicas} replicas of 3, ${subvolumes} subvolumes, md5sum ${md5sum})`, async () => {
    await using cluster = await testCluster({
      indexArgs: ["--replicas", String(replicas), "--subvolumes", String(subvolumes)],
    });
    const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);
    const placement: Placement = { volumes: hosts, replicas, subvolumes };
    const operation = (command: Operation, options: { md5?: boolean } = {}) =>
      online(cluster, placement, command, { md5sum, ...options });

    const expected = new Map<string, Expected>();
    const problems: string[] = [];
    /** Keys whose last request failed otherwise than with a 409, and how. */
    const unsure = new Map<string, string>();
    let acknowledged = 0;
    const pool = new Uint8Array(randomBytes(MAX_VALUE_BYTES * 2));
    let serial = 0;
    const deadline = Date.now() + RACE_MS;
    const writer = async (w: number) => {
      const keys = Array.from({ length: KEYS_PER_WRITER }, (_, i) => `/race/w${w}/k${i}`);
      for (const key of keys) expected.set(key, null);
      let key = keys[0];
      while (Date.now() < deadline) {
        // Mostly the same key again: a DELETE and the PUT right after it race the operations.
        if (Math.random() < 0.25) key = keys[Math.floor(Math.random() * keys.length)];
        // A 409 (an operation held the key's lock) changed nothing. Any other failure (a volume
        // slow to answer its probe on a loaded machine: 503) leaves the key's state unknown until
        // its next acknowledged request.
        if (expected.get(key) !== null) {
          const answer = await request(`${cluster.url}${key}`, { method: "DELETE" });
          if (answer.status === 204) {
            expected.set(key, null);
            unsure.delete(key);
          } else if (answer.status === 404) {
            problems.push(`DELETE ${key}: 404, an acknowledged value is gone`);
            expected.set(key, null);
          } else if (answer.status !== 409) {
            unsure.set(key, `DELETE: status ${answer.status}: ${answer.body}`);
          }
          continue;
        }
        const value = valueFrom(pool, serial++);
        const answer = await request(`${cluster.url}${key}`, { method: "PUT", body: value });
        if (answer.status === 201) {
          expected.set(key, { md5: md5Hex(value), sizeBytes: value.byteLength });
          unsure.delete(key);
          acknowledged++;
        } else if (answer.status === 403) {
          // The key was absent for this writer: a deleted key came back.
          problems.push(`PUT ${key}: 403, a deleted key is back: ${answer.body}`);
          const removed = await request(`${cluster.url}${key}`, { method: "DELETE" });
          if (removed.status !== 204) problems.push(`DELETE ${key}: status ${removed.status}`);
        } else if (answer.status !== 409) {
          unsure.set(key, `PUT: status ${answer.status}: ${answer.body}`);
        }
      }
    };
    const operations = async () => {
      const runs: string[] = [];
      while (Date.now() < deadline) {
        for (const command of ["rebuild", "rebuild", "gc", "rebalance"] as const) {
          const { items } = await operation(command);
          runs.push(command);
          for (const item of items.filter((item) => isUndone(item.outcome))) {
            problems.push(`${command}: ${item.outcome} ${item.key}: ${item.detail}`);
          }
        }
      }
      return runs;
    };
    const [runs] = await Promise.all([
      operations(),
      ...Array.from({ length: WRITERS }, (_, w) => writer(w)),
    ]);
    assert.ok(runs.filter((run) => run === "rebuild").length >= 2, runs.join("\n"));

    // Writers stopped: another rebuild then gc must change nothing that a writer was told.
    const undone = async (command: Operation, options: { md5?: boolean } = {}) => {
      const { items } = await operation(command, options);
      for (const item of items) {
        if (item.key !== undefined && unsure.has(item.key)) continue;
        if (isUndone(item.outcome) || item.outcome === "removed") {
          problems.push(`${command} after the race: ${item.outcome} ${item.key}: ${item.detail}`);
        }
      }
    };
    await undone("rebuild");
    await undone("gc");

    let live = 0;
    let short = 0;
    let back = 0;
    for (const [key, value] of expected) {
      if (unsure.has(key)) continue;
      const head = await request(`${cluster.url}${key}`, { method: "HEAD" });
      if (value === null) {
        if (head.status !== 404) {
          back++;
          problems.push(`${key}: deleted, but HEAD answers ${head.status}`);
        }
        for (const location of keyLocations(key, placement)) {
          if (await exists(fileOnDisk(cluster, location, keyToPath(key)))) {
            problems.push(`${key}: deleted, but its file is still at ${location}`);
          }
        }
        continue;
      }
      live++;
      if (head.status !== 302) {
        problems.push(`${key}: acknowledged, but HEAD answers ${head.status}`);
        continue;
      }
      const named = head.headers.get("key-volumes")!.split(",");
      if (named.length < replicas) {
        short++;
        problems.push(`${key}: its record names ${named.length} of ${replicas} replicas`);
      }
      for (const location of named) {
        const file = fileOnDisk(cluster, location, keyToPath(key));
        const bytes = await Deno.readFile(file).catch(() => null);
        if (bytes === null || md5Hex(bytes) !== value.md5) {
          problems.push(`${key}: the replica at ${location} is missing or wrong`);
        }
      }
      const read = await fetch(`${cluster.url}${key}`);
      const body = new Uint8Array(await read.arrayBuffer());
      if (read.status !== 200 || md5Hex(body) !== value.md5) {
        problems.push(`${key}: reads back ${read.status}, ${body.byteLength} bytes, not the value`);
      }
    }
    await undone("verify", { md5: true });
    // Deleted keys stay deleted through another rebuild and gc.
    await undone("rebuild");
    await undone("gc");
    for (const [key, value] of expected) {
      if (unsure.has(key)) continue;
      if (value !== null) continue;
      const answer = await getFollow(cluster.url, key);
      if (answer.status !== 404) problems.push(`${key}: deleted, back after rebuild and gc`);
    }
    const summary = `${acknowledged} PUTs acknowledged; at the end ${live} live of ` +
      `${expected.size} keys (${unsure.size} unknown), ${short} records short, ${back} deleted ` +
      `keys back; operations: ${runs.join(" ")}`;
    assert.deepEqual(problems, [], summary);
    assert.ok(acknowledged >= MIN_ACKNOWLEDGED, summary);
  });
}

/** PUTs `value` straight to a volume's file of `key` at `location`, as a copy the index never made. */
async function placeCopy(location: string, key: string, value: string): Promise<void> {
  const answer = await request(volumeUrl(target(location, keyToPath(key))), {
    method: "PUT",
    body: value,
  });
  assert.ok(answer.status === 201 || answer.status === 204, `PUT ${location}: ${answer.status}`);
}

async function volumesOf(cluster: TestCluster, key: string): Promise<string[]> {
  const answer = await request(`${cluster.url}${key}`, { method: "HEAD" });
  assert.equal(answer.status, 302, key);
  return answer.headers.get("key-volumes")!.split(",");
}

Deno.test("rebuild keeps every location a live record names and adds a copy of its value found elsewhere", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);
  const placement: Placement = { volumes: hosts, replicas: 2, subvolumes: 10 };
  assert.equal(await put(cluster.url, "/k", "value"), 201);
  assert.equal(await put(cluster.url, "/s", "mine"), 201);
  const [first, second, third] = keyLocations("/k", placement);
  assert.deepEqual(await volumesOf(cluster, "/k"), [first, second]);
  // The walk does not see one replica (as one renamed into place just after the walk listed its
  // directory), and finds a copy of the value where the record does not point.
  await Deno.remove(fileOnDisk(cluster, second, keyToPath("/k")));
  await placeCopy(third, "/k", "value");
  // And a file of another value where the record of /s does not point.
  const elsewhere = keyLocations("/s", placement)[2];
  await placeCopy(elsewhere, "/s", "not mine");

  const rebuilt = await online(cluster, placement, "rebuild");
  assert.deepEqual(await volumesOf(cluster, "/k"), [first, second, third]);
  assert.equal(rebuilt.summary.undone, 0, JSON.stringify(rebuilt));
  assert.deepEqual(await volumesOf(cluster, "/s"), keyLocations("/s", placement).slice(0, 2));
  assert.deepEqual(
    rebuilt.items.map((item) => [item.outcome, item.key, item.location]),
    [["stale", "/s", elsewhere]],
  );
  // The replica the walk did not see is verify's to find, and --repair's to put back.
  const verified = await online(cluster, placement, "verify");
  assert.deepEqual(
    verified.items.map((item) => [item.outcome, item.key, item.location]),
    [["missing", "/k", second]],
  );
  const collected = await online(cluster, placement, "gc");
  assert.deepEqual(
    collected.items.map((item) => [item.outcome, item.key, item.location]),
    [["removed", "/s", elsewhere]],
  );
  for (const location of [first, third]) {
    assert.equal(await Deno.readTextFile(fileOnDisk(cluster, location, keyToPath("/k"))), "value");
  }
  assert.equal((await getFollow(cluster.url, "/s")).body, "mine");
});

Deno.test("a DELETE removes the key's files on every volume, so that no rebuild brings it back", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);
  const placement: Placement = { volumes: hosts, replicas: 2, subvolumes: 10 };
  assert.equal(await put(cluster.url, "/d", "doomed"), 201);
  // A copy the record does not name (a rebalance cut short, a record once shortened).
  const locations = keyLocations("/d", placement);
  await placeCopy(locations[2], "/d", "doomed");
  assert.equal((await request(`${cluster.url}/d`, { method: "DELETE" })).status, 204);
  const onDisk = () => locations.map((location) => fileOnDisk(cluster, location, keyToPath("/d")));
  const gone = async () => (await Promise.all(onDisk().map(exists))).every((found) => !found);
  assert.ok(await eventually(gone, 5_000), "the DELETE left a file of the key");

  const rebuilt = await online(cluster, placement, "rebuild");
  assert.equal(rebuilt.summary.counts.added ?? 0, 0, JSON.stringify(rebuilt));
  assert.equal((await request(`${cluster.url}/d`, { method: "HEAD" })).status, 404);
});

Deno.test("gc leaves a value an overwrite just replaced to the server, which removes it after its grace", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);
  const placement: Placement = { volumes: hosts, replicas: 2, subvolumes: 10 };
  const s3 = { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" };
  const overwrite = (body: string) =>
    request(`${cluster.url}/bkt/k`, { method: "PUT", headers: s3, body });
  const made = await overwrite("first");
  assert.equal(made.status, 200, made.body);
  const [location] = await volumesOf(cluster, "/bkt/k");
  const replaced = fileOnDisk(cluster, location, keyToPath("/bkt/k"));
  assert.equal((await overwrite("second")).status, 200);
  // Within the grace, a reader sent to the old file just before the commit still finds it.
  const collected = await online(cluster, placement, "gc");
  assert.ok(
    await exists(replaced),
    `gc removed a replaced value in its grace: ${JSON.stringify(collected.items)}`,
  );
  assert.ok(
    await eventually(async () => !(await exists(replaced)), POLL_TIMEOUT_MS),
    "the server did not remove the replaced value after its grace",
  );
  assert.equal((await getFollow(cluster.url, "/bkt/k")).body, "second");
});

Deno.test("a volume down outside a key's record and targets never keeps its DELETE pending", async () => {
  await using cluster = await testCluster({ volumes: 4, indexArgs: ["--replicas", "2"] });
  const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);
  const placement: Placement = { volumes: hosts, replicas: 2, subvolumes: 10 };
  assert.equal(await put(cluster.url, "/d", "value"), 201);
  // A volume that holds no replica of /d and is not one of its targets goes down.
  const targets = await volumesOf(cluster, "/d");
  const other = keyLocations("/d", placement).find((location) => !targets.includes(location))!;
  const stopped = cluster.volumes.find((volume) => other.startsWith(`localhost:${volume.port}`))!;
  await stopped.stop();
  const noticed = await eventually(
    async () => /3 of 4 volumes up/.test((await request(`${cluster.url}/-/ready`)).body),
    10_000,
  );
  assert.ok(noticed, "the index never saw the volume go down");
  assert.equal((await request(`${cluster.url}/d`, { method: "DELETE" })).status, 204);
  // The delete settles without it: the key can be written again at once, not 503.
  const again = await request(`${cluster.url}/d`, { method: "PUT", body: "new" });
  assert.equal(again.status, 201, again.body);
  assert.equal((await getFollow(cluster.url, "/d")).body, "new");
  for (const location of targets) {
    assert.equal(await Deno.readTextFile(fileOnDisk(cluster, location, keyToPath("/d"))), "new");
  }
});
