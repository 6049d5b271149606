// Tests of lib/http1.ts: the parsing of answer heads (golden), and the keep-alive pool against a
// real nginx volume: sockets are reused, a socket the server closed is replaced, a timeout holds.

import assert from "node:assert/strict";
import { Http1Pool, parseResponseHead, splitHost } from "../lib/http1.ts";
import { startVolume } from "../lib/cluster.ts";
import { freePort } from "../nginx.ts";
import { tempDir } from "./helpers.ts";

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

Deno.test("Http1Pool: PUT, HEAD, DELETE on a real volume, on reused sockets", async () => {
  await using dir = await tempDir();
  const port = freePort();
  await using _volume = await startVolume({ port, dir: `${dir.path}/v` });
  const host = `localhost:${port}`;
  const pool = new Http1Pool();
  try {
    const body = new TextEncoder().encode("hello");
    assert.equal(await pool.request(host, "PUT", "/a/b", { body, timeoutMs: 2000 }), 201);
    assert.equal(await pool.request(host, "HEAD", "/a/b", { timeoutMs: 2000 }), 200);
    // A 404 carries an HTML body, which must be read off for the socket to serve again.
    assert.equal(await pool.request(host, "GET", "/nothing", { timeoutMs: 2000 }), 404);
    assert.equal(await pool.request(host, "DELETE", "/a/b", { timeoutMs: 2000 }), 204);
    assert.equal(await pool.request(host, "HEAD", "/a/b", { timeoutMs: 2000 }), 404);
    assert.equal(await Deno.readTextFile(`${dir.path}/v/a/b`).catch(() => "gone"), "gone");
  } finally {
    pool.close();
  }
});

Deno.test("Http1Pool: a pooled socket the server closed is replaced; a silent server times out", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let served = 0;
  let silent: Deno.Conn | null = null;
  const server = (async () => {
    for await (const conn of listener) {
      served++;
      const buffer = new Uint8Array(4096);
      await conn.read(buffer);
      if (served === 3) {
        silent = conn; // The third connection never answers.
        continue;
      }
      await conn.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
      // Keep-alive announced, but the server closes: the pool must not be fooled.
      conn.close();
    }
  })();
  const pool = new Http1Pool();
  try {
    const host = `127.0.0.1:${port}`;
    assert.equal(await pool.request(host, "HEAD", "/", { timeoutMs: 2000 }), 200);
    assert.equal(await pool.request(host, "HEAD", "/", { timeoutMs: 2000 }), 200);
    assert.equal(served, 2, "the closed socket was replaced by a new one");
    await assert.rejects(
      () => pool.request(host, "HEAD", "/", { timeoutMs: 300 }),
      (err: unknown) => err instanceof DOMException && err.name === "TimeoutError",
    );
  } finally {
    pool.close();
    listener.close();
    await server.catch(() => {});
    (silent as Deno.Conn | null)?.close();
  }
});
