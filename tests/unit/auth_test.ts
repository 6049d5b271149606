// Access control at the index (`--credentials`, `--public-read`), pure: the credentials file's
// parser and the rights check, golden-tested. Real clusters are in tests/cluster/auth_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Auth,
  parseAuthorization,
  REASONS,
  requiredRight,
  type Verdict,
} from "../../lib/auth/auth.ts";
import {
  type Credential,
  CredentialsError,
  loadCredentials,
  modeProblem,
  parseCredentials,
} from "../../lib/auth/credentials.ts";
import { tempDir } from "../helpers.ts";
import { basic, CLIENTS, EXPECTED, headerOf, methodOf, OPS } from "../auth_matrix.ts";

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
