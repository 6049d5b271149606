// HTTP/1.1 on the wire, as the index's requests to volumes speak it (lib/volumes/http1.ts): the
// request heads it renders, chunked framing, and the answer heads it parses. Pure but for
// readResponseHead, which reads through a function it is given; golden-tested in
// tests/unit/http1_test.ts.

/** The head of an answer is at most this long. */
export const MAX_HEAD_BYTES = 16 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The end of a chunk's bytes in a chunked body. */
export const CHUNK_END = encoder.encode("\r\n");
/** The last chunk of a chunked body, with no trailers. */
export const LAST_CHUNK = encoder.encode("0\r\n\r\n");

/** What the client needs of an answer's head. */
export interface ResponseHead {
  status: number;
  /** Bytes of body that follow the head (0 when none may follow). */
  contentLength: number | null;
  chunked: boolean;
  /** Whether the server keeps the connection open after this answer. */
  keepAlive: boolean;
}

/** An answer that is not one: cut short, too long a head, or not HTTP/1.x. */
export class AnswerError extends Error {
  override name = "AnswerError";
}

/** The socket closed before a whole answer came; `bytesRead` of the answer had arrived. */
export class ClosedEarly extends AnswerError {
  override name = "ClosedEarly";
  constructor(message: string, readonly bytesRead: number) {
    super(message);
  }
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
export function encodeRequest(
  method: string,
  host: string,
  path: string,
  body: Uint8Array | null,
): Uint8Array {
  const length = body === null ? "" : `Content-Length: ${body.length}\r\n`;
  const head = encoder.encode(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${length}\r\n`);
  if (body === null || body.length === 0) return head;
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/**
 * The head of a request whose body follows piece by piece: framed by Content-Length when its
 * size is known, chunked otherwise.
 */
export function encodeStreamHead(
  method: string,
  host: string,
  path: string,
  sizeBytes: number | undefined,
): Uint8Array {
  const framing = sizeBytes === undefined
    ? "Transfer-Encoding: chunked"
    : `Content-Length: ${sizeBytes}`;
  return encoder.encode(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${framing}\r\n\r\n`);
}

/** The line that starts a chunk of `length` bytes in a chunked body. */
export function chunkHead(length: number): Uint8Array {
  return encoder.encode(`${length.toString(16)}\r\n`);
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

/**
 * Reads an answer's head into `buffer` (which bounds its length) with `read`, and parses it.
 * Returns the head, where its body starts in `buffer` and how many bytes were read in all. Throws
 * AnswerError if the socket ends first, the head does not fit, or it is not HTTP/1.x; the
 * caller's timer closes the socket to bound the wait.
 */
export async function readResponseHead(
  read: (into: Uint8Array) => Promise<number | null>,
  buffer: Uint8Array,
): Promise<{ head: ResponseHead; bodyStart: number; length: number }> {
  let length = 0;
  let end = -1;
  while (end === -1) {
    if (length === buffer.length) throw new AnswerError("answer head too long");
    const n = await read(buffer.subarray(length));
    if (n === null) throw new ClosedEarly("connection closed before an answer", length);
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
  if (head === null) throw new AnswerError("not an HTTP/1.x answer");
  return { head, bodyStart: end + 4, length };
}
