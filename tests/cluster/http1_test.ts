// Tests of lib/volumes/http1.ts's keep-alive pool against a real nginx volume: sockets are reused
// (by streamed PUTs too, only after a whole body), answers' bodies are read through (chunked or
// not), a socket the server closed is replaced, a timeout holds. The parsing of answer heads is in tests/unit/http1_test.ts.

import assert from "node:assert/strict";
import { Http1Pool } from "../../lib/volumes/http1.ts";
import { spawnVolume } from "../../dev/cluster.ts";
import { freePort, sleep, tempDir } from "../helpers.ts";

/** A real volume in a temp dir, and a pool to it; stopped, closed and removed on dispose. */
async function volumeAndPool() {
  const dir = await tempDir();
  const port = freePort();
  const volume = await spawnVolume({ port, dir: `${dir.path}/v` });
  const pool = new Http1Pool();
  return {
    host: `localhost:${port}`,
    files: `${dir.path}/v`,
    pool,
    async [Symbol.asyncDispose]() {
      pool.close();
      await volume[Symbol.asyncDispose]();
      await dir[Symbol.asyncDispose]();
    },
  };
}

Deno.test("Http1Pool: PUT, HEAD, DELETE on a real volume, on reused sockets", async () => {
  await using volume = await volumeAndPool();
  const { host, pool } = volume;
  const body = new TextEncoder().encode("hello");
  // A path of the key layout: volumes take PUT and DELETE nowhere else.
  const path = "/5d/41/aGVsbG8=";
  assert.equal(await pool.request(host, "PUT", path, { body, timeoutMs: 2000 }), 201);
  assert.equal(await pool.request(host, "HEAD", path, { timeoutMs: 2000 }), 200);
  // A 404 carries an HTML body, which must be read off for the socket to serve again.
  assert.equal(await pool.request(host, "GET", "/nothing", { timeoutMs: 2000 }), 404);
  assert.equal(await pool.request(host, "DELETE", path, { timeoutMs: 2000 }), 204);
  assert.equal(await pool.request(host, "HEAD", path, { timeoutMs: 2000 }), 404);
  assert.equal(await Deno.readTextFile(`${volume.files}${path}`).catch(() => "gone"), "gone");
});

Deno.test("Http1Pool: bodies read through a sink (chunked listing, Content-Length file, 404)", async () => {
  await using volume = await volumeAndPool();
  const { host, pool } = volume;
  const value = new Uint8Array(100_000).map((_, i) => i % 251);
  const path = "/5d/41/aGVsbG8=";
  assert.equal(await pool.request(host, "PUT", path, { body: value, timeoutMs: 2000 }), 201);
  const read = async (at: string) => {
    const pieces: Uint8Array[] = [];
    const status = await pool.request(host, "GET", at, {
      timeoutMs: 2000,
      sink: (piece) => pieces.push(piece.slice()),
    });
    const body = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0));
    pieces.reduce((at, piece) => (body.set(piece, at), at + piece.length), 0);
    return { status, body };
  };
  for (let round = 0; round < 3; round++) {
    const file = await read(path);
    assert.equal(file.status, 200);
    assert.deepEqual(file.body, value);
    // nginx's autoindex sends its JSON chunked.
    const listing = await read("/5d/41/");
    assert.equal(listing.status, 200);
    const entries = JSON.parse(new TextDecoder().decode(listing.body));
    assert.deepEqual(entries.map((e: { name: string; size: number }) => [e.name, e.size]), [
      ["aGVsbG8=", 100_000],
    ]);
    const missing = await read("/nothing/");
    assert.equal(missing.status, 404);
    assert.match(new TextDecoder().decode(missing.body), /404/);
  }
  // Every answer was read to its end: one socket served them all, one after another.
  assert.equal(pool.idleCount(host), 1);
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

/**
 * A raw HTTP/1.1 server on a free port whose behaviour per request is scripted: `answer` gets the
 * connection's number (from 1) and the request's number on it (from 1) and says what to do.
 */
function scriptedServer(
  answer: (connNo: number, requestNo: number) => "ok" | "close" | "silent",
  options: { idleCloseMs?: number } = {},
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let connections = 0;
  const ok = new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  const serveConn = async (conn: Deno.Conn, connNo: number) => {
    const buffer = new Uint8Array(4096);
    for (let requestNo = 1;; requestNo++) {
      let idleTimer: ReturnType<typeof setTimeout> | undefined;
      if (options.idleCloseMs !== undefined) {
        idleTimer = setTimeout(() => conn.close(), options.idleCloseMs);
      }
      const n = await conn.read(buffer).catch(() => null);
      clearTimeout(idleTimer);
      if (n === null) break;
      const what = answer(connNo, requestNo);
      if (what === "close") break;
      if (what === "silent") continue;
      await conn.write(ok);
    }
    conns.delete(conn);
    try {
      conn.close();
    } catch {
      // Closed by the idle timer already.
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serveConn(conn, ++connections);
    }
  })();
  return {
    host: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get connections() {
      return connections;
    },
    async close() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of conns) conn.close();
      await new Promise((resolve) => setTimeout(resolve, 10));
    },
  };
}

Deno.test("Http1Pool: sockets the server closed while idle are dropped, never reused", async () => {
  const server = scriptedServer(() => "ok", { idleCloseMs: 200 });
  const pool = new Http1Pool();
  try {
    const burst = () =>
      Promise.all(
        Array.from(
          { length: 16 },
          () => pool.request(server.host, "HEAD", "/", { timeoutMs: 2000 }),
        ),
      );
    assert.deepEqual(await burst(), Array(16).fill(200));
    assert.ok(pool.idleCount(server.host) > 1, "the burst left sockets in the pool");
    const before = server.connections;
    await sleep(500);
    assert.equal(pool.idleCount(server.host), 0, "the server's closes emptied the pool");
    assert.deepEqual(await burst(), Array(16).fill(200));
    assert.ok(server.connections > before, "new connections were made");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("Http1Pool.open: a streamed PUT goes back to the pool only after its whole body", async () => {
  await using volume = await volumeAndPool();
  const { host, pool } = volume;
  const encoder = new TextEncoder();
  const path = "/5d/41/aGVsbG8=";
  const head = (length: number) =>
    encoder.encode(`PUT ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${length}\r\n\r\n`);
  const whole = await pool.open(host, head(10), { timeoutMs: 2000 });
  await whole.write(encoder.encode("hello"));
  await whole.write(encoder.encode("world"));
  assert.equal(await whole.answer("PUT", 2000, { reuse: true }), 201);
  assert.equal(pool.idleCount(host), 1, "the socket went back to the pool");
  const cut = await pool.open(host, head(5), { timeoutMs: 2000 });
  assert.equal(pool.idleCount(host), 0, "the next stream took the idle socket");
  await cut.write(encoder.encode("hel"));
  // The volume waits for two more bytes: no answer comes, and the socket never serves again.
  assert.equal(await cut.answer("PUT", 300, { reuse: false }), null);
  assert.equal(pool.idleCount(host), 0);
  assert.equal(await Deno.readTextFile(`${volume.files}${path}`), "helloworld");
  assert.equal(await pool.request(host, "HEAD", path, { timeoutMs: 2000 }), 200);
});

Deno.test("Http1Pool: a reused socket closed without an answer is retried once, fresh", async () => {
  // The first connection answers its first request, then closes on the second: the race of a
  // server timing out a kept-alive socket just as a request goes out.
  const server = scriptedServer((connNo, requestNo) =>
    connNo === 1 && requestNo === 2 ? "close" : "ok"
  );
  const pool = new Http1Pool();
  try {
    assert.equal(await pool.request(server.host, "HEAD", "/", { timeoutMs: 2000 }), 200);
    assert.equal(await pool.request(server.host, "DELETE", "/x", { timeoutMs: 2000 }), 200);
    assert.equal(server.connections, 2, "the retry went out on a fresh connection");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("Http1Pool: a fresh connection closed without an answer fails, not retried", async () => {
  const server = scriptedServer(() => "close");
  const pool = new Http1Pool();
  try {
    await assert.rejects(() => pool.request(server.host, "HEAD", "/", { timeoutMs: 2000 }));
    assert.equal(server.connections, 1);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("Http1Pool: idle sockets expire after idleTimeoutMs; fresh requests skip the pool", async () => {
  const server = scriptedServer(() => "ok");
  const pool = new Http1Pool({ idleTimeoutMs: 150 });
  try {
    assert.equal(await pool.request(server.host, "HEAD", "/", { timeoutMs: 2000 }), 200);
    assert.equal(pool.idleCount(server.host), 1);
    await sleep(400);
    assert.equal(pool.idleCount(server.host), 0, "the expired socket was closed");
    assert.equal(await pool.request(server.host, "HEAD", "/", { timeoutMs: 2000 }), 200);
    assert.equal(server.connections, 2);
    assert.equal(
      await pool.request(server.host, "HEAD", "/", { timeoutMs: 2000, fresh: true }),
      200,
    );
    assert.equal(server.connections, 3, "a fresh request opened its own connection");
    assert.equal(pool.idleCount(server.host), 1, "and did not keep it");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("Http1Pool: an abort ends a request in flight at once", async () => {
  const server = scriptedServer(() => "silent");
  const pool = new Http1Pool();
  try {
    const abort = new AbortController();
    const started = Date.now();
    setTimeout(() => abort.abort(new Error("volume down")), 100);
    await assert.rejects(
      () =>
        pool.request(server.host, "PUT", "/x", {
          body: new Uint8Array(10),
          timeoutMs: 10_000,
          signal: abort.signal,
        }),
      /volume down/,
    );
    assert.ok(Date.now() - started < 2000, "it did not wait for the timeout");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("Http1Pool: a body that keeps coming is read to its end; one that stalls times out", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const host = `127.0.0.1:${listener.addr.port}`;
  const encoder = new TextEncoder();
  const conns: Deno.Conn[] = [];
  const server = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        await conn.read(new Uint8Array(4096));
        await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
        // Five pieces 100 ms apart: longer in all than the timeout, never that long apart.
        for (let i = 0; i < 5; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          await conn.write(encoder.encode("1\r\nx\r\n"));
        }
        if (conns.length === 1) await conn.write(encoder.encode("0\r\n\r\n"));
      })().catch(() => {});
    }
  })();
  const pool = new Http1Pool();
  try {
    let body = "";
    const sink = (piece: Uint8Array) => body += new TextDecoder().decode(piece);
    assert.equal(await pool.request(host, "GET", "/", { timeoutMs: 300, sink }), 200);
    assert.equal(body, "xxxxx");
    // The second connection's body stops short of its end: the request times out.
    await assert.rejects(
      () => pool.request(host, "GET", "/", { timeoutMs: 300, sink, fresh: true }),
      (err: unknown) => err instanceof DOMException && err.name === "TimeoutError",
    );
  } finally {
    pool.close();
    listener.close();
    for (const conn of conns) conn.close();
    await server.catch(() => {});
  }
});
