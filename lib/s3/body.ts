// The bodies of S3 requests, decoded and checked as they stream (docs/s3.md): aws-chunked framing
// and chunk signatures, the signed sha256, `x-amz-checksum-*` and Content-MD5. A check that fails
// errors the stream before it ends, so that no write commits a body that is not the one sent; the
// S3Error it failed with is kept, for the answer. Small XML bodies are read whole, bounded.

import { Md5 } from "../md5.ts";
import type { Caller } from "./auth.ts";
import { checksumVerifier, expectedChecksums } from "./checksum.ts";
import { decodeAwsChunked, parseTrailerNames, TRAILER_SIGNATURE } from "./chunked.ts";
import { S3Error } from "./error.ts";
import { sha256Verifier } from "./sigv4.ts";
import {
  isSha256Payload,
  STREAMING_PAYLOAD,
  STREAMING_PAYLOAD_TRAILER,
  STREAMING_UNSIGNED_PAYLOAD_TRAILER,
} from "./sigv4parse.ts";
import { MAX_XML_BODY_BYTES, parseXml } from "./xml.ts";

/** A request's payload as it streams, checked, its length if known, and why it failed if it did. */
export interface DecodedBody {
  body: ReadableStream<Uint8Array>;
  sizeBytes?: number;
  failure: () => S3Error | null;
}

/** The text of a body read as `chunks` of `total` bytes in all. */
function textOf(chunks: Uint8Array[], total: number): string {
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** A pass-through stream that errors with BadDigest if the body's md5 is not Content-MD5's. */
function md5Verifier(contentMd5: string): TransformStream<Uint8Array, Uint8Array> {
  let expected: string;
  try {
    const bytes = Uint8Array.fromBase64(contentMd5.trim());
    if (bytes.length !== 16) throw new Error("not 16 bytes");
    expected = bytes.toHex();
  } catch {
    throw new S3Error(400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
  }
  const hash = new Md5();
  return new TransformStream({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      if (hash.hex() !== expected) {
        throw new S3Error(
          400,
          "BadDigest",
          "The Content-MD5 you specified did not match what we received.",
        );
      }
    },
  });
}

/**
 * Wraps a body so that the S3Error it fails with (a bad digest, a bad chunk signature)
 * is kept: the write sees only that the upload broke, the answer must say why.
 */
export function keepFailure(
  body: ReadableStream<Uint8Array>,
): { body: ReadableStream<Uint8Array>; failure: () => S3Error | null } {
  let failure: S3Error | null = null;
  const reader = body.getReader();
  const wrapped = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (err) {
        if (err instanceof S3Error) failure = err;
        controller.error(err);
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { body: wrapped, failure: () => failure };
}

/**
 * The payload of a request's body, decoded and checked on the way (aws-chunked framing and
 * chunk signatures, the signed sha256, x-amz-checksum-*, Content-MD5): the stream errors
 * before it ends when a check fails. Its length if known, and the kept failure. With
 * `bodyChecksums: false` an x-amz-checksum-* header is not the body's: CompleteMultipartUpload's
 * names the object's (lib/s3/uploadchecksum.ts), which Complete checks.
 */
export function decodeBody(
  request: Request,
  caller: Caller,
  options: { bodyChecksums?: boolean } = {},
): DecodedBody {
  const headers = request.headers;
  const checksummed = options.bodyChecksums ?? true;
  let body: ReadableStream<Uint8Array> = request.body ?? new Blob([]).stream();
  const length = headers.get("content-length");
  let sizeBytes = length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
  const hash = caller.payloadHash ?? "";
  if (hash.startsWith("STREAMING-")) {
    const decoded = headers.get("x-amz-decoded-content-length");
    sizeBytes = decoded !== null && /^\d{1,15}$/.test(decoded) ? Number(decoded) : undefined;
    let form = hash;
    const trailerNames = parseTrailerNames(headers.get("x-amz-trailer"));
    // Without credentials there is no secret to check chunk signatures with: the body is
    // read as the unsigned form, which takes the same framing.
    if (
      caller.signing === undefined &&
      (hash === STREAMING_PAYLOAD || hash === STREAMING_PAYLOAD_TRAILER)
    ) {
      form = STREAMING_UNSIGNED_PAYLOAD_TRAILER;
      if (hash === STREAMING_PAYLOAD_TRAILER) trailerNames.push(TRAILER_SIGNATURE);
    }
    body = decodeAwsChunked(body, {
      contentSha256: form,
      signing: caller.signing,
      decodedLengthBytes: sizeBytes,
      trailerNames,
      expected: checksummed ? expectedChecksums(headers) : [],
    });
  } else {
    if (isSha256Payload(hash)) body = body.pipeThrough(sha256Verifier(hash));
    const checksum = checksummed ? checksumVerifier(headers) : null;
    if (checksum !== null) body = body.pipeThrough(checksum);
  }
  const contentMd5 = headers.get("content-md5");
  if (contentMd5 !== null) body = body.pipeThrough(md5Verifier(contentMd5));
  return { ...keepFailure(body), sizeBytes };
}

/**
 * Reads a small XML body whole (bounded), decoded and checked; an empty body is `{}` where
 * `optional`, else MalformedXML.
 */
export async function readXmlBody(
  request: Request,
  caller: Caller,
  options: { optional?: boolean } = {},
): Promise<Record<string, unknown>> {
  const { body, failure } = decodeBody(request, caller);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      total += chunk.length;
      if (total > MAX_XML_BODY_BYTES) {
        await body.cancel().catch(() => {});
        throw new S3Error(400, "MalformedXML", "The XML body is too large.");
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw failure() ?? err;
  }
  if (total === 0 && options.optional) return {};
  return parseXml(textOf(chunks, total));
}

/**
 * Runs a multipart operation on a checked body: if the body failed a check (a bad digest, a bad
 * chunk signature), that is the answer, whatever the operation made of the broken upload.
 */
export async function withBodyFailure(
  operation: () => Promise<Response>,
  failure: () => S3Error | null,
): Promise<Response> {
  let response: Response;
  try {
    response = await operation();
  } catch (err) {
    throw failure() ?? err;
  }
  const failed = failure();
  if (failed === null || response.status < 400) return response;
  await response.body?.cancel();
  throw failed;
}

/** Reads a request body up to `maxBytes` as text; S3Error if longer. */
export async function readText(
  body: ReadableStream<Uint8Array> | undefined,
  maxBytes: number,
): Promise<string> {
  if (body === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      throw new S3Error(
        400,
        "MaxMessageLengthExceeded",
        `Your request was too big: more than ${maxBytes} bytes`,
      );
    }
    chunks.push(chunk);
  }
  return textOf(chunks, total);
}
