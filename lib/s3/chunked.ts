// A streaming decoder of `Content-Encoding: aws-chunked` bodies, the framing S3 clients use to
// send a body whose hash they cannot compute before sending (SDKs, for uploads with a checksum
// trailer) or that they sign piece by piece:
//
//   <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//   [<trailer name>:<value>\r\n ...]\r\n
//
// With STREAMING-AWS4-HMAC-SHA256-PAYLOAD every chunk's signature chains from the previous one
// (the first from the request's seed signature, lib/s3/sigv4.ts); the -TRAILER form adds
// `x-amz-trailer-signature` over the trailers; STREAMING-UNSIGNED-PAYLOAD-TRAILER has no signatures
// and a checksum trailer. The decoder hands on the payload as it arrives, as subarrays of what it
// read (never the whole body), and checks signatures, checksums (trailers and
// `x-amz-checksum-*` headers), framing and the decoded length; any failure errors the stream
// before it closes, so a consumer must commit a value only on a clean end. Pure but for the
// stream; tested in tests/unit/s3_chunked_test.ts.

import { createHash, type Hash } from "node:crypto";
import {
  badDigest,
  type Checksum,
  type ChecksumAlgorithm,
  checksumHeaderAlgorithm,
  type ExpectedChecksum,
  newChecksum,
  validChecksumValue,
} from "./checksum.ts";
import { S3Error } from "./error.ts";
import type { ChunkSigning } from "./sigv4.ts";
import { EMPTY_SHA256, sha256Hex, sign, signaturesEqual } from "./sigv4canonical.ts";
import {
  STREAMING_PAYLOAD,
  STREAMING_PAYLOAD_TRAILER,
  STREAMING_UNSIGNED_PAYLOAD_TRAILER,
} from "./sigv4parse.ts";

/** The longest chunk header or trailer line, CRLF included; real ones are under 100 bytes. */
const MAX_CHUNK_LINE_BYTES = 4096;
/** The most trailer lines a body may end with (the trailer signature included). */
const MAX_TRAILERS = 8;
/** The trailer that signs the others in STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER. */
export const TRAILER_SIGNATURE = "x-amz-trailer-signature";

/** At most 12 hex digits: 256 TiB, well past any value, and exact in a JS number. */
const CHUNK_SIZE_PATTERN = /^[0-9a-fA-F]{1,12}$/;
const CHUNK_SIGNATURE_PATTERN = /^chunk-signature=([0-9a-f]{64})$/;
const LF = 0x0a;
const CR = 0x0d;
const latin1 = new TextDecoder("latin1");

export interface DecodeOptions {
  /** The request's x-amz-content-sha256: one of the three STREAMING-* forms. */
  contentSha256: string;
  /** From verifySigV4; needed for the signed forms. */
  signing?: ChunkSigning;
  /** x-amz-decoded-content-length, when the request gives it: the payload must be this long. */
  decodedLengthBytes?: number;
  /** The trailers x-amz-trailer announces (`parseTrailerNames`); no others are taken. */
  trailerNames?: string[];
  /** Checksums from x-amz-checksum-* request headers (`expectedChecksums`), checked too. */
  expected?: ExpectedChecksum[];
}

function incomplete(message: string): S3Error {
  return new S3Error(400, "IncompleteBody", message);
}

function malformedTrailer(message: string): S3Error {
  return new S3Error(400, "MalformedTrailerError", message);
}

function signatureMismatch(what: string): S3Error {
  return new S3Error(
    403,
    "SignatureDoesNotMatch",
    `The ${what} signature we calculated does not match the signature you provided.`,
  );
}

/**
 * The trailer names of an x-amz-trailer header (`x-amz-checksum-crc32`, comma-separated), lower
 * case. S3 takes checksum trailers only; anything else is an InvalidRequest.
 */
export function parseTrailerNames(header: string | null): string[] {
  if (header === null || header.trim() === "") return [];
  const names = header.split(",").map((name) => name.trim().toLowerCase());
  if (
    names.length > MAX_TRAILERS - 1 || names.some((name) => checksumHeaderAlgorithm(name) === null)
  ) {
    throw new S3Error(
      400,
      "InvalidRequest",
      "The value specified in the x-amz-trailer header is not supported",
    );
  }
  return names;
}

type State = "header" | "data" | "dataEnd" | "trailer" | "done";

/** The decoder's state between reads: a chunk header or trailer line may end in any read. */
class AwsChunkedDecoder implements Transformer<Uint8Array, Uint8Array> {
  #signing: ChunkSigning | null;
  #trailerMode: boolean;
  #decodedLengthBytes: number | undefined;
  #trailerNames: string[];
  #checksums = new Map<ChecksumAlgorithm, Checksum>();
  #expected: ExpectedChecksum[];

  #state: State = "header";
  #line = new Uint8Array(MAX_CHUNK_LINE_BYTES);
  #lineLength = 0;
  /** Payload bytes of the current chunk not yet read. */
  #remaining = 0;
  /** Bytes of the CRLF after a chunk's data seen so far. */
  #crlfSeen = 0;
  #chunkHash: Hash | null = null;
  #chunkSignature = "";
  #previousSignature = "";
  #decodedBytes = 0;
  #trailers: [string, string][] = [];

  constructor(options: DecodeOptions) {
    const signed = options.contentSha256 === STREAMING_PAYLOAD ||
      options.contentSha256 === STREAMING_PAYLOAD_TRAILER;
    if (!signed && options.contentSha256 !== STREAMING_UNSIGNED_PAYLOAD_TRAILER) {
      throw new S3Error(
        400,
        "InvalidArgument",
        `x-amz-content-sha256 ${options.contentSha256} is not an aws-chunked payload`,
      );
    }
    if (signed && options.signing === undefined) {
      throw new TypeError(`decodeAwsChunked: ${options.contentSha256} needs the request's signing`);
    }
    this.#signing = signed ? options.signing! : null;
    this.#previousSignature = this.#signing?.seedSignature ?? "";
    this.#trailerMode = options.contentSha256 !== STREAMING_PAYLOAD;
    this.#decodedLengthBytes = options.decodedLengthBytes;
    this.#trailerNames = parseTrailerNames((options.trailerNames ?? []).join(","));
    this.#expected = options.expected ?? [];
    const algorithms = [
      ...this.#trailerNames.map(checksumHeaderAlgorithm),
      ...this.#expected.map((e) => e.algorithm),
    ];
    for (const algorithm of algorithms) {
      if (algorithm !== null && !this.#checksums.has(algorithm)) {
        this.#checksums.set(algorithm, newChecksum(algorithm));
      }
    }
  }

  transform(piece: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>): void {
    let i = 0;
    while (i < piece.length) {
      switch (this.#state) {
        case "data": {
          const end = Math.min(piece.length, i + this.#remaining);
          const payload = piece.subarray(i, end);
          this.#chunkHash?.update(payload);
          for (const checksum of this.#checksums.values()) checksum.update(payload);
          controller.enqueue(payload);
          this.#remaining -= end - i;
          i = end;
          if (this.#remaining === 0) this.#state = "dataEnd";
          break;
        }
        case "dataEnd": {
          const want = this.#crlfSeen === 0 ? CR : LF;
          if (piece[i] !== want) {
            throw incomplete("An aws-chunked chunk's data is not followed by CRLF.");
          }
          i++;
          if (++this.#crlfSeen === 2) {
            this.#crlfSeen = 0;
            this.#endChunk();
            this.#state = "header";
          }
          break;
        }
        case "header":
        case "trailer": {
          const lf = piece.indexOf(LF, i);
          const end = lf < 0 ? piece.length : lf + 1;
          if (this.#lineLength + (end - i) > MAX_CHUNK_LINE_BYTES) {
            throw incomplete(`An aws-chunked line is longer than ${MAX_CHUNK_LINE_BYTES} bytes.`);
          }
          this.#line.set(piece.subarray(i, end), this.#lineLength);
          this.#lineLength += end - i;
          i = end;
          if (lf >= 0) {
            const line = this.#takeLine();
            if (this.#state === "header") this.#onHeader(line);
            else this.#onTrailer(line);
          }
          break;
        }
        case "done":
          throw incomplete("The request body goes on after the end of its aws-chunked encoding.");
      }
    }
  }

  flush(): void {
    // AWS's JavaScript SDK ends a body without trailers right after `0\r\n`, leaving out the
    // empty line; the payload is whole by then, so that end is taken as the empty line.
    if (this.#state === "trailer" && this.#trailers.length === 0 && this.#lineLength === 0) {
      this.#state = "done";
      this.#finish();
    }
    if (this.#state !== "done") {
      throw incomplete("The request body ended in the middle of a chunk.");
    }
  }

  /** The line read so far, without its CRLF. */
  #takeLine(): string {
    const length = this.#lineLength;
    this.#lineLength = 0;
    if (length < 2 || this.#line[length - 2] !== CR) {
      throw incomplete("An aws-chunked line does not end with CRLF.");
    }
    return latin1.decode(this.#line.subarray(0, length - 2));
  }

  #onHeader(line: string): void {
    const [sizeText, ...extensions] = line.split(";");
    if (!CHUNK_SIZE_PATTERN.test(sizeText)) {
      throw incomplete("An aws-chunked chunk header does not start with a hex size.");
    }
    const size = parseInt(sizeText, 16);
    if (this.#signing !== null) {
      const match = extensions.length === 1 ? CHUNK_SIGNATURE_PATTERN.exec(extensions[0]) : null;
      if (match === null) throw incomplete("An aws-chunked chunk header has no chunk-signature.");
      this.#chunkSignature = match[1];
      this.#chunkHash = createHash("sha256");
    }
    this.#decodedBytes += size;
    if (this.#decodedLengthBytes !== undefined && this.#decodedBytes > this.#decodedLengthBytes) {
      throw incomplete(
        `The aws-chunked body holds more than the ${this.#decodedLengthBytes} bytes of ` +
          "x-amz-decoded-content-length.",
      );
    }
    if (size > 0) {
      this.#remaining = size;
      this.#state = "data";
      return;
    }
    this.#endChunk();
    this.#state = "trailer";
  }

  /** Checks the signature of the chunk just read, which the next one's chains from. */
  #endChunk(): void {
    if (this.#signing === null) return;
    const { signingKey, amzDate, scope } = this.#signing;
    const chunkHash = this.#chunkHash!.digest("hex");
    const toSign = `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${this.#previousSignature}\n` +
      `${EMPTY_SHA256}\n${chunkHash}`;
    if (!signaturesEqual(sign(signingKey, toSign), this.#chunkSignature)) {
      throw signatureMismatch("chunk");
    }
    this.#previousSignature = this.#chunkSignature;
    this.#chunkHash = null;
  }

  #onTrailer(line: string): void {
    if (line !== "") {
      if (!this.#trailerMode) {
        throw malformedTrailer(`x-amz-content-sha256 ${STREAMING_PAYLOAD} has no trailers.`);
      }
      const colon = line.indexOf(":");
      if (colon <= 0 || this.#trailers.length >= MAX_TRAILERS) {
        throw malformedTrailer(
          "The request contained trailing data that was not well-formed or did not conform to " +
            "our published schema.",
        );
      }
      this.#trailers.push([
        line.slice(0, colon).trim().toLowerCase(),
        line.slice(colon + 1).trim(),
      ]);
      return;
    }
    this.#state = "done";
    this.#finish();
  }

  /** After the last line: trailers as announced and signed, the length, and every checksum. */
  #finish(): void {
    const received = new Map<string, string>();
    for (const [name, value] of this.#trailers) {
      if (name === TRAILER_SIGNATURE) continue;
      if (!this.#trailerNames.includes(name) || received.has(name)) {
        throw malformedTrailer(`The trailer ${name} was not announced in x-amz-trailer.`);
      }
      received.set(name, value);
    }
    for (const name of this.#trailerNames) {
      if (!received.has(name)) throw malformedTrailer(`The body ends without the trailer ${name}.`);
    }
    if (this.#signing !== null && this.#trailerMode) this.#checkTrailerSignature();
    if (this.#decodedLengthBytes !== undefined && this.#decodedBytes !== this.#decodedLengthBytes) {
      throw incomplete(
        `The aws-chunked body holds ${this.#decodedBytes} bytes, not the ` +
          `${this.#decodedLengthBytes} of x-amz-decoded-content-length.`,
      );
    }
    const expected = [...this.#expected];
    for (const [name, value] of received) {
      const algorithm = checksumHeaderAlgorithm(name)!;
      if (!validChecksumValue(algorithm, value)) {
        throw new S3Error(
          400,
          "InvalidRequest",
          `Value for ${name} trailing header is invalid.`,
        );
      }
      expected.push({ algorithm, base64: value });
    }
    for (const { algorithm, base64 } of expected) {
      if (this.#checksums.get(algorithm)!.digestBase64() !== base64) throw badDigest(algorithm);
    }
  }

  #checkTrailerSignature(): void {
    const { signingKey, amzDate, scope } = this.#signing!;
    const signatures = this.#trailers.filter(([name]) => name === TRAILER_SIGNATURE);
    if (signatures.length !== 1) throw signatureMismatch("trailer");
    const canonical = this.#trailers.filter(([name]) => name !== TRAILER_SIGNATURE)
      .map(([name, value]) => `${name}:${value}\n`).join("");
    const toSign = `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${this.#previousSignature}\n` +
      sha256Hex(canonical);
    if (!signaturesEqual(sign(signingKey, toSign), signatures[0][1])) {
      throw signatureMismatch("trailer");
    }
  }
}

/**
 * The payload of an aws-chunked body, as a stream that errors (with an S3Error) before it
 * closes when the body's framing, signatures, length or checksums are wrong. Throws an
 * S3Error at once when `options.contentSha256` is not an aws-chunked form.
 */
export function decodeAwsChunked(
  body: ReadableStream<Uint8Array>,
  options: DecodeOptions,
): ReadableStream<Uint8Array> {
  return body.pipeThrough(new TransformStream(new AwsChunkedDecoder(options)));
}
