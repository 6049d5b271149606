// A small HTTP/1.1 client for the index's short requests to volumes (HEAD, DELETE, the PUT of a
// small value): keep-alive sockets per host, one request at a time on each, only the status of
// the answer kept. On the hot path it costs a quarter of what `fetch` does, which matters when
// every PUT, GET and DELETE of the index makes one to three of these.

/** The head of an answer is at most this long. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Idle sockets kept per host. */
const MAX_IDLE_PER_HOST = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What the client needs of an answer's head. */
export interface ResponseHead {
  status: number;
  /** Bytes of body that follow the head (0 when none may follow). */
  contentLength: number | null;
  chunked: boolean;
  /** Whether the server keeps the connection open after this answer. */
  keepAlive: boolean;
}

/**
 * Parses an answer's head (status line and headers, without the blank line), or returns null if
 * it is not HTTP/1.x. Pure.
 */
export function parseResponseHead(text: string): ResponseHead | null {
  const lines = text.split("\r\n");
  const status = lines[0].match(/^HTTP\/1\.([01]) (\d{3})(?: |$)/);
  if (!status) return null;
  let contentLength: number | null = null;
  let chunked = false;
  let keepAlive = status[1] === "1";
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === "content-length" && /^\d+$/.test(value)) contentLength = Number(value);
    else if (name === "transfer-encoding") chunked = value.includes("chunked");
    else if (name === "connection") {
      if (value.includes("close")) keepAlive = false;
      else if (value.includes("keep-alive")) keepAlive = true;
    }
  }
  return { status: Number(status[2]), contentLength, chunked, keepAlive };
}

/** The `host:port` split for Deno.connect; IPv6 literals may come in brackets. */
export function splitHost(host: string): { hostname: string; port: number } {
  const colon = host.lastIndexOf(":");
  return {
    hostname: host.slice(0, colon).replace(/^\[|\]$/g, ""),
    port: Number(host.slice(colon + 1)),
  };
}

/** The request's head and body, in one buffer so that it goes out in one write. */
function encodeRequest(method: string, host: string, path: string, body: Uint8Array | null) {
  const length = body === null ? "" : `Content-Length: ${body.length}\r\n`;
  const head = encoder.encode(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${length}\r\n`);
  if (body === null || body.length === 0) return head;
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/** The socket closed before a whole answer came. */
class ClosedEarly extends Error {
  override name = "ClosedEarly";
}

/**
 * Reads one answer to a request and returns its head, its body read and dropped. Throws
 * ClosedEarly if the socket ends first; the caller's timer closes the socket to bound it.
 */
async function readAnswer(conn: Deno.Conn, method: string): Promise<ResponseHead> {
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let length = 0;
  let end = -1;
  while (end === -1) {
    if (length === buffer.length) throw new Error("answer head too long");
    const n = await conn.read(buffer.subarray(length));
    if (n === null) throw new ClosedEarly("connection closed before an answer");
    const from = Math.max(0, length - 3);
    length += n;
    for (let i = from; i + 3 < length; i++) {
      if (
        buffer[i] === 13 && buffer[i + 1] === 10 && buffer[i + 2] === 13 && buffer[i + 3] === 10
      ) {
        end = i;
        break;
      }
    }
  }
  const head = parseResponseHead(decoder.decode(buffer.subarray(0, end)));
  if (head === null) throw new Error("not an HTTP/1.x answer");
  const bodyless = method === "HEAD" || head.status === 204 || head.status === 304 ||
    head.status < 200;
  if (bodyless) return head;
  if (head.chunked || head.contentLength === null) return { ...head, keepAlive: false };
  let remaining = head.contentLength - (length - end - 4);
  while (remaining > 0) {
    const n = await conn.read(buffer);
    if (n === null) throw new ClosedEarly("connection closed in the answer's body");
    remaining -= n;
  }
  if (remaining < 0) return { ...head, keepAlive: false };
  return head;
}

/** Keep-alive sockets per host, for requests whose answer's status is all that matters. */
export class Http1Pool {
  #idle = new Map<string, Deno.Conn[]>();
  #closed = false;

  /**
   * Sends `method path` (with `body`, if any) to `host` and returns the answer's status. A socket
   * taken from the pool that turns out closed by the server is replaced once. Throws on a failed
   * connection, a closed socket or after `timeoutMs` without a whole answer.
   */
  async request(
    host: string,
    method: string,
    path: string,
    options: { body?: Uint8Array; timeoutMs: number },
  ): Promise<number> {
    const request = encodeRequest(method, host, path, options.body ?? null);
    const deadline = Date.now() + options.timeoutMs;
    for (let attempt = 0;; attempt++) {
      const pooled = this.#idle.get(host)?.pop();
      const conn = pooled ?? await this.#connect(host, deadline);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        conn.close();
      }, Math.max(1, deadline - Date.now()));
      try {
        await writeAll(conn, request);
        const head = await readAnswer(conn, method);
        clearTimeout(timer);
        if (head.keepAlive) this.#release(host, conn);
        else conn.close();
        return head.status;
      } catch (err) {
        clearTimeout(timer);
        if (!timedOut) conn.close();
        if (timedOut) throw new DOMException("timed out", "TimeoutError");
        // A pooled socket may have been closed by the server while idle: try a fresh one.
        const stale = pooled !== undefined && attempt === 0 &&
          (err instanceof ClosedEarly || err instanceof Deno.errors.BrokenPipe ||
            err instanceof Deno.errors.ConnectionReset);
        if (!stale) throw err;
      }
    }
  }

  async #connect(host: string, deadline: number): Promise<Deno.Conn> {
    const { hostname, port } = splitHost(host);
    return await Deno.connect({
      hostname,
      port,
      signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
    });
  }

  #release(host: string, conn: Deno.Conn): void {
    const idle = this.#idle.get(host) ?? [];
    if (this.#closed || idle.length >= MAX_IDLE_PER_HOST) {
      conn.close();
      return;
    }
    idle.push(conn);
    this.#idle.set(host, idle);
  }

  /** Closes every idle socket; requests in flight close theirs when they end. */
  close(): void {
    this.#closed = true;
    for (const conns of this.#idle.values()) for (const conn of conns) conn.close();
    this.#idle.clear();
  }
}
