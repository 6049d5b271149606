// The pure parts of the walks of the volumes: answers read one after another off a pipelined
// connection (lib/volumes/listings.ts, AnswerReader), the keys put in key order through runs
// (lib/ops/spool.ts), and KV's order of keys (lib/core/pages.ts, compareKeys).

import assert from "node:assert/strict";
import { AnswerReader } from "../../lib/volumes/listings.ts";
import { decodeItem, encodeItem, mergeRuns } from "../../lib/ops/spool.ts";
import type { KeyFiles } from "../../lib/ops/walk.ts";
import { compareKeys } from "../../lib/core/pages.ts";

const encoder = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

const LISTING =
  '[\n{ "name":"L2E=", "type":"file", "mtime":"Mon, 07 Dec 2026 16:06:10 GMT", "size":16 }\n]';
const ANSWERS = [
  `HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\n` +
  `Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n` +
  `${LISTING.length.toString(16)}\r\n${LISTING}\r\n0\r\n\r\n`,
  `HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\n` +
  `Connection: keep-alive\r\n\r\nnot found`,
  `HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello`,
  `HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
  `HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnot read: after the close`,
].join("");

Deno.test("AnswerReader reads pipelined answers however the bytes are cut, up to a close", () => {
  const bytes = encoder.encode(ANSWERS);
  for (const cut of [1, 2, 7, 64, bytes.length]) {
    const reader = new AnswerReader(1024);
    const answers = [];
    for (let at = 0; at < bytes.length && !reader.closing; at += cut) {
      answers.push(...reader.feed(bytes.subarray(at, at + cut)));
    }
    assert.deepEqual(
      answers.map((a) => [a.status, text(a.body)]),
      [[200, LISTING], [404, "not found"], [200, "hello"], [200, ""]],
      `cut every ${cut} bytes`,
    );
    assert.equal(reader.closing, true);
  }
});

Deno.test("AnswerReader refuses a body past its bound, a body framed by the close, and non-HTTP", () => {
  assert.throws(
    () =>
      new AnswerReader(4).feed(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")),
    /longer than/,
  );
  assert.throws(
    () => new AnswerReader(4).feed(encoder.encode("HTTP/1.1 200 OK\r\n\r\nhello")),
    /end of the connection/,
  );
  assert.throws(() => new AnswerReader(4).feed(encoder.encode("SSH-2.0\r\n\r\n")), /not an HTTP/);
  const partial = new AnswerReader(64);
  assert.deepEqual(partial.feed(encoder.encode("HTTP/1.1 200 OK\r\nContent-Len")), []);
  assert.equal(partial.midAnswer, true);
});

Deno.test("a walk's item survives its line: keys with line ends, quotes and any character", () => {
  const item: KeyFiles = {
    key: '/a\nb"c\\d\u2028\u{1F600}\u0000',
    found: [{ location: "localhost:3001/sv01", version: "0000018c", sizeBytes: 16 }],
  };
  const line = encodeItem(item);
  assert.equal(line.includes("\n"), false);
  assert.deepEqual(decodeItem(line), item);
});

Deno.test("mergeRuns gives the items of sorted runs in key order", async () => {
  const run = async function* (keys: string[]): AsyncGenerator<KeyFiles> {
    for (const key of keys) yield { key, found: [] };
  };
  const merged: string[] = [];
  const runs = [run(["/a", "/d", "/e"]), run([]), run(["/b", "/c", "/f"]), run(["/0"])];
  for await (const item of mergeRuns(runs)) merged.push(item.key);
  assert.deepEqual(merged, ["/0", "/a", "/b", "/c", "/d", "/e", "/f"]);
});

Deno.test("compareKeys orders keys as KV does (UTF-8 bytes), not as JavaScript's < does", () => {
  const keys = ["/b", "/a", "/a\u0000", "/\uffff", "/\u{10000}", "/\ue000", "/", "/z"];
  const byUtf8 = [...keys].sort((a, b) => {
    const x = encoder.encode(a);
    const y = encoder.encode(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  });
  assert.deepEqual([...keys].sort(compareKeys), byUtf8);
  assert.notDeepEqual([...keys].sort(), byUtf8);
});
