// Many GETs to one volume at once on one connection (HTTP/1.1 pipelining), for the walks of the
// volumes (rebuild, gc), which list every `HH/hh` directory: asked one at a time, a listing cost a
// write, a wake-up of the volume's nginx and a read each, on both sides; 65,536 directories per
// volume made that most of a walk. All the requests of a batch go out in one write and nginx
// answers them in order, so that one wake-up serves many. Requests are idempotent GETs: those a
// connection closed before answering (nginx closes a connection after keepalive_requests) are
// sent again on a new one.

import { ConnectionWatch } from "./_watch.ts";
import { AnswerError, ChunkedDecoder, MAX_HEAD_BYTES, parseResponseHead } from "./_http1.ts";
import { type ClientTls, connectTo, writeAll } from "./http1conn.ts";

/** Bytes read from the socket at once. */
const READ_BYTES = 64 * 1024;
/** Connections opened for one batch before it is given up: each must answer at least one. */
const MAX_CONNECTIONS = 8;

/** Idle connections kept per host between batches. */
const IDLE_PER_HOST = 8;
/** Idle connections older than this are closed (well below nginx's keep-alive timeout, 75 s). */
const IDLE_TIMEOUT_MS = 10_000;

/**
 * Connections kept between batches: a walk sends thousands of them, back to back, and a connect
 * (and its close) per batch cost as much as the batch's own work. A kept connection the server
 * closed meanwhile fails its next batch before any answer, which is then sent on a new one.
 */
export class PipelinePool {
  #idle = new Map<string, { conn: Deno.Conn; sinceMs: number }[]>();
  #sweeper: ReturnType<typeof setInterval> | undefined;

  /** An idle connection to `host`, or null. */
  take(host: string): Deno.Conn | null {
    const idle = this.#idle.get(host) ?? [];
    while (idle.length > 0) {
      const { conn, sinceMs } = idle.pop()!;
      if (Date.now() - sinceMs < IDLE_TIMEOUT_MS) return conn;
      conn.close();
    }
    return null;
  }

  /** Keeps `conn` for the next batch to `host` (or closes it, past IDLE_PER_HOST). */
  give(host: string, conn: Deno.Conn): void {
    const idle = this.#idle.get(host) ?? [];
    if (idle.length >= IDLE_PER_HOST) {
      conn.close();
      return;
    }
    idle.push({ conn, sinceMs: Date.now() });
    this.#idle.set(host, idle);
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => this.#sweep(), IDLE_TIMEOUT_MS);
      Deno.unrefTimer(this.#sweeper);
    }
  }

  #sweep(): void {
    const now = Date.now();
    for (const [host, idle] of this.#idle) {
      const kept = idle.filter(({ conn, sinceMs }) => {
        if (now - sinceMs < IDLE_TIMEOUT_MS) return true;
        conn.close();
        return false;
      });
      if (kept.length > 0) this.#idle.set(host, kept);
      else this.#idle.delete(host);
    }
    if (this.#idle.size === 0) this.close();
  }

  /** Closes every idle connection. */
  close(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const idle of this.#idle.values()) for (const { conn } of idle) conn.close();
    this.#idle.clear();
  }
}

/** One answer: its status and its whole body. */
export interface PipelinedAnswer {
  status: number;
  body: Uint8Array;
}

/** The body of an answer, collected piece by piece; throws past `maxBytes`. */
class Body {
  pieces: Uint8Array[] = [];
  bytes = 0;

  constructor(readonly maxBytes: number) {}

  add(piece: Uint8Array): void {
    this.bytes += piece.length;
    if (this.bytes > this.maxBytes) {
      throw new AnswerError(`answer longer than ${this.maxBytes / 1024 / 1024} MiB`);
    }
    this.pieces.push(piece.slice());
  }

  whole(): Uint8Array {
    if (this.pieces.length === 1) return this.pieces[0];
    const out = new Uint8Array(this.bytes);
    let at = 0;
    for (const piece of this.pieces) {
      out.set(piece, at);
      at += piece.length;
    }
    return out;
  }
}

/**
 * Reads answers one after another from bytes fed as they arrive: `feed` returns the answers that
 * the bytes completed (none if they end inside one). Throws AnswerError on a malformed answer or
 * one past `maxBodyBytes`. Pure.
 */
export class AnswerReader {
  /** Bytes fed and not yet part of a whole answer. */
  #buffer = new Uint8Array(0);
  #head: { status: number; keepAlive: boolean; contentLength: number | null } | null = null;
  #chunked: ChunkedDecoder | null = null;
  #body: Body | null = null;
  /** Whether the last answer read said that the server closes the connection after it. */
  closing = false;

  constructor(readonly maxBodyBytes: number) {}

  /** Whether part of an answer has been fed. */
  get midAnswer(): boolean {
    return this.#head !== null || this.#buffer.length > 0;
  }

  feed(bytes: Uint8Array): PipelinedAnswer[] {
    const answers: PipelinedAnswer[] = [];
    let data = this.#buffer.length === 0 ? bytes : concat(this.#buffer, bytes);
    while (data.length > 0 && !this.closing) {
      if (this.#head === null) {
        const end = headEnd(data);
        if (end === -1) {
          if (data.length > MAX_HEAD_BYTES) throw new AnswerError("answer head too long");
          break;
        }
        const head = parseResponseHead(new TextDecoder().decode(data.subarray(0, end)));
        if (head === null) throw new AnswerError("not an HTTP/1.x answer");
        if (!head.chunked && head.contentLength === null) {
          throw new AnswerError("an answer framed by the end of the connection");
        }
        this.#head = head;
        this.#body = new Body(this.maxBodyBytes);
        const body = this.#body;
        this.#chunked = head.chunked ? new ChunkedDecoder((piece) => body.add(piece)) : null;
        data = data.subarray(end + 4);
      }
      let complete: boolean;
      if (this.#chunked !== null) {
        const used = this.#chunked.feed(data);
        data = data.subarray(used);
        complete = this.#chunked.done;
      } else {
        const left = this.#head.contentLength! - this.#body!.bytes;
        const take = Math.min(left, data.length);
        if (take > 0) this.#body!.add(data.subarray(0, take));
        data = data.subarray(take);
        complete = this.#body!.bytes === this.#head.contentLength;
      }
      if (!complete) break;
      answers.push({ status: this.#head.status, body: this.#body!.whole() });
      this.closing = !this.#head.keepAlive;
      this.#head = null;
      this.#body = null;
      this.#chunked = null;
    }
    this.#buffer = data.length === 0 ? new Uint8Array(0) : data.slice();
    return answers;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Where the blank line that ends an answer's head starts in `data`, or -1. */
function headEnd(data: Uint8Array): number {
  for (let i = data.indexOf(13); i !== -1 && i + 3 < data.length; i = data.indexOf(13, i + 1)) {
    if (data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * GETs each of `targets` (request targets, signed if need be) from `host`, all written at once on
 * one connection, and returns their answers in order. `timeoutMs` bounds the connect and the wait
 * for each piece of the answers; `signal` aborts. Throws on a failed connection, a malformed
 * answer, an abort or a timeout (a DOMException named TimeoutError).
 */
export async function getPipelined(
  host: string,
  targets: string[],
  options: PipelineOptions,
): Promise<PipelinedAnswer[]> {
  const answers: PipelinedAnswer[] = [];
  for (let connection = 1; answers.length < targets.length; connection++) {
    const before = answers.length;
    const kept = options.pool?.take(host) ?? null;
    await exchange(host, kept, targets.slice(before), answers, options);
    // A new connection that answers nothing would be opened again and again.
    if (kept !== null && answers.length === before) continue;
    const stuck = answers.length === before || connection === MAX_CONNECTIONS;
    if (stuck && answers.length < targets.length) {
      throw new AnswerError("connection closed before an answer");
    }
  }
  return answers;
}

export interface PipelineOptions {
  tls?: ClientTls;
  timeoutMs: number;
  maxBodyBytes: number;
  signal?: AbortSignal;
  /** Where connections are kept between batches; none: one connection per batch. */
  pool?: PipelinePool;
}

/**
 * Sends `targets` on `kept` (a connection kept from a batch before) or a new one and adds the
 * answers it gives to `answers`; the connection is kept again if it may serve another batch.
 */
async function exchange(
  host: string,
  kept: Deno.Conn | null,
  targets: string[],
  answers: PipelinedAnswer[],
  options: PipelineOptions,
): Promise<void> {
  let conn = kept;
  if (conn === null) {
    const connectSignal = AbortSignal.timeout(options.timeoutMs);
    conn = await connectTo(host, {
      signal: options.signal ? AbortSignal.any([connectSignal, options.signal]) : connectSignal,
      tls: options.tls,
    });
  }
  const socket = conn;
  // Each piece read moves the deadline on.
  const watch = new ConnectionWatch(socket, {
    deadlineMs: Date.now() + options.timeoutMs,
    signal: options.signal,
  });
  let reusable = false;
  try {
    const requests = targets.map((target) => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    await writeAll(socket, new TextEncoder().encode(requests.join("")));
    const reader = new AnswerReader(options.maxBodyBytes);
    const buffer = new Uint8Array(READ_BYTES);
    let got = 0;
    while (got < targets.length && !reader.closing) {
      const n = await socket.read(buffer);
      if (n === null) {
        // Closed between answers: the rest is sent again. Within one, the answer is broken.
        if (reader.midAnswer) throw new AnswerError("connection closed in an answer");
        return;
      }
      watch.moveTo(Date.now() + options.timeoutMs);
      for (const answer of reader.feed(buffer.subarray(0, n))) {
        answers.push(answer);
        got++;
      }
    }
    reusable = got === targets.length && !reader.closing && !reader.midAnswer;
  } catch (err) {
    if (watch.cause !== null) throw watch.failure(err);
    if (err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe) {
      // Reset between answers (a server that closed with requests unread): sent again.
      return;
    }
    throw err;
  } finally {
    watch[Symbol.dispose]();
    // The timeout and the abort closed it already.
    if (watch.cause === null && reusable && options.pool !== undefined) {
      options.pool.give(host, socket);
    } else if (watch.cause === null) socket.close();
  }
}
