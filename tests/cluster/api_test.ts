// Integration tests of the index's HTTP API (every row of the table in the README's "HTTP API")
// and of the programs' command lines, on real clusters: volume.ts and index.ts processes, real
// nginx, Deno KV, HTTP. Each cluster is started once and shared by the steps of a test, so that
// the suite stays quick.

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ClusterProcess, spawnIndex, spawnVolume } from "../../dev/cluster.ts";
import { keyToPath, keyToVolumes, type Placement } from "../../lib/placement.ts";
import { target, volumeUrl } from "../../lib/volumes/protocol.ts";
import { pidFileFor } from "../../lib/nginx/mod.ts";
import {
  exists,
  fileOnDisk,
  freePort,
  getFollow,
  md5Hex,
  put,
  request,
  ROOT,
  tempDir,
  testCluster,
  waitFor,
} from "../helpers.ts";

type TestCluster = Awaited<ReturnType<typeof testCluster>>;

/** The methods of the API, as `Allow` lists them. */
const API_METHODS = ["GET", "HEAD", "PUT", "DELETE", "UNLINK", "REBALANCE"];
/** A 16 MiB value, the size at which buffering or a truncated stream would show. */
const BIG_VALUE_BYTES = 16 * 1024 * 1024;
/** Concurrent PUTs of one key in the race test. */
const RACERS = 16;
/** How long a program run for its command line may take; refusing takes a second or two. */
const PROGRAM_TIMEOUT_MS = 30_000;

const encoder = new TextEncoder();

/** The URL of a key: each path segment percent-encoded, as a client must. */
function keyUrl(base: string, key: string): string {
  return base + key.split("/").map(encodeURIComponent).join("/");
}

/** The volumes of a test cluster, as the index knows them. */
function volumeHosts(cluster: TestCluster): string[] {
  return cluster.volumes.map((volume) => `localhost:${volume.port}`);
}

function placementOf(cluster: TestCluster, replicas: number, subvolumes: number): Placement {
  return { volumes: volumeHosts(cluster), replicas, subvolumes };
}

/** The pid in the pid file of the nginx on `port`, or a note that there is none. */
async function nginxPid(port: number): Promise<string> {
  try {
    return (await Deno.readTextFile(pidFileFor(port))).trim();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "no pid file";
    throw err;
  }
}

/** The volume's own files at its root: not values. */
const VOLUME_FILES = /^(\.mkv|\.mkv-probe)$/;

/** Every regular file under `dir` (the volume's own excepted), as paths relative to it. */
async function filesUnder(dir: string, relative = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(dir, relative))) {
    // nginx's upload spool, the index's write probe and the disk figures are not values.
    if (relative === "" && VOLUME_FILES.test(entry.name)) continue;
    const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory) files.push(...await filesUnder(dir, path));
    else files.push(path);
  }
  return files;
}

/** The listing of `?list` or `?unlinked` under a prefix. */
async function listing(
  base: string,
  prefix: string,
  query: string,
): Promise<{ next: string; keys: string[] }> {
  const answer = await request(`${keyUrl(base, prefix)}?${query}`);
  assert.equal(answer.status, 200, `${prefix}?${query}: ${answer.body}`);
  assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
  return JSON.parse(answer.body);
}

/** Asserts a 302 of the index for `key` and checks its headers; returns the chosen location. */
function assertRedirect(
  answer: { status: number; headers: Headers },
  key: string,
  placement: Placement,
): string {
  assert.equal(answer.status, 302, key);
  assert.equal(answer.headers.get("content-length"), "0");
  const volumes = keyToVolumes(key, placement);
  assert.equal(answer.headers.get("key-volumes"), volumes.join(","));
  assert.equal(answer.headers.get("key-balance"), "balanced");
  const location = answer.headers.get("location");
  const chosen = volumes.find((volume) => volumeUrl(target(volume, keyToPath(key))) === location);
  assert.ok(chosen, `Location ${location} is not on one of ${volumes.join(",")}`);
  return chosen;
}

/** Asserts a refusal with `status` and a short text reason. */
function assertRefused(answer: { status: number; body: string }, status: number, what: string) {
  assert.equal(answer.status, status, `${what}: ${answer.body}`);
  assert.ok(answer.body.trim().length > 0, `${what}: no reason given`);
}

/** Bytes that do not repeat, so that a misplaced chunk shows. */
function randomBytes(sizeBytes: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(sizeBytes);
  const chunkBytes = 65_536;
  for (let offset = 0; offset < sizeBytes; offset += chunkBytes) {
    crypto.getRandomValues(bytes.subarray(offset, offset + chunkBytes));
  }
  return bytes;
}

interface ProgramResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Whether it came up (said it is serving) and was stopped, or ran too long and was stopped. */
  stoppedBecause: "served" | "timed out" | null;
}

/** What volume.ts and index.ts print once they serve. */
const SERVING_LINE = /^(volume|index): serving /m;

async function readAll(stream: ReadableStream<Uint8Array>, onText: (text: string) => void) {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    onText(text);
  }
  return text;
}

/**
 * Runs `deno run -A PROGRAM ARGS` as a user would from the repository, to its end. A program
 * that comes up instead (it prints its serving line), or runs too long, is stopped with SIGTERM.
 */
async function runProgram(
  args: string[],
  env: Record<string, string> = {},
): Promise<ProgramResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(ROOT, "deno.json"), ...args],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stoppedBecause: ProgramResult["stoppedBecause"] = null;
  const stop = (why: "served" | "timed out") => {
    if (stoppedBecause !== null) return;
    stoppedBecause = why;
    try {
      child.kill("SIGTERM");
    } catch {
      // It exited in the meantime.
    }
  };
  const timer = setTimeout(() => stop("timed out"), PROGRAM_TIMEOUT_MS);
  try {
    const [stdout, stderr, status] = await Promise.all([
      readAll(child.stdout, () => {}),
      readAll(child.stderr, (text) => SERVING_LINE.test(text) && stop("served")),
      child.status,
    ]);
    return { code: status.code, stdout, stderr, stoppedBecause };
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts a failed run whose last line of stderr is a reason matching `reason`. */
function assertFailed(result: ProgramResult, reason: RegExp, what: string): void {
  assert.equal(result.stoppedBecause, null, `${what}: did not exit; stderr was\n${result.stderr}`);
  assert.notEqual(result.code, 0, `${what}: exited 0; stderr was\n${result.stderr}`);
  const lines = result.stderr.trim().split("\n");
  assert.match(lines.at(-1)!, reason, `${what}: stderr was\n${result.stderr}`);
}

Deno.test("the HTTP API on a default cluster (3 volumes, 3 replicas, 10 subvolumes, -v)", async (t) => {
  await using cluster = await testCluster({ indexArgs: ["-v"] });
  const base = cluster.url;
  const placement = placementOf(cluster, 3, 10);

  await t.step(
    "PUT is 201, then GET and HEAD are 302 to a replica with the key's headers",
    async () => {
      assert.equal(await put(base, "/wehave", "bigswag"), 201);
      for (const method of ["GET", "HEAD"]) {
        const answer = await request(`${base}/wehave`, { method });
        assertRedirect(answer, "/wehave", placement);
        assert.equal(answer.headers.get("content-md5"), md5Hex("bigswag"));
        assert.equal(answer.body, "");
      }
      // Every replica is on disk, at minikeyvalue's path in its subvolume, whole.
      for (const location of keyToVolumes("/wehave", placement)) {
        assert.match(location, /^localhost:\d+\/sv0\d$/);
        const file = fileOnDisk(cluster, location, keyToPath("/wehave"));
        assert.equal(await Deno.readTextFile(file), "bigswag", file);
      }
    },
  );

  await t.step("-v logs each request and changes nothing else", async () => {
    await waitFor("the request log", () => cluster.index.log.includes("PUT /wehave 201"));
    assert.match(cluster.index.log, /GET \/wehave 302 [\d.]+ms/);
  });

  await t.step("GET and HEAD following the redirect give the value and its length", async () => {
    const got = await getFollow(base, "/wehave");
    assert.equal(got.status, 200);
    assert.equal(got.body, "bigswag");
    const head = await getFollow(base, "/wehave", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "7");
    assert.equal(head.body, "");
  });

  await t.step("a byte range passes through the redirect", async () => {
    const answer = await getFollow(base, "/wehave", { headers: { range: "bytes=2-5" } });
    assert.equal(answer.status, 206);
    assert.equal(answer.body, "gswa");
    assert.equal(answer.headers.get("content-range"), "bytes 2-5/7");
  });

  await t.step("a 16 MiB value reads back bit-exact, with its md5", async () => {
    const value = randomBytes(BIG_VALUE_BYTES);
    assert.equal(await put(base, "/big", value), 201);
    const redirect = await request(`${base}/big`);
    assertRedirect(redirect, "/big", placement);
    assert.equal(redirect.headers.get("content-md5"), md5Hex(value));
    const response = await fetch(`${base}/big`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(BIG_VALUE_BYTES));
    const read = new Uint8Array(await response.arrayBuffer());
    assert.equal(read.byteLength, BIG_VALUE_BYTES);
    assert.ok(read.every((byte, i) => byte === value[i]), "the value read back differs");
    for (const location of keyToVolumes("/big", placement)) {
      const info = await Deno.stat(fileOnDisk(cluster, location, keyToPath("/big")));
      assert.equal(info.size, BIG_VALUE_BYTES);
    }
  });

  await t.step("?list pages in byte order with start and limit, under a prefix", async () => {
    // In byte order of UTF-8 (not of UTF-16: `～` U+FF5E sorts before `😀` U+1F600).
    const keys = [
      "/order/B",
      "/order/a",
      "/order/a/b",
      "/order/ab",
      "/order/é",
      "/order/～",
      "/order/😀",
    ];
    for (const key of [...keys].reverse()) {
      assert.equal(await put(base, keyUrl("", key), `value of ${key}`), 201, key);
    }
    for (const key of ["/orde", "/orderx", "/order"]) {
      assert.equal(await put(base, key, "elsewhere"), 201, key);
    }
    assert.deepEqual(await listing(base, "/order/", "list"), { next: "", keys });
    assert.deepEqual(await listing(base, "/order/", `list&limit=${keys.length}`), {
      next: "",
      keys,
    });
    const pages: string[][] = [];
    let start = "";
    for (let page = 0; page < keys.length; page++) {
      const query = start === ""
        ? "list&limit=3"
        : `list&limit=3&start=${encodeURIComponent(start)}`;
      const answer = await listing(base, "/order/", query);
      pages.push(answer.keys);
      if (answer.next === "") break;
      assert.equal(answer.next, keys[pages.flat().length], "next is the first key not returned");
      start = answer.next;
    }
    assert.deepEqual(pages, [keys.slice(0, 3), keys.slice(3, 6), keys.slice(6)]);
    // `start` is inclusive, may be a key that does not exist, and never leaves the prefix.
    assert.deepEqual((await listing(base, "/order/", "list&start=/order/aa")).keys, keys.slice(3));
    assert.deepEqual((await listing(base, "/order/", "list&start=/a")).keys, keys);
    assert.deepEqual(await listing(base, "/order/", "list&start=/p"), { next: "", keys: [] });
    // A prefix is a prefix of bytes, not of path segments.
    assert.deepEqual((await listing(base, "/order", "list")).keys, ["/order", ...keys, "/orderx"]);
    assert.deepEqual(await listing(base, "/nothing/", "list"), { next: "", keys: [] });
  });

  await t.step("UNLINK hides a key and keeps its data; DELETE then removes both", async () => {
    assert.equal(await put(base, "/unlink/me", "data"), 201);
    const files = keyToVolumes("/unlink/me", placement).map((location) =>
      fileOnDisk(cluster, location, keyToPath("/unlink/me"))
    );
    const unlink = await request(`${base}/unlink/me`, { method: "UNLINK" });
    assert.equal(unlink.status, 204);
    for (const method of ["GET", "HEAD"]) {
      const gone = await request(`${base}/unlink/me`, { method });
      assert.equal(gone.status, 404, method);
      assert.equal(gone.headers.get("content-length"), "0");
    }
    assert.deepEqual(await listing(base, "/unlink/", "list"), { next: "", keys: [] });
    assert.deepEqual(await listing(base, "/unlink/", "unlinked"), {
      next: "",
      keys: ["/unlink/me"],
    });
    for (const file of files) assert.equal(await Deno.readTextFile(file), "data", file);
    assert.equal((await request(`${base}/unlink/me`, { method: "DELETE" })).status, 204);
    assert.deepEqual(await listing(base, "/unlink/", "unlinked"), { next: "", keys: [] });
    // The files go right after the 204 (README, "HTTP API").
    for (const file of files) await waitFor(`${file} removed`, async () => !await exists(file));
    assert.equal((await request(`${base}/unlink/me`)).status, 404);
  });

  await t.step("PUT over an unlinked key is 201 and makes it live again", async () => {
    assert.equal(await put(base, "/unlink/again", "old"), 201);
    assert.equal((await request(`${base}/unlink/again`, { method: "UNLINK" })).status, 204);
    assert.equal((await request(`${base}/unlink/again`, { method: "UNLINK" })).status, 404);
    assert.equal(await put(base, "/unlink/again", "new"), 201);
    assert.equal((await getFollow(base, "/unlink/again")).body, "new");
    assert.deepEqual((await listing(base, "/unlink/", "list")).keys, ["/unlink/again"]);
    assert.deepEqual((await listing(base, "/unlink/", "unlinked")).keys, []);
  });

  await t.step("DELETE of a live key is 204 and removes its files from every volume", async () => {
    assert.equal(await put(base, "/delete/me", "data"), 201);
    const files = keyToVolumes("/delete/me", placement).map((location) =>
      fileOnDisk(cluster, location, keyToPath("/delete/me"))
    );
    for (const file of files) assert.equal(await exists(file), true, file);
    assert.equal((await request(`${base}/delete/me`, { method: "DELETE" })).status, 204);
    assert.equal((await request(`${base}/delete/me`)).status, 404);
    for (const file of files) await waitFor(`${file} removed`, async () => !await exists(file));
    assert.deepEqual((await listing(base, "/delete/", "unlinked")).keys, []);
    // The key can be written again.
    assert.equal(await put(base, "/delete/me", "again"), 201);
    assert.equal((await getFollow(base, "/delete/me")).body, "again");
  });

  await t.step("a PUT right after a DELETE waits for the removal and keeps its value", async () => {
    // The DELETE's files are removed after its 204; a PUT of the key sent at once must not have
    // its new files removed by that removal, on any replica.
    for (let i = 0; i < 20; i++) {
      const key = `/delete/then-put-${i}`;
      assert.equal(await put(base, key, "old"), 201);
      assert.equal((await request(`${base}${key}`, { method: "DELETE" })).status, 204);
      assert.equal(await put(base, key, `new ${i}`), 201);
      for (const location of keyToVolumes(key, placement)) {
        const file = fileOnDisk(cluster, location, keyToPath(key));
        assert.equal(await Deno.readTextFile(file), `new ${i}`, file);
      }
      assert.equal((await getFollow(base, key)).body, `new ${i}`);
    }
    assert.deepEqual((await listing(base, "/delete/then-put-", "unlinked")).keys, []);
  });

  await t.step("PUT of a live key is 403; an empty PUT is 411; absent keys are 404", async () => {
    assertRefused(await request(`${base}/wehave`, { method: "PUT", body: "other" }), 403, "PUT");
    assert.equal((await getFollow(base, "/wehave")).body, "bigswag");
    assertRefused(await request(`${base}/empty`, { method: "PUT", body: "" }), 411, "empty PUT");
    assertRefused(await request(`${base}/empty`, { method: "PUT" }), 411, "PUT without body");
    const emptyStream = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    assertRefused(
      await request(`${base}/empty`, { method: "PUT", body: emptyStream }),
      411,
      "empty chunked PUT",
    );
    assert.equal((await request(`${base}/empty`)).status, 404);
    assert.deepEqual((await listing(base, "/empty", "list")).keys, []);
    for (const method of ["DELETE", "UNLINK", "GET", "HEAD"]) {
      const answer = await request(`${base}/absent`, { method });
      assert.equal(answer.status, 404, method);
      assert.equal(answer.headers.get("content-length"), "0", method);
    }
  });

  await t.step("PUT, DELETE and UNLINK during a write to the same key are 409", async () => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    controller.enqueue(encoder.encode("first half, "));
    const writing = request(`${base}/slow`, { method: "PUT", body });
    try {
      // The write holds the key once the index has its headers; until then DELETE says 404.
      await waitFor("the write to take the key", async () => {
        const answer = await request(`${base}/slow`, { method: "DELETE" });
        assert.ok([404, 409].includes(answer.status), `DELETE: ${answer.status}`);
        return answer.status === 409;
      });
      assertRefused(await request(`${base}/slow`, { method: "PUT", body: "x" }), 409, "PUT");
      assertRefused(await request(`${base}/slow`, { method: "UNLINK" }), 409, "UNLINK");
      // A write in progress is not visible.
      assert.equal((await request(`${base}/slow`)).status, 404);
      assert.deepEqual((await listing(base, "/slow", "list")).keys, []);
      assert.deepEqual((await listing(base, "/slow", "unlinked")).keys, []);
    } finally {
      controller.enqueue(encoder.encode("second half"));
      controller.close();
    }
    assert.equal((await writing).status, 201);
    assert.equal((await getFollow(base, "/slow")).body, "first half, second half");
  });

  await t.step(`${RACERS} concurrent PUTs of one key: exactly one wins`, async () => {
    const values = Array.from({ length: RACERS }, (_, i) => `racer ${i} `.repeat(20_000));
    const statuses = await Promise.all(values.map((value) => put(base, "/race", value)));
    const winners = statuses.flatMap((status, i) => status === 201 ? [i] : []);
    assert.equal(winners.length, 1, `statuses ${statuses}`);
    for (const status of statuses) assert.ok([201, 403, 409].includes(status), `${statuses}`);
    const read = await getFollow(base, "/race");
    assert.equal(read.body, values[winners[0]]);
    const redirect = await request(`${base}/race`);
    assert.equal(redirect.headers.get("content-md5"), md5Hex(values[winners[0]]));
    for (const location of keyToVolumes("/race", placement)) {
      const file = fileOnDisk(cluster, location, keyToPath("/race"));
      assert.equal(await Deno.readTextFile(file), values[winners[0]], file);
    }
  });

  await t.step("an unknown method is 405 with Allow", async () => {
    for (const method of ["POST", "PATCH", "OPTIONS", "MKCOL", "LINK"]) {
      const body = method === "POST" ? "a body the index must not wait for" : null;
      const answer = await request(`${base}/wehave`, { method, body });
      assertRefused(answer, 405, method);
      const allow = (answer.headers.get("allow") ?? "").split(/,\s*/);
      assert.deepEqual([...allow].sort(), [...API_METHODS].sort(), method);
    }
  });

  await t.step("a bad query is 400 with a text reason, never a 5xx", async () => {
    for (
      const query of [
        "foo",
        "list&limit=0",
        "list&limit=-1",
        "list&limit=abc",
        "list&limit=99999999999",
        "list&bogus",
        "start=/a",
      ]
    ) {
      const answer = await request(`${base}/?${query}`);
      assertRefused(answer, 400, query);
      assert.match(answer.headers.get("content-type") ?? "", /^text\/plain/);
    }
    assertRefused(
      await request(`${base}/wehave?list`, { method: "PUT", body: "x" }),
      400,
      "PUT ?list",
    );
    assertRefused(await request(`${base}/wehave?list`, { method: "DELETE" }), 400, "DELETE ?list");
    assert.equal((await getFollow(base, "/wehave")).body, "bigswag");
    assertRefused(await request(`${base}/%zz`), 400, "bad percent-encoding");
    assertRefused(await request(`${base}/%FF`, { method: "PUT", body: "x" }), 400, "not UTF-8");
    // `/a?` has base64 `L2E/`: no file can have that name, so it is refused, not a 5xx.
    assertRefused(await request(`${base}/a%3F`, { method: "PUT", body: "x" }), 400, "key /a?");
  });

  await t.step("a key longer than 189 bytes is 414; one of 189 bytes works", async () => {
    const longest = "/" + "k".repeat(188);
    assert.equal(await put(base, longest, "long"), 201);
    assert.equal((await getFollow(base, longest)).body, "long");
    for (const location of keyToVolumes(longest, placement)) {
      assert.equal(await exists(fileOnDisk(cluster, location, keyToPath(longest))), true);
    }
    for (const method of ["GET", "HEAD", "PUT", "DELETE", "UNLINK"]) {
      const answer = await request(`${base}${longest}k`, {
        method,
        body: method === "PUT" ? "x" : undefined,
      });
      assert.equal(answer.status, 414, method);
    }
    assert.equal((await request(`${base}/${"k".repeat(5000)}?list`)).status, 414);
  });

  await t.step("percent-encoded keys round trip as their decoded form", async () => {
    const keys = ["/a b", "/a/b%", "/€uro", "/a?b", "/a+b", "/x#y", "/é/ü"];
    for (const key of keys) {
      const url = keyUrl(base, key);
      assert.equal((await request(url, { method: "PUT", body: `v${key}` })).status, 201, key);
      const chosen = assertRedirect(await request(url), key, placement);
      assert.equal((await getFollow(base, url.slice(base.length))).body, `v${key}`, key);
      const file = fileOnDisk(cluster, chosen, keyToPath(key));
      assert.equal(await Deno.readTextFile(file), `v${key}`, key);
    }
    // `%2F` is a slash: `/a%2Fb` and `/a/b` name the same key.
    assert.equal(await put(base, "/p%2Fq", "slash"), 201);
    assert.equal((await getFollow(base, "/p/q")).body, "slash");
    assert.equal((await request(`${base}/p/q`, { method: "PUT", body: "x" })).status, 403);
    // `/a%20b` is the key `/a b`, whichever way the space is written.
    assert.equal((await request(`${base}/a%20b`, { method: "PUT", body: "x" })).status, 403);
    const listed = (await listing(base, "/", "list")).keys;
    for (const key of [...keys, "/p/q"]) assert.ok(listed.includes(key), key);
  });
});

Deno.test("a cluster with --replicas 2 --subvolumes 1 --protect --md5sum=false --fallback", async (t) => {
  const fallback = `127.0.0.1:${freePort()}`;
  await using cluster = await testCluster({
    indexArgs: [
      "--replicas",
      "2",
      "--subvolumes",
      "1",
      "--protect",
      "--md5sum=false",
      "--fallback",
      fallback,
    ],
  });
  const base = cluster.url;
  const placement = placementOf(cluster, 2, 1);
  // An index started again by a step, stopped before the cluster.
  const restarted: ClusterProcess[] = [];
  await using _restarted = {
    async [Symbol.asyncDispose]() {
      for (const index of restarted) await index.stop();
    },
  };

  await t.step("a value is on exactly 2 of the 3 volumes, with no svXX directory", async () => {
    for (let i = 0; i < 10; i++) assert.equal(await put(base, `/two/${i}`, `value ${i}`), 201);
    for (let i = 0; i < 10; i++) {
      const key = `/two/${i}`;
      const want = keyToVolumes(key, placement);
      assert.equal(want.length, 2);
      assertRedirect(await request(`${base}${key}`), key, placement);
      const holders: string[] = [];
      for (const [v, volume] of cluster.volumes.entries()) {
        const files = await filesUnder(join(cluster.dir, `volume${v + 1}`));
        if (files.includes(keyToPath(key).slice(1))) holders.push(`localhost:${volume.port}`);
      }
      assert.deepEqual(holders.sort(), [...want].sort(), key);
    }
    for (const v of cluster.volumes.keys()) {
      for await (const entry of Deno.readDir(join(cluster.dir, `volume${v + 1}`))) {
        assert.ok(
          /^[0-9a-f]{2}$/.test(entry.name) || VOLUME_FILES.test(entry.name),
          `volume${v + 1}/${entry.name}`,
        );
      }
    }
    const total = (await Promise.all(
      cluster.volumes.map((_, v) => filesUnder(join(cluster.dir, `volume${v + 1}`))),
    )).flat().length;
    assert.equal(total, 20);
  });

  await t.step("--md5sum=false: no Content-Md5, but for S3 writes", async () => {
    const answer = await request(`${base}/two/0`);
    assert.equal(answer.status, 302);
    assert.equal(answer.headers.get("content-md5"), null);
    assert.equal((await getFollow(base, "/two/0")).body, "value 0");
    // S3's ETag is the md5: an S3 PUT computes and keeps it even so.
    const s3Put = await request(`${base}/twos3/k`, {
      method: "PUT",
      body: "s3 value",
      headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    });
    assert.equal(s3Put.status, 200, s3Put.body);
    assert.equal(s3Put.headers.get("etag"), `"${md5Hex("s3 value")}"`);
    assert.equal((await request(`${base}/twos3/k`)).headers.get("content-md5"), md5Hex("s3 value"));
  });

  await t.step("--protect: DELETE of a live key is 403 until it is UNLINKed", async () => {
    assert.equal(await put(base, "/protected", "keep"), 201);
    assertRefused(await request(`${base}/protected`, { method: "DELETE" }), 403, "DELETE");
    assert.equal((await getFollow(base, "/protected")).body, "keep");
    assert.equal((await request(`${base}/protected`, { method: "UNLINK" })).status, 204);
    assert.equal((await request(`${base}/protected`, { method: "DELETE" })).status, 204);
    assert.equal((await request(`${base}/protected`, { method: "DELETE" })).status, 404);
    for (const location of keyToVolumes("/protected", placement)) {
      assert.equal(await exists(fileOnDisk(cluster, location, keyToPath("/protected"))), false);
    }
  });

  await t.step("--fallback: an absent or unlinked key is a 302 to the fallback", async () => {
    for (const method of ["GET", "HEAD"]) {
      const answer = await request(`${base}/absent`, { method });
      assert.equal(answer.status, 302, method);
      assert.equal(answer.headers.get("location"), `http://${fallback}/absent`);
      assert.equal(answer.headers.get("content-length"), "0");
    }
    const encoded = await request(`${base}/a%20b`);
    assert.equal(encoded.headers.get("location"), `http://${fallback}/a%20b`);
    assert.equal(await put(base, "/unlinked", "x"), 201);
    assert.equal((await request(`${base}/unlinked`, { method: "UNLINK" })).status, 204);
    const unlinked = await request(`${base}/unlinked`);
    assert.equal(unlinked.status, 302);
    assert.equal(unlinked.headers.get("location"), `http://${fallback}/unlinked`);
    // A live key is still served from the cluster.
    assertRedirect(await request(`${base}/two/1`), "/two/1", placement);
  });

  await t.step(
    "an index started with another placement serves old keys as unbalanced",
    async () => {
      await cluster.index.stop();
      restarted.push(
        await spawnIndex({
          port: cluster.index.port,
          db: join(cluster.dir, "index"),
          volumes: volumeHosts(cluster),
          args: ["--replicas", "2", "--subvolumes", "3", "--md5sum=false"],
        }),
      );
      const answer = await request(`${base}/two/3`);
      assert.equal(answer.status, 302);
      const volumes = keyToVolumes("/two/3", placement);
      assert.equal(answer.headers.get("key-volumes"), volumes.join(","));
      assert.equal(answer.headers.get("key-balance"), "unbalanced");
      assert.ok(
        volumes.some((v) =>
          volumeUrl(target(v, keyToPath("/two/3"))) === answer.headers.get("location")
        ),
      );
      assert.equal((await getFollow(base, "/two/3")).body, "value 3");
      // A new key goes where the new placement says, and is balanced.
      assert.equal(await put(base, "/three", "new"), 201);
      assertRedirect(await request(`${base}/three`), "/three", placementOf(cluster, 2, 3));
    },
  );

  await t.step("only live replicas are offered; a key on no live volume is 410", async () => {
    const [first, second] = keyToVolumes("/two/2", placement);
    const volumeAt = (location: string) =>
      cluster.volumes.find((volume) => `localhost:${volume.port}` === location)!;
    await volumeAt(first).stop();
    await waitFor(
      `the index to mark ${first} down`,
      () => restarted[0].log.includes(`volume ${first}: marked down`),
    );
    for (let i = 0; i < 20; i++) {
      const answer = await request(`${base}/two/2`);
      assert.equal(answer.status, 302);
      assert.equal(answer.headers.get("location"), volumeUrl(target(second, keyToPath("/two/2"))));
    }
    assert.equal((await getFollow(base, "/two/2")).body, "value 2");
    await volumeAt(second).stop();
    await waitFor("the index to see both volumes down", async () => {
      const answer = await request(`${base}/two/2`);
      assert.ok([302, 410].includes(answer.status), `GET: ${answer.status}`);
      return answer.status === 410;
    });
    assertRefused(await request(`${base}/two/2`), 410, "GET");
    assert.equal((await request(`${base}/two/2`, { method: "HEAD" })).status, 410);
  });
});

Deno.test("volume.ts and index.ts: usage, and a one-line reason to refuse", async (t) => {
  await using dir = await tempDir();

  await t.step("--help prints usage and exits 0", async () => {
    const volume = await runProgram(["volume.ts", "--help"]);
    assert.equal(volume.code, 0, volume.stderr);
    assert.match(volume.stdout, /^usage: deno run -A volume\.ts/m);
    assert.match(volume.stdout, /--dir DIR/);
    const index = await runProgram(["index.ts", "--help"]);
    assert.equal(index.code, 0, index.stderr);
    assert.match(index.stdout, /^usage: deno run -A index\.ts/m);
    assert.match(index.stdout, /--replicas N/);
  });

  await t.step("a bad flag exits non-zero with one line", async () => {
    const cases: [string[], RegExp][] = [
      [["volume.ts", "--dir", dir.path, "--bogus"], /^volume: unknown flag --bogus/],
      [["volume.ts", "--port", "x", "--dir", dir.path], /^volume: invalid value "x" for -port/],
      [["index.ts", "server", "--bogus"], /^index: unknown flag --bogus/],
      [
        ["index.ts", "server", "--db", dir.path, "--volumes", "localhost:1", "--replicas", "2"],
        /^index: -replicas 2 is more than the 1 volumes/,
      ],
    ];
    for (const [args, reason] of cases) {
      const result = await runProgram(args);
      assertFailed(result, reason, args.join(" "));
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    }
  });

  await t.step("a busy port exits non-zero with the reason", async () => {
    const port = freePort();
    using _listener = Deno.listen({ hostname: "127.0.0.1", port });
    const volume = await runProgram([
      "volume.ts",
      "--port",
      `${port}`,
      "--dir",
      join(dir.path, "v"),
    ]);
    assertFailed(volume, new RegExp(`^volume: port ${port} is busy$`), "volume");
    const index = await runProgram([
      "index.ts",
      "server",
      "--port",
      `${port}`,
      "--db",
      join(dir.path, "db"),
      "--volumes",
      `localhost:${freePort()}`,
      "--replicas",
      "1",
    ]);
    assertFailed(index, new RegExp(`^index: port ${port} is busy$`), "index");
    // A busy --s3-port too: one line, and never "serving" first.
    const s3 = await runProgram([
      "index.ts",
      "server",
      "--port",
      `${freePort()}`,
      "--s3-port",
      `${port}`,
      "--db",
      join(dir.path, "db-s3"),
      "--volumes",
      `localhost:${freePort()}`,
      "--replicas",
      "1",
    ]);
    assertFailed(s3, new RegExp(`^index: port ${port} is busy$`), "index --s3-port");
    assert.doesNotMatch(s3.stderr, /serving/);
  });

  await t.step("a volume refuses the port of a running volume and leaves it alone", async () => {
    const port = freePort();
    await using running = await spawnVolume({ port, dir: join(dir.path, "running") });
    const pid = await nginxPid(port);
    const second = await runProgram([
      "volume.ts",
      "--port",
      `${port}`,
      "--dir",
      join(dir.path, "v2"),
    ]);
    assertFailed(
      second,
      new RegExp(`^volume: port ${port} is busy: another mkv.ts program runs nginx on it$`),
      "second volume",
    );
    assert.equal(await nginxPid(port), pid, "the running volume's nginx was stopped");
    assert.equal(running.exited, false);
    const answer = await request(`${running.url}/`, { method: "HEAD" });
    assert.equal(answer.status, 200);
  });

  await t.step("a directory nginx's workers cannot write makes the volume refuse", async () => {
    const rootOnly = join(dir.path, "root-only");
    await Deno.mkdir(rootOnly);
    await Deno.chmod(rootOnly, 0o755);
    const result = await runProgram(["volume.ts", "--port", `${freePort()}`, "--dir", rootOnly]);
    assertFailed(
      result,
      Deno.uid() === 0
        ? /^volume: volume directory .*root-only is not root's with group mkv and mode 1770/
        : /^volume: directory .*root-only is not writable$/,
      "volume",
    );
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  });

  await t.step("a --db too deep for the admin socket makes the index refuse", async () => {
    const deep = join(dir.path, "d".repeat(120));
    const result = await runProgram([
      "index.ts",
      "server",
      "--port",
      `${freePort()}`,
      "--db",
      deep,
      "--volumes",
      `localhost:${freePort()}`,
      "--replicas",
      "1",
    ]);
    assertFailed(result, /^index: cannot listen on .*admin\.sock: /, "index");
  });

  await t.step("a missing nginx makes the volume refuse", async () => {
    const result = await runProgram(
      ["volume.ts", "--port", `${freePort()}`, "--dir", join(dir.path, "no-nginx")],
      { PATH: "/nonexistent" },
    );
    assertFailed(result, /^volume: nginx not found on PATH/, "volume");
  });
});
