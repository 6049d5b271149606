// lib/s3/chunked.ts over a real socket: an upload signed by AWS's signer, sent over HTTP to a
// server in this process that checks it as the S3 handler does, verifies and decodes. The golden and stream tests are in
// tests/unit/s3_chunked_test.ts. Run:
// node_modules/.bin/deno test -A tests/cluster/s3_chunked_test.ts

import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { SignatureV4 } from "npm:@smithy/signature-v4@5.7.5";
import { Sha256 } from "npm:@aws-crypto/sha256-js@5.2.0";
import { decodeAwsChunked, parseTrailerNames } from "../../lib/s3/chunked.ts";
import { S3Error } from "../../lib/s3/error.ts";
import { type ChunkSigning, STREAMING_PAYLOAD_TRAILER, verifySigV4 } from "../../lib/s3/sigv4.ts";

const encoder = new TextEncoder();
const EMPTY_SHA256 = createHash("sha256").update("").digest("hex");

/** A small seeded generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomBytes(length: number, next: () => number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (next() * 256) | 0;
  return out;
}

/** `bytes` cut at random places into pieces of 1 to `maxPiece` bytes. */
function cut(bytes: Uint8Array, next: () => number, maxPiece: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = 1 + Math.floor(next() * maxPiece);
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

function streamOf(pieces: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(pieces[i++]);
      else controller.close();
    },
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// The checksums.

// AWS's documented chunked upload: 66560 bytes of 'a' in chunks of 64 KiB, 1 KiB and 0.

// An encoder written here, apart from the decoder: HMACs straight from node:crypto.

function hmacHex(key: Uint8Array, text: string): string {
  return createHmac("sha256", key).update(text).digest("hex");
}

/** What a client signs chunks with: the key derived from its secret, and its seed signature. */
function testSigning(
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

interface EncodeOptions {
  chunkSizes: number[];
  signing?: ChunkSigning;
  trailers?: [string, string][];
  /** Sign the trailers (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER). */
  signTrailers?: boolean;
}

/** Frames `payload` as aws-chunked: chunks of the given sizes (the last repeats), then trailers. */
function encodeChunked(payload: Uint8Array, options: EncodeOptions): Uint8Array {
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

const crc32Of = (bytes: Uint8Array) => {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, zlibCrc32(bytes) >>> 0);
  return btoa(String.fromCharCode(...out));
};

Deno.test("chunked: an upload signed by AWS's signer, sent over HTTP, verifies and decodes", async () => {
  const secret = "http secret";
  const payload = randomBytes(300_000, random(17));
  const crc = crc32Of(payload);
  const verdicts: string[] = [];
  // What the S3 handler does with a PUT: verify the head, then decode and check the body.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const verdict = verifySigV4({
      method: request.method,
      rawPath: url.pathname,
      rawQuery: url.search.slice(1),
      headers: request.headers,
    }, { secretFor: () => secret, nowMs: Date.now(), maxSkewMs: 900_000 });
    if (!verdict.ok) {
      await request.body?.cancel();
      verdicts.push(verdict.code);
      return new Response(verdict.code, { status: verdict.status });
    }
    try {
      const decoded = decodeAwsChunked(request.body!, {
        contentSha256: verdict.payloadHash,
        signing: verdict.streaming,
        decodedLengthBytes: Number(request.headers.get("x-amz-decoded-content-length")),
        trailerNames: parseTrailerNames(request.headers.get("x-amz-trailer")),
      });
      const hash = createHash("sha256");
      for await (const part of decoded) hash.update(part);
      verdicts.push("ok");
      return new Response(hash.digest("hex"));
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      verdicts.push(err.code);
      return new Response(err.code, { status: err.status });
    }
  });
  try {
    const host = `127.0.0.1:${server.addr.port}`;
    const put = async (tamper: (body: Uint8Array) => void) => {
      const signingDate = new Date();
      const signer = new SignatureV4({
        credentials: { accessKeyId: "uploader", secretAccessKey: secret },
        region: "us-east-1",
        service: "s3",
        sha256: Sha256,
        uriEscapePath: false,
        applyChecksum: false,
      });
      const signed = await signer.sign({
        method: "PUT",
        protocol: "http:",
        hostname: "127.0.0.1",
        port: server.addr.port,
        path: "/bucket/some%20key",
        query: {},
        headers: {
          host,
          "content-encoding": "aws-chunked",
          "x-amz-content-sha256": STREAMING_PAYLOAD_TRAILER,
          "x-amz-decoded-content-length": String(payload.length),
          "x-amz-trailer": "x-amz-checksum-crc32",
        },
      }, { signingDate });
      const headers = signed.headers as Record<string, string>;
      const signing = testSigning({
        secret,
        amzDate: headers["x-amz-date"],
        seed: headers.authorization.split("Signature=")[1],
      });
      const body = encodeChunked(payload, {
        chunkSizes: [65536],
        signing,
        trailers: [["x-amz-checksum-crc32", crc]],
        signTrailers: true,
      });
      tamper(body);
      const response = await fetch(`http://${host}/bucket/some%20key`, {
        method: "PUT",
        headers,
        body: streamOf(cut(body, random(body.length), 10_000)),
      });
      return [response.status, await response.text()];
    };
    const expected = createHash("sha256").update(payload).digest("hex");
    assert.deepEqual(await put(() => {}), [200, expected]);
    assert.deepEqual(await put((body) => body[100_000]++), [403, "SignatureDoesNotMatch"]);
    assert.deepEqual(verdicts, ["ok", "SignatureDoesNotMatch"]);
  } finally {
    await server.shutdown();
  }
});
