// The index's access log (--access-log): one JSON line per request from its nginx, in a file it
// creates mode 0600, never with the Authorization header. The redaction's golden test is in
// tests/unit/accesslog_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import { expiresIn, signVolumeUrl } from "../../lib/volumes/signing.ts";
import { put, request, testCluster } from "../helpers.ts";

/** The file's lines, once it has at least `count` (nginx writes each line as the request ends). */
async function readLines(path: string, count: number): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lines = (await Deno.readTextFile(path)).split("\n").filter((line) => line !== "");
    if (lines.length >= count || Date.now() > deadline) return lines;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("--access-log: a JSON line per request, mode 0600, no Authorization", async () => {
  const logDir = await Deno.makeTempDir({ prefix: "mkv-test-log-" });
  const path = join(logDir, "access.log");
  try {
    await using cluster = await testCluster({
      volumes: 1,
      indexArgs: ["--replicas", "1", "--access-log", path],
    });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const base = cluster.url;
    const secret = "QWxhZGRpbjpvcGVuIHNlc2FtZQ";
    assert.equal(await put(base, "/k1", "hello"), 201);
    const got = await request(`${base}/k1`, {
      headers: { authorization: `Basic ${secret}==`, "user-agent": 'mkv "test"' },
    });
    assert.equal(got.status, 302);
    assert.equal((await request(`${base}/absent`)).status, 404);
    const text = (await readLines(path, 3)).join("\n");
    const lines = text.split("\n").map((line) => JSON.parse(line));
    assert.equal(lines.length, 3, text);
    assert.deepEqual(
      lines.map((line) => [line.method, line.status, line.uri]),
      [["PUT", 201, "/k1"], ["GET", 302, "/k1"], ["GET", 404, "/absent"]],
    );
    assert.equal(lines[0].request_length > 5, true);
    assert.equal(lines[1].user_agent, 'mkv "test"');
    for (const line of lines) {
      assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
      assert.equal(typeof line.request_time, "number");
      assert.equal(typeof line.upstream_response_time, "string");
      assert.ok(line.remote_addr === "127.0.0.1" || line.remote_addr === "::1", line.remote_addr);
    }
    assert.ok(!text.includes(secret), text);
    assert.ok(!/authorization|basic/i.test(text), text);
  } finally {
    await Deno.remove(logDir, { recursive: true });
  }
});

Deno.test("-v without --access-log: the access log goes to stderr", async () => {
  await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1", "-v"] });
  assert.equal((await request(`${cluster.url}/absent-v`)).status, 404);
  const deadline = Date.now() + 5_000;
  let line: string | undefined;
  while (line === undefined && Date.now() < deadline) {
    line = cluster.index.log.split("\n").find((l) => l.includes('"uri":"/absent-v"'));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(line !== undefined, cluster.index.log);
  // Prefixed like the rest of nginx's stderr: `index :PORT: {...}`.
  const entry = JSON.parse(line.slice(line.indexOf("{")));
  assert.deepEqual([entry.method, entry.status], ["GET", 404]);
});

/** A volume secret, as `openssl rand -base64 24` makes one. */
const VOLUME_SECRET = "c2VjcmV0LWZvci1sb2dzLXRlc3Qx";

Deno.test("no log holds a signature or a credential: access log, index and volumes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mkv-test-log-" });
  const log = join(dir, "access.log");
  const secretFile = join(dir, "volume.secret");
  await Deno.writeTextFile(secretFile, `${VOLUME_SECRET}\n`, { mode: 0o600 });
  await Deno.chmod(secretFile, 0o600);
  try {
    await using cluster = await testCluster({
      volumes: 1,
      indexArgs: [
        "--replicas",
        "1",
        "--access-log",
        log,
        "--volume-secret-file",
        secretFile,
        "--private-reads",
      ],
      volumeArgs: ["--volume-secret-file", secretFile, "--private-reads"],
    });
    assert.equal(await put(cluster.url, "/logged", "value"), 201);
    // A signed Location, as a client is redirected to.
    const redirect = await request(`${cluster.url}/logged`);
    assert.equal(redirect.status, 302);
    const location = new URL(redirect.headers.get("location")!);
    const signature = location.searchParams.get("md5")!;
    assert.ok(signature, location.href);
    assert.equal((await request(location.href)).status, 200);
    // A signed read of a missing file: the volume's nginx logs the request line with its error, and
    // sends the client back to the index (--index), the signature left behind.
    const signedMissing = signVolumeUrl({
      method: "GET",
      path: "/00/00/bWlzc2luZw==",
      expiresAt: expiresIn(60_000),
      secret: VOLUME_SECRET,
    });
    const missingSignature = new URL(signedMissing, location).searchParams.get("md5")!;
    const missing = await request(`${location.origin}${signedMissing}`);
    assert.equal(missing.status, 302);
    assert.equal(
      missing.headers.get("location"),
      `${cluster.url}/-/miss/00/00/bWlzc2luZw==` +
        `?volume=${location.host}`,
    );
    // A presigned-looking S3 query on the index: its signature and credential are never logged.
    const amzSignature = "f".repeat(64);
    const presigned = `${cluster.url}/logged?X-Amz-Algorithm=AWS4-HMAC-SHA256` +
      `&X-Amz-Credential=AKIDLOGTEST%2F20250101%2Fus-east-1%2Fs3%2Faws4_request` +
      `&X-Amz-Date=20250101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host` +
      `&X-Amz-Signature=${amzSignature}`;
    await request(presigned);
    const lines = await readLines(log, 3);
    const text = lines.join("\n");
    assert.ok(text.includes("X-Amz-Signature=REDACTED"), text);
    assert.ok(text.includes("X-Amz-Credential=REDACTED"), text);
    const logs = [text, cluster.index.log, ...cluster.volumes.map((volume) => volume.log)];
    assert.ok(cluster.volumes[0].log.includes("md5=REDACTED"), cluster.volumes[0].log);
    const secrets = [amzSignature, "AKIDLOGTEST", signature, missingSignature, VOLUME_SECRET];
    for (const secret of secrets) {
      for (const [i, body] of logs.entries()) {
        assert.ok(!body.includes(secret), `log ${i}: ${body}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
