// Tests of lib/volumes/fanout.ts's streamed PUT (`putAll` of a value without Content-Length or over
// 256 KiB) against tiny volumes made here with raw sockets, so that each can misbehave on cue: all
// replicas get the same bytes and the md5 is right, a replica that fails mid-value fails the put
// and cuts the others off, a slow replica slows the reading of the body (one chunk in memory),
// and the outcome names only the replicas that stored the value.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { keyToPath } from "../../lib/placement.ts";
import { VolumeError, Volumes } from "../../lib/volumes/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One PUT a fake volume received. */
interface Received {
  method: string;
  path: string;
  /** Body bytes read so far. */
  bytes: number;
  /** md5 of the body read so far. */
  md5: string;
  /** The whole body came (then the volume answered). */
  complete: boolean;
}

interface FakeOptions {
  /** Close the connection (no answer) once this many bytes of a value have come. */
  dropAfter?: number;
  /** Read no byte of a value before this resolves. */
  gate?: Promise<void>;
  /** The status of the answer to a whole value; 201 by default. */
  status?: number;
  /** Answer a whole value only once this resolves. */
  answerAfter?: Promise<void>;
}

/** A socket's bytes with a buffer in front, read by line or by count. */
class BufferedConn {
  #buffer = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch {
      n = null; // reset, or closed by the test
    }
    if (n === null) return false;
    const joined = new Uint8Array(this.#buffer.length + n);
    joined.set(this.#buffer);
    joined.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = joined;
    return true;
  }

  /** The bytes up to `delimiter` (which is consumed), or null if the socket ends first. */
  async until(delimiter: string): Promise<string | null> {
    while (true) {
      const text = decoder.decode(this.#buffer);
      const at = text.indexOf(delimiter);
      if (at !== -1) {
        this.#buffer = this.#buffer.subarray(
          encoder.encode(text.slice(0, at + delimiter.length)).length,
        );
        return text.slice(0, at);
      }
      if (!await this.#fill()) return null;
    }
  }

  /** Up to `max` bytes (at least one), or null if the socket ends first. */
  async some(max: number): Promise<Uint8Array | null> {
    if (this.#buffer.length === 0 && !await this.#fill()) return null;
    const out = this.#buffer.subarray(0, max);
    this.#buffer = this.#buffer.subarray(out.length);
    return out;
  }
}

/** A volume on a raw socket: answers the index's PUTs (and its probes) as told. */
class FakeVolume implements AsyncDisposable {
  readonly host: string;
  readonly received: Received[] = [];
  #listener: Deno.TcpListener;
  #options: FakeOptions;
  #handlers = new Set<Promise<void>>();
  #accepting: Promise<void>;
  #answered: () => void = () => {};
  /** Resolves once a value has been answered. */
  readonly answered: Promise<void>;

  constructor(options: FakeOptions = {}) {
    this.#options = options;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.host = `127.0.0.1:${this.#listener.addr.port}`;
    this.answered = new Promise((resolve) => this.#answered = resolve);
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const handler = this.#handle(new BufferedConn(conn)).finally(() => {
          this.#handlers.delete(handler);
          try {
            conn.close();
          } catch (err) {
            if (!(err instanceof Deno.errors.BadResource)) throw err;
          }
        });
        this.#handlers.add(handler);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) throw err;
    }
  }

  async #handle(conn: BufferedConn): Promise<void> {
    const head = await conn.until("\r\n\r\n");
    if (head === null) return;
    const [requestLine, ...lines] = head.split("\r\n");
    const [method, path] = requestLine.split(" ");
    const headers = new Map(lines.map((line) => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    }));
    if (method === "HEAD") return await this.#answer(conn, 200);
    const isValue = path !== "/.mkv-probe";
    const received: Received = { method, path, bytes: 0, md5: "", complete: false };
    if (isValue) {
      this.received.push(received);
      await this.#options.gate;
    }
    const hash = createHash("md5");
    const take = async (length: number): Promise<boolean> => {
      for (let left = length; left > 0;) {
        const bytes = await conn.some(left);
        if (bytes === null) return false;
        hash.update(bytes);
        received.bytes += bytes.length;
        received.md5 = hash.copy().digest("hex");
        left -= bytes.length;
        const dropAfter = this.#options.dropAfter;
        if (isValue && dropAfter !== undefined && received.bytes >= dropAfter) return false;
      }
      return true;
    };
    if (headers.get("transfer-encoding") === "chunked") {
      while (true) {
        const size = await conn.until("\r\n");
        if (size === null) return;
        const length = parseInt(size, 16);
        if (!await take(length) || await conn.until("\r\n") === null) return;
        if (length === 0) break;
      }
    } else if (!await take(Number(headers.get("content-length") ?? 0))) return;
    received.complete = true;
    if (!isValue) return await this.#answer(conn, 201);
    await this.#options.answerAfter;
    await this.#answer(conn, this.#options.status ?? 201);
    this.#answered();
  }

  async #answer(conn: BufferedConn, status: number): Promise<void> {
    const head = `HTTP/1.1 ${status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
    await conn.conn.write(encoder.encode(head)).catch(() => {});
  }

  /** Waits until every connection so far has ended. */
  async settled(): Promise<void> {
    while (this.#handlers.size > 0) await Promise.all(this.#handlers);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    await this.settled();
  }
}

/**
 * A request-like body (a byte stream, read with BYOB as the index reads a request's) of `size`
 * bytes cut from a random block; counts the pulls, that is the reads of the body.
 */
function makeBody(size: number) {
  const block = new Uint8Array(1024 * 1024 + 7);
  for (let i = 0; i < block.length; i += 65536) {
    crypto.getRandomValues(block.subarray(i, i + 65536));
  }
  const hash = createHash("md5");
  const body = {
    pulls: 0,
    sent: 0,
    md5: () => hash.copy().digest("hex"),
    stream: null! as ReadableStream<Uint8Array>,
  };
  body.stream = new ReadableStream({
    type: "bytes",
    pull(controller) {
      body.pulls++;
      const request = controller.byobRequest;
      const room = request ? request.view!.byteLength : 64 * 1024;
      const length = Math.min(room, size - body.sent);
      if (length === 0) {
        controller.close();
        request?.respond(0);
        return;
      }
      const out = request
        ? new Uint8Array(request.view!.buffer, request.view!.byteOffset, length)
        : new Uint8Array(length);
      for (let filled = 0; filled < length;) {
        const from = (body.sent + filled) % block.length;
        const piece = block.subarray(from, Math.min(block.length, from + length - filled));
        out.set(piece, filled);
        filled += piece.length;
      }
      hash.update(out);
      body.sent += length;
      if (request) request.respond(length);
      else controller.enqueue(out);
    },
  });
  return body;
}

function volumesOf(fakes: FakeVolume[], log: string[] = []): Volumes & Disposable {
  const volumes = new Volumes({
    hosts: fakes.map((fake) => fake.host),
    timeoutMs: 2000,
    log: (line) => log.push(line),
  });
  return Object.assign(volumes, { [Symbol.dispose]: () => volumes.close() });
}

const MiB = 1024 * 1024;
const PATH = keyToPath("/streamed");

for (const framing of ["chunked", "content-length"] as const) {
  Deno.test(`putAll streams the same bytes to every replica (${framing})`, async () => {
    await using a = new FakeVolume();
    await using b = new FakeVolume();
    await using c = new FakeVolume();
    using volumes = volumesOf([a, b, c]);
    const size = 3 * MiB + 12345;
    const body = makeBody(size);
    const locations = [a.host, `${b.host}/sv01`, c.host];
    const result = await volumes.putAll(locations, PATH, body.stream, {
      sizeBytes: framing === "chunked" ? undefined : size,
    });
    assert.deepEqual(result, { md5: body.md5(), sizeBytes: size });
    for (const [fake, path] of [[a, PATH], [b, `/sv01${PATH}`], [c, PATH]] as const) {
      assert.equal(fake.received.length, 1);
      assert.deepEqual(fake.received[0], {
        method: "PUT",
        path,
        bytes: size,
        md5: body.md5(),
        complete: true,
      });
    }
  });
}

Deno.test("putAll: a replica failing mid-value fails the put; the others are cut off", async () => {
  await using a = new FakeVolume();
  await using broken = new FakeVolume({ dropAfter: MiB });
  await using c = new FakeVolume();
  const log: string[] = [];
  using volumes = volumesOf([a, broken, c], log);
  const size = 64 * MiB;
  const body = makeBody(size);
  const err = await volumes.putAll([a.host, broken.host, c.host], PATH, body.stream)
    .then(() => null, (err) => err);
  assert.ok(err instanceof VolumeError, String(err));
  assert.equal(err.volume, broken.host);
  assert.equal(err.status, null);
  assert.ok(
    err.message.startsWith(`volume ${broken.host}: cannot PUT ${JSON.stringify(PATH)}: `),
    err.message,
  );
  assert.ok(body.sent < size, "the rest of the body was not read");
  // The failure got the volume probed; it answers, so it stays up.
  await volumes.probe(broken.host);
  assert.equal(volumes.isAlive(broken.host), true);
  assert.deepEqual(log, []);
  await Promise.all([a, broken, c].map((fake) => fake.settled()));
  for (const fake of [a, c]) {
    assert.equal(fake.received.length, 1);
    assert.equal(fake.received[0].complete, false, "cut off before the end");
    assert.ok(fake.received[0].bytes < size);
  }
});

Deno.test("putAll: a slow replica slows the body's reading; memory stays at a chunk", async () => {
  let open = () => {};
  const gate = new Promise<void>((resolve) => open = resolve);
  await using a = new FakeVolume();
  await using b = new FakeVolume();
  await using slow = new FakeVolume({ gate });
  using volumes = volumesOf([a, b, slow]);
  const size = 64 * MiB;
  const body = makeBody(size);
  const put = volumes.putAll([a.host, b.host, slow.host], PATH, body.stream);
  // While the slow replica reads nothing, the body is read only as far as the sockets' buffers
  // take: then the reading stops, whatever the size of the value.
  let pulls = -1;
  for (let stable = 0; stable < 6;) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    stable = body.pulls === pulls ? stable + 1 : 0;
    pulls = body.pulls;
  }
  assert.equal(slow.received[0].bytes, 0);
  assert.ok(pulls <= 64, `${pulls} reads of 256 KiB while a replica took nothing`);
  for (const fake of [a, b]) assert.ok(fake.received[0].bytes <= body.sent);
  open();
  const result = await put;
  assert.deepEqual(result, { md5: body.md5(), sizeBytes: size });
  for (const fake of [a, b, slow]) {
    assert.equal(fake.received[0].md5, body.md5());
    assert.equal(fake.received[0].complete, true);
  }
});

Deno.test("putAll: a refusal cuts no one off", async () => {
  let answer = () => {};
  const answerAfter = new Promise<void>((resolve) => answer = resolve);
  await using a = new FakeVolume();
  await using b = new FakeVolume();
  await using full = new FakeVolume({ status: 507, answerAfter });
  using volumes = volumesOf([a, b, full]);
  const body = makeBody(MiB);
  const put = volumes.putAll([a.host, `${b.host}/sv03`, full.host], PATH, body.stream)
    .then(() => null, (err) => err);
  // The full volume answers last, once the others' answers are in.
  await Promise.all([a.answered, b.answered]);
  await new Promise((resolve) => setTimeout(resolve, 100));
  answer();
  const err = await put;
  assert.ok(err instanceof VolumeError, String(err));
  assert.equal(err.volume, full.host);
  assert.equal(err.status, 507);
  assert.equal(err.message, `volume ${full.host}: cannot PUT ${JSON.stringify(PATH)}: status 507`);
  for (const fake of [a, b, full]) assert.equal(fake.received[0].complete, true);
});
