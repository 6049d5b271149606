// Access control at the index (`--credentials`, `--public-read`): the credentials file's parser
// and the rights check, golden-tested (pure), then real clusters: every client × request gives the
// documented status (docs/security.md, "Credentials"), curl -L -u and Bearer round trips, public
// reads, a reload on SIGHUP, and no secret in the index's log or in any process's command line.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Auth,
  parseAuthorization,
  REASONS,
  requiredRight,
  type Verdict,
} from "../lib/auth/auth.ts";
import {
  type Credential,
  CredentialsError,
  loadCredentials,
  modeProblem,
  parseCredentials,
} from "../lib/auth/credentials.ts";
import { pidFileFor } from "../lib/nginx/mod.ts";
import { curl, freePort, request, runScript, tempDir, testCluster } from "./helpers.ts";

/** How long a condition polled for (a log line) may take to come true. */
const POLL_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 25;

/** A secret no other test uses, so that finding it anywhere means it leaked from here. */
function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "s-" + Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function basic(accessKey: string, secret: string): string {
  return `Basic ${btoa(`${accessKey}:${secret}`)}`;
}

/** Asserts a CredentialsError whose one-line message matches `reason` and holds no `secret`. */
function assertBadFile(text: string, reason: RegExp, secret = "sekrit-value") {
  assert.throws(() => parseCredentials(text), (err: Error) => {
    assert.ok(err instanceof CredentialsError, `${JSON.stringify(text)}: ${err}`);
    assert.match(err.message, reason, JSON.stringify(text));
    assert.ok(!err.message.includes("\n"), err.message);
    assert.ok(!err.message.includes(secret), `the secret is echoed: ${err.message}`);
    return true;
  });
}

Deno.test("parseCredentials: keys, secrets and rights; comments, blank lines, CRLF, tabs", () => {
  const text = [
    "# mkv.ts credentials",
    "",
    "admin      adminsecret-1   all",
    "  # an indented comment",
    "reader\treadersecret#2\tread",
    "ci-bot.2  p:ss/w=rd+~x  write,read,write,list,delete\r",
    "ops_1 12345678 admin,list",
    "   ",
  ].join("\n");
  const expected: Credential[] = [
    {
      accessKey: "admin",
      secret: "adminsecret-1",
      rights: ["read", "write", "delete", "list", "admin"],
    },
    { accessKey: "reader", secret: "readersecret#2", rights: ["read"] },
    {
      accessKey: "ci-bot.2",
      secret: "p:ss/w=rd+~x",
      rights: ["read", "write", "delete", "list"],
    },
    { accessKey: "ops_1", secret: "12345678", rights: ["list", "admin"] },
  ];
  assert.deepEqual(parseCredentials(text), expected);
});

Deno.test("parseCredentials: a bad file is refused with its line number, never its secret", () => {
  const ok = "good goodsecret-1 read\n";
  assertBadFile("", /^no access keys/);
  assertBadFile("# only a comment\n\n", /^no access keys/);
  assertBadFile(ok + "alice sekrit-value\n", /^line 2: 2 fields, expected 3: ACCESS_KEY SECRET/);
  assertBadFile(
    ok + "\nalice sekrit-value read extra\n",
    /^line 3: 4 fields, expected 3/,
  );
  // A line with its fields swapped: the secret lands where a right is expected.
  assertBadFile(
    "alice read,write,list sekrit-value\n",
    /^line 1: right 1 of 1 is not one of read, write/,
  );
  assertBadFile("alice sekrit-value read,writ\n", /^line 1: right 2 of 2 is not one of/);
  assertBadFile("alice sekrit-value read,\n", /^line 1: right 2 of 2 is not one of/);
  assertBadFile("alice sekrit-value READ\n", /^line 1: right 1 of 1 is not one of/);
  assertBadFile("al:ice sekrit-value read\n", /^line 1: the access key must be 1 to 128/);
  assertBadFile(`${"a".repeat(129)} sekrit-value read\n`, /^line 1: the access key must be/);
  assertBadFile("sekrit-value\u00e9 alice read\n", /^line 1: the access key must be/, "sekrit");
  assertBadFile("alice sekrit-value\u00e9 read\n", /^line 1: the secret must be printable ASCII/);
  assertBadFile("alice short7 read\n", /^line 1: the secret must be 8 to 256 characters/, "short7");
  assertBadFile(
    `alice ${"x".repeat(257)} read\n`,
    /^line 1: the secret must be 8 to 256/,
    "x".repeat(257),
  );
  assertBadFile(
    ok + "# x\nalice sekrit-value read\ngood sekrit-value write\n",
    /^line 4: the access key is already on line 1$/,
  );
});

Deno.test("modeProblem: a credentials file must be closed to group and others", () => {
  assert.equal(modeProblem("/c", 0o100600), null);
  assert.equal(modeProblem("/c", 0o100400), null);
  assert.equal(modeProblem("/c", 0o100700), null);
  assert.equal(modeProblem("/c", null), null);
  assert.equal(
    modeProblem("/etc/mkv/c", 0o100640),
    "/etc/mkv/c is accessible to its group (mode 640); run: chmod 600 /etc/mkv/c",
  );
  assert.equal(
    modeProblem("/c", 0o100604),
    "/c is accessible to others (mode 604); run: chmod 600 /c",
  );
  assert.equal(
    modeProblem("/c", 0o100666),
    "/c is accessible to others (mode 666); run: chmod 600 /c",
  );
  assert.match(modeProblem("/c", 0o100620)!, /its group \(mode 620\)/);
});

Deno.test("loadCredentials: reads a 0600 file; refuses an open, missing or bad one", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "credentials");
  await Deno.writeTextFile(path, "alice sekrit-value read,list\n", { mode: 0o600 });
  await Deno.chmod(path, 0o600);
  assert.deepEqual(await loadCredentials(path), [
    { accessKey: "alice", secret: "sekrit-value", rights: ["read", "list"] },
  ]);
  await Deno.chmod(path, 0o644);
  await assert.rejects(loadCredentials(path), {
    name: "CredentialsError",
    message: `credentials ${path} is accessible to others (mode 644); run: chmod 600 ${path}`,
  });
  await Deno.chmod(path, 0o600);
  await Deno.writeTextFile(path, "alice sekrit-value\n");
  await assert.rejects(loadCredentials(path), (err: Error) => {
    assert.equal(
      err.message,
      `credentials ${path}: line 1: 2 fields, expected 3: ` +
        "ACCESS_KEY SECRET RIGHTS",
    );
    return true;
  });
  await assert.rejects(loadCredentials(join(dir.path, "absent")), {
    message: `credentials ${join(dir.path, "absent")}: no such file`,
  });
  await assert.rejects(loadCredentials(dir.path), {
    message: `credentials ${dir.path}: not a file`,
  });
});

Deno.test("requiredRight: GET/HEAD read, PUT write, DELETE/UNLINK delete, listings list", () => {
  const table = ["GET", "HEAD", "PUT", "DELETE", "UNLINK", "POST", "PATCH"].map((method) => [
    method,
    requiredRight(method, "key"),
    requiredRight(method, "list"),
  ]);
  assert.deepEqual(table, [
    ["GET", "read", "list"],
    ["HEAD", "read", "list"],
    ["PUT", "write", "write"],
    ["DELETE", "delete", "delete"],
    ["UNLINK", "delete", "delete"],
    ["POST", null, null],
    ["PATCH", null, null],
  ]);
});

Deno.test("parseAuthorization: Basic base64(KEY:SECRET) and Bearer KEY:SECRET", () => {
  const alice = { accessKey: "alice", secret: "sekrit-value" };
  assert.deepEqual(parseAuthorization(basic("alice", "sekrit-value")), alice);
  assert.deepEqual(parseAuthorization(`basic ${btoa("alice:sekrit-value")}`), alice);
  assert.deepEqual(parseAuthorization(`BASIC  ${btoa("alice:sekrit-value")} `), alice);
  assert.deepEqual(parseAuthorization("Bearer alice:sekrit-value"), alice);
  assert.deepEqual(parseAuthorization("bearer alice:sekrit-value"), alice);
  // The first colon separates: a secret may hold colons, an access key may not.
  assert.deepEqual(parseAuthorization("Bearer alice:a:b:c"), {
    accessKey: "alice",
    secret: "a:b:c",
  });
  assert.deepEqual(parseAuthorization(basic("alice", "")), { accessKey: "alice", secret: "" });
  for (
    const header of [
      "",
      "Basic",
      "Basic !!!notbase64",
      `Basic ${btoa("alice")}`,
      `Basic ${btoa(":sekrit")}`,
      "Bearer alice",
      "Bearer :sekrit",
      "Bearer alice:sekrit extra",
      "Digest username=alice",
      "alice:sekrit",
    ]
  ) {
    assert.equal(parseAuthorization(header), null, header);
  }
});

const READER: Credential = { accessKey: "reader", secret: "reader-secret", rights: ["read"] };
const WRITER: Credential = {
  accessKey: "writer",
  secret: "writer-secret",
  rights: ["read", "write", "delete", "list"],
};
/** The requests of the matrix: a method and whether it is a listing. */
const OPS = ["GET", "HEAD", "PUT", "DELETE", "UNLINK", "list"] as const;
type Op = typeof OPS[number];
/** The clients of the matrix. */
const CLIENTS = ["none", "wrong", "reader", "writer"] as const;
type Client = typeof CLIENTS[number];

/** The documented status of each client × request (docs/security.md, "Credentials"). */
const EXPECTED: Record<Client, Record<Op, number>> = {
  none: { GET: 401, HEAD: 401, PUT: 401, DELETE: 401, UNLINK: 401, list: 401 },
  wrong: { GET: 401, HEAD: 401, PUT: 401, DELETE: 401, UNLINK: 401, list: 401 },
  reader: { GET: 302, HEAD: 302, PUT: 403, DELETE: 403, UNLINK: 403, list: 403 },
  writer: { GET: 302, HEAD: 302, PUT: 201, DELETE: 204, UNLINK: 204, list: 200 },
};

/** The `Authorization` header of a client of the matrix, or null. */
function headerOf(client: Client, readerSecret: string, writerSecret: string): string | null {
  switch (client) {
    case "none":
      return null;
    case "wrong":
      return basic("writer", writerSecret + "x");
    case "reader":
      return basic("reader", readerSecret);
    case "writer":
      return basic("writer", writerSecret);
  }
}

function methodOf(op: Op): string {
  return op === "list" ? "GET" : op;
}

/** What a successful check answers with, as status: the request goes on to the API. */
function statusOf(verdict: Verdict): number | "through" {
  return verdict.ok ? "through" : verdict.status;
}

Deno.test("Auth.check: every client × request, with and without --public-read", () => {
  const auth = new Auth([READER, WRITER]);
  for (const client of CLIENTS) {
    for (const op of OPS) {
      const verdict = auth.check(
        methodOf(op),
        op === "list" ? "list" : "key",
        headerOf(client, READER.secret, WRITER.secret),
      );
      const expected = EXPECTED[client][op];
      const what = `${client} ${op}`;
      assert.equal(statusOf(verdict), expected >= 400 ? expected : "through", what);
      if (!verdict.ok) {
        for (const secret of [READER.secret, WRITER.secret]) {
          assert.ok(!verdict.reason.includes(secret), `${what}: ${verdict.reason}`);
        }
        assert.equal(
          verdict.headers["www-authenticate"],
          verdict.status === 401 ? 'Basic realm="mkv"' : undefined,
          what,
        );
      }
    }
  }
  assert.deepEqual(auth.check("GET", "key", null), {
    ok: false,
    status: 401,
    reason: REASONS.missing,
    headers: { "www-authenticate": 'Basic realm="mkv"' },
  });
  assert.deepEqual(auth.check("GET", "key", "Digest x"), {
    ok: false,
    status: 401,
    reason: REASONS.malformed,
    headers: { "www-authenticate": 'Basic realm="mkv"' },
  });
  // An unknown access key and a wrong secret are told apart by no one.
  for (const header of [basic("nobody", "writer-secret"), basic("writer", "reader-secret")]) {
    assert.equal((auth.check("GET", "key", header) as { reason: string }).reason, REASONS.wrong);
  }
  assert.deepEqual(auth.check("PUT", "key", "Bearer reader:reader-secret"), {
    ok: false,
    status: 403,
    reason: "access key reader may not write (its rights: read)",
    headers: {},
  });
  assert.deepEqual(auth.check("GET", "list", basic("reader", "reader-secret")), {
    ok: false,
    status: 403,
    reason: "access key reader may not list (its rights: read)",
    headers: {},
  });
  assert.deepEqual(auth.check("PUT", "key", "Bearer writer:writer-secret"), {
    ok: true,
    accessKey: "writer",
  });
  // A method the API does not have: any valid key gets through (to its 405), no key does not.
  assert.equal(statusOf(auth.check("POST", "key", basic("reader", "reader-secret"))), "through");
  assert.equal(statusOf(auth.check("POST", "key", null)), 401);

  const open = new Auth([READER, WRITER], { publicRead: true });
  assert.equal(open.publicRead, true);
  assert.deepEqual(open.check("GET", "key", null), { ok: true, accessKey: null });
  assert.deepEqual(open.check("HEAD", "key", null), { ok: true, accessKey: null });
  for (const method of ["PUT", "DELETE", "UNLINK", "POST"]) {
    assert.equal(statusOf(open.check(method, "key", null)), 401, method);
  }
  assert.equal(statusOf(open.check("GET", "list", null)), 401, "a listing is not a read");
  // Credentials that are given are checked, even where none are needed.
  assert.equal(statusOf(open.check("GET", "key", basic("writer", "nope-nope"))), 401);
});

Deno.test("Auth.replace swaps every key at once", () => {
  const auth = new Auth([READER, WRITER]);
  assert.equal(auth.size, 2);
  auth.replace([{ accessKey: "new", secret: "new-secret", rights: ["read"] }]);
  assert.equal(auth.size, 1);
  assert.equal(statusOf(auth.check("GET", "key", basic("new", "new-secret"))), "through");
  assert.equal(statusOf(auth.check("GET", "key", basic("reader", "reader-secret"))), 401);
});

// --- real clusters ---

/** Writes a credentials file with mode 0600 (whatever the umask). */
async function writeCredentials(path: string, lines: string[]): Promise<void> {
  await Deno.writeTextFile(path, lines.join("\n") + "\n", { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}

/** Polls `check` until it returns true; fails after POLL_TIMEOUT_MS. */
async function waitFor(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + POLL_TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
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
