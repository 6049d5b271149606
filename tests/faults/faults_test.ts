// Fault tests: real processes, real faults. A volume is killed or hung, the index is killed with
// -9 in the middle of writes, nginx dies under its program, a client hangs up mid-upload, a
// volume's disk fills up, a 1 GiB value goes through, a client trickles its body, and a key's
// files vanish behind the index's back. Each test covers a property that docs/operations.md
// states (its "Failure behaviour" section) and fails if that property breaks.
//
//   deno task test:faults

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type ClusterProcess, spawnCluster, spawnIndex, spawnVolume } from "../../dev/cluster.ts";
import {
  keyToPath,
  keyToVolumes,
  locationHost,
  pathToKey,
  type Placement,
} from "../../lib/placement.ts";
import { STUB_STATUS_PATH, target, volumeUrl } from "../../lib/volumes/protocol.ts";
import { VERIFIED_TTL_MS } from "../../lib/core/mod.ts";
import { parseStubStatus } from "../../lib/volumes/statusvolume.ts";
import { pidFileFor } from "../../lib/nginx/mod.ts";
import { DEFAULT_WORKER_USER, workerAccount } from "../../nginx.ts";
import {
  eventually,
  exists,
  fileOnDisk,
  freePorts,
  generated,
  GET_SLACK_MS,
  keysPlaced,
  killVolume,
  md5Hex,
  nginxPids,
  portAnswers,
  put,
  request,
  running,
  runScript,
  sleep,
  tempDir,
  testCluster,
  VOLTIMEOUT_MS,
} from "../helpers.ts";

/** Time for the 1s health probe to notice a volume going away or coming back. */
const PROBE_NOTICE_MS = 5_000;
/** Two probe rounds: by then a volume that refuses connections is known to be down. */
const PROBE_DETECT_MS = 2_000;
/** Time for a program to restart its nginx, or for the start-up cleanup to finish. */
const RECOVERY_MS = 8_000;
/** How long the server may take to notice a client that hung up. */
const DISCONNECT_NOTICE_MS = 2_000;
/** Bound on any single request of these tests, so that a hang fails instead of stalling CI. */
const REQUEST_TIMEOUT_MS = 20_000;
const SUBVOLUMES = 10;
const MIB = 1024 * 1024;

type TestCluster = Awaited<ReturnType<typeof testCluster>>;

// ---------------------------------------------------------------------------------------------
// Pure helpers

/** The value the tests store under `key`: recognisable, and `sizeBytes` long. */
function valueOf(key: string, sizeBytes = 0): string {
  const base = `value of ${key};`;
  if (sizeBytes <= base.length) return base;
  return base.repeat(Math.ceil(sizeBytes / base.length)).slice(0, sizeBytes);
}

function placementOf(cluster: { volumes: ClusterProcess[] }, replicas: number): Placement {
  return {
    volumes: cluster.volumes.map((volume) => `localhost:${volume.port}`),
    replicas,
    subvolumes: SUBVOLUMES,
  };
}

// ---------------------------------------------------------------------------------------------
// I/O helpers

/** A request that never hangs: no redirect following, body read as text, bounded in time. */
function ask(url: string, init: RequestInit = {}) {
  return request(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init });
}

/** A request that reports a refused connection as status 0 instead of throwing. */
async function tryAsk(url: string, init: RequestInit = {}) {
  try {
    return await ask(url, init);
  } catch (err) {
    return { status: 0, headers: new Headers(), body: String(err) };
  }
}

/** GET through the index: the 302's latency, then the value at the location it names. */
async function read(base: string, key: string) {
  const started = performance.now();
  const answer = await ask(`${base}${key}`);
  const latencyMs = performance.now() - started;
  if (answer.status !== 302) return { status: answer.status, latencyMs, answer, body: "" };
  const location = answer.headers.get("location") ?? "";
  const value = await ask(location);
  assert.equal(value.status, 200, `GET ${location} (from ${key}): status ${value.status}`);
  return { status: 302, latencyMs, answer, body: value.body, location };
}

async function listKeys(base: string, query = "list"): Promise<string[]> {
  const answer = await ask(`${base}/?${query}`);
  assert.equal(answer.status, 200, answer.body);
  return (JSON.parse(answer.body) as { keys: string[] }).keys;
}

/** Files under a volume's directory as `[subvolume, path]`, the volume's own `.mkv` and dot files aside. */
async function volumeFiles(dir: string): Promise<{ sub: string; path: string }[]> {
  const out: { sub: string; path: string }[] = [];
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(join(dir, relative))) {
      if (relative === "" && entry.name.startsWith(".")) continue;
      const child = `${relative}/${entry.name}`;
      if (entry.isDirectory) await walk(child);
      else {
        const [, sub, ...rest] = child.split("/");
        out.push({ sub, path: `/${rest.join("/")}` });
      }
    }
  };
  await walk("");
  return out;
}

function volumeDir(cluster: TestCluster, volume: ClusterProcess): string {
  return join(cluster.dir, `volume${cluster.volumes.indexOf(volume) + 1}`);
}

/** Every file of `key` on any volume of the cluster (any subvolume). */
async function filesOfKey(cluster: TestCluster, key: string): Promise<string[]> {
  const path = keyToPath(key);
  const found: string[] = [];
  for (const volume of cluster.volumes) {
    const dir = volumeDir(cluster, volume);
    for (const file of await volumeFiles(dir)) {
      if (file.path === path) found.push(join(dir, file.sub, file.path));
    }
  }
  return found;
}

function parentOf(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

/**
 * Waits until the nginx on the program's port is the program's own child. `spawnIndex` resolves
 * as soon as the port answers, which a leftover nginx of a killed run also does.
 */
async function servedBy(program: ClusterProcess): Promise<void> {
  const own = await eventually(async () => {
    const pid = Number(await Deno.readTextFile(pidFileFor(program.port)).catch(() => "0"));
    return parentOf(pid) === program.pid && await portAnswers(program.port);
  }, RECOVERY_MS);
  assert.ok(own, `${program.name} did not take over its port:\n${program.log}`);
}

/** Kills the nginx on `port`, master and workers, with SIGKILL, as a crash would; returns them. */
async function killNginx(port: number): Promise<number[]> {
  const pids = await nginxPids(port);
  for (const pid of pids) Deno.kill(pid, "SIGKILL");
  const gone = await eventually(() => Promise.resolve(!pids.some(running)), 5_000);
  assert.ok(gone, `nginx on :${port} (pids ${pids.join(",")}) survived SIGKILL`);
  return pids;
}

/** Asserts that `key` is nowhere: GET 404, not in `?list`, no file on any volume. */
async function assertAbsent(cluster: TestCluster, key: string, why: string): Promise<void> {
  const answer = await ask(`${cluster.url}${key}`);
  assert.equal(answer.status, 404, `${why}: GET ${key} answered ${answer.status}`);
  assert.ok(!(await listKeys(cluster.url)).includes(key), `${why}: ${key} is in ?list`);
  assert.deepEqual(await filesOfKey(cluster, key), [], `${why}: files of ${key} left on disk`);
}

/** A raw TCP connection to a local port, for requests fetch would not send as they are. */
async function rawConnect(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

/** Reads what the server sends until it closes or `timeoutMs` passes (then returns null). */
async function readAll(conn: Deno.Conn, timeoutMs: number): Promise<string | null> {
  const decoder = new TextDecoder();
  let text = "";
  const buffer = new Uint8Array(64 * 1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (true) {
      const reading = conn.read(buffer);
      const n = await Promise.race([reading, timedOut]);
      if (n === "timeout") {
        conn.close();
        await reading.catch(() => null);
        return null;
      }
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } catch {
    // A reset after the answer counts as the end of it.
  } finally {
    clearTimeout(timer);
  }
  return text + decoder.decode();
}

// ---------------------------------------------------------------------------------------------
// 1. A volume dies

Deno.test("a killed volume: no GET is sent to it once its sockets closed, even for keys just seen there", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const victim = cluster.volumes[1];
  const victimHost = `localhost:${victim.port}`;
  // Written just now: the index saw every replica present and trusts them (VERIFIED_TTL_MS), and
  // keeps idle sockets to each volume from the writes.
  const stored = Array.from({ length: 60 }, (_, i) => `/killed/${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  await killVolume(victim);
  // Within the trust and before the next health probe: only the closed sockets tell.
  const sentThere: string[] = [];
  for (const key of stored) {
    const answer = await ask(`${cluster.url}${key}`);
    assert.equal(answer.status, 302, `GET ${key} with ${victimHost} dead: ${answer.body}`);
    if (answer.headers.get("location")?.startsWith(`http://${victimHost}/`)) sentThere.push(key);
  }
  assert.deepEqual(sentThere, [], `GETs sent to the dead volume ${victimHost}`);
});

Deno.test("a dead volume: every key still reads, quickly; writes to it fail cleanly; it comes back", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const placement = placementOf(cluster, 2);
  const victim = cluster.volumes[1];
  const victimHost = `localhost:${victim.port}`;
  const stored = Array.from({ length: 60 }, (_, i) => `/stored/${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  // A fresh index has checked no replica yet, so its GETs ask the volumes (HEAD) before answering:
  // the path on which a dead volume could make them slow.
  await cluster.index.stop();
  await using index = await spawnIndex({
    port: cluster.index.port,
    db: join(cluster.dir, "index"),
    volumes: placement.volumes,
    args: ["--replicas", "2"],
  });
  const base = index.url;

  await killVolume(victim);
  // The index learns of it from its health probe (every second) or from a failed request.
  await sleep(PROBE_DETECT_MS);

  for (const key of stored) {
    const got = await read(base, key);
    assert.equal(got.status, 302, `GET ${key} with ${victimHost} dead: ${got.answer.body}`);
    assert.equal(got.body, valueOf(key), `GET ${key}: wrong value`);
    assert.ok(
      !got.location?.startsWith(`http://${victimHost}/`),
      `GET ${key}: sent to the dead volume ${got.location}`,
    );
    assert.ok(
      got.latencyMs < VOLTIMEOUT_MS + GET_SLACK_MS,
      `GET ${key} took ${got.latencyMs.toFixed(0)}ms with a volume dead (voltimeout 1s)`,
    );
  }

  const hitting = keysPlaced({
    prefix: "/down/",
    placement,
    host: victimHost,
    onHost: true,
    count: 5,
  });
  for (const key of hitting) {
    const answer = await ask(`${base}${key}`, { method: "PUT", body: valueOf(key) });
    if (answer.status === 201) {
      assert.equal((await read(base, key)).body, valueOf(key));
      continue;
    }
    assert.equal(
      answer.status,
      503,
      `PUT ${key} to a dead volume: ${answer.status} ${answer.body}`,
    );
    assert.ok(answer.body.includes(victimHost), `503 does not name ${victimHost}: ${answer.body}`);
    await assertAbsent(cluster, key, `failed PUT ${key}`);
  }
  const missing = keysPlaced({
    prefix: "/up/",
    placement,
    host: victimHost,
    onHost: false,
    count: 5,
  });
  for (const key of missing) {
    assert.equal(
      await put(base, key, valueOf(key)),
      201,
      `PUT ${key} avoiding the dead volume`,
    );
  }

  // The volume comes back on its port and directory; the same index uses it again.
  await using revived = await spawnVolume({ port: victim.port, dir: volumeDir(cluster, victim) });
  const back =
    keysPlaced({ prefix: "/back/", placement, host: victimHost, onHost: true, count: 1 })[0];
  const accepted = await eventually(
    async () =>
      (await ask(`${base}${back}`, { method: "PUT", body: valueOf(back) })).status === 201,
    PROBE_NOTICE_MS,
  );
  assert.ok(accepted, `the index did not use ${victimHost} again within ${PROBE_NOTICE_MS}ms`);
  const location = keyToVolumes(back, placement).find((l) => locationHost(l) === victimHost)!;
  assert.ok(
    await exists(fileOnDisk(cluster, location, keyToPath(back))),
    "no replica on the revived volume",
  );
  assert.equal((await read(base, back)).body, valueOf(back));
  assert.equal(revived.exited, false);
});

Deno.test("a hung volume (SIGSTOP): every GET answers within the voltimeout and reads back", async () => {
  // Volumes without --index, checked on each GET; tests/faults/trust_test.ts has those with it.
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"], volumeIndex: false });
  const stored = Array.from({ length: 30 }, (_, i) => `/stored/${i}`);
  for (const key of stored) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  await cluster.index.stop();
  await using index = await spawnIndex({
    port: cluster.index.port,
    db: join(cluster.dir, "index"),
    volumes: placementOf(cluster, 2).volumes,
    args: ["--replicas", "2"],
  });
  // A stopped nginx still accepts connections (the kernel queues them) but never answers: the
  // index can only learn of it by a timeout.
  const hung = await nginxPids(cluster.volumes[1].port);
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  try {
    for (const key of stored) {
      const got = await read(index.url, key);
      assert.equal(got.status, 302, `GET ${key} with a hung volume: ${got.answer.body}`);
      assert.equal(got.body, valueOf(key));
      assert.ok(
        got.latencyMs < VOLTIMEOUT_MS + GET_SLACK_MS,
        `GET ${key} took ${got.latencyMs.toFixed(0)}ms with a volume hung (voltimeout 1s)`,
      );
    }
  } finally {
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
});

Deno.test("a volume that stalls for less than two probe timeouts is never called down; a longer stall is", async () => {
  const voltimeoutMs = 3000;
  await using cluster = await testCluster({ indexArgs: ["--voltimeout", `${voltimeoutMs}ms`] });
  const host = `localhost:${cluster.volumes[1].port}`;
  const ready = async () => (await ask(`${cluster.url}/-/ready`)).body;
  assert.match(await ready(), /^ready: 3 of 3/);
  const hung = await nginxPids(cluster.volumes[1].port);
  // The first probe of the stall starts within a second and times out once, a second or more
  // before the stall ends; its second try outlasts the stall and is answered.
  const shortStallMs = 1000 + voltimeoutMs + 1000;
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  const seen: string[] = [];
  try {
    const until = performance.now() + shortStallMs;
    while (performance.now() < until) {
      seen.push(await ready());
      await sleep(100);
    }
  } finally {
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
  await sleep(voltimeoutMs);
  seen.push(await ready());
  const down = seen.filter((answer) => answer.includes(host));
  assert.deepEqual(down, [], `a stall of ${shortStallMs}ms called ${host} down`);
  // Stalled for good, it is down within a probe interval plus two timeouts.
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  try {
    const noticed = await eventually(
      async () => (await ready()).includes(`down: ${host}`),
      1000 + 2 * voltimeoutMs + GET_SLACK_MS,
    );
    assert.ok(noticed, `${host} hung but not called down: ${await ready()}`);
  } finally {
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
});

Deno.test("verify --md5 and gc skip a hung volume already marked down: no timeout per key, its replicas reported unreachable", async () => {
  await using cluster = await testCluster();
  const keys = Array.from({ length: 100 }, (_, i) => `/verified/${i}`);
  for (const key of keys) assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  const host = `localhost:${cluster.volumes[1].port}`;
  const common = [
    "--db",
    join(cluster.dir, "index"),
    "--volumes",
    placementOf(cluster, 3).volumes.join(","),
    "--json",
  ];
  const hung = await nginxPids(cluster.volumes[1].port);
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  try {
    const noticed = await eventually(
      async () => (await ask(`${cluster.url}/-/ready`)).body.includes(`down: ${host}`),
      PROBE_NOTICE_MS,
    );
    assert.ok(noticed, `${host} hung but not called down`);
    // Through the running server, which knows the volume is down. Waiting a voltimeout for each
    // key's replica there would take keys / concurrency (8) seconds at least, twice over.
    const started = performance.now();
    const verify = await runScript(["index.ts", "verify", "--md5", ...common]);
    const elapsedMs = performance.now() - started;
    assert.equal(verify.code, 1, `${verify.stdout}\n${verify.stderr}`);
    const events = verify.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const items = events.filter((e) => e.type === "item");
    assert.equal(items.length, keys.length, verify.stdout);
    for (const item of items) {
      assert.equal(item.outcome, "unreachable");
      assert.equal(locationHost(item.location), host);
      assert.match(item.detail, /volume down/);
    }
    const summary = events[events.length - 1];
    assert.deepEqual(summary.counts, { unreachable: keys.length });
    assert.equal(summary.undone, keys.length);
    assert.ok(
      elapsedMs < (keys.length / 8) * VOLTIMEOUT_MS,
      `verify --md5 took ${elapsedMs.toFixed(0)}ms with a volume marked down`,
    );

    // gc does not walk it: the volume is reported once, and the run says work was left undone.
    const gc = await runScript(["index.ts", "gc", "--dry-run", ...common]);
    assert.equal(gc.code, 1, `${gc.stdout}\n${gc.stderr}`);
    const gcEvents = gc.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const gcItems = gcEvents.filter((e) => e.type === "item");
    assert.deepEqual(gcItems.map((e) => [e.outcome, e.location]), [["unreachable", host]]);
    assert.equal(gcEvents[gcEvents.length - 1].counts.kept, 2 * keys.length);
  } finally {
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
});

Deno.test("a volume that hangs during a streamed PUT fails that PUT within seconds, not at the stall limit", async () => {
  await using cluster = await testCluster();
  const key = "/hung-mid-write";
  const chunk = new Uint8Array(64 * 1024).fill(7);
  let sent = 0;
  let stopped = false;
  // No Content-Length: the index streams it, chunk by chunk, to all three volumes.
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (stopped || sent >= 400) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, 20));
      sent++;
      controller.enqueue(chunk);
    },
  });
  const answer = fetch(`${cluster.url}${key}`, { method: "PUT", body, redirect: "manual" });
  while (sent < 10) await new Promise((resolve) => setTimeout(resolve, 20));
  const port = cluster.volumes[0].port;
  const hung = await nginxPids(port);
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  const hungAt = performance.now();
  try {
    const response = await answer;
    const reason = await response.text();
    const waitedMs = performance.now() - hungAt;
    stopped = true;
    assert.equal(response.status, 503, `PUT while a replica's volume hangs: ${reason}`);
    assert.match(reason, new RegExp(`localhost:${port}`));
    assert.ok(waitedMs < 10_000, `the PUT failed only after ${waitedMs.toFixed(0)}ms`);
    assert.ok(sent < 400, "the whole value went through: the hang was not noticed");
  } finally {
    stopped = true;
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
  assert.equal((await request(`${cluster.url}${key}`)).status, 404);
});

// ---------------------------------------------------------------------------------------------
// 2. The index is killed with -9 during writes

Deno.test("kill -9 of the index during PUTs and DELETEs: nothing acknowledged is lost or undone", async () => {
  await using cluster = await testCluster();
  const VALUE_BYTES = 200 * 1024;
  const doomed = Array.from({ length: 60 }, (_, i) => `/doomed/${i}`);
  for (const key of doomed) {
    assert.equal(await put(cluster.url, key, valueOf(key, VALUE_BYTES)), 201);
  }

  // One write is surely in flight at the crash: a client sent half of its value and waits.
  const halfKey = "/half-written";
  const half = await rawConnect(cluster.index.port);
  await half.write(
    new TextEncoder().encode(
      `PUT ${halfKey} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${2 * VALUE_BYTES}\r\n\r\n` +
        valueOf(halfKey, VALUE_BYTES),
    ),
  );
  const putsAcked = new Set<string>();
  const putsTried = new Set<string>();
  const deletesAcked = new Set<string>();
  let killed = false;
  let acks = 0;
  const worker = async (w: number) => {
    for (let i = 0; !killed && i < 200; i++) {
      const isDelete = i % 2 === 1 && doomed.length > 0;
      const key = isDelete ? doomed.pop()! : `/fresh/${w}/${i}`;
      if (!isDelete) putsTried.add(key);
      const answer = await tryAsk(
        `${cluster.url}${key}`,
        isDelete ? { method: "DELETE" } : { method: "PUT", body: valueOf(key, VALUE_BYTES) },
      );
      if (answer.status === (isDelete ? 204 : 201)) {
        (isDelete ? deletesAcked : putsAcked).add(key);
        acks++;
      }
    }
  };
  const killer = async () => {
    // Kill while writes are in flight: after some have been acknowledged, not before.
    await eventually(() => Promise.resolve(acks >= 16), REQUEST_TIMEOUT_MS);
    cluster.index.kill("SIGKILL");
    await cluster.index.status;
    killed = true;
  };
  await Promise.all([killer(), ...Array.from({ length: 6 }, (_, w) => worker(w))]);
  half.close();
  assert.ok(putsAcked.size > 0 && deletesAcked.size > 0, "the crash came before any write");

  // Its nginx still holds the port; the new index must come up anyway, on the same database.
  await using restarted = await spawnIndex({
    port: cluster.index.port,
    db: join(cluster.dir, "index"),
    volumes: cluster.volumes.map((volume) => `localhost:${volume.port}`),
  });
  await servedBy(restarted);
  const base = restarted.url;

  for (const key of putsAcked) {
    const got = await read(base, key);
    assert.equal(got.status, 302, `PUT ${key} was acknowledged, then lost: ${got.answer.body}`);
    assert.equal(got.body, valueOf(key, VALUE_BYTES), `PUT ${key}: wrong value`);
  }
  for (const key of deletesAcked) {
    assert.equal(
      (await ask(`${base}${key}`)).status,
      404,
      `DELETE ${key} was acknowledged, yet it is back`,
    );
  }
  const listed = await listKeys(base);
  for (const key of listed) {
    const got = await read(base, key);
    assert.equal(got.status, 302, `${key} is listed but GET says ${got.status}`);
    assert.equal(got.answer.headers.get("content-md5"), md5Hex(got.body), `${key}: md5 mismatch`);
    assert.equal(got.body, valueOf(key, VALUE_BYTES), `${key}: wrong value`);
  }
  for (const key of [...putsTried, halfKey]) {
    if (listed.includes(key)) continue;
    assert.equal((await ask(`${base}${key}`)).status, 404, `${key}: unlisted but readable`);
  }

  // The start-up sweep removes the files of interrupted writes and of interrupted DELETEs (their
  // records say DELETING), so that no key is left unlinked by a DELETE.
  const stray = async () => {
    const keep = new Set(await listKeys(base));
    const strays: string[] = [];
    for (const volume of cluster.volumes) {
      for (const file of await volumeFiles(volumeDir(cluster, volume))) {
        const key = pathToKey(file.path);
        if (key === null || !keep.has(key)) {
          strays.push(`:${volume.port}/${file.sub}${file.path} (${key})`);
        }
      }
    }
    return strays;
  };
  await eventually(async () => (await stray()).length === 0, RECOVERY_MS);
  assert.deepEqual(await stray(), [], "files of interrupted writes left on the volumes");
  assert.deepEqual(await listKeys(base, "unlinked"), [], "a DELETE left its key unlinked");
  const again = await ask(`${base}${halfKey}`, { method: "PUT", body: "whole" });
  assert.equal(again.status, 201, `PUT ${halfKey} after the crash: ${again.body}`);
});

// ---------------------------------------------------------------------------------------------
// 3. nginx dies under its program

/**
 * After its nginx was killed, the program must serve again on its port within RECOVERY_MS, or
 * have exited non-zero saying why: never linger answering nothing.
 */
async function assertRecovers(
  program: ClusterProcess,
  killed: number[],
  works: () => Promise<boolean>,
): Promise<void> {
  const recovered = await eventually(
    async () => program.exited || (await portAnswers(program.port) && await works()),
    RECOVERY_MS,
  );
  if (program.exited) {
    const status = await program.status;
    assert.notEqual(status.code, 0, `${program.name} exited 0 after its nginx died`);
    assert.match(program.log, /nginx/, `${program.name} exited without saying why`);
    return;
  }
  assert.ok(recovered, `${program.name} answers nothing ${RECOVERY_MS}ms after its nginx died`);
  const [master] = await nginxPids(program.port);
  assert.ok(!killed.includes(master), "the pid file names the killed nginx");
  assert.equal(parentOf(master), program.pid, `the new nginx is not ${program.name}'s child`);
}

Deno.test("nginx of the index dies: the index restarts it and serves again", async () => {
  await using cluster = await testCluster();
  assert.equal(await put(cluster.url, "/before", "before"), 201);
  const killed = await killNginx(cluster.index.port);
  await assertRecovers(
    cluster.index,
    killed,
    async () => (await tryAsk(`${cluster.url}/before`)).status === 302,
  );
  assert.equal(await put(cluster.url, "/after", "after"), 201);
  assert.equal((await read(cluster.url, "/after")).body, "after");
  assert.equal((await read(cluster.url, "/before")).body, "before");
});

Deno.test("nginx of a volume dies: the volume restarts it and the index uses it again", async () => {
  await using cluster = await testCluster();
  assert.equal(await put(cluster.url, "/before", "before"), 201);
  const volume = cluster.volumes[0];
  const killed = await killNginx(volume.port);
  // Every key has a replica on every volume (3 of 3), so a PUT that succeeds wrote to this one.
  let n = 0;
  await assertRecovers(
    volume,
    killed,
    async () =>
      (await tryAsk(`${cluster.url}/after${n++}`, { method: "PUT", body: "after" })).status === 201,
  );
  const location = keyToVolumes(`/after${n - 1}`, placementOf(cluster, 3))
    .find((l) => locationHost(l) === `localhost:${volume.port}`)!;
  assert.ok(await exists(fileOnDisk(cluster, location, keyToPath(`/after${n - 1}`))));
  const before = keyToVolumes("/before", placementOf(cluster, 3))
    .find((l) => locationHost(l) === `localhost:${volume.port}`)!;
  const direct = await ask(volumeUrl(target(before, keyToPath("/before"))));
  assert.equal(direct.body, "before", "the volume's restarted nginx does not serve its files");
  assert.equal((await read(cluster.url, "/before")).body, "before");
});

// ---------------------------------------------------------------------------------------------
// 4. A client hangs up mid-upload

Deno.test("a client that hangs up mid-upload leaves nothing, and the key is writable at once", async () => {
  await using cluster = await testCluster();
  const key = "/hung-up";
  const conn = await rawConnect(cluster.index.port);
  await conn.write(
    new TextEncoder().encode(
      `PUT ${key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50000000\r\n\r\n`,
    ),
  );
  await conn.write(new TextEncoder().encode(valueOf(key, MIB)));
  // DELETE takes the key's lock like PUT: 409 proves the upload reached the index and is under
  // way; after the hang-up, 409 until it is torn down, then 404 (no record). A 204 would mean the
  // partial value had been stored.
  const deleteStatus = async () => (await ask(`${cluster.url}${key}`, { method: "DELETE" })).status;
  const underWay = await eventually(async () => await deleteStatus() === 409, RECOVERY_MS);
  conn.close();
  assert.ok(underWay, "the upload never reached the index");
  let status = 0;
  await eventually(async () => (status = await deleteStatus()) !== 409, DISCONNECT_NOTICE_MS);
  assert.equal(status, 404, `DELETE after the hang-up answered ${status}`);
  await assertAbsent(cluster, key, "after a hang-up");
  assert.equal(await put(cluster.url, key, "whole"), 201);
  assert.equal((await read(cluster.url, key)).body, "whole");
});

// ---------------------------------------------------------------------------------------------
// 8. A key's files vanish from every volume

Deno.test("a key whose files are gone from every volume answers 410", async () => {
  // Volumes without --index, checked on each GET; tests/faults/trust_test.ts has those with it.
  await using cluster = await testCluster({ volumeIndex: false });
  const key = "/vanished";
  assert.equal(await put(cluster.url, key, "soon gone"), 201);
  for (const location of keyToVolumes(key, placementOf(cluster, 3))) {
    await Deno.remove(fileOnDisk(cluster, location, keyToPath(key)));
  }
  // The index trusts what it just wrote for VERIFIED_TTL_MS; after that a GET checks the volumes.
  await new Promise((resolve) => setTimeout(resolve, VERIFIED_TTL_MS + 250));
  const answer = await ask(`${cluster.url}${key}`);
  assert.equal(
    answer.status,
    410,
    `GET of a key lost on every volume: ${answer.status} ${answer.headers.get("location")}`,
  );
});

// ---------------------------------------------------------------------------------------------
// 5. A volume's disk is full

async function run(command: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  const output = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  return { ok: output.success, stderr: new TextDecoder().decode(output.stderr).trim() };
}

Deno.test("a full volume: PUTs answer 507 naming it, it is reported full and serves GETs, DELETEs free its space at once, writes come back by themselves", async () => {
  await using dir = await tempDir();
  const full = join(dir.path, "volume1");
  await Deno.mkdir(full, { mode: 0o777 });
  await Deno.chmod(full, 0o777);
  // A 4 MiB filesystem of its own: writes beyond it fail with ENOSPC, as on a full disk. Its root
  // is a volume directory as root runs one: root's, the workers' group, mode 1770.
  const gid = (await workerAccount(DEFAULT_WORKER_USER))?.gid ?? 0;
  const options = `size=4m,mode=1770,uid=0,gid=${gid}`;
  const mounted = await run("mount", ["-t", "tmpfs", "-o", options, "tmpfs", full]);
  assert.ok(mounted.ok, `cannot mount a tmpfs to fill up (run as root): ${mounted.stderr}`);
  try {
    const [port, ...volumePorts] = freePorts(4);
    await using started = await spawnCluster({ dir: dir.path, port, volumePorts });
    const cluster = Object.assign(started, { dir: dir.path });
    const fullHost = `localhost:${volumePorts[0]}`;
    // A value larger than the volume's free space: 507 by its disk figures (once the index has
    // read them), and the volume, which can still store smaller values, stays up.
    const figured = await eventually(async () => {
      const status = JSON.parse((await ask(`${cluster.url}/-/status.json`)).body) as {
        volumes: { host: string; disk?: unknown }[];
      };
      return status.volumes.find((v) => v.host === fullHost)?.disk !== undefined;
    }, PROBE_NOTICE_MS);
    assert.ok(figured, `the index never read the disk figures of ${fullHost}`);
    const tooBig = await ask(`${cluster.url}/too-big`, {
      method: "PUT",
      body: valueOf("/too-big", 5 * MIB),
    });
    assert.equal(tooBig.status, 507, tooBig.body);
    assert.match(tooBig.body, new RegExp(`volume ${fullHost}: .*not enough space`));
    await assertAbsent(cluster, "/too-big", "a value larger than the free space");
    assert.match((await ask(`${cluster.url}/-/ready`)).body, /^ready: 3 of 3 volumes up/);
    // Filled to the last block through the index: values of shrinking sizes, each size until
    // the volume refuses one. A refusal before the volume is found full may be a 503.
    const stored: string[] = [];
    let last = { status: 0, body: "" };
    for (const sizeBytes of [256 * 1024, 64 * 1024, 16 * 1024, 4096, 100]) {
      for (let i = 0; i < 64; i++) {
        const key = `/fill/${sizeBytes}/${i}`;
        last = await ask(`${cluster.url}${key}`, { method: "PUT", body: valueOf(key, sizeBytes) });
        if (last.status !== 201) {
          assert.ok([503, 507].includes(last.status), `PUT ${key}: ${last.status} ${last.body}`);
          await assertAbsent(cluster, key, "a refused PUT");
          break;
        }
        stored.push(key);
      }
    }
    assert.ok(stored.length > 10, `only ${stored.length} values stored before the disk filled`);
    const refused = await ask(`${cluster.url}/after-full`, { method: "PUT", body: "tiny" });
    assert.equal(refused.status, 507, refused.body);
    assert.match(refused.body, new RegExp(`volume ${fullHost}: full`));
    await assertAbsent(cluster, "/after-full", "a PUT to a full volume");

    // Reported full, not down: /-/ready (still 200: reads and deletes go on), the status page's
    // data, the metrics and the event log.
    const ready = await ask(`${cluster.url}/-/ready`);
    assert.equal(ready.status, 200, ready.body);
    assert.match(ready.body, new RegExp(`full \\(reads and deletes only\\): ${fullHost}`));
    const status = JSON.parse((await ask(`${cluster.url}/-/status.json`)).body) as {
      volumes: { host: string; health: string }[];
    };
    assert.equal(status.volumes.find((v) => v.host === fullHost)?.health, "full");
    const metrics = (await ask(`${cluster.url}/-/metrics`)).body;
    assert.match(metrics, new RegExp(`^mkv_volume_full\\{volume="${fullHost}"\\} 1$`, "m"));
    assert.match(metrics, new RegExp(`^mkv_volume_up\\{volume="${fullHost}"\\} 1$`, "m"));
    assert.match(cluster.index.log, new RegExp(`volume ${fullHost}: full: `));
    assert.doesNotMatch(cluster.index.log, new RegExp(`volume ${fullHost}: marked down`));

    // Reads go on: every value, straight from the full volume's nginx too.
    for (const key of stored.slice(0, 5)) {
      assert.equal((await read(cluster.url, key)).body, valueOf(key, Number(key.split("/")[2])));
      const location = keyToVolumes(key, placementOf(cluster, 3)).find((l) =>
        locationHost(l) === fullHost
      );
      const onFull = await ask(volumeUrl(target(location!, keyToPath(key))));
      assert.equal(onFull.status, 200, `GET ${key} on the full volume`);
    }

    // A DELETE frees the space at once: its file on the full volume is gone right after.
    const deleted = stored.filter((key) => key.startsWith("/fill/262144/"));
    assert.ok(deleted.length > 0);
    for (const key of deleted) {
      assert.equal((await ask(`${cluster.url}${key}`, { method: "DELETE" })).status, 204);
    }
    const freed = await eventually(async () => {
      for (const key of deleted) if ((await filesOfKey(cluster, key)).length > 0) return false;
      return true;
    }, 2000);
    assert.ok(freed, `files of deleted keys are still on disk:\n${cluster.index.log}`);

    // Writes come back by themselves, no restart.
    const writable = await eventually(
      async () =>
        (await ask(`${cluster.url}/after-freed`, { method: "PUT", body: "tiny" })).status === 201,
      PROBE_NOTICE_MS,
    );
    assert.ok(writable, `PUT still fails after space was freed:\n${cluster.index.log}`);
    assert.match(cluster.index.log, new RegExp(`volume ${fullHost}: takes writes again`));
    assert.equal(
      (await ask(`${cluster.url}/-/ready`)).body,
      "ready: 3 of 3 volumes up, 3 replicas needed\n",
    );
    for (const key of stored.filter((key) => !deleted.includes(key)).slice(0, 5)) {
      assert.equal((await read(cluster.url, key)).body, valueOf(key, Number(key.split("/")[2])));
    }
  } finally {
    const unmounted = await run("umount", [full]);
    if (!unmounted.ok) await run("umount", ["-l", full]);
  }
});

// ---------------------------------------------------------------------------------------------
// 6. Large values, slow clients

const GIB = 1024 * MIB;
/**
 * The index may not hold a value in memory: a streamed value of any size adds at most this to its
 * peak RSS (one 256 KiB chunk, the runtime's own buffers and garbage not yet collected), on top of
 * what it held before.
 */
const STREAM_RSS_BYTES = 24 * MIB;
/** And the index's peak RSS stays under this (it is 49–53 MiB at rest). */
const INDEX_PEAK_RSS_BYTES = 80 * MIB;

async function peakRssBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = status.match(/^VmHWM:\s+(\d+) kB$/m);
  assert.ok(kib, `no VmHWM in /proc/${pid}/status`);
  return Number(kib[1]) * 1024;
}

Deno.test("a 1 GiB value goes in and out bit-exact, and the index never holds it", async () => {
  await using cluster = await testCluster();
  const idle = await peakRssBytes(cluster.index.pid);
  const key = "/one-gib";
  const value = generated(GIB);
  const stored = await fetch(`${cluster.url}${key}`, { method: "PUT", body: value.stream });
  assert.equal(stored.status, 201, await stored.text());

  const answer = await ask(`${cluster.url}${key}`);
  assert.equal(answer.status, 302);
  assert.equal(answer.headers.get("content-md5"), value.md5(), "the index's md5 of the value");
  const back = await fetch(answer.headers.get("location")!);
  assert.equal(back.status, 200);
  const hash = createHash("md5");
  let sizeBytes = 0;
  for await (const chunk of back.body!) {
    hash.update(chunk);
    sizeBytes += chunk.byteLength;
  }
  assert.equal(sizeBytes, GIB);
  assert.equal(hash.digest("hex"), value.md5(), "the value read back differs");
  const peak = await peakRssBytes(cluster.index.pid);
  assert.ok(
    peak - idle < STREAM_RSS_BYTES && peak < INDEX_PEAK_RSS_BYTES,
    `the index's peak RSS was ${(peak / MIB).toFixed(1)} MiB for a 1 GiB value (limits: ` +
      `${STREAM_RSS_BYTES / MIB} MiB over the ${(idle / MIB).toFixed(1)} MiB before the PUT, ` +
      `${INDEX_PEAK_RSS_BYTES / MIB} MiB in all)`,
  );
});

Deno.test("a client trickling its value, and one reading slowly, stall no one else", async () => {
  await using cluster = await testCluster();
  const big = "/big";
  assert.equal(await put(cluster.url, big, valueOf(big, 16 * MIB)), 201);
  const TRICKLE_BYTES = 30;
  const TRICKLE_EVERY_MS = 100;

  // A writer that sends its value one byte every 100 ms (3 s in all)...
  const slowKey = "/trickled";
  const writer = await rawConnect(cluster.index.port);
  await writer.write(new TextEncoder().encode(
    `PUT ${slowKey} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n` +
      `Content-Length: ${TRICKLE_BYTES}\r\n\r\n`,
  ));
  let trickleDone = false;
  const trickle = (async () => {
    for (let i = 0; i < TRICKLE_BYTES; i++) {
      await sleep(TRICKLE_EVERY_MS);
      await writer.write(new TextEncoder().encode("t"));
    }
    const answer = await readAll(writer, REQUEST_TIMEOUT_MS);
    trickleDone = true;
    writer.close();
    return answer;
  })();
  // ...and a reader that takes the first bytes of a 16 MiB value, then stops reading.
  const reading = await fetch((await ask(`${cluster.url}${big}`)).headers.get("location")!);
  const reader = reading.body!.getReader();
  assert.ok(!(await reader.read()).done);

  // Meanwhile everyone else gets answers, long before the trickle ends.
  for (let i = 0; i < 10; i++) {
    const key = `/meanwhile/${i}`;
    assert.equal(await put(cluster.url, key, valueOf(key, 64 * 1024)), 201);
    assert.equal((await read(cluster.url, key)).body, valueOf(key, 64 * 1024));
  }
  assert.equal((await read(cluster.url, big)).body, valueOf(big, 16 * MIB));
  assert.ok(!trickleDone, "the others finished only after the trickle");
  await reader.cancel();

  const answer = await trickle;
  assert.match(answer ?? "no answer", /^HTTP\/1\.1 201/, "the trickled PUT");
  assert.equal((await read(cluster.url, slowKey)).body, "t".repeat(TRICKLE_BYTES));
});

// ---------------------------------------------------------------------------------------------
// 9. Time: idle periods longer than the volumes' keep-alive, and what a failure must not damage

/** Clients of the busy phases, each with its own keep-alive connection, as in production. */
const IDLE_CLIENTS = 32;
/** Keys per busy phase. */
const IDLE_KEYS = 96;
/**
 * Every eighth key of the busy phases has a value above 256 KiB, which the index streams to the
 * volumes on the pool's kept-alive sockets (the rest are sent whole): both kinds meet sockets the
 * volumes closed while idle.
 */
function idleValue(key: string): string {
  return Number(key.split("/").at(-1)) % 8 === 0 ? valueOf(key, 300 * 1024) : valueOf(key);
}

/** TCP state CLOSE_WAIT in /proc/net/tcp: the peer closed, the socket was not. */
const TCP_CLOSE_WAIT = "08";

/** Runs `fn` on every item, `limit` at a time. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** Sockets on this machine in CLOSE_WAIT towards one of `ports` (the index's to its volumes). */
async function closeWaitSockets(ports: number[]): Promise<number> {
  let count = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(file).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4 || fields[3] !== TCP_CLOSE_WAIT) continue;
      const remotePort = parseInt(fields[2].split(":")[1], 16);
      if (ports.includes(remotePort)) count++;
    }
  }
  return count;
}

/**
 * Busy, quiet for `pauseMs`, busy again, `rounds` times: each busy phase PUTs IDLE_KEYS keys (some
 * streamed, `idleValue`) from IDLE_CLIENTS clients; after each quiet one, every client GETs
 * (following the 302), DELETEs and PUTs anew its keys and HEADs a missing one. Returns every answer
 * that was wrong.
 */
async function busyQuietBusy(
  cluster: TestCluster,
  options: { pauseMs: number; rounds: number },
): Promise<string[]> {
  const client = Deno.createHttpClient({});
  const wrong: string[] = [];
  const call = async (what: string, want: number, url: string, init: RequestInit = {}) => {
    try {
      const response = await fetch(url, { client, redirect: "manual", ...init });
      const body = await response.text();
      if (response.status !== want) wrong.push(`${what}: ${response.status} ${body.trim()}`);
      return { status: response.status, headers: response.headers, body };
    } catch (err) {
      wrong.push(`${what}: ${(err as Error).message}`);
      return null;
    }
  };
  try {
    let keys = Array.from({ length: IDLE_KEYS }, (_, i) => `/idle/0/${i}`);
    await inParallel(keys, IDLE_CLIENTS, async (key) => {
      await call(`PUT ${key}`, 201, `${cluster.url}${key}`, {
        method: "PUT",
        body: idleValue(key),
      });
    });
    for (let round = 1; round <= options.rounds; round++) {
      await sleep(options.pauseMs);
      const fresh = keys.map((_, i) => `/idle/${round}/${i}`);
      await inParallel(keys.map((key, i) => [key, fresh[i]]), IDLE_CLIENTS, async ([key, next]) => {
        const got = await call(`GET ${key}`, 302, `${cluster.url}${key}`);
        const location = got?.headers.get("location");
        if (location) await call(`GET ${location}`, 200, location);
        await call(`DELETE ${key}`, 204, `${cluster.url}${key}`, { method: "DELETE" });
        await call(`PUT ${next}`, 201, `${cluster.url}${next}`, {
          method: "PUT",
          body: idleValue(next),
        });
        await call(`HEAD ${key}/missing`, 404, `${cluster.url}${key}/missing`, { method: "HEAD" });
      });
      for (const key of keys) {
        const files = await filesOfKey(cluster, key);
        if (files.length > 0) wrong.push(`deleted ${key}: files left ${files}`);
      }
      keys = fresh;
    }
    const unlinked = await listKeys(cluster.url, "unlinked");
    if (unlinked.length > 0) wrong.push(`keys left unlinked: ${unlinked}`);
    for (const key of keys) {
      const got = await read(cluster.url, key);
      if (got.body !== idleValue(key)) wrong.push(`GET ${key} at the end: ${got.status}`);
    }
  } finally {
    client.close();
  }
  return wrong;
}

Deno.test("busy, quiet past the volumes' keep-alive timeout, busy: every answer right, no volume down", async () => {
  // The volumes close idle connections after 1 s, long before the index's pool would (30 s): the
  // pool must drop them when they close, and retry a request that races a close.
  await using cluster = await testCluster({ volumeArgs: ["--keepalive", "1s"] });
  const wrong = await busyQuietBusy(cluster, { pauseMs: 2_500, rounds: 2 });
  assert.deepEqual(wrong, [], `${wrong.length} wrong answers:\n${wrong.slice(0, 20).join("\n")}`);
  assert.doesNotMatch(cluster.index.log, /marked down/, "an idle socket made a volume down");
  const ports = cluster.volumes.map((volume) => volume.port);
  assert.equal(await closeWaitSockets(ports), 0, "sockets the volumes closed were kept");
});

Deno.test("streamed PUTs reuse the index's kept-alive connections to the volumes", async () => {
  await using cluster = await testCluster();
  const accepted = async () => {
    let total = 0;
    for (const volume of cluster.volumes) {
      const answer = await ask(`http://localhost:${volume.port}${STUB_STATUS_PATH}`);
      total += parseStubStatus(answer.body)!.accepts;
    }
    return total;
  };
  const puts = 20;
  const before = await accepted();
  for (let i = 0; i < puts; i++) {
    const key = `/streamed/${i}`;
    const answer = await ask(`${cluster.url}${key}`, {
      method: "PUT",
      body: valueOf(key, 300 * 1024),
    });
    assert.equal(answer.status, 201, answer.body);
  }
  // A connection per replica per PUT would be 60; the probes open one per volume each second.
  const opened = await accepted() - before;
  assert.ok(opened < puts, `${opened} connections accepted by the volumes for ${puts} PUTs`);
});

Deno.test("busy, quiet for 80 s (real default timing: volumes' keep-alive 75 s), busy", async () => {
  // MKV_IDLE_PAUSE_S sets another pause for a run by hand (600 for ten minutes).
  const pauseMs = Number(Deno.env.get("MKV_IDLE_PAUSE_S") ?? "80") * 1000;
  await using cluster = await testCluster();
  const wrong = await busyQuietBusy(cluster, { pauseMs, rounds: 1 });
  assert.deepEqual(wrong, [], `${wrong.length} wrong answers:\n${wrong.slice(0, 20).join("\n")}`);
  assert.doesNotMatch(cluster.index.log, /marked down/, "an idle socket made a volume down");
  const ports = cluster.volumes.map((volume) => volume.port);
  assert.equal(await closeWaitSockets(ports), 0, "sockets the volumes closed were kept");
});

Deno.test("small PUTs to a volume that hangs fail as soon as its probe does, not at the stall limit", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const victim = cluster.volumes[0];
  const keys = keysPlaced({
    prefix: "/small-hung/",
    placement: placementOf(cluster, 2),
    host: `localhost:${victim.port}`,
    onHost: true,
    count: 8,
  });
  const hung = await nginxPids(victim.port);
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  try {
    const started = performance.now();
    const answers = await Promise.all(keys.map((key) =>
      tryAsk(`${cluster.url}${key}`, {
        method: "PUT",
        body: valueOf(key, 1000),
      })
    ));
    const waitedMs = performance.now() - started;
    for (const answer of answers) assert.equal(answer.status, 503, answer.body);
    assert.ok(
      waitedMs < VOLTIMEOUT_MS + PROBE_NOTICE_MS,
      `small PUTs to a hung volume took ${waitedMs.toFixed(0)}ms`,
    );
  } finally {
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
  // Nothing is left: the cleanup waits for the volume, which is back now.
  for (const key of keys) {
    const clean = await eventually(
      async () => (await filesOfKey(cluster, key)).length === 0,
      RECOVERY_MS,
    );
    assert.ok(clean, `files of the failed PUT of ${key} left behind`);
  }
});

Deno.test("a DELETE with a replica's volume down is accepted at once; its file goes when the volume is back", async () => {
  await using cluster = await testCluster();
  const key = "/delete-while-down";
  assert.equal(await put(cluster.url, key, valueOf(key)), 201);
  const victim = cluster.volumes[2];
  await killVolume(victim);
  await sleep(PROBE_DETECT_MS);
  const answer = await ask(`${cluster.url}${key}`, { method: "DELETE" });
  assert.equal(answer.status, 204, `DELETE with a volume down: ${answer.body}`);
  assert.equal((await ask(`${cluster.url}${key}`)).status, 404, "a deleted key still reads");
  assert.ok(!(await listKeys(cluster.url)).includes(key));
  assert.ok(!(await listKeys(cluster.url, "unlinked")).includes(key), "DELETE left it unlinked");
  // The live volumes' files go right after the 204; the down volume's stays for now.
  await eventually(async () => (await filesOfKey(cluster, key)).length === 1, RECOVERY_MS);
  assert.equal((await filesOfKey(cluster, key)).length, 1, "the down volume's file stays for now");
  assert.equal((await ask(`${cluster.url}${key}`, { method: "DELETE" })).status, 404);
  await using _revived = await spawnVolume({ port: victim.port, dir: volumeDir(cluster, victim) });
  const gone = await eventually(
    async () => (await filesOfKey(cluster, key)).length === 0,
    RECOVERY_MS,
  );
  assert.ok(gone, "the file on the revived volume was not removed");
  // The sweep holds the key's lock until it has committed the record's removal: 409 until then.
  let status = 0;
  await eventually(
    async () => (status = await put(cluster.url, key, "again")) !== 409,
    RECOVERY_MS,
  );
  assert.equal(status, 201);
  assert.equal((await read(cluster.url, key)).body, "again");
});

/**
 * Starts a PUT of `key` on a raw connection that announces 50 MB and sends 1 MiB, and returns the
 * connection once the upload is under way: UNLINK takes the key's lock like PUT, so its 409 proves
 * that the upload reached the index (and, unlike DELETE, it changes nothing of an unlinked key).
 */
async function uploadUnderWay(cluster: TestCluster, key: string): Promise<Deno.TcpConn> {
  const conn = await rawConnect(cluster.index.port);
  await conn.write(
    new TextEncoder().encode(
      `PUT ${key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50000000\r\n\r\n`,
    ),
  );
  await conn.write(new TextEncoder().encode(valueOf("new", MIB)));
  const underWay = await eventually(
    async () => (await ask(`${cluster.url}${key}`, { method: "UNLINK" })).status === 409,
    RECOVERY_MS,
  );
  if (!underWay) conn.close();
  assert.ok(underWay, "the upload never reached the index");
  return conn;
}

/** PUTs `key` with value `old`, UNLINKs it; returns its files on disk. */
async function unlinkedKey(cluster: TestCluster, key: string, old: string): Promise<string[]> {
  assert.equal(await put(cluster.url, key, old), 201);
  assert.equal((await ask(`${cluster.url}${key}`, { method: "UNLINK" })).status, 204);
  const files = await filesOfKey(cluster, key);
  assert.equal(files.length, 3);
  return files;
}

/** Asserts that `key` is unlinked again with `old` in every one of `files`. */
async function assertUnlinkedKept(cluster: TestCluster, key: string, old: string, files: string[]) {
  const kept = await eventually(
    async () => (await listKeys(cluster.url, "unlinked")).includes(key),
    RECOVERY_MS,
  );
  assert.ok(kept, `${key} is no longer listed as unlinked`);
  for (const file of files) assert.equal(await Deno.readTextFile(file), old, file);
  assert.equal((await ask(`${cluster.url}${key}`)).status, 404);
  // The unlinked record is back before the broken write has removed its own files and let go of the
  // key: a DELETE meanwhile is a 409 that changes nothing, and is tried again, as a client would.
  let deleted = 0;
  await eventually(async () => {
    deleted = (await ask(`${cluster.url}${key}`, { method: "DELETE" })).status;
    return deleted !== 409;
  }, RECOVERY_MS);
  assert.equal(deleted, 204);
  // The files go right after the 204.
  await eventually(async () => (await filesOfKey(cluster, key)).length === 0, RECOVERY_MS);
  assert.deepEqual(await filesOfKey(cluster, key), []);
}

Deno.test("a PUT over an unlinked key that the client breaks off gives the unlinked value back", async () => {
  await using cluster = await testCluster();
  const key = "/unlinked-broken-put";
  const old = valueOf(key, 3000);
  const files = await unlinkedKey(cluster, key, old);
  const conn = await uploadUnderWay(cluster, key);
  conn.close();
  await assertUnlinkedKept(cluster, key, old, files);
});

Deno.test("a PUT over an unlinked key that one volume refuses gives the unlinked value back everywhere", async () => {
  await using cluster = await testCluster();
  const key = "/unlinked-refused-put";
  const old = valueOf(key);
  const files = await unlinkedKey(cluster, key, old);
  // The key's directory on one volume becomes read-only: nginx there cannot store the new value,
  // while the two others store it whole over the unlinked one.
  const refusing = files[0].slice(0, files[0].lastIndexOf("/"));
  await Deno.chmod(refusing, 0o555);
  try {
    const answer = await ask(`${cluster.url}${key}`, { method: "PUT", body: "new value" });
    assert.equal(answer.status, 503, answer.body);
  } finally {
    await Deno.chmod(refusing, 0o755);
  }
  await assertUnlinkedKept(cluster, key, old, files);
});

Deno.test("kill -9 of the index during a PUT over an unlinked key: the restart gives the unlinked value back", async () => {
  await using cluster = await testCluster();
  const key = "/unlinked-crashed-put";
  const old = valueOf(key, 5000);
  const files = await unlinkedKey(cluster, key, old);
  const conn = await uploadUnderWay(cluster, key);
  cluster.index.kill("SIGKILL");
  await cluster.index.status;
  conn.close();
  await using index = await spawnIndex({
    port: cluster.index.port,
    db: join(cluster.dir, "index"),
    volumes: placementOf(cluster, 3).volumes,
  });
  await assertUnlinkedKept({ ...cluster, index, url: index.url } as TestCluster, key, old, files);
});

/** A write probe runs every 10 s; two of them, and a little more, notice a volume that cannot write. */
const WRITE_PROBE_NOTICE_MS = 25_000;

Deno.test("a volume that answers but cannot store is marked full by its write probe, not down", async () => {
  await using cluster = await testCluster();
  const victim = cluster.volumes[1];
  const victimHost = `localhost:${victim.port}`;
  // Without its spool directory nginx still answers GET and HEAD, but every PUT fails with 500.
  await Deno.remove(join(volumeDir(cluster, victim), ".mkv/tmp"), { recursive: true });
  const noticed = await eventually(
    () =>
      Promise.resolve(
        new RegExp(`volume ${victimHost}: full: .*cannot write`).test(cluster.index.log),
      ),
    WRITE_PROBE_NOTICE_MS,
  );
  assert.ok(noticed, `the index never found ${victimHost} unable to write:\n${cluster.index.log}`);
  assert.doesNotMatch(cluster.index.log, new RegExp(`volume ${victimHost}: marked down`));
  const answer = await ask(`${cluster.url}/after-spool-gone`, { method: "PUT", body: "x" });
  assert.equal(answer.status, 507, answer.body);
  assert.match(answer.body, new RegExp(victimHost));
});
