// Access control at the index (`--credentials`, `--public-read`) on real clusters: every client ×
// request gives the documented status (docs/security.md, "Credentials"), curl -L -u and Bearer
// round trips, public reads, a reload on SIGHUP, and no secret in the index's log or in any
// process's command line. The parser and the rights check are in tests/unit/auth_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import { REASONS } from "../../lib/auth/auth.ts";
import { pidFileFor } from "../../lib/nginx/mod.ts";
import { curl, freePort, request, runScript, tempDir, testCluster, waitFor } from "../helpers.ts";
import { basic, CLIENTS, EXPECTED, headerOf, methodOf, OPS } from "../auth_matrix.ts";

/** A secret no other test uses, so that finding it anywhere means it leaked from here. */
function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "s-" + Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Writes a credentials file with mode 0600 (whatever the umask). */
async function writeCredentials(path: string, lines: string[]): Promise<void> {
  await Deno.writeTextFile(path, lines.join("\n") + "\n", { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}

/** Runs curl; returns the body and the status of the last answer (`-w`). */
async function curlStatus(args: string[]): Promise<{ status: number; body: string }> {
  const output = await curl(["-w", "\n%{http_code}", ...args]);
  assert.equal(output.code, 0, `curl ${args.join(" ")}: ${output.stderr}`);
  const cut = output.stdout.lastIndexOf("\n");
  return { status: Number(output.stdout.slice(cut + 1)), body: output.stdout.slice(0, cut) };
}

/** The pids whose command line holds `text`. */
async function processesHolding(text: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(text)) pids.push(Number(entry.name));
    } catch {
      // The process has gone.
    }
  }
  return pids;
}

async function cmdlineOf(pid: number | string): Promise<string> {
  return (await Deno.readTextFile(`/proc/${pid}/cmdline`)).replaceAll("\0", " ");
}

Deno.test("a cluster with --credentials: statuses, curl -L -u, Bearer, SIGHUP, no secret shown", async (t) => {
  await using dir = await tempDir();
  const file = join(dir.path, "credentials");
  const readerSecret = randomSecret();
  const writerSecret = randomSecret();
  const newSecret = randomSecret();
  const secrets = [readerSecret, writerSecret, newSecret];
  await writeCredentials(file, [
    "# test keys",
    `reader ${readerSecret} read`,
    `writer ${writerSecret} read,write,delete,list`,
  ]);
  await using cluster = await testCluster({
    volumes: 2,
    indexArgs: ["--replicas", "2", "-v", "--credentials", file],
  });
  const base = cluster.url;
  const writer = { authorization: basic("writer", writerSecret) };

  await t.step("the startup line says how many keys were loaded", () => {
    assert.match(
      cluster.index.log,
      new RegExp(`^index: serving on .*; credentials: 2 access keys from ${file}$`, "m"),
    );
    assert.doesNotMatch(cluster.index.log, /open: no --credentials/);
  });

  await t.step(
    "every client × request gives its documented status, and refusals change nothing",
    async () => {
      for (const client of CLIENTS) {
        for (const op of OPS) {
          const key = `/matrix/${client}/${op}`;
          if (op !== "PUT" && op !== "list") {
            assert.equal(
              (await request(base + key, { method: "PUT", headers: writer, body: "v" })).status,
              201,
            );
          }
          const header = headerOf(client, readerSecret, writerSecret);
          const headers: Record<string, string> = header === null ? {} : { authorization: header };
          const url = op === "list" ? `${base}/matrix/?list` : base + key;
          const init: RequestInit = { method: methodOf(op), headers };
          if (op === "PUT") init.body = "value";
          const answer = await request(url, init);
          const what = `${client} ${op}`;
          assert.equal(answer.status, EXPECTED[client][op], `${what}: ${answer.body}`);
          if (answer.status === 401) {
            assert.equal(answer.headers.get("www-authenticate"), 'Basic realm="mkv"', what);
          }
          if (answer.status >= 400 && op !== "HEAD") {
            assert.ok(answer.body.trim().length > 0, `${what}: no reason given`);
          }
          if (op === "list") continue;
          // What the writer sees afterwards: the refused request changed nothing.
          const after = (await request(base + key, { headers: writer })).status;
          const gone = (op === "DELETE" || op === "UNLINK") && answer.status === 204;
          const absent = op === "PUT" && answer.status !== 201;
          assert.equal(after, gone || absent ? 404 : 302, `${what}: then GET as writer`);
        }
      }
    },
  );

  await t.step("curl -L -u writes and reads a value through the 302", async () => {
    const url = `${base}/curl/value`;
    const written = await curlStatus([
      "-L",
      "-u",
      `writer:${writerSecret}`,
      "-X",
      "PUT",
      "-d",
      "bigswag",
      url,
    ]);
    assert.equal(written.status, 201, written.body);
    const read = await curlStatus(["-L", "-u", `reader:${readerSecret}`, url]);
    assert.deepEqual(read, { status: 200, body: "bigswag" });
    const refused = await curlStatus([
      "-L",
      "-u",
      `reader:${readerSecret}`,
      "-X",
      "PUT",
      "-d",
      "x",
      `${base}/curl/other`,
    ]);
    assert.equal(refused.status, 403);
    assert.equal(refused.body, "access key reader may not write (its rights: read)\n");
    const anonymous = await curlStatus(["-L", url]);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.body, /^credentials needed/);
  });

  await t.step(
    "Authorization: Bearer ACCESS_KEY:SECRET writes and reads (fetch and curl)",
    async () => {
      const bearer = { authorization: `Bearer writer:${writerSecret}` };
      assert.equal(
        (await request(`${base}/bearer`, { method: "PUT", headers: bearer, body: "token" })).status,
        201,
      );
      const response = await fetch(`${base}/bearer`, { headers: bearer });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "token");
      const read = await curlStatus([
        "-L",
        "--oauth2-bearer",
        `reader:${readerSecret}`,
        `${base}/bearer`,
      ]);
      assert.deepEqual(read, { status: 200, body: "token" });
      const listed = await request(`${base}/bearer?list`, { headers: bearer });
      assert.equal(listed.status, 200);
      assert.deepEqual(JSON.parse(listed.body), { next: "", keys: ["/bearer"] });
      const wrong = await request(`${base}/bearer`, {
        headers: { authorization: "Bearer writer:nope" },
      });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body, `${REASONS.wrong}\n`);
    },
  );

  await t.step("no secret in any process's command line (the index's, its nginx's)", async () => {
    const index = await cmdlineOf(cluster.index.pid);
    assert.match(index, /index\.ts server .*--credentials /);
    const nginxPid = (await Deno.readTextFile(pidFileFor(cluster.index.port))).trim();
    assert.match(await cmdlineOf(nginxPid), /nginx/);
    for (const secret of secrets) assert.deepEqual(await processesHolding(secret), [], secret);
  });

  await t.step("SIGHUP re-reads the file: a new key works, a removed one gets 401", async () => {
    await writeCredentials(file, [
      `writer ${writerSecret} read,write,delete,list`,
      `newkey ${newSecret} read`,
    ]);
    cluster.index.kill("SIGHUP");
    await waitFor("the reload", () => cluster.index.log.includes("SIGHUP: loaded 2 access keys"));
    const asNew = await request(`${base}/curl/value`, {
      headers: { authorization: basic("newkey", newSecret) },
    });
    assert.equal(asNew.status, 302, asNew.body);
    const asReader = await request(`${base}/curl/value`, {
      headers: { authorization: basic("reader", readerSecret) },
    });
    assert.equal(asReader.status, 401);
  });

  await t.step("a bad file on SIGHUP keeps the keys loaded before, and says why", async () => {
    // The fields of a line swapped: the secret is where a right should be.
    await writeCredentials(file, [`newkey read,list ${newSecret}`]);
    cluster.index.kill("SIGHUP");
    await waitFor("the refused reload", () => cluster.index.log.includes("kept the 2 access keys"));
    assert.match(
      cluster.index.log,
      new RegExp(
        `index: SIGHUP: kept the 2 access keys loaded before: credentials ${file}: ` +
          "line 1: right 1 of 1 is not one of",
      ),
    );
    await Deno.chmod(file, 0o644);
    cluster.index.kill("SIGHUP");
    await waitFor("the second refused reload", () => cluster.index.log.includes("run: chmod 600"));
    const asNew = await request(`${base}/curl/value`, {
      headers: { authorization: basic("newkey", newSecret) },
    });
    assert.equal(asNew.status, 302, asNew.body);
    assert.ok(!cluster.index.exited, "the index exited on SIGHUP");
  });

  await t.step("no secret in the index's log (-v logs every request)", async () => {
    await waitFor("the request log", () => cluster.index.log.includes("PUT /bearer 201"));
    for (const secret of secrets) assert.ok(!cluster.index.log.includes(secret), secret);
    assert.ok(!cluster.index.log.includes(btoa(`writer:${writerSecret}`)));
  });
});

Deno.test("--public-read: GET and HEAD of keys need no credentials, the rest still does", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "credentials");
  const secret = randomSecret();
  await writeCredentials(file, [`writer ${secret} all`]);
  await using cluster = await testCluster({
    volumes: 1,
    indexArgs: ["--replicas", "1", "--credentials", file, "--public-read"],
  });
  const base = cluster.url;
  assert.match(cluster.index.log, /credentials: 1 access keys from .*, public reads$/m);
  const written = await curlStatus([
    "-u",
    `writer:${secret}`,
    "-X",
    "PUT",
    "-d",
    "open",
    `${base}/pub`,
  ]);
  assert.equal(written.status, 201);
  assert.deepEqual(await curlStatus(["-L", `${base}/pub`]), { status: 200, body: "open" });
  assert.equal((await request(`${base}/pub`, { method: "HEAD" })).status, 302);
  assert.equal((await request(`${base}/absent`)).status, 404);
  for (
    const [method, url] of [
      ["PUT", `${base}/pub2`],
      ["DELETE", `${base}/pub`],
      ["UNLINK", `${base}/pub`],
      ["GET", `${base}/?list`],
      ["GET", `${base}/?unlinked`],
    ]
  ) {
    const answer = await request(url, { method, body: method === "PUT" ? "x" : undefined });
    assert.equal(answer.status, 401, `${method} ${url}: ${answer.body}`);
  }
  const wrong = await request(`${base}/pub`, { headers: { authorization: basic("writer", "x") } });
  assert.equal(wrong.status, 401, "credentials given are checked");
  assert.equal((await request(`${base}/pub`)).status, 302, "still there");
});

Deno.test("without --credentials the API is open, and the startup line says so", async () => {
  await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1"] });
  assert.match(cluster.index.log, /^index: serving on .*; open: no --credentials/m);
  const written = await request(`${cluster.url}/open`, { method: "PUT", body: "v" });
  assert.equal(written.status, 201);
  const bogus = { authorization: basic("who", "ever-ever") };
  assert.equal((await request(`${cluster.url}/open`, { headers: bogus })).status, 302);
  assert.equal((await request(`${cluster.url}/?list`)).status, 200);
  assert.equal((await request(`${cluster.url}/open`, { method: "DELETE" })).status, 204);
});

Deno.test("index.ts refuses to start with a credentials file open to others, or a bad one", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "credentials");
  const secret = randomSecret();
  const server = (extra: string[]) =>
    runScript([
      "index.ts",
      "server",
      "--port",
      String(freePort()),
      "--db",
      join(dir.path, "db"),
      "--volumes",
      "localhost:1",
      "--replicas",
      "1",
      "--credentials",
      file,
      ...extra,
    ]);
  await Deno.writeTextFile(file, `alice ${secret} read\n`);
  await Deno.chmod(file, 0o644);
  let result = await server([]);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr.trim(),
    `index: credentials ${file} is accessible to others (mode 644); run: chmod 600 ${file}`,
  );
  await writeCredentials(file, [`alice read,write,list ${secret}`]);
  result = await server(["--public-read"]);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr.trim(),
    `index: credentials ${file}: line 1: right 1 of 1 is not one of read, write, delete, list, ` +
      "admin, all",
  );
  assert.ok(!result.stderr.includes(secret));
  result = await server(["--credentials", join(dir.path, "absent")]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^index: credentials .*absent: no such file$/m);
});
