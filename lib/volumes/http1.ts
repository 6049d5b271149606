// A small HTTP/1.1 client for the index's requests to volumes that need the status of the answer
// (HEAD, DELETE, the PUT of a value, whole or streamed) or its body read through at once (a
// directory's listing, a value read for its md5): keep-alive sockets per host, one request at a
// time on each. On the hot path it costs a quarter of what `fetch` does, which matters when every
// PUT, GET and DELETE of the index makes one to three of these, and a walk of the volumes one
// listing per directory; a streamed value reuses sockets too, instead of leaving three in
// TIME_WAIT per PUT.
//
// Kept-alive sockets go stale: the server closes them after its keep-alive timeout (nginx: 75 s),
// or restarts. So an idle socket always has a read outstanding, which ends the moment the server
// closes it or sends anything unasked, and the socket is then dropped instead of reused; sockets
// idle for longer than `idleTimeoutMs` (below the volumes' keep-alive timeout) are closed by us
// first. What is left is the race of a server closing just as a request goes out: a request that
// fails on a reused socket before any byte of an answer came is sent once more on a fresh
// connection. That is safe because such requests are idempotent and their bodies are held in
// memory (HEAD, DELETE, the PUT of a whole value). A streamed request is sent again only if its
// head could not be written; once body bytes have gone, a failure is the caller's to handle.
// What goes on the wire (request heads, chunked framing, answer heads) is lib/volumes/_http1.ts;
// the sockets and the reading of an answer, lib/volumes/http1conn.ts.

import { ConnectionWatch } from "./_watch.ts";
import { AnswerError, ClosedEarly, encodeRequest, type ResponseHead } from "./_http1.ts";
import {
  type BodySink,
  type ClientTls,
  connectTo,
  PooledConn,
  readAnswer,
  writeAll,
} from "./http1conn.ts";

export type { BodySink, ClientTls } from "./http1conn.ts";
export type { ResponseHead } from "./_http1.ts";

/** Idle sockets kept per host. */
const MAX_IDLE_PER_HOST = 64;
/**
 * Idle sockets older than this are closed: well below the volumes' keep-alive timeout (75 s by
 * default, `volume.ts --keepalive`), so that a server closing an idle socket is the exception.
 */
const POOL_IDLE_TIMEOUT_MS = 30_000;

/** Whether a failed request never saw a byte of its answer, so that it may be sent again. */
function unanswered(err: unknown): boolean {
  if (err instanceof ClosedEarly) return err.bytesRead === 0;
  return err instanceof Deno.errors.BrokenPipe || err instanceof Deno.errors.ConnectionReset;
}

export interface PoolRequestOptions {
  body?: Uint8Array;
  /**
   * Bounds the wait for the whole answer; with `sink`, for its head and then for each piece of its
   * body, so that a long body that keeps coming is read to its end.
   */
  timeoutMs: number;
  /** Where the answer's body goes (see readAnswer); read and dropped if absent. */
  sink?: BodySink;
  /** Aborts the request (its volume was found down, say); the socket is closed. */
  signal?: AbortSignal;
  /** Use a new connection, closed afterwards: a health probe must not judge a pooled socket. */
  fresh?: boolean;
  /**
   * With `fresh`: the new connection goes to the pool afterwards (if the answer allows) instead
   * of being closed, when the pool holds no idle socket of the host that has half its idle time
   * left. So that every volume keeps an idle socket, whose closing tells at once that its server
   * died (`onServerClose`), also while the older ones expire.
   */
  park?: boolean;
  /** Told the answer's head (its status, framing, what the server announced). */
  onHead?: (head: ResponseHead) => void;
}

/**
 * A request whose head is sent and whose body the caller writes piece by piece (`write`), then
 * ends with `answer`. On a socket of the pool, which goes back to it after a keep-alive answer.
 */
export class StreamedRequest {
  #pooled: PooledConn;
  #release: () => void;
  /** Closed, or handed back to the pool: no longer this request's. */
  #done = false;

  constructor(pooled: PooledConn, release: () => void) {
    this.#pooled = pooled;
    this.#release = release;
  }

  /** Writes every byte of `bytes` to the request's body. */
  async write(bytes: Uint8Array): Promise<void> {
    await writeAll(this.#pooled.conn, bytes);
  }

  /**
   * The status of the answer, or null if no whole answer came within `timeoutMs` or the socket
   * was closed (`close`, from a watchdog, say). With `reuse` (the caller sent the whole body) the
   * socket goes back to the pool if the answer allows; otherwise it is closed.
   */
  async answer(
    method: string,
    timeoutMs: number,
    options: { reuse: boolean },
  ): Promise<number | null> {
    const timer = setTimeout(() => this.close(), timeoutMs);
    try {
      const head = await readAnswer(this.#pooled, method);
      if (!options.reuse || !head.keepAlive || this.#done) this.close();
      else {
        this.#done = true;
        this.#release();
      }
      return head.status;
    } catch (err) {
      this.close();
      if (
        err instanceof AnswerError || err instanceof Deno.errors.BadResource ||
        err instanceof Deno.errors.Interrupted
      ) {
        return null;
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the request, cutting it off if it is under way; safe at any time, more than once. */
  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#pooled.close();
  }
}

/** Keep-alive sockets per host, for short requests and answers read through at once. */
export class Http1Pool {
  #idle = new Map<string, PooledConn[]>();
  #closed = false;
  #idleTimeoutMs: number;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #tls: ClientTls | undefined;
  #onServerClose: (host: string) => void;

  /**
   * With `tls`, every host is spoken to over TLS. `onServerClose` is told of each idle socket
   * that a server ended: the first sign of a server that died, which closes them all at once.
   */
  constructor(
    options: { idleTimeoutMs?: number; tls?: ClientTls; onServerClose?: (host: string) => void } =
      {},
  ) {
    this.#idleTimeoutMs = options.idleTimeoutMs ?? POOL_IDLE_TIMEOUT_MS;
    this.#tls = options.tls;
    this.#onServerClose = options.onServerClose ?? (() => {});
  }

  /** Idle sockets kept for `host` now (dead and expired ones are never counted). */
  idleCount(host: string): number {
    return this.#idle.get(host)?.length ?? 0;
  }

  /**
   * Sends `method path` (with `body`, if any) to `host` and returns the answer's status, its body
   * given to `options.sink` if there is one. A request that fails on a reused socket before any
   * byte of an answer is sent once more on a fresh connection (never once its sink was given a
   * piece). Throws on a failed connection, a broken answer, an abort, or after `timeoutMs`
   * without a whole answer (a DOMException named TimeoutError).
   */
  async request(host: string, method: string, path: string, options: PoolRequestOptions) {
    const request = encodeRequest(method, host, path, options.body ?? null);
    const deadline = Date.now() + options.timeoutMs;
    let given = false;
    const sink = options.sink && ((piece: Uint8Array) => {
      given = true;
      options.sink!(piece);
    });
    let pooled = options.fresh ? null : this.#take(host);
    while (true) {
      options.signal?.throwIfAborted();
      const conn = pooled ?? new PooledConn(await this.#connect(host, deadline, options));
      try {
        return await this.#exchange(host, conn, request, method, { ...options, sink, deadline });
      } catch (err) {
        if (!conn.reused || given || !unanswered(err)) throw err;
        pooled = null;
      }
    }
  }

  /**
   * Starts a request by sending its `head` (which frames a body: Content-Length or chunked) on an
   * idle socket of `host`, or a new one; the caller writes the body. `timeoutMs` bounds the
   * connect. A head that cannot be written on a reused socket is sent on a fresh one.
   */
  async open(host: string, head: Uint8Array, options: { timeoutMs: number }) {
    const deadline = Date.now() + options.timeoutMs;
    let pooled = this.#take(host);
    while (true) {
      const conn = pooled ?? new PooledConn(await this.#connect(host, deadline, {}));
      try {
        await writeAll(conn.conn, head);
        return new StreamedRequest(conn, () => this.#release(host, conn));
      } catch (err) {
        conn.close();
        if (!conn.reused || !unanswered(err)) throw err;
        pooled = null;
      }
    }
  }

  async #exchange(
    host: string,
    conn: PooledConn,
    request: Uint8Array,
    method: string,
    options: PoolRequestOptions & { deadline: number },
  ): Promise<number> {
    using watch = new ConnectionWatch(conn, {
      deadlineMs: options.deadline,
      signal: options.signal,
    });
    // With a sink, each piece of the body moves the deadline on.
    const sink = options.sink;
    const rearmed = sink && ((piece: Uint8Array) => {
      watch.moveTo(Date.now() + options.timeoutMs);
      sink(piece);
    });
    try {
      await writeAll(conn.conn, request);
      const head = await readAnswer(conn, method, rearmed);
      options.onHead?.(head);
      const keep = !options.fresh || (options.park === true && !this.#hasYoungIdle(host));
      if (head.keepAlive && keep) this.#release(host, conn);
      else conn.close();
      return head.status;
    } catch (err) {
      conn.close();
      throw watch.failure(err);
    }
  }

  async #connect(
    host: string,
    deadline: number,
    options: { signal?: AbortSignal },
  ): Promise<Deno.Conn> {
    const timeout = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    return await connectTo(host, { signal, tls: this.#tls });
  }

  /** Whether `host` has an idle socket with at least half of its idle time left. */
  #hasYoungIdle(host: string): boolean {
    const newest = this.#idle.get(host)?.at(-1);
    return newest !== undefined && Date.now() - newest.idleSinceMs < this.#idleTimeoutMs / 2;
  }

  /** The most recently used live socket of `host`, or null; expired ones are closed. */
  #take(host: string): PooledConn | null {
    const idle = this.#idle.get(host);
    const now = Date.now();
    while (idle !== undefined && idle.length > 0) {
      const conn = idle.pop()!;
      if (conn.dead) continue;
      if (now - conn.idleSinceMs >= this.#idleTimeoutMs) {
        conn.close();
        continue;
      }
      conn.take();
      return conn;
    }
    return null;
  }

  #release(host: string, conn: PooledConn): void {
    const idle = this.#idle.get(host) ?? [];
    if (this.#closed || idle.length >= MAX_IDLE_PER_HOST) {
      conn.close();
      return;
    }
    conn.park((byServer) => {
      const list = this.#idle.get(host);
      const i = list?.indexOf(conn) ?? -1;
      if (i !== -1) list!.splice(i, 1);
      if (byServer && !this.#closed) this.#onServerClose(host);
    });
    idle.push(conn);
    this.#idle.set(host, idle);
    this.#sweepLater();
  }

  /** Closes expired idle sockets from time to time, so that none lingers past its timeout. */
  #sweepLater(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const [host, idle] of this.#idle) {
        const keep = idle.filter((conn) => {
          if (now - conn.idleSinceMs < this.#idleTimeoutMs) return true;
          conn.close();
          return false;
        });
        if (keep.length > 0) this.#idle.set(host, keep);
        else this.#idle.delete(host);
      }
      if (this.#idle.size === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, Math.max(100, this.#idleTimeoutMs / 2));
    Deno.unrefTimer(this.#sweeper);
  }

  /** Closes every idle socket; requests in flight close theirs when they end. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const conns of this.#idle.values()) for (const conn of conns) conn.close();
    this.#idle.clear();
  }
}
