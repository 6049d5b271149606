// Tests of lib/volumes/http1.ts's pure parts: the parsing of answer heads and of chunked bodies
// (golden) and of host:port. The keep-alive pool against a real nginx volume is in
// tests/cluster/http1_test.ts.

import assert from "node:assert/strict";
import {
  AnswerError,
  ChunkedDecoder,
  parseResponseHead,
  splitHost,
} from "../../lib/volumes/_http1.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feeds `parts` to a ChunkedDecoder in turn; the body, bytes used of each part, and `done`. */
function decodeChunked(parts: string[]): { body: string; used: number[]; done: boolean } {
  let body = "";
  const chunked = new ChunkedDecoder((piece) => body += decoder.decode(piece));
  const used = parts.map((part) => chunked.feed(encoder.encode(part)));
  return { body, used, done: chunked.done };
}

Deno.test("parseResponseHead reads status, framing and keep-alive", () => {
  assert.deepEqual(parseResponseHead("HTTP/1.1 201 Created\r\nContent-Length: 0"), {
    status: 201,
    contentLength: 0,
    chunked: false,
    keepAlive: true,
  });
  assert.deepEqual(
    parseResponseHead("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 153"),
    { status: 404, contentLength: 153, chunked: false, keepAlive: false },
  );
  assert.deepEqual(parseResponseHead("HTTP/1.0 200 OK\r\nConnection: keep-alive"), {
    status: 200,
    contentLength: null,
    chunked: false,
    keepAlive: true,
  });
  assert.deepEqual(parseResponseHead("HTTP/1.1 200\r\nTransfer-Encoding: chunked"), {
    status: 200,
    contentLength: null,
    chunked: true,
    keepAlive: true,
  });
  assert.equal(parseResponseHead("SSH-2.0-OpenSSH"), null);
  assert.equal(parseResponseHead("HTTP/2 200"), null);
});

Deno.test("splitHost splits host:port, IPv6 literals too", () => {
  assert.deepEqual(splitHost("localhost:3001"), { hostname: "localhost", port: 3001 });
  assert.deepEqual(splitHost("[::1]:3001"), { hostname: "::1", port: 3001 });
});

Deno.test("ChunkedDecoder decodes a chunked body whole or split anywhere", () => {
  const wire = "5\r\nhello\r\nb;ext=1\r\n, chunked w\r\n4 \r\norld\r\n0\r\nX-Trailer: 1\r\n\r\n";
  assert.deepEqual(decodeChunked([wire]), {
    body: "hello, chunked world",
    used: [wire.length],
    done: true,
  });
  for (let cut = 0; cut <= wire.length; cut++) {
    const split = decodeChunked([wire.slice(0, cut), wire.slice(cut)]);
    assert.equal(split.body, "hello, chunked world", `cut at ${cut}`);
    assert.deepEqual(split.used, [cut, wire.length - cut]);
    assert.equal(split.done, true);
  }
  const bytewise = decodeChunked([...wire]);
  assert.equal(bytewise.body, "hello, chunked world");
  assert.equal(bytewise.done, true);
});

Deno.test("ChunkedDecoder stops at the body's end, and is not done before it", () => {
  assert.deepEqual(decodeChunked(["3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200"]), {
    body: "abc",
    used: [13],
    done: true,
  });
  assert.deepEqual(decodeChunked(["0\r\n\r\n"]), { body: "", used: [5], done: true });
  assert.deepEqual(decodeChunked(["3\r\nabc\r\n0\r\n"]), {
    body: "abc",
    used: [11],
    done: false,
  });
  assert.deepEqual(decodeChunked(["a\nfive five \n0\n\n"]), {
    body: "five five ",
    used: [16],
    done: true,
  });
});

Deno.test("ChunkedDecoder refuses a malformed body", () => {
  for (
    const wire of [
      "x\r\n",
      "\r\n",
      "-1\r\n",
      "3\r\nabcd\r\n",
      "3\r\nabc0\r\n\r\n",
      "ffffffffffffff\r\n",
      "1".repeat(5000),
    ]
  ) {
    assert.throws(() => decodeChunked([wire]), AnswerError, JSON.stringify(wire));
  }
});
