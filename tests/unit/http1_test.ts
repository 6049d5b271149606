// Tests of lib/volumes/http1.ts's pure parts: the parsing of answer heads (golden) and of
// host:port. The keep-alive pool against a real nginx volume is in tests/cluster/http1_test.ts.

import assert from "node:assert/strict";
import { parseResponseHead, splitHost } from "../../lib/volumes/_http1.ts";

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
