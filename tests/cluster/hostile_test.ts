// Hostile input: thousands of odd requests with a fixed seed against a real cluster. As
// docs/operations.md, "Failure behaviour", says, bad input never gets a 5xx. Every request is
// bounded by a timeout (no hang), and the server answers normal requests afterwards. Requests fetch
// refuses to send go over raw TCP.

import assert from "node:assert/strict";
import { UNSUPPORTED } from "../../lib/s3/operation.ts";
import { ANSWER_TIMEOUT_MS, getFollow, put, testCluster } from "../helpers.ts";

const SEED = 0x6b7673;
const REQUESTS = 3000;
/** Requests in flight at once. */
const CONCURRENCY = 8;
/** How long a request whose body never comes whole is held open before the client gives up. */
const ABANDON_AFTER_MS = 200;

/** One request: sent with fetch, or as raw bytes when fetch would refuse or fix it. */
type Hostile =
  | {
    kind: "fetch";
    method: string;
    target: string;
    headers: Record<string, string>;
    body?: Uint8Array<ArrayBuffer>;
  }
  | { kind: "raw"; bytes: Uint8Array; expectAnswer: boolean; label: string };

// ---------------------------------------------------------------------------------------------
// Pure: a seeded generator of hostile requests

/** mulberry32: a small PRNG, so that a failure can be replayed from the seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LONG = "k".repeat(3 * 1024);

const METHODS = [
  "GET",
  "HEAD",
  "PUT",
  "DELETE",
  "UNLINK",
  "POST",
  "PATCH",
  "OPTIONS",
  "PROPFIND",
  "MKCOL",
  "COPY",
  "MOVE",
  "LOCK",
  "FOO",
  "get",
  "Put",
  "M-SEARCH",
  "LIST",
];

const PATHS = [
  "/k",
  "/a/b/c",
  `/${LONG}`,
  `/${"é".repeat(95)}`,
  `/${"x".repeat(188)}`,
  `/${"x".repeat(189)}`,
  "/..",
  "/../etc/passwd",
  "/a/../b",
  "/%2e%2e/x",
  "/%2e%2e%2f%2e%2e",
  "/%00",
  "/a%00b",
  "/%ff",
  "/%fe%ff",
  "/%",
  "/%zz",
  "/%c0%af",
  "/%ed%a0%80",
  "//double//slash",
  "/",
  "/%20",
  "/a%2Fb",
  "/ключ",
  "/%F0%9F%92%A9",
  "/?",
  "/>?",
  "/.tmp",
  "/.hidden",
];

const QUERIES = [
  "",
  "",
  "",
  "?list",
  "?unlinked",
  "?list&limit=0",
  "?list&limit=-1",
  "?list&limit=abc",
  "?list&limit=1e3",
  "?list&limit=99999999999999999999",
  "?list&limit=10001",
  "?list&limit=",
  "?list&limit=1&limit=2",
  "?list&start=",
  "?list&start=%ff",
  "?list&start=%00",
  `?list&start=${LONG}`,
  `?unlinked&start=${LONG}`,
  "?list&start=/zzz&limit=1",
  "?list&list",
  "?list=1",
  "?unlinked=yes",
  "?uploads",
  "?uploadId=1&partNumber=2",
  "?acl",
  "?list-type=2",
  "?list-type=2&prefix=a&max-keys=5",
  "?versioning",
  "?location",
  "?delete",
  "?tagging",
  "?policy",
  "?=",
  "?&&&",
  "?list&&",
  "?%ff",
  "?list&start=%",
  "?list#frag",
];

const RANGES = [
  "bytes=abc",
  "bytes=5-1",
  "bytes=-0",
  "bytes=0-99999999999999999999",
  "bytes=0-0,1-1,2-2",
  "lines=1-2",
  "bytes=",
  "bytes=-",
  "bytes=1-2-3",
];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

function garbage(random: () => number, sizeBytes: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

const encoder = new TextEncoder();

/** A path, with an odd query half of the time. */
function target(random: () => number): string {
  return pick(random, PATHS) + (random() < 0.5 ? "" : pick(random, QUERIES));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** A raw request: whatever fetch would not send as it is. */
function rawRequest(random: () => number): Hostile {
  const path = target(random);
  const body = garbage(random, Math.floor(random() * 512));
  const head = (lines: string[]) => encoder.encode(lines.join("\r\n") + "\r\n\r\n");
  switch (Math.floor(random() * 10)) {
    case 0: // Content-Length larger than the body: the server waits, the client gives up.
      return {
        kind: "raw",
        label: "content-length larger than the body",
        expectAnswer: false,
        bytes: concat(
          head([
            `PUT ${path} HTTP/1.1`,
            "Host: localhost",
            `Content-Length: ${body.length + 1000}`,
          ]),
          body,
        ),
      };
    case 1: // Content-Length smaller than the body: the rest looks like a garbage next request.
      return {
        kind: "raw",
        label: "content-length smaller than the body",
        expectAnswer: true,
        bytes: concat(
          head([
            `PUT ${path} HTTP/1.1`,
            "Host: localhost",
            `Content-Length: ${Math.floor(body.length / 2)}`,
          ]),
          body,
        ),
      };
    case 2:
      return {
        kind: "raw",
        label: "bad content-length",
        expectAnswer: true,
        bytes: concat(
          head([
            `PUT ${path} HTTP/1.1`,
            "Host: localhost",
            `Content-Length: ${
              pick(random, ["-1", "abc", "1e3", "99999999999999999999999", "3, 4"])
            }`,
            "Connection: close",
          ]),
          body,
        ),
      };
    case 3:
      return {
        kind: "raw",
        label: "broken chunked body",
        expectAnswer: true,
        bytes: concat(
          head([
            `PUT ${path} HTTP/1.1`,
            "Host: localhost",
            "Transfer-Encoding: chunked",
            "Connection: close",
          ]),
          encoder.encode(
            pick(random, ["zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcdef\r\n0\r\n\r\n", "0\r\n\r\n"]),
          ),
        ),
      };
    case 4:
      return {
        kind: "raw",
        label: "garbage",
        expectAnswer: true,
        bytes: concat(garbage(random, 1 + Math.floor(random() * 200)), encoder.encode("\r\n\r\n")),
      };
    case 5:
      return {
        kind: "raw",
        label: "raw path",
        expectAnswer: true,
        bytes: head([
          `${pick(random, ["GET", "PUT", "DELETE", "TRACE", "CONNECT"])} ${
            pick(random, [
              "/a b",
              "/\x01",
              "*",
              "http://evil/x",
              "x",
              "/\xff",
              "/k?list&start=\x7f",
              "",
            ])
          } HTTP/1.1`,
          "Host: localhost",
          "Connection: close",
        ]),
      };
    case 6:
      return {
        kind: "raw",
        label: "no host, odd version",
        expectAnswer: true,
        bytes: head([
          `GET ${path} ${pick(random, ["HTTP/1.0", "HTTP/1.1", "HTTP/0.9x", "FOO"])}`,
        ]),
      };
    case 7:
      return {
        kind: "raw",
        label: "odd headers",
        expectAnswer: true,
        bytes: concat(
          head([
            `PUT ${path} HTTP/1.1`,
            "Host: localhost",
            pick(random, [
              "X: \x01\x02",
              "Expect: 100-continue",
              "Expect: 200-ok",
              ": empty",
              "Range: bytes=1-",
            ]),
            `Content-Length: ${body.length}`,
            "Connection: close",
          ]),
          body,
        ),
      };
    default:
      return {
        kind: "raw",
        label: "huge header",
        expectAnswer: true,
        bytes: head([
          `GET ${path} HTTP/1.1`,
          "Host: localhost",
          `X-Big: ${"h".repeat(20_000)}`,
          "Connection: close",
        ]),
      };
  }
}

/** One request, drawn from `random`; 15% of them raw. */
function hostile(random: () => number): Hostile {
  if (random() < 0.15) return rawRequest(random);
  const method = pick(random, METHODS);
  const headers: Record<string, string> = {};
  if (random() < 0.2) headers.range = pick(random, RANGES);
  if (random() < 0.1) headers["content-md5"] = pick(random, ["zz", "", "x".repeat(300)]);
  if (random() < 0.1) {
    headers["content-type"] = pick(random, [
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]);
  }
  const withBody = method !== "GET" && method !== "HEAD" && method !== "get" && random() < 0.7;
  return {
    kind: "fetch",
    method,
    target: target(random),
    headers,
    body: withBody ? garbage(random, Math.floor(random() * 4096)) : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// I/O

/** Reads until the connection closes, an answer is in, or `ms` pass; closes it. */
async function readFor(
  conn: Deno.Conn,
  ms: number,
): Promise<{ text: string; timedOut: boolean }> {
  const buffer = new Uint8Array(16 * 1024);
  const decoder = new TextDecoder();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    while (true) {
      const reading = conn.read(buffer).catch(() => null);
      const n = await Promise.race([reading, expired]);
      if (n === "timeout") {
        conn.close();
        await reading;
        return { text, timedOut: true };
      }
      if (n === null) {
        conn.close();
        return { text, timedOut: false };
      }
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
      // An answer is complete enough once a final status line and its headers are in.
      if (/HTTP\/1\.[01] [2-5]\d\d[^]*\r\n\r\n/.test(text)) {
        conn.close();
        return { text, timedOut: false };
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The highest status answered to a raw request, null if none is due and none came, or "hang". */
async function sendRaw(
  port: number,
  request: Extract<Hostile, { kind: "raw" }>,
): Promise<number | null | "hang"> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(request.bytes).catch(() => 0);
  const { text, timedOut } = await readFor(
    conn,
    request.expectAnswer ? ANSWER_TIMEOUT_MS : ABANDON_AFTER_MS,
  );
  const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
  const final = statuses.filter((status) => status >= 200);
  if (final.length > 0) return Math.max(...final);
  return request.expectAnswer && timedOut ? "hang" : null;
}

async function sendFetch(
  base: string,
  request: Extract<Hostile, { kind: "fetch" }>,
): Promise<number | "hang" | "refused"> {
  try {
    const response = await fetch(`${base}${request.target}`, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: "manual",
      signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
    });
    await response.body?.cancel();
    return response.status;
  } catch (err) {
    if (err instanceof DOMException && err.name === "TimeoutError") return "hang";
    // fetch refuses some requests itself (bad header values, forbidden methods): not sent.
    if (err instanceof TypeError && !/connection|reset|closed|broken/i.test(err.message)) {
      return "refused";
    }
    throw err;
  }
}

/** Shortens runs of one character (`kkkk...` becomes `k{3072}`) so that messages stay short. */
function squeeze(text: string): string {
  return text.replace(/(.)\1{15,}/gs, (run, char) => `${char}{${run.length}}`);
}

function describe(request: Hostile): string {
  if (request.kind === "fetch") {
    const body = request.body?.length ?? 0;
    return squeeze(
      `${request.method} ${request.target} ${JSON.stringify(request.headers)} body ${body}B`,
    );
  }
  const text = squeeze(new TextDecoder().decode(request.bytes));
  return `raw (${request.label}) ${JSON.stringify(text.slice(0, 200))}`;
}

/**
 * Whether a request names an S3 sub-resource the API does not have (`?acl`): S3's own answer to
 * it is 501 NotImplemented, the one 5xx that is not a failure (docs/s3.md, "Operations").
 */
function asksUnsupported(request: Hostile): boolean {
  if (request.kind !== "fetch") return false;
  const q = request.target.indexOf("?");
  if (q === -1) return false;
  const query = new URLSearchParams(request.target.slice(q + 1));
  return UNSUPPORTED.some((name) => query.has(name));
}

Deno.test("3000 hostile requests: no 5xx, no hang, and the server still works", async () => {
  await using cluster = await testCluster();
  const random = prng(SEED);
  const requests = Array.from({ length: REQUESTS }, () => hostile(random));
  const failures: string[] = [];
  const statuses = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < requests.length) {
      const request = requests[next++];
      const status = request.kind === "raw"
        ? await sendRaw(cluster.index.port, request)
        : await sendFetch(cluster.url, request);
      statuses.set(String(status), (statuses.get(String(status)) ?? 0) + 1);
      if (status === 501 && asksUnsupported(request)) continue;
      if (status === "hang" || (typeof status === "number" && status >= 500)) {
        failures.push(`${status}: ${describe(request)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  assert.deepEqual(
    failures,
    [],
    `answers by status: ${JSON.stringify(Object.fromEntries(statuses))}`,
  );
  assert.ok((statuses.get("refused") ?? 0) < REQUESTS / 10, "fetch refused too many to test much");
  assert.equal(cluster.index.exited, false, `the index exited:\n${cluster.index.log}`);
  assert.equal(await put(cluster.url, "/after-the-storm", "calm"), 201);
  const answer = await getFollow(cluster.url, "/after-the-storm");
  assert.equal(answer.status, 200);
  assert.equal(answer.body, "calm");
});

/** One request over raw TCP with its target exactly as given (fetch would resolve `..`). */
async function rawExchange(
  port: number,
  method: string,
  target: string,
  body = "",
): Promise<{ status: number; head: string; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), ANSWER_TIMEOUT_MS);
  try {
    await conn.write(encoder.encode(
      `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n` +
        `Content-Length: ${encoder.encode(body).length}\r\n\r\n${body}`,
    ));
    const text = await new Response(conn.readable).text();
    const end = text.indexOf("\r\n\r\n");
    return {
      status: Number(text.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0),
      head: text.slice(0, end),
      body: text.slice(end + 4),
    };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("dot segments are part of the key; a raw # is refused", async () => {
  await using cluster = await testCluster({ volumes: 1, indexArgs: ["--replicas", "1"] });
  const port = cluster.index.port;
  const keys = async () => JSON.parse((await rawExchange(port, "GET", "/?list")).body).keys;

  // The path is the key as sent: nothing resolves `.` or `..` (curl does, before sending, unless
  // --path-as-is), as in minikeyvalue.
  assert.equal((await rawExchange(port, "PUT", "/a/../b", "dots")).status, 201);
  assert.equal((await rawExchange(port, "PUT", "/a/./c", "dot")).status, 201);
  assert.equal((await rawExchange(port, "GET", "/a/../b")).status, 302);
  assert.equal((await rawExchange(port, "GET", "/a/%2e%2e/b")).status, 302);
  assert.equal((await rawExchange(port, "GET", "/b")).status, 404);
  assert.equal((await rawExchange(port, "GET", "/a/c")).status, 404);
  const location = (await rawExchange(port, "GET", "/a/../b")).head.match(/^location: (.*)$/im);
  assert.equal(await (await fetch(location![1])).text(), "dots");
  // A path that climbs above / is refused by nginx, however it is spelled.
  for (const target of ["/../b", "/a/../../b", "/%2e%2e/b"]) {
    assert.equal((await rawExchange(port, "PUT", target, "x")).status, 400, target);
  }
  assert.deepEqual(await keys(), ["/a/../b", "/a/./c"]);

  // A raw # (where a fragment would start) is refused rather than stored or cut.
  for (const [method, target] of [["PUT", "/a#b"], ["GET", "/a#b"], ["PUT", "/k?x#y"]]) {
    const answer = await rawExchange(port, method, target, method === "PUT" ? "x" : "");
    assert.equal(answer.status, 400, `${method} ${target}`);
    assert.equal(answer.body, "percent-encode # as %23\n");
  }
  assert.equal((await rawExchange(port, "GET", "/a")).status, 404);
  assert.equal((await rawExchange(port, "GET", "/a%23b")).status, 404);
  assert.deepEqual(await keys(), ["/a/../b", "/a/./c"]);
  // Percent-encoded, # is an ordinary character of a key.
  assert.equal((await rawExchange(port, "PUT", "/a%23b", "hash")).status, 201);
  assert.equal((await getFollow(cluster.url, "/a%23b")).body, "hash");
});
