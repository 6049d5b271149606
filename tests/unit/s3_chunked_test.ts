// Golden and stream tests of lib/s3/checksum.ts and lib/s3/chunked.ts: the checksums' check
// values, AWS's documented chunked upload (its published chunk signatures), bodies framed by AWS's
// SDK encoder and by an encoder written here (signed, signed with trailer, unsigned with trailer),
// each fed in pieces cut at random places, and every way a body can be wrong: signatures,
// checksums, truncation, lengths, long lines, trailers. An upload sent over HTTP is in
// tests/cluster/s3_chunked_test.ts. Run:
// node_modules/.bin/deno test -A tests/unit/s3_chunked_test.ts

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { getAwsChunkedEncodingStream } from "npm:@smithy/core@3.41.1/serde";
import {
  CHECKSUM_ALGORITHMS,
  checksumHeaderAlgorithm,
  checksumVerifier,
  expectedChecksums,
  newChecksum,
} from "../../lib/s3/checksum.ts";
import { decodeAwsChunked, type DecodeOptions, parseTrailerNames } from "../../lib/s3/chunked.ts";
import { S3Error } from "../../lib/s3/error.ts";
import { type ChunkSigning, verifySigV4 } from "../../lib/s3/sigv4.ts";
import { chunkedExampleInput, exampleOptions } from "../s3_examples.ts";
import {
  STREAMING_PAYLOAD,
  STREAMING_PAYLOAD_TRAILER,
  STREAMING_UNSIGNED_PAYLOAD_TRAILER,
} from "../../lib/s3/sigv4parse.ts";
import {
  concat,
  crc32Of,
  cut,
  encodeChunked,
  EncodeOptions,
  random,
  randomBytes,
  streamOf,
  testSigning,
} from "../aws_chunked.ts";

const encoder = new TextEncoder();
async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

async function decode(body: Uint8Array[], options: DecodeOptions): Promise<Uint8Array> {
  return concat(await readAll(decodeAwsChunked(streamOf(body), options)));
}

async function assertRefused(
  body: Uint8Array[],
  options: DecodeOptions,
  code: string,
  status = 400,
): Promise<void> {
  await assert.rejects(decode(body, options), (err: unknown) => {
    assert.ok(err instanceof S3Error, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.status, status);
    return true;
  });
}

// The checksums.

const CHECK_VALUES: Record<string, string> = {
  crc32: "cbf43926",
  crc32c: "e3069283",
  crc64nvme: "ae8b14860a799888",
  sha1: "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
  sha256: "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
};

function hexOfBase64(base64: string): string {
  return [...atob(base64)].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

function digestOf(algorithm: typeof CHECKSUM_ALGORITHMS[number], parts: Uint8Array[]): string {
  const checksum = newChecksum(algorithm);
  for (const part of parts) checksum.update(part);
  return checksum.digestBase64();
}

Deno.test('checksum: the catalogued check values of "123456789"', () => {
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const base64 = digestOf(algorithm, [encoder.encode("123456789")]);
    assert.equal(hexOfBase64(base64), CHECK_VALUES[algorithm], algorithm);
  }
  assert.equal(digestOf("crc32", []), "AAAAAA==");
  assert.equal(digestOf("crc32c", [encoder.encode("123456789")]), "4waSgw==");
  assert.equal(digestOf("crc64nvme", []), "AAAAAAAAAAA=");
});

Deno.test("checksum: any cut gives the digest of the whole, which zlib and node agree with", () => {
  const next = random(7);
  const value = randomBytes(100_003, next);
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const whole = digestOf(algorithm, [value]);
    for (const maxPiece of [1, 7, 8, 9, 4096]) {
      const pieces = cut(value.subarray(0, maxPiece === 1 ? 5000 : value.length), next, maxPiece);
      const expected = maxPiece === 1 ? digestOf(algorithm, [value.subarray(0, 5000)]) : whole;
      assert.equal(digestOf(algorithm, pieces), expected, `${algorithm} in pieces of ${maxPiece}`);
    }
  }
  const crc = zlibCrc32(value) >>> 0;
  assert.equal(hexOfBase64(digestOf("crc32", [value])), crc.toString(16).padStart(8, "0"));
  assert.equal(
    digestOf("sha256", [value]),
    createHash("sha256").update(value).digest("base64"),
  );
});

Deno.test("checksum: header names, expected checksums and the verifying stream", async () => {
  assert.equal(checksumHeaderAlgorithm("X-Amz-Checksum-CRC64NVME"), "crc64nvme");
  assert.equal(checksumHeaderAlgorithm("x-amz-checksum-algorithm"), null);
  assert.equal(checksumHeaderAlgorithm("x-amz-checksum-type"), null);
  assert.equal(checksumHeaderAlgorithm("content-md5"), null);

  const body = encoder.encode("123456789");
  const good = new Headers({ "x-amz-checksum-crc32c": "4waSgw==", "x-amz-checksum-type": "x" });
  assert.deepEqual(expectedChecksums(good), [{ algorithm: "crc32c", base64: "4waSgw==" }]);
  assert.equal(checksumVerifier(new Headers()), null);
  const passed = await readAll(streamOf([body]).pipeThrough(checksumVerifier(good)!));
  assert.deepEqual(concat(passed), body);

  const wrong = new Headers({ "x-amz-checksum-crc32c": "AAAAAA==" });
  await assert.rejects(
    readAll(streamOf([body]).pipeThrough(checksumVerifier(wrong)!)),
    (err: unknown) => err instanceof S3Error && err.code === "BadDigest",
  );
  for (
    const headers of [
      { "x-amz-checksum-crc32": "4waSgw" } as Record<string, string>,
      { "x-amz-checksum-sha256": "4waSgw==" },
      { "x-amz-checksum-crc32": "4waSgw==", "x-amz-checksum-crc32c": "4waSgw==" },
    ]
  ) {
    assert.throws(
      () => expectedChecksums(new Headers(headers)),
      (err: unknown) => err instanceof S3Error && err.code === "InvalidRequest",
    );
  }
});

// AWS's documented chunked upload: 66560 bytes of 'a' in chunks of 64 KiB, 1 KiB and 0.

const AWS_CHUNK_SIGNATURES = [
  "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

/** The seed signature's request from AWS's example, checked by verifySigV4 for its signing. */
function awsExampleSigning(): ChunkSigning {
  const verdict = verifySigV4(chunkedExampleInput(), exampleOptions());
  assert.ok(verdict.ok && verdict.streaming, JSON.stringify(verdict));
  return verdict.streaming;
}

function awsExampleBody(signatures = AWS_CHUNK_SIGNATURES): Uint8Array {
  const a = (n: number) => "a".repeat(n);
  return encoder.encode(
    `10000;chunk-signature=${signatures[0]}\r\n${a(65536)}\r\n` +
      `400;chunk-signature=${signatures[1]}\r\n${a(1024)}\r\n` +
      `0;chunk-signature=${signatures[2]}\r\n\r\n`,
  );
}

Deno.test("chunked: AWS's example upload: any cut decodes, its signatures hold", async () => {
  const signing = awsExampleSigning();
  const body = awsExampleBody();
  assert.equal(body.length, 66824, "the example's Content-Length");
  const options = { contentSha256: STREAMING_PAYLOAD, signing, decodedLengthBytes: 66560 };
  const next = random(1);
  for (const maxPiece of [body.length, 65536, 4096, 100, 3]) {
    const payload = await decode(cut(body, next, maxPiece), options);
    assert.equal(payload.length, 66560);
    assert.ok(payload.every((byte) => byte === 0x61));
  }
  for (let chunk = 0; chunk < 3; chunk++) {
    const signatures = [...AWS_CHUNK_SIGNATURES];
    signatures[chunk] = signatures[chunk].replace(/^./, (c) => c === "0" ? "1" : "0");
    await assertRefused([awsExampleBody(signatures)], options, "SignatureDoesNotMatch", 403);
  }
  // The chain: the same chunks in another order do not verify.
  const swapped = [AWS_CHUNK_SIGNATURES[1], AWS_CHUNK_SIGNATURES[0], AWS_CHUNK_SIGNATURES[2]];
  await assertRefused([awsExampleBody(swapped)], options, "SignatureDoesNotMatch", 403);
  await assertRefused(
    [body],
    { ...options, decodedLengthBytes: 66561 },
    "IncompleteBody",
  );
  await assertRefused([body], { ...options, decodedLengthBytes: 66559 }, "IncompleteBody");
  await assertRefused(
    [body],
    { contentSha256: STREAMING_PAYLOAD_TRAILER, signing },
    "SignatureDoesNotMatch",
    403,
  );
});

// The encoder written here (tests/aws_chunked.ts), against the decoder.

const sha256Of = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("base64");

Deno.test("chunked: the three forms decode whatever the chunk sizes and the cuts", async () => {
  const next = random(42);
  const signing = testSigning();
  for (const length of [0, 1, 100, 8191, 70_000, 300_001]) {
    const payload = randomBytes(length, next);
    const chunkSizes = [1 + Math.floor(next() * 70_000), 8192, 1 + Math.floor(next() * 9000)];
    const forms: [string, EncodeOptions, DecodeOptions][] = [
      [
        "signed",
        { chunkSizes, signing },
        { contentSha256: STREAMING_PAYLOAD, signing, decodedLengthBytes: length },
      ],
      [
        "signed with trailer",
        {
          chunkSizes,
          signing,
          trailers: [["x-amz-checksum-sha256", sha256Of(payload)]],
          signTrailers: true,
        },
        {
          contentSha256: STREAMING_PAYLOAD_TRAILER,
          signing,
          trailerNames: ["x-amz-checksum-sha256"],
          decodedLengthBytes: length,
        },
      ],
      [
        "unsigned with trailer",
        { chunkSizes, trailers: [["x-amz-checksum-crc32", crc32Of(payload)]] },
        {
          contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER,
          trailerNames: ["x-amz-checksum-crc32"],
        },
      ],
    ];
    for (const [form, encodeOptions, decodeOptions] of forms) {
      const body = encodeChunked(payload, encodeOptions);
      for (const maxPiece of [1 + Math.floor(next() * 20), 1 + Math.floor(next() * 100_000)]) {
        if (maxPiece < 20 && body.length > 20_000) continue;
        const decoded = await decode(cut(body, next, maxPiece), decodeOptions);
        assert.deepEqual(decoded, payload, `${form}, ${length} bytes in pieces of ${maxPiece}`);
      }
    }
  }
});

Deno.test("chunked: the payload is handed on as views of what was read, not copies", async () => {
  const payload = randomBytes(200_000, random(3));
  const body = encodeChunked(payload, { chunkSizes: [65536] });
  const parts = await readAll(decodeAwsChunked(streamOf(cut(body, random(4), 30_000)), {
    contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER,
  }));
  assert.deepEqual(concat(parts), payload);
  assert.ok(parts.every((part) => part.buffer === body.buffer));
});

Deno.test("chunked: a body framed by AWS's JavaScript SDK, with and without checksum", async () => {
  const text = "Hello from the SDK, ".repeat(1000);
  const pieces = text.match(/.{1,777}/gs)!;
  const sdkBody = async (checksum: string | null) => {
    const source = new ReadableStream<string>({
      start(controller) {
        for (const piece of pieces) controller.enqueue(piece);
        controller.close();
      },
    });
    const checksumOptions = checksum === null ? {} : {
      base64Encoder: (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)),
      checksumAlgorithmFn: class {},
      checksumLocationName: "x-amz-checksum-crc32",
      streamHasher: () => Promise.resolve(Uint8Array.from(atob(checksum), (c) => c.charCodeAt(0))),
    };
    // deno-lint-ignore no-explicit-any
    const framed = getAwsChunkedEncodingStream(source as any, {
      bodyLengthChecker: (value: string) => value.length,
      ...checksumOptions,
      // deno-lint-ignore no-explicit-any
    } as any) as unknown as ReadableStream<string>;
    return concat(await readAll(framed.pipeThrough(new TextEncoderStream())));
  };
  const payload = encoder.encode(text);
  const options = {
    contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    trailerNames: parseTrailerNames("x-amz-checksum-crc32"),
    decodedLengthBytes: payload.length,
  };
  const body = await sdkBody(crc32Of(payload));
  assert.deepEqual(await decode(cut(body, random(5), 50), options), payload);
  await assertRefused([await sdkBody("AAAAAA==")], options, "BadDigest");
  const bare = await sdkBody(null);
  assert.deepEqual(
    await decode([bare], { contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER }),
    payload,
  );
});

Deno.test("chunked: wrong checksums, in a trailer or a header, are BadDigest", async () => {
  const payload = randomBytes(10_000, random(9));
  const unsigned = { contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER };
  const withTrailer = (name: string, value: string) =>
    encodeChunked(payload, { chunkSizes: [4096], trailers: [[name, value]] });
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const name = `x-amz-checksum-${algorithm}`;
    const right = digestOf(algorithm, [payload]);
    const options = { ...unsigned, trailerNames: [name] };
    assert.deepEqual(await decode([withTrailer(name, right)], options), payload);
    const wrong = digestOf(algorithm, [payload.subarray(1)]);
    await assertRefused([withTrailer(name, wrong)], options, "BadDigest");
    await assertRefused([withTrailer(name, "not base64")], options, "InvalidRequest");
    // A header's checksum is checked in the decoder too.
    const plain = encodeChunked(payload, { chunkSizes: [4096] });
    const expected = [{ algorithm, base64: right }];
    assert.deepEqual(await decode([plain], { ...unsigned, expected }), payload);
    await assertRefused(
      [plain],
      { ...unsigned, expected: [{ algorithm, base64: wrong }] },
      "BadDigest",
    );
  }
});

Deno.test("chunked: trailers must be announced, present, well-formed and signed", async () => {
  const payload = randomBytes(5000, random(11));
  const signing = testSigning();
  const crc = ["x-amz-checksum-crc32", crc32Of(payload)] as [string, string];
  const trailerNames = ["x-amz-checksum-crc32"];
  const unsigned = { contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER, trailerNames };
  const signed = { contentSha256: STREAMING_PAYLOAD_TRAILER, signing, trailerNames };

  await assertRefused(
    [encodeChunked(payload, { chunkSizes: [1000], trailers: [crc] })],
    { contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER },
    "MalformedTrailerError",
  );
  await assertRefused(
    [encodeChunked(payload, { chunkSizes: [1000] })],
    unsigned,
    "MalformedTrailerError",
  );
  await assertRefused(
    [encodeChunked(payload, { chunkSizes: [1000], trailers: [crc, ["x-amz-meta-a", "b"]] })],
    unsigned,
    "MalformedTrailerError",
  );
  await assertRefused(
    [encodeChunked(payload, { chunkSizes: [1000], trailers: [["no colon", ""]] })],
    unsigned,
    "MalformedTrailerError",
  );
  await assertRefused(
    [encodeChunked(payload, { chunkSizes: [1000], signing, trailers: [crc] })],
    { contentSha256: STREAMING_PAYLOAD, signing },
    "MalformedTrailerError",
  );

  const good = encodeChunked(payload, {
    chunkSizes: [1000],
    signing,
    trailers: [crc],
    signTrailers: true,
  });
  assert.deepEqual(await decode([good], signed), payload);
  const text = new TextDecoder("latin1").decode(good);
  const resigned = (
    edit: (text: string) => string,
  ) => [Uint8Array.from(edit(text), (c) => c.charCodeAt(0))];
  await assertRefused(
    resigned((t) =>
      t.replace(/(x-amz-trailer-signature:)(.)/, (_, p, c) => p + (c === "0" ? "1" : "0"))
    ),
    signed,
    "SignatureDoesNotMatch",
    403,
  );
  await assertRefused(
    resigned((t) => t.replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, "")),
    signed,
    "SignatureDoesNotMatch",
    403,
  );
  // A checksum swapped for another that the payload also has still breaks the trailer signature.
  await assertRefused(
    resigned((t) => t.replace(crc[1], "AAAAAA==")),
    signed,
    "SignatureDoesNotMatch",
    403,
  );
  assert.deepEqual(parseTrailerNames(" X-Amz-Checksum-CRC32 "), ["x-amz-checksum-crc32"]);
  assert.deepEqual(parseTrailerNames(null), []);
  assert.throws(
    () => parseTrailerNames("x-amz-meta-a"),
    (err: unknown) => err instanceof S3Error && err.code === "InvalidRequest",
  );
});

Deno.test("chunked: every truncation, and bad framing, is refused", async () => {
  const payload = randomBytes(3000, random(13));
  const signing = testSigning();
  const body = encodeChunked(payload, {
    chunkSizes: [1024],
    signing,
    trailers: [["x-amz-checksum-crc32c", digestOf("crc32c", [payload])]],
    signTrailers: true,
  });
  const options = {
    contentSha256: STREAMING_PAYLOAD_TRAILER,
    signing,
    trailerNames: ["x-amz-checksum-crc32c"],
  };
  assert.deepEqual(await decode([body], options), payload);
  for (let length = 0; length < body.length; length++) {
    await assert.rejects(
      decode(cut(body.subarray(0, length), random(length), 500), options),
      (err: unknown) => err instanceof S3Error && err.status >= 400,
      `cut at ${length}`,
    );
  }
  const unsigned = { contentSha256: STREAMING_UNSIGNED_PAYLOAD_TRAILER };
  const framed = (text: string) => [encoder.encode(text)];
  assert.deepEqual(await decode(framed("3\r\nabc\r\n0\r\n\r\n"), unsigned), encoder.encode("abc"));
  await assertRefused(framed("3\r\nabcd\r\n0\r\n\r\n"), unsigned, "IncompleteBody");
  await assertRefused(framed("3\nabc\r\n0\r\n\r\n"), unsigned, "IncompleteBody");
  await assertRefused(framed("x3\r\nabc\r\n0\r\n\r\n"), unsigned, "IncompleteBody");
  await assertRefused(framed("3\r\nabc\r\n0\r\n\r\nmore"), unsigned, "IncompleteBody");
  await assertRefused(framed("1000000000000\r\n"), unsigned, "IncompleteBody");
  await assertRefused(
    framed(`3;${"x".repeat(5000)}\r\nabc\r\n0\r\n\r\n`),
    unsigned,
    "IncompleteBody",
  );
  await assertRefused(
    cut(encoder.encode(`${"0".repeat(5000)}3\r\n`), random(1), 100),
    unsigned,
    "IncompleteBody",
  );
  await assertRefused(
    framed("3\r\nabc\r\n0\r\n\r\n"),
    { contentSha256: STREAMING_PAYLOAD, signing },
    "IncompleteBody",
  );
  assert.throws(
    () => decodeAwsChunked(streamOf([]), { contentSha256: "UNSIGNED-PAYLOAD" }),
    (err: unknown) => err instanceof S3Error && err.code === "InvalidArgument",
  );
});
