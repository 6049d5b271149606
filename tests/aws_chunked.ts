// An aws-chunked encoder written apart from lib/s3/chunked.ts's decoder (HMACs straight from
// node:crypto), and seeded byte sources that cut a body at random places, so that a failure can be
// replayed. Shared by tests/unit/s3_chunked_test.ts and tests/cluster/s3_chunked_test.ts.

import { createHash, createHmac } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import type { ChunkSigning } from "../lib/s3/sigv4.ts";

const encoder = new TextEncoder();

export const EMPTY_SHA256 = createHash("sha256").update("").digest("hex");

/** A small seeded generator (mulberry32), so a failure can be replayed. */
export function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export function randomBytes(length: number, next: () => number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (next() * 256) | 0;
  return out;
}

/** `bytes` cut at random places into pieces of 1 to `maxPiece` bytes. */
export function cut(bytes: Uint8Array, next: () => number, maxPiece: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = 1 + Math.floor(next() * maxPiece);
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

export function streamOf(pieces: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(pieces[i++]);
      else controller.close();
    },
  });
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function hmacHex(key: Uint8Array, text: string): string {
  return createHmac("sha256", key).update(text).digest("hex");
}

/** What a client signs chunks with: the key derived from its secret, and its seed signature. */
export function testSigning(
  { secret = "secret", amzDate = "20260101T000000Z", region = "us-east-1", seed = "5".repeat(64) } =
    {},
): ChunkSigning {
  const date = amzDate.slice(0, 8);
  const kDate = createHmac("sha256", `AWS4${secret}`).update(date).digest();
  const kRegion = createHmac("sha256", kDate).update(region).digest();
  const kService = createHmac("sha256", kRegion).update("s3").digest();
  return {
    signingKey: createHmac("sha256", kService).update("aws4_request").digest(),
    amzDate,
    scope: `${date}/${region}/s3/aws4_request`,
    seedSignature: seed,
  };
}

export interface EncodeOptions {
  chunkSizes: number[];
  signing?: ChunkSigning;
  trailers?: [string, string][];
  /** Sign the trailers (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER). */
  signTrailers?: boolean;
}

/** Frames `payload` as aws-chunked: chunks of the given sizes (the last repeats), then trailers. */
export function encodeChunked(payload: Uint8Array, options: EncodeOptions): Uint8Array {
  const parts: Uint8Array[] = [];
  let previous = options.signing?.seedSignature ?? "";
  const chunkLine = (data: Uint8Array) => {
    let line = data.length.toString(16);
    if (options.signing) {
      const { signingKey, amzDate, scope } = options.signing;
      const hash = createHash("sha256").update(data).digest("hex");
      previous = hmacHex(
        signingKey,
        `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${previous}\n${EMPTY_SHA256}\n${hash}`,
      );
      line += `;chunk-signature=${previous}`;
    }
    return encoder.encode(`${line}\r\n`);
  };
  let at = 0;
  for (let i = 0; at < payload.length; i++) {
    const size = options.chunkSizes[Math.min(i, options.chunkSizes.length - 1)];
    const data = payload.subarray(at, at + size);
    parts.push(chunkLine(data), data, encoder.encode("\r\n"));
    at += data.length;
  }
  parts.push(chunkLine(new Uint8Array(0)));
  const trailers = options.trailers ?? [];
  let tail = trailers.map(([name, value]) => `${name}:${value}\r\n`).join("");
  if (options.signTrailers && options.signing) {
    const { signingKey, amzDate, scope } = options.signing;
    const canonical = trailers.map(([name, value]) => `${name}:${value}\n`).join("");
    const hash = createHash("sha256").update(canonical).digest("hex");
    const signature = hmacHex(
      signingKey,
      `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${previous}\n${hash}`,
    );
    tail += `x-amz-trailer-signature:${signature}\r\n`;
  }
  parts.push(encoder.encode(`${tail}\r\n`));
  return concat(parts);
}

export const crc32Of = (bytes: Uint8Array) => {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, zlibCrc32(bytes) >>> 0);
  return btoa(String.fromCharCode(...out));
};
