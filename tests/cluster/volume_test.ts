// A volume (volume.ts, a real process) takes writes only where the key layout puts files:
// PUT and DELETE on `[/svXX]/HH/hh/BASE64` and PUT on the index's probe file, nothing
// else, so that no request can remove a directory of values. Reads stay as they were. Requests go
// over raw TCP, because fetch would resolve dot segments before sending them.

import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnVolume } from "../../dev/cluster.ts";
import { ANSWER_TIMEOUT_MS, freePort, tempDir } from "../helpers.ts";

/** The keep-alive timeout the volume under test is started with. */
const KEEPALIVE_MS = 1000;

const encoder = new TextEncoder();

interface RawAnswer {
  status: number;
  body: string;
}

/** One request as raw bytes (`Connection: close`), the target sent exactly as given. */
async function raw(
  port: number,
  method: string,
  target: string,
  options: { body?: string; headers?: string[] } = {},
): Promise<RawAnswer> {
  const body = options.body ?? "";
  const head = [
    `${method} ${target} HTTP/1.1`,
    "Host: localhost",
    "Connection: close",
    `Content-Length: ${encoder.encode(body).length}`,
    ...(options.headers ?? []),
  ];
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), ANSWER_TIMEOUT_MS);
  try {
    await conn.write(encoder.encode(head.join("\r\n") + "\r\n\r\n" + body));
    const text = await new Response(conn.readable).text();
    const status = Number(text.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    clearTimeout(timer);
  }
}

/** Every file and directory under `dir` with its size (directories -1), sorted: a snapshot. */
/** A volume on a free port in a temp directory, with a short keep-alive; all gone on dispose. */
async function testVolume() {
  const parent = await tempDir();
  const dir = { path: join(parent.path, "volume") };
  const port = freePort();
  try {
    const volume = await spawnVolume({
      port,
      dir: dir.path,
      args: ["--keepalive", `${KEEPALIVE_MS}ms`],
    });
    return {
      port,
      dir,
      async [Symbol.asyncDispose]() {
        await volume.stop();
        await parent[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await parent[Symbol.asyncDispose]();
    throw err;
  }
}

async function tree(dir: string, under = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, under))) {
    const path = `${under}/${entry.name}`;
    if (entry.isDirectory) {
      out.push(`${path}/`, ...await tree(dir, path));
    } else {
      out.push(`${path} ${(await Deno.lstat(join(dir, path))).size}`);
    }
  }
  return out.sort();
}

Deno.test("a volume refuses writes outside the key layout and never removes a directory", async () => {
  await using volume = await testVolume();
  const { port, dir } = volume;

  // Keys' files, with and without a subvolume, and one whose base64 nests into a directory.
  for (
    const path of ["/5d/41/aGVsbG8=", "/sv01/5d/41/aGVsbG8=", "/ab/cd/YWJj/ZGVm", "/ab/cd/YQ=="]
  ) {
    assert.equal((await raw(port, "PUT", path, { body: "hello" })).status, 201, `PUT ${path}`);
  }
  const before = await tree(dir.path);
  assert.ok(before.includes("/.mkv/tmp/"), JSON.stringify(before));

  const refused: [string, string, string[]?][] = [
    ["DELETE", "/"],
    ["DELETE", "/5d/"],
    ["DELETE", "/5d/41/"],
    ["DELETE", "/sv01/"],
    ["DELETE", "/sv01/5d/"],
    ["DELETE", "/ab/cd/YWJj/"],
    // Not a trailing slash, but a directory all the same: nginx's WebDAV wants the slash.
    ["DELETE", "/ab/cd/YWJj"],
    // Dot segments are resolved by nginx before the path is matched.
    ["DELETE", "/5d/41/aGVsbG8=/.."],
    ["DELETE", "/5d/41/aGVsbG8=/../"],
    ["DELETE", "/5d/%34%31/aGVsbG8=/%2e%2e/"],
    ["DELETE", "/.tmp/"],
    ["DELETE", "/.mkv-probe"],
    ["PUT", "/notakeypath"],
    ["PUT", "/5d/41/"],
    ["PUT", "/5d/41/a.b"],
    ["PUT", "/5D/41/aGVsbG8="],
    ["PUT", "/sv1/5d/41/aGVsbG8="],
    ["PUT", "/.tmp/x"],
    ["MKCOL", "/newdir/"],
    ["MKCOL", "/5d/41/newdir/"],
    ["MOVE", "/5d/41/aGVsbG8=", ["Destination: /5d/41/bW92ZWQ="]],
    ["COPY", "/5d/41/aGVsbG8=", ["Destination: /5d/41/Y29weQ=="]],
    ["POST", "/5d/41/aGVsbG8="],
    ["PROPFIND", "/"],
  ];
  for (const [method, path, headers] of refused) {
    const answer = await raw(port, method, path, { body: method === "PUT" ? "x" : "", headers });
    assert.ok(
      answer.status >= 400 && answer.status < 500,
      `${method} ${path}: status ${answer.status}`,
    );
  }
  assert.deepEqual(await tree(dir.path), before, "a refused request changed the volume");

  // Reads are as before: files, byte ranges and directories as JSON listings.
  assert.deepEqual(await raw(port, "GET", "/sv01/5d/41/aGVsbG8="), { status: 200, body: "hello" });
  assert.deepEqual(
    await raw(port, "GET", "/5d/41/aGVsbG8=", { headers: ["Range: bytes=1-3"] }),
    { status: 206, body: "ell" },
  );
  const listing = await fetch(`http://127.0.0.1:${port}/ab/cd/`);
  assert.equal(listing.status, 200);
  assert.deepEqual(
    (await listing.json()).map((entry: { name: string }) => entry.name).sort(),
    ["YQ==", "YWJj"],
  );
  assert.equal((await raw(port, "HEAD", "/")).status, 200);
  assert.equal((await raw(port, "GET", "/.tmp/")).status, 404);

  // Writes on keys' paths work, with and without a subvolume.
  for (const path of ["/5d/41/aGVsbG8=", "/sv01/5d/41/aGVsbG8=", "/ab/cd/YWJj/ZGVm"]) {
    assert.equal((await raw(port, "PUT", path, { body: "again" })).status, 204, `PUT ${path}`);
    assert.deepEqual(await raw(port, "GET", path), { status: 200, body: "again" });
    assert.equal((await raw(port, "DELETE", path)).status, 204, `DELETE ${path}`);
    assert.equal((await raw(port, "GET", path)).status, 404);
  }

  // nginx matches the decoded path, the one it writes to.
  assert.equal((await raw(port, "PUT", "/5d/%34%31/ZW5j%3D", { body: "enc" })).status, 201);
  assert.equal(await Deno.readTextFile(join(dir.path, "5d/41/ZW5j=")), "enc");

  // The index's write probe: PUT and read back, spooled through .mkv/tmp like any upload.
  assert.ok([201, 204].includes((await raw(port, "PUT", "/.mkv-probe", { body: "probe" })).status));
  assert.deepEqual(await raw(port, "GET", "/.mkv-probe"), { status: 200, body: "probe" });
  assert.equal((await raw(port, "HEAD", "/.mkv-probe")).status, 200);
  assert.equal(await Deno.readTextFile(join(dir.path, ".mkv-probe")), "probe");
  assert.deepEqual(await Array.fromAsync(Deno.readDir(join(dir.path, ".mkv/tmp"))), []);
});

Deno.test("a volume closes an idle connection after --keepalive", async () => {
  await using volume = await testVolume();
  const { port } = volume;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), ANSWER_TIMEOUT_MS);
  try {
    await conn.write(encoder.encode("HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const started = Date.now();
    // The answer to the HEAD, then nothing until nginx closes the idle connection.
    const text = await new Response(conn.readable).text();
    const idleMs = Date.now() - started;
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.ok(idleMs >= KEEPALIVE_MS - 100, `closed after ${idleMs}ms`);
    assert.ok(idleMs < ANSWER_TIMEOUT_MS - 1000, `not closed by nginx (${idleMs}ms)`);
  } finally {
    clearTimeout(timer);
  }
});
