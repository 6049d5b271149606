// HTTP/1.1 on the wire, as the index's requests to volumes speak it (lib/volumes/http1.ts): the
// request heads it renders, chunked framing, and the answer heads it parses. Pure but for
// readResponseHead, which reads through a function it is given; golden-tested in
// tests/unit/http1_test.ts.

import { FROM_INDEX_HEADER, MISSES_HEADER } from "./protocol.ts";

/** The head of an answer is at most this long. */
export const MAX_HEAD_BYTES = 16 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The header line of every request: the index's requests see a volume's 404s as they are. */
const FROM_INDEX_LINE = `${FROM_INDEX_HEADER}: 1\r\n`;
const MISSES_NAME = MISSES_HEADER.toLowerCase();

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
  /** The server announced that it sends misses back to an index (MISSES_HEADER); absent if not. */
  sendsMisses?: true;
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
  const head = encoder.encode(
    `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${FROM_INDEX_LINE}${length}\r\n`,
  );
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
  let sendsMisses = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === "content-length" && /^\d+$/.test(value)) contentLength = Number(value);
    else if (name === "transfer-encoding") chunked = value.includes("chunked");
    else if (name === MISSES_NAME) sendsMisses = true;
    else if (name === "connection") {
      if (value.includes("close")) keepAlive = false;
      else if (value.includes("keep-alive")) keepAlive = true;
    }
  }
  const head: ResponseHead = { status: Number(status[2]), contentLength, chunked, keepAlive };
  if (sendsMisses) head.sendsMisses = true;
  return head;
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

/** A chunk-size line or a trailer line of a chunked body is at most this long. */
const MAX_CHUNK_LINE_BYTES = 4096;
/** Hex digits of a chunk's size at most: 2^52 bytes, within a double's exact integers. */
const MAX_CHUNK_SIZE_DIGITS = 13;

/**
 * Decodes a chunked body (RFC 9112, 7.1) piece by piece as it arrives: `feed` hands each piece of
 * data in the bytes it is given to `onData` (views into them, valid during the call) and returns
 * how many of the bytes were the body's: fewer than given once it ended (`done`), the rest being
 * bytes the server sent past it. Chunk extensions and trailers are read and dropped. Throws
 * AnswerError on a malformed body. Pure.
 */
export class ChunkedDecoder {
  done = false;
  #state: "size" | "data" | "data-end" | "trailer" = "size";
  /** The line read so far (a chunk's size or a trailer), without its line end. */
  #line = "";
  /** Bytes of the current chunk's data still to come. */
  #left = 0;

  constructor(readonly onData: (piece: Uint8Array) => void) {}

  feed(bytes: Uint8Array): number {
    let at = 0;
    while (at < bytes.length && !this.done) {
      if (this.#state === "data") {
        const take = Math.min(this.#left, bytes.length - at);
        this.onData(bytes.subarray(at, at + take));
        at += take;
        this.#left -= take;
        if (this.#left === 0) this.#state = "data-end";
        continue;
      }
      const lf = bytes.indexOf(10, at);
      const end = lf === -1 ? bytes.length : lf;
      if (this.#line.length + (end - at) > MAX_CHUNK_LINE_BYTES) {
        throw new AnswerError("chunked body: line too long");
      }
      // The bytes of a line are ASCII when it is well formed; a line that is not fails below.
      this.#line += String.fromCharCode(...bytes.subarray(at, end));
      at = end;
      if (lf === -1) break;
      at++;
      const line = this.#line.endsWith("\r") ? this.#line.slice(0, -1) : this.#line;
      this.#line = "";
      this.#endOfLine(line);
    }
    return at;
  }

  #endOfLine(line: string): void {
    if (this.#state === "data-end") {
      if (line !== "") throw new AnswerError("chunked body: no line end after a chunk's data");
      this.#state = "size";
    } else if (this.#state === "trailer") {
      if (line === "") this.done = true;
    } else {
      const size = line.match(/^([0-9a-fA-F]+)[ \t]*(?:;.*)?$/);
      if (size === null || size[1].length > MAX_CHUNK_SIZE_DIGITS) {
        throw new AnswerError(`chunked body: not a chunk size: ${JSON.stringify(line)}`);
      }
      this.#left = parseInt(size[1], 16);
      this.#state = this.#left === 0 ? "trailer" : "data";
    }
  }
}
