// lib/s3/chunked.ts over a real socket: an upload signed by AWS's signer, sent over HTTP to a
// server in this process that checks it as the S3 handler does, verifies and decodes. The golden
// and stream tests are in tests/unit/s3_chunked_test.ts. Run:
// node_modules/.bin/deno test -A tests/cluster/s3_chunked_test.ts

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { SignatureV4 } from "npm:@smithy/signature-v4@5.7.5";
import { Sha256 } from "npm:@aws-crypto/sha256-js@5.2.0";
import { decodeAwsChunked, parseTrailerNames } from "../../lib/s3/chunked.ts";
import { S3Error } from "../../lib/s3/error.ts";
import { verifySigV4 } from "../../lib/s3/sigv4.ts";
import { STREAMING_PAYLOAD_TRAILER } from "../../lib/s3/sigv4parse.ts";
import {
  crc32Of,
  cut,
  encodeChunked,
  random,
  randomBytes,
  streamOf,
  testSigning,
} from "../aws_chunked.ts";

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
