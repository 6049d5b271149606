// Tests of parseTarget (lib/http/target.ts): how the index reads a request's path and query into a
// key or a listing, and refuses bad input with a 4xx and a short reason. Pure; the HTTP side is
// in tests/cluster/api_test.ts.

import assert from "node:assert/strict";
import { MAX_KEY_BYTES } from "../../lib/placement.ts";
import { MAX_LIST_LIMIT, parseTarget } from "../../lib/http/target.ts";

/** Asserts that the target is refused with `status`, and a one-line reason. */
function assertBad(target: string, status: number): void {
  const parsed = parseTarget(target);
  assert.equal(parsed.kind, "bad", target);
  if (parsed.kind !== "bad") return;
  assert.equal(parsed.status, status, target);
  assert.ok(parsed.reason.length > 0 && !parsed.reason.includes("\n"), parsed.reason);
}

Deno.test("parseTarget: a key is the percent-decoded path, leading slash included", () => {
  assert.deepEqual(parseTarget("/wehave"), { kind: "key", key: "/wehave", rawPath: "/wehave" });
  assert.deepEqual(parseTarget("/a%20b"), { kind: "key", key: "/a b", rawPath: "/a%20b" });
  assert.deepEqual(parseTarget("/a%2Fb"), { kind: "key", key: "/a/b", rawPath: "/a%2Fb" });
  assert.deepEqual(parseTarget("/%E2%82%AC"), { kind: "key", key: "/€", rawPath: "/%E2%82%AC" });
  assert.deepEqual(parseTarget("/"), { kind: "key", key: "/", rawPath: "/" });
  // `+` is a plus in a path, not a space; `%3F` is a question mark in the key.
  assert.deepEqual(parseTarget("/a+b"), { kind: "key", key: "/a+b", rawPath: "/a+b" });
  assert.deepEqual(parseTarget("/a%3Fb"), { kind: "key", key: "/a?b", rawPath: "/a%3Fb" });
  assert.deepEqual(parseTarget("//x//y/"), { kind: "key", key: "//x//y/", rawPath: "//x//y/" });
});

Deno.test("parseTarget: ?list and ?unlinked, with start and limit", () => {
  assert.deepEqual(parseTarget("/?list"), {
    kind: "list",
    key: "/",
    state: "live",
    start: undefined,
    limit: MAX_LIST_LIMIT,
  });
  assert.deepEqual(parseTarget("/pre?unlinked"), {
    kind: "list",
    key: "/pre",
    state: "unlinked",
    start: undefined,
    limit: MAX_LIST_LIMIT,
  });
  assert.deepEqual(parseTarget("/p%20x?list&start=/p%20x/b&limit=2"), {
    kind: "list",
    key: "/p x",
    state: "live",
    start: "/p x/b",
    limit: 2,
  });
  // The operation need not come first.
  assert.deepEqual(parseTarget("/?limit=1&list"), {
    kind: "list",
    key: "/",
    state: "live",
    start: undefined,
    limit: 1,
  });
  assert.deepEqual(parseTarget(`/?list&limit=${MAX_LIST_LIMIT}`), {
    kind: "list",
    key: "/",
    state: "live",
    start: undefined,
    limit: MAX_LIST_LIMIT,
  });
  assert.deepEqual(parseTarget("/?list&start="), {
    kind: "list",
    key: "/",
    state: "live",
    start: "",
    limit: MAX_LIST_LIMIT,
  });
});

Deno.test("parseTarget: a bad limit is 400", () => {
  for (
    const limit of [
      "0",
      "-1",
      "abc",
      "",
      "1.5",
      "1e3",
      " 1",
      "0x10",
      `${MAX_LIST_LIMIT + 1}`,
      "99999999999999999999",
    ]
  ) {
    assertBad(`/?list&limit=${encodeURIComponent(limit)}`, 400);
  }
});

Deno.test("parseTarget: an unknown or malformed query is 400", () => {
  for (
    const target of [
      "/?foo",
      "/x?list&foo=1",
      "/?start=a",
      "/?limit=5",
      "/?list=1",
      "/?list&list",
      "/?list&unlinked",
      "/?list&start=a&start=b",
      "/?LIST",
    ]
  ) {
    assertBad(target, 400);
  }
});

Deno.test("parseTarget: bad percent-encoding is 400", () => {
  for (const target of ["/%", "/%zz", "/a%2", "/%FF", "/%C3", "/%E2%82", "/%ED%A0%80"]) {
    assertBad(target, 400);
  }
});

Deno.test("parseTarget: a key longer than MAX_KEY_BYTES bytes of UTF-8 is 414", () => {
  const longest = "/" + "a".repeat(MAX_KEY_BYTES - 1);
  assert.deepEqual(parseTarget(longest), { kind: "key", key: longest, rawPath: longest });
  assertBad(longest + "a", 414);
  assertBad("/" + "a".repeat(10_000), 414);
  assertBad(longest + "a?list", 414);
  // Bytes are counted after decoding: `%20` is one byte, `é` two.
  assert.equal(parseTarget("/" + "%20".repeat(MAX_KEY_BYTES - 1)).kind, "key");
  assertBad("/" + "%20".repeat(MAX_KEY_BYTES), 414);
  assert.equal(parseTarget("/" + "%C3%A9".repeat((MAX_KEY_BYTES - 1) / 2)).kind, "key");
  assertBad("/" + "%C3%A9".repeat((MAX_KEY_BYTES + 1) / 2), 414);
});

Deno.test("parseTarget: a target that does not start with / is 400", () => {
  assertBad("*", 400);
  assertBad("wehave", 400);
  assertBad("", 400);
});

Deno.test("parseTarget: a repeated limit is 400, as a repeated start is", () => {
  // Taking the first or the last would be a guess; minikeyvalue's clients never repeat it.
  assertBad("/?list&limit=1&limit=2", 400);
});
