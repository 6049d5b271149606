// The sockets of the index's HTTP/1.1 client to volumes (lib/volumes/http1.ts): connecting (over
// TLS too), writing whole, and reading one answer on a socket: its head, and its body either
// dropped or handed piece by piece to a sink (a listing, a value read for its md5), framed by
// Content-Length, chunked, or by the end of the connection.

import {
  ChunkedDecoder,
  ClosedEarly,
  MAX_HEAD_BYTES,
  readResponseHead,
  type ResponseHead,
  splitHost,
} from "./_http1.ts";

/** TLS to the servers (volumes that serve HTTPS): the extra roots trusted, if any. */
export interface ClientTls {
  caCerts?: string[];
}

/**
 * Connects to `host:port`, over TLS when `tls` is given (the server's certificate is verified
 * against its name). `signal` bounds the connect and the TLS handshake.
 */
export async function connectTo(
  host: string,
  options: { signal?: AbortSignal; tls?: ClientTls },
): Promise<Deno.Conn> {
  const { hostname, port } = splitHost(host);
  const signal = options.signal;
  const conn = await Deno.connect({ hostname, port, signal });
  if (options.tls === undefined) return conn;
  const tls = await Deno.startTls(conn, { hostname, caCerts: options.tls.caCerts });
  const onAbort = () => tls.close();
  signal?.addEventListener("abort", onAbort);
  try {
    signal?.throwIfAborted();
    await tls.handshake();
  } catch (err) {
    try {
      tls.close();
    } catch {
      // Closed by the abort already.
    }
    throw signal?.aborted ? signal.reason : err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  return tls;
}

/** Writes every byte; Deno's `write` may take fewer than it is given. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/**
 * A socket of the pool with its own buffer. While idle it has one read outstanding (`watch`):
 * that read ends when the server closes the socket or sends unasked bytes, and marks it dead;
 * when the socket is taken for a request, the same read receives the first bytes of the answer.
 */
export class PooledConn {
  readonly buffer = new Uint8Array(MAX_HEAD_BYTES);
  idleSinceMs = 0;
  /** The server closed the socket, or sent something unasked: never to be reused. */
  dead = false;
  /** Taken from the pool at least once: a failure on it may be staleness, not the server. */
  reused = false;
  #watching: Promise<number | null> | null = null;
  #idle = false;
  #closed = false;

  constructor(readonly conn: Deno.Conn) {}

  /**
   * Parks the socket in the pool; `onDead` runs if it ends meanwhile, told whether the server
   * ended it (closed it, reset it, or sent something unasked) rather than the pool.
   */
  park(onDead: (byServer: boolean) => void): void {
    this.#idle = true;
    this.reused = true;
    this.idleSinceMs = Date.now();
    const watching = this.conn.read(this.buffer);
    this.#watching = watching;
    const settle = () => {
      if (!this.#idle || this.#watching !== watching) return;
      const byServer = !this.#closed;
      this.dead = true;
      this.close();
      onDead(byServer);
    };
    watching.then(settle, settle);
  }

  /** Takes the socket out of the pool for a request. */
  take(): void {
    this.#idle = false;
  }

  /** Reads into `into`, which starts at offset 0 of `buffer` on the first read of an answer. */
  read(into: Uint8Array): Promise<number | null> {
    const watching = this.#watching;
    if (watching === null) return this.conn.read(into);
    this.#watching = null;
    return watching;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.conn.close();
  }
}

/** Where the body of an answer goes, piece by piece: views into a buffer, valid during the call. */
export type BodySink = (piece: Uint8Array) => void;

const CLOSED_IN_BODY = "connection closed in the answer's body";

/**
 * Reads one answer to a request and returns its head. Its body goes to `sink` piece by piece if
 * one is given; else it is read and dropped, or, when only the end of the connection or chunked
 * framing would tell where it ends, left unread (the socket is then not reused). Bytes past the
 * answer leave the socket not to be reused either. Throws ClosedEarly if the socket ends before
 * the answer does, AnswerError for a malformed chunked body, or what `sink` throws; the caller's
 * timer closes the socket to bound the wait.
 */
export async function readAnswer(
  pooled: PooledConn,
  method: string,
  sink?: BodySink,
): Promise<ResponseHead> {
  const buffer = pooled.buffer;
  const { head, bodyStart, length } = await readResponseHead((into) => pooled.read(into), buffer);
  const bodyless = method === "HEAD" || head.status === 204 || head.status === 304 ||
    head.status < 200;
  if (bodyless) return length === bodyStart ? head : { ...head, keepAlive: false };
  const unreused = { ...head, keepAlive: false };
  const read = async (): Promise<Uint8Array | null> => {
    const n = await pooled.read(buffer);
    return n === null ? null : buffer.subarray(0, n);
  };
  let piece: Uint8Array | null = buffer.subarray(bodyStart, length);
  if (sink === undefined && (head.chunked || head.contentLength === null)) return unreused;
  if (head.chunked) {
    const decoder = new ChunkedDecoder(sink!);
    while (true) {
      const used = decoder.feed(piece);
      if (decoder.done) return used < piece.length ? unreused : head;
      piece = await read();
      if (piece === null) throw new ClosedEarly(CLOSED_IN_BODY, length);
    }
  }
  if (head.contentLength === null) {
    for (; piece !== null; piece = await read()) if (piece.length > 0) sink!(piece);
    return unreused;
  }
  let remaining = head.contentLength;
  while (true) {
    const take = Math.min(remaining, piece.length);
    if (take > 0) sink?.(piece.subarray(0, take));
    remaining -= take;
    if (piece.length > take) return unreused;
    if (remaining === 0) return head;
    piece = await read();
    if (piece === null) throw new ClosedEarly(CLOSED_IN_BODY, length);
  }
}
