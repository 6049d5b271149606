// Several hosts: the cluster with its parts on different machines, made of Linux network
// namespaces (tests/netns.ts). Three volume hosts and an index host on one bridge, the client (this
// test) in the root namespace, each program in its host's namespace. Then real faults between
// hosts: a link goes down, the index is cut from one volume that clients still reach, a volume
// comes back with an empty disk, a fourth host joins by an online rebalance, a volume's nginx
// hangs; and volumes named by host names and by IPv6 addresses. Needs root (CI and our machines
// run it); where namespaces cannot be made, every test here is ignored with the reason printed.
//
//   node_modules/.bin/deno test -A tests/faults/hosts_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ClusterProcess, spawnIndex, spawnVolume } from "../../dev/cluster.ts";
import { keyToPath, keyToVolumes, locationHost, type Placement } from "../../lib/placement.ts";
import {
  curl,
  eventually,
  freePorts,
  keysPlaced,
  nginxPids,
  request,
  sleep,
  tempDir,
  VOLTIMEOUT_MS,
} from "../helpers.ts";
import { type Host, netnsUnavailable, Network } from "../netns.ts";

/** What a request may take beyond the voltimeout on a loaded machine; a bound, not a speed. */
const SLACK_MS = 1500;
/** Time for the index's 1 s health probe to notice a volume going away or coming back. */
const PROBE_NOTICE_MS = 8_000;
/** Time for the removals that waited for a volume to be done once it is back. */
const SETTLE_MS = 15_000;
/** Bound on any one request, so that a hang fails instead of stalling CI. */
const REQUEST_TIMEOUT_MS = 10_000;
const SUBVOLUMES = 10;

const UNAVAILABLE = await netnsUnavailable();
/** In CI (.ci/run sets CI=true) nothing is skipped: a machine without namespaces fails these. */
const IN_CI = Deno.env.get("CI") === "true";
if (UNAVAILABLE !== null && !IN_CI) {
  console.error(`hosts_test: IGNORED, every test of this file: ${UNAVAILABLE}`);
}

/**
 * A test that needs network namespaces: ignored without them, with the reason printed above;
 * in CI it fails with that reason instead.
 */
function hostsTest(name: string, fn: () => Promise<void>): void {
  const run = UNAVAILABLE === null ? fn : () => {
    throw new Error(`network namespaces unavailable: ${UNAVAILABLE}`);
  };
  Deno.test({ name, ignore: UNAVAILABLE !== null && !IN_CI, fn: run });
}

// ---------------------------------------------------------------------------------------------
// Pure helpers

/** The value the tests store under `key`. */
function valueOf(key: string): string {
  return `value of ${key};`.repeat(8);
}

// ---------------------------------------------------------------------------------------------
// I/O helpers

/** One request, bounded in time; a failed connection or a timeout is status 0 with the reason. */
async function ask(url: string, init: RequestInit = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
  try {
    return await request(url, { signal: AbortSignal.timeout(timeoutMs), ...init });
  } catch (err) {
    return { status: 0, headers: new Headers(), body: String(err) };
  }
}

async function put(base: string, key: string, value = valueOf(key)) {
  return await ask(`${base}${key}`, { method: "PUT", body: value });
}

interface Read {
  /** The index's answer. */
  status: number;
  /** How long the index took to answer. */
  latencyMs: number;
  /** The 302's Location, "" if none. */
  location: string;
  /** The status and body of following it (0 if it could not be). */
  followStatus: number;
  body: string;
  reason: string;
}

/** GET through the index: its answer and latency, then the value at the location it names. */
async function read(base: string, key: string): Promise<Read> {
  const started = performance.now();
  const answer = await ask(`${base}${key}`);
  const latencyMs = performance.now() - started;
  const location = answer.headers.get("location") ?? "";
  if (answer.status !== 302) {
    return {
      status: answer.status,
      latencyMs,
      location,
      followStatus: 0,
      body: "",
      reason: answer.body,
    };
  }
  const value = await ask(location, {}, VOLTIMEOUT_MS + SLACK_MS);
  return {
    status: 302,
    latencyMs,
    location,
    followStatus: value.status,
    body: value.body,
    reason: value.status === 200 ? "" : value.body,
  };
}

/** The body of `/-/ready`. */
async function ready(base: string): Promise<string> {
  return (await ask(`${base}/-/ready`)).body;
}

/** Waits until the index's `/-/ready` says that `volume` is down (or, `down: false`, up). */
async function awaitVolume(base: string, volume: string, down: boolean): Promise<void> {
  const seen = await eventually(
    async () => (await ready(base)).includes(volume) === down,
    PROBE_NOTICE_MS,
  );
  assert.ok(seen, `the index did not see ${volume} ${down ? "down" : "up"}: ${await ready(base)}`);
}

/** Paths of every file under a volume's directory (nginx's dot directories aside). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (relative: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(join(dir, relative)));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    for (const entry of entries) {
      if (relative === "" && entry.name.startsWith(".")) continue;
      const child = `${relative}/${entry.name}`;
      if (entry.isDirectory) await walk(child);
      else out.push(child);
    }
  };
  await walk("");
  return out;
}

/** One volume host of a test cluster. */
interface VolumeHost {
  host: Host;
  /** How the index names it in `--volumes`. */
  name: string;
  /** Its address and port as a URL's authority. */
  authority: string;
  port: number;
  dir: string;
  process: ClusterProcess;
}

/** Volumes and an index, each on its own host; everything stopped and removed on dispose. */
interface HostCluster extends AsyncDisposable {
  net: Network;
  indexHost: Host;
  index: ClusterProcess;
  volumes: VolumeHost[];
  placement: Placement;
  /** The index's URL, from the client's (root) namespace. */
  url: string;
  dir: string;
  db: string;
  /** Starts a volume on a host (`net.host(name)`, added if missing), not yet in `--volumes`. */
  addVolume(name: string): Promise<VolumeHost>;
}

/**
 * Hosts `vol1`..`volN` and `index` on one network, a volume on each volume host and the index on
 * its own. `name(host, port)` says how `--volumes` names a volume (by default `address:port`).
 */
async function hostCluster(options: {
  volumes?: number;
  replicas: number;
  indexArgs?: string[];
  name?: (host: Host, port: number) => string;
  /** Runs before the programs start: to write hosts files, say. */
  prepare?: (net: Network, ports: number[]) => Promise<void>;
}): Promise<HostCluster> {
  const count = options.volumes ?? 3;
  const naming = options.name ?? ((host, port) => `${host.address}:${port}`);
  await using stack = new AsyncDisposableStack();
  const dir = stack.use(await tempDir());
  const volumeNames = Array.from({ length: count }, (_, i) => `vol${i + 1}`);
  const net = stack.use(await Network.create(["index", ...volumeNames]));
  const [indexPort, ...ports] = freePorts(count + 1);
  await options.prepare?.(net, ports);
  const started: VolumeHost[] = [];
  const addVolume = async (hostName: string, port = freePorts(1)[0]): Promise<VolumeHost> => {
    const host = net.hosts.get(hostName) ?? await net.addHost(hostName);
    const volumeDir = join(dir.path, hostName);
    const process = await spawnVolume({
      port,
      dir: volumeDir,
      netns: host.netns,
      hostname: host.address,
    });
    const volume = {
      host,
      name: naming(host, port),
      authority: `${host.address}:${port}`,
      port,
      dir: volumeDir,
      process,
    };
    started.push(volume);
    return volume;
  };
  // Stopped before the network goes (the stack disposes in reverse).
  stack.defer(async () => {
    await Promise.all(started.map((volume) => volume.process.stop()));
  });
  const volumes = await Promise.all(volumeNames.map((name, i) => addVolume(name, ports[i])));
  const placement: Placement = {
    volumes: volumes.map((volume) => volume.name),
    replicas: options.replicas,
    subvolumes: SUBVOLUMES,
  };
  const indexHost = net.host("index");
  const db = join(dir.path, "index");
  const index = stack.use(
    await spawnIndex({
      port: indexPort,
      db,
      volumes: placement.volumes,
      args: ["--replicas", String(options.replicas), ...(options.indexArgs ?? [])],
      netns: indexHost.netns,
      hostname: indexHost.address,
    }),
  );
  const rest = stack.move();
  return {
    net,
    indexHost,
    index,
    volumes,
    placement,
    url: index.url,
    dir: dir.path,
    db,
    addVolume: (name) => addVolume(name),
    async [Symbol.asyncDispose]() {
      await rest.disposeAsync();
    },
  };
}

/** Asserts that the files of none of `keys` are on any volume of the cluster. */
async function assertNoFiles(cluster: HostCluster, keys: string[]): Promise<void> {
  const paths = new Set<string>(keys.map(keyToPath));
  const left: string[] = [];
  const settled = await eventually(async () => {
    left.length = 0;
    for (const volume of cluster.volumes) {
      for (const file of await filesUnder(volume.dir)) {
        // A file is `/svXX/HH/hh/B64`: the key's path is its last three parts.
        const path = "/" + file.split("/").slice(-3).join("/");
        if (paths.has(path)) left.push(`${volume.name}${file}`);
      }
    }
    return left.length === 0;
  }, SETTLE_MS);
  assert.ok(settled, `files of failed writes left behind: ${left.join(", ")}`);
}

/** Reads and writes in a loop until `stop()`; what each got, with when it started. */
function traffic(options: { base: string; reads: string[]; writePrefix: string }) {
  let stopping = false;
  const reads: (Read & { key: string; startedMs: number })[] = [];
  const writes: { key: string; status: number; body: string; startedMs: number }[] = [];
  const reader = (async () => {
    for (let i = 0; !stopping; i++) {
      const key = options.reads[i % options.reads.length];
      const startedMs = Date.now();
      reads.push({ key, startedMs, ...await read(options.base, key) });
    }
  })();
  const writer = (async () => {
    for (let i = 0; !stopping; i++) {
      const key = `${options.writePrefix}${i}`;
      const startedMs = Date.now();
      const answer = await put(options.base, key);
      writes.push({ key, startedMs, status: answer.status, body: answer.body });
      await sleep(20);
    }
  })();
  return {
    reads,
    writes,
    async stop() {
      stopping = true;
      await Promise.all([reader, writer]);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The tests

hostsTest("hosts: a 302 names the volume host's address, and clients follow it there", async () => {
  await using cluster = await hostCluster({ replicas: 2 });
  const hosts = cluster.volumes.map((volume) => volume.authority);
  for (let i = 0; i < 10; i++) {
    const key = `/across/${i}`;
    assert.equal((await put(cluster.url, key)).status, 201);
    const got = await read(cluster.url, key);
    assert.equal(got.status, 302, got.reason);
    const url = new URL(got.location);
    assert.ok(hosts.includes(url.host), `Location ${got.location} is not a volume host`);
    assert.equal(got.body, valueOf(key));
  }
  // curl -L, from the root namespace: the index on one host, the value from another.
  const out = await curl(["-L", "-w", "\n%{url_effective}", `${cluster.url}/across/3`]);
  assert.equal(out.code, 0, out.stderr);
  const [body, effective] = out.stdout.split("\n");
  assert.equal(body, valueOf("/across/3"));
  assert.ok(hosts.includes(new URL(effective).host), effective);
  const putByCurl = await curl(["-L", "-X", "PUT", "-d", "bigswag", `${cluster.url}/curl`]);
  assert.equal(putByCurl.code, 0, putByCurl.stderr);
  assert.equal((await curl(["-L", `${cluster.url}/curl`])).stdout, "bigswag");
});

hostsTest("hosts: a link goes down and comes back during reads and writes", async () => {
  await using cluster = await hostCluster({ replicas: 2 });
  const victim = cluster.volumes[1];
  const stored = Array.from({ length: 30 }, (_, i) => `/stored/${i}`);
  for (const key of stored) assert.equal((await put(cluster.url, key)).status, 201);
  const load = traffic({ base: cluster.url, reads: stored, writePrefix: "/during/" });
  let downSeenMs = 0;
  try {
    await sleep(300);
    await cluster.net.linkDown(victim.host);
    await awaitVolume(cluster.url, victim.name, true);
    downSeenMs = Date.now();
    // Reads and writes go on for a while with the host gone.
    await sleep(1500);
  } finally {
    await load.stop();
  }
  // The index answers every GET within the voltimeout, and once it has seen the host go, only
  // with the other replicas; every PUT is stored or refused naming the host.
  for (const got of load.reads) {
    assert.equal(got.status, 302, `GET ${got.key} with a host down: ${got.status} ${got.reason}`);
    assert.ok(
      got.latencyMs < VOLTIMEOUT_MS + SLACK_MS,
      `GET ${got.key} took ${got.latencyMs.toFixed(0)}ms with a host down`,
    );
    if (got.startedMs < downSeenMs) continue;
    assert.ok(!got.location.includes(victim.authority), `GET ${got.key} sent to the down host`);
    assert.equal(got.body, valueOf(got.key));
  }
  for (const write of load.writes) {
    if (write.status === 201) continue;
    assert.equal(write.status, 503, `PUT ${write.key}: ${write.status} ${write.body}`);
    assert.ok(write.body.includes(victim.name), `PUT ${write.key}: ${write.body}`);
  }
  const needing = keysPlaced({
    prefix: "/needs/",
    placement: cluster.placement,
    host: victim.name,
    onHost: true,
    count: 5,
  });
  const notNeeding = keysPlaced({
    prefix: "/needs-not/",
    placement: cluster.placement,
    host: victim.name,
    onHost: false,
    count: 5,
  });
  for (const key of needing) {
    const answer = await put(cluster.url, key);
    assert.equal(answer.status, 503, `PUT ${key} needing the down host: ${answer.body}`);
    assert.match(answer.body, new RegExp(victim.name.replaceAll(".", "\\.")));
  }
  for (const key of notNeeding) assert.equal((await put(cluster.url, key)).status, 201);
  for (const key of stored) {
    const got = await read(cluster.url, key);
    assert.ok(!got.location.includes(victim.authority), `GET ${key} sent to the down host`);
    assert.equal(got.body, valueOf(key), `GET ${key}: ${got.reason}`);
  }

  // The link comes back: the same index uses the host again, without a restart.
  await cluster.net.linkUp(victim.host);
  await awaitVolume(cluster.url, victim.name, false);
  const refused = [...needing, ...load.writes.filter((w) => w.status !== 201).map((w) => w.key)];
  for (const key of refused) assert.equal((await ask(`${cluster.url}${key}`)).status, 404, key);
  await assertNoFiles(cluster, refused);
  for (const key of needing) assert.equal((await put(cluster.url, key)).status, 201, key);
  const onVictim = await filesUnder(victim.dir);
  for (const key of needing) {
    assert.ok(onVictim.some((file) => file.endsWith(keyToPath(key))), `${key} not on the host`);
  }
  const locations = new Set<string>();
  for (let round = 0; round < 5; round++) {
    for (const key of needing) {
      const got = await read(cluster.url, key);
      assert.equal(got.body, valueOf(key), `GET ${key}: ${got.reason}`);
      locations.add(new URL(got.location).host);
    }
  }
  assert.ok(locations.has(victim.authority), "no GET was sent to the host that came back");
});

hostsTest("hosts: the index, cut from a volume clients reach, never sends them there", async () => {
  await using cluster = await hostCluster({ replicas: 2 });
  const victim = cluster.volumes[2];
  const onVictim = keysPlaced({
    prefix: "/cut/",
    placement: cluster.placement,
    host: victim.name,
    onHost: true,
    count: 20,
  });
  for (const key of onVictim) assert.equal((await put(cluster.url, key)).status, 201);
  await cluster.net.cut(cluster.indexHost, victim.host);
  try {
    await awaitVolume(cluster.url, victim.name, true);
    // The client still reaches the volume: the partition is the index's alone.
    assert.equal((await ask(`http://${victim.authority}/`)).status, 200);
    const readiness = await ask(`${cluster.url}/-/ready`);
    assert.equal(readiness.status, 200, readiness.body);
    assert.match(readiness.body, /2 of 3 volumes up, 2 replicas needed; down: /);
    const metrics = (await ask(`${cluster.url}/-/metrics`)).body;
    assert.match(metrics, new RegExp(`mkv_volume_up\\{volume="${victim.name}"\\} 0`));
    for (const key of onVictim) {
      const got = await read(cluster.url, key);
      assert.equal(got.status, 302, `GET ${key}: ${got.reason}`);
      assert.ok(!got.location.includes(victim.authority), `GET ${key} sent to ${got.location}`);
      assert.equal(got.body, valueOf(key));
    }
    const refused = await put(cluster.url, "/cut/new-0");
    const needsVictim = keyToVolumes("/cut/new-0", cluster.placement)
      .some((location) => locationHost(location) === victim.name);
    if (needsVictim) {
      assert.equal(refused.status, 503, refused.body);
      assert.ok(refused.body.includes(victim.name), refused.body);
    }
  } finally {
    await cluster.net.heal(cluster.indexHost, victim.host);
  }
  await awaitVolume(cluster.url, victim.name, false);
  const metrics = (await ask(`${cluster.url}/-/metrics`)).body;
  assert.match(metrics, new RegExp(`mkv_volume_up\\{volume="${victim.name}"\\} 1`));
  const key = keysPlaced({
    prefix: "/healed/",
    placement: cluster.placement,
    host: victim.name,
    onHost: true,
    count: 1,
  })[0];
  assert.equal((await put(cluster.url, key)).status, 201);
});

hostsTest("hosts: a volume back with an empty disk; verify --repair refills it", async () => {
  await using cluster = await hostCluster({ replicas: 2 });
  const victim = cluster.volumes[0];
  const stored = Array.from({ length: 30 }, (_, i) => `/disk/${i}`);
  for (const key of stored) assert.equal((await put(cluster.url, key)).status, 201);
  const onVictim = stored.filter((key) =>
    keyToVolumes(key, cluster.placement).some((l) => locationHost(l) === victim.name)
  );
  assert.ok(onVictim.length > 0);
  const load = traffic({ base: cluster.url, reads: stored, writePrefix: "/disk-during/" });
  let downSeenMs = 0;
  try {
    // The host restarts with a new, empty disk: same address, same port.
    await victim.process.stop();
    await awaitVolume(cluster.url, victim.name, true);
    downSeenMs = Date.now();
    await Deno.remove(victim.dir, { recursive: true });
    victim.process = await spawnVolume({
      port: victim.port,
      dir: victim.dir,
      netns: victim.host.netns,
      hostname: victim.host.address,
    });
    await awaitVolume(cluster.url, victim.name, false);
    await sleep(1500);
  } finally {
    await load.stop();
  }
  for (const got of load.reads) {
    assert.equal(got.status, 302, `GET ${got.key} across the restart: ${got.reason}`);
    // Until the index has seen the host go, a GET may still be sent to it.
    if (got.startedMs < downSeenMs) continue;
    assert.equal(got.followStatus, 200, `GET ${got.key} sent to ${got.location}: ${got.reason}`);
    assert.equal(got.body, valueOf(got.key));
  }
  for (const key of stored) {
    const got = await read(cluster.url, key);
    assert.equal(got.body, valueOf(key), `GET ${key} from ${got.location}: ${got.reason}`);
  }
  const written = load.writes.filter((write) => write.status === 201).map((write) => write.key);
  const volumesFlag = cluster.placement.volumes.join(",");
  const common = ["--db", cluster.db, "--volumes", volumesFlag];
  const before = await cluster.net.runScript(cluster.indexHost, [
    "index.ts",
    "verify",
    ...common,
  ]);
  assert.equal(before.code, 1, `verify found nothing missing:\n${before.stdout}${before.stderr}`);
  assert.match(before.stdout, new RegExp(`missing "/disk/\\d+" at ${victim.name}`));
  const repair = await cluster.net.runScript(cluster.indexHost, [
    "index.ts",
    "verify",
    "--repair",
    ...common,
  ]);
  assert.equal(repair.code, 0, `verify --repair:\n${repair.stdout}${repair.stderr}`);
  const files = await filesUnder(victim.dir);
  for (const key of [...onVictim, ...written]) {
    const placed = keyToVolumes(key, cluster.placement).some((l) =>
      locationHost(l) === victim.name
    );
    if (!placed) continue;
    assert.ok(files.some((file) => file.endsWith(keyToPath(key))), `${key} not refilled`);
  }
  const after = await cluster.net.runScript(cluster.indexHost, ["index.ts", "verify", ...common]);
  assert.equal(after.code, 0, `verify after the repair:\n${after.stdout}${after.stderr}`);
});

hostsTest("hosts: an online rebalance adds a fourth host under reads and writes", async () => {
  await using cluster = await hostCluster({ replicas: 2 });
  const stored = Array.from({ length: 60 }, (_, i) => `/move/${i}`);
  for (const key of stored) assert.equal((await put(cluster.url, key)).status, 201);
  const added = await cluster.addVolume("vol4");
  const placement: Placement = {
    ...cluster.placement,
    volumes: [...cluster.placement.volumes, added.name],
  };
  const load = traffic({ base: cluster.url, reads: stored, writePrefix: "/move-during/" });
  let rebalance;
  try {
    rebalance = await cluster.net.runScript(cluster.indexHost, [
      "index.ts",
      "rebalance",
      "--db",
      cluster.db,
      "--volumes",
      placement.volumes.join(","),
      "--replicas",
      "2",
    ]);
    await sleep(500);
  } finally {
    await load.stop();
  }
  assert.equal(rebalance.code, 0, `rebalance:\n${rebalance.stdout}${rebalance.stderr}`);
  assert.match(rebalance.stdout, /moved \d+/);
  for (const got of load.reads) {
    assert.equal(got.status, 302, `GET ${got.key} during the rebalance: ${got.reason}`);
    assert.equal(got.followStatus, 200, `GET ${got.key} sent to ${got.location}: ${got.reason}`);
    assert.equal(got.body, valueOf(got.key));
  }
  for (const write of load.writes) {
    assert.equal(write.status, 201, `PUT ${write.key} during the rebalance: ${write.body}`);
  }
  const written = load.writes.map((write) => write.key);
  const files = await filesUnder(added.dir);
  for (const key of [...stored, ...written]) {
    const got = await read(cluster.url, key);
    assert.equal(got.body, valueOf(key), `GET ${key}: ${got.reason}`);
    const want = keyToVolumes(key, placement).map(locationHost);
    assert.equal(
      (await ask(`${cluster.url}${key}`, { method: "HEAD" })).headers.get("key-balance"),
      "balanced",
      `${key} not where the new placement puts it`,
    );
    if (want.includes(added.name)) {
      assert.ok(
        files.some((file) => file.endsWith(keyToPath(key))),
        `${key} not on the new host`,
      );
    }
  }
});

hostsTest("hosts: a hung (SIGSTOP) volume does not slow GETs of other replicas", async () => {
  const voltimeoutMs = 3000;
  await using cluster = await hostCluster({ replicas: 2, indexArgs: ["--voltimeout", "3s"] });
  const victim = cluster.volumes[1];
  const onVictim = keysPlaced({
    prefix: "/slow/",
    placement: cluster.placement,
    host: victim.name,
    onHost: true,
    count: 20,
  });
  for (const key of onVictim) assert.equal((await put(cluster.url, key)).status, 201);
  const hung = await nginxPids(victim.port);
  for (const pid of hung) Deno.kill(pid, "SIGSTOP");
  try {
    // Until the probe times out, a GET may wait for the hung host once, never longer.
    const noticed = eventually(
      async () => (await ready(cluster.url)).includes(victim.name),
      10_000,
    );
    for (const key of onVictim) {
      const got = await read(cluster.url, key);
      assert.equal(got.status, 302, got.reason);
      assert.ok(got.latencyMs < voltimeoutMs + SLACK_MS, `GET ${key}: ${got.latencyMs}ms`);
    }
    assert.ok(await noticed, `the hung host was never seen down: ${await ready(cluster.url)}`);
    // Then no GET waits for it: each answers well within one voltimeout, from another replica.
    for (let round = 0; round < 3; round++) {
      for (const key of onVictim) {
        const got = await read(cluster.url, key);
        assert.equal(got.status, 302, got.reason);
        assert.ok(
          got.latencyMs < voltimeoutMs / 2,
          `GET ${key} took ${got.latencyMs.toFixed(0)}ms: it waited for the hung host`,
        );
        assert.ok(!got.location.includes(victim.authority), `GET ${key} sent to the hung host`);
        assert.equal(got.body, valueOf(key));
      }
    }
  } finally {
    for (const pid of hung) Deno.kill(pid, "SIGCONT");
  }
  await awaitVolume(cluster.url, victim.name, false);
});

hostsTest("hosts: volumes named by host names (a hosts file of the index's host)", async () => {
  const names = ["vol1.mkv.test", "vol2.mkv.test", "vol3.mkv.test"];
  await using cluster = await hostCluster({
    replicas: 3,
    name: (host, port) => `${host.name}.mkv.test:${port}`,
    prepare: async (net) => {
      const entries = Object.fromEntries(names.map((n, i) => [n, net.host(`vol${i + 1}`).address]));
      await net.writeHosts(net.host("index"), entries);
    },
  });
  const readiness = await ask(`${cluster.url}/-/ready`);
  assert.equal(readiness.status, 200, readiness.body);
  assert.equal((await put(cluster.url, "/named")).status, 201);
  const got = await ask(`${cluster.url}/named`);
  assert.equal(got.status, 302);
  assert.match(got.headers.get("location") ?? "", /^http:\/\/vol\d\.mkv\.test:\d+\//);
  // The client knows the names too (curl's --resolve: the root namespace's /etc/hosts is left
  // alone), and follows the Location to the host it names.
  const resolve = cluster.volumes.flatMap((v) => ["--resolve", `${v.name}:${v.host.address}`]);
  const out = await curl([...resolve, "-L", `${cluster.url}/named`]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, valueOf("/named"));
  assert.equal((await curl([...resolve, "-L", "-X", "DELETE", `${cluster.url}/named`])).code, 0);
  assert.equal((await ask(`${cluster.url}/named`)).status, 404);
});

hostsTest("hosts: volumes named by IPv6 addresses, [addr]:port", async () => {
  await using cluster = await hostCluster({
    replicas: 2,
    name: (host, port) => `[${host.address6}]:${port}`,
  });
  const readiness = await ask(`${cluster.url}/-/ready`);
  assert.equal(readiness.status, 200, readiness.body);
  const hosts = cluster.volumes.map((volume) => `[${volume.host.address6}]:${volume.port}`);
  for (let i = 0; i < 5; i++) {
    const key = `/six/${i}`;
    assert.equal((await put(cluster.url, key)).status, 201);
    const got = await read(cluster.url, key);
    assert.equal(got.status, 302, got.reason);
    assert.ok(hosts.includes(new URL(got.location).host), got.location);
    assert.equal(got.body, valueOf(key));
  }
  const out = await curl(["-L", `${cluster.url}/six/0`]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, valueOf("/six/0"));
});
