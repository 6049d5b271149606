// Golden tests of the pure parts of S3 multipart uploads (lib/s3/multipart.ts): ETags, upload
// ids, part numbers and keys, the Complete body and its checks, copy ranges, payload lengths. The
// operations on real volumes and clusters are in tests/cluster/s3_multipart_test.ts.
//
//   node_modules/.bin/deno test -A tests/unit/s3_multipart_test.ts

import assert from "node:assert/strict";
import { Md5 } from "../../lib/md5.ts";
import { keyToPath } from "../../lib/placement.ts";
import {
  afterPrefix,
  checkCompleteParts,
  isUploadId,
  multipartEtag,
  newUploadId,
  parseCompleteBody,
  parseCopyRange,
  parsePartKey,
  parsePartNumber,
  partKey,
  payloadLength,
  type StoredPart,
} from "../../lib/s3/uploadparse.ts";
import { PARTS_PREFIX } from "../../lib/placement.ts";
import { S3Error } from "../../lib/s3/error.ts";

Deno.test("multipartEtag: md5 of the parts' binary md5s, then -N", () => {
  // md5("a") and md5("b"), and the md5 of their 32 bytes, worked out with md5sum.
  const a = "0cc175b9c0f1b6a831c399e269772661";
  const b = "92eb5ffee6ae2fec3ad71c777531578f";
  const joined = new Md5().update(Uint8Array.fromHex(a + b)).hex();
  assert.equal(multipartEtag([a, b]), `${joined}-2`);
  assert.equal(multipartEtag([a]), `${new Md5().update(Uint8Array.fromHex(a)).hex()}-1`);
  assert.match(multipartEtag([a, b]), /^[0-9a-f]{32}-2$/);
});

Deno.test("upload ids begin with their time and sort by it; part keys round-trip", () => {
  const random = new Uint8Array(16).fill(0xab);
  const early = newUploadId(1_000, random);
  const late = newUploadId(1_700_000_000_000, new Uint8Array(16));
  assert.equal(early, "0000000003e8abababababababababab");
  assert.ok(isUploadId(early) && isUploadId(late));
  assert.ok(early < late);
  assert.ok(!isUploadId("../etc") && !isUploadId("") && !isUploadId(early.toUpperCase()));
  assert.equal(partKey(early, 7), `${PARTS_PREFIX}${early}/00007`);
  assert.deepEqual(parsePartKey(partKey(early, 10_000)), { uploadId: early, partNumber: 10_000 });
  assert.equal(parsePartKey("/photos/a"), null);
  assert.equal(parsePartKey(`${PARTS_PREFIX}nothex/00001`), null);
  // A part's file name (base64 of its key) never ends in `/`, which no file name can.
  for (let n = 1; n <= 10_000; n += 37) assert.ok(!keyToPath(partKey(late, n)).endsWith("/"));
});

Deno.test("parsePartNumber: 1 to 10000, else InvalidArgument", () => {
  assert.equal(parsePartNumber("1"), 1);
  assert.equal(parsePartNumber("10000"), 10_000);
  for (const bad of ["0", "10001", "-1", "1.5", "", "abc", null]) {
    const result = parsePartNumber(bad);
    assert.ok(result instanceof S3Error && result.code === "InvalidArgument", String(bad));
  }
});

Deno.test("parseCompleteBody: the parts in the order given, ETags unquoted, checksums", () => {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
    <CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
      <Part><ETag>&quot;AAA&quot;</ETag><PartNumber>2</PartNumber></Part>
      <Part><PartNumber>1</PartNumber><ETag>"bbb"</ETag><ChecksumCRC32>x</ChecksumCRC32></Part>
    </CompleteMultipartUpload>`;
  assert.deepEqual(parseCompleteBody(xml), [
    { partNumber: 2, etag: "aaa" },
    { partNumber: 1, etag: "bbb", checksum: { algorithm: "crc32", base64: "x" } },
  ]);
  const one = "<CompleteMultipartUpload><Part><PartNumber>3</PartNumber><ETag>c</ETag></Part>" +
    "</CompleteMultipartUpload>";
  assert.deepEqual(parseCompleteBody(one), [{ partNumber: 3, etag: "c" }]);
  for (
    const bad of [
      "",
      "not xml <",
      "<CompleteMultipartUpload></CompleteMultipartUpload>",
      "<Other><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></Other>",
      "<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>",
    ]
  ) {
    assert.throws(() => parseCompleteBody(bad), (err) => err instanceof S3Error, bad);
  }
  assert.throws(
    () =>
      parseCompleteBody(
        "<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part>" +
          "</CompleteMultipartUpload>",
      ),
    (err) => err instanceof S3Error && err.code === "InvalidArgument",
  );
});

Deno.test("checkCompleteParts: order, presence, ETags, checksums and the minimum size, as S3 checks", () => {
  const part = (partNumber: number, sizeBytes: number): StoredPart => ({
    partNumber,
    md5: String(partNumber).repeat(32).slice(0, 32),
    sizeBytes,
    mtime: 0,
    volumes: [],
  });
  const stored = new Map([[1, part(1, 100)], [2, part(2, 100)], [3, part(3, 5)]]);
  const ask = (...numbers: number[]) =>
    numbers.map((n) => ({ partNumber: n, etag: stored.get(n)?.md5 ?? "0".repeat(32) }));
  const code = (result: StoredPart[] | S3Error) => result instanceof S3Error ? result.code : "ok";
  assert.deepEqual(
    checkCompleteParts(ask(1, 2, 3), stored, 100),
    [1, 2, 3].map((n) => stored.get(n)),
  );
  // A subset of the parts, skipping numbers, is fine; so is a small last part.
  assert.equal(code(checkCompleteParts(ask(1, 3), stored, 100)), "ok");
  assert.equal(code(checkCompleteParts(ask(2, 1), stored, 100)), "InvalidPartOrder");
  assert.equal(code(checkCompleteParts(ask(1, 1), stored, 100)), "InvalidPartOrder");
  assert.equal(code(checkCompleteParts(ask(1, 4), stored, 100)), "InvalidPart");
  const wrongTag = [{ partNumber: 1, etag: "f".repeat(32) }];
  assert.equal(code(checkCompleteParts(wrongTag, stored, 100)), "InvalidPart");
  assert.equal(code(checkCompleteParts(ask(1, 3), stored, 101)), "EntityTooSmall");
  assert.equal(code(checkCompleteParts(ask(3, 4), stored, 1)), "InvalidPart");
  // A checksum in the list must be the part's own.
  const summed = new Map([[1, {
    ...part(1, 100),
    checksum: { algorithm: "crc32", base64: "AAAAAA==" },
  }]]);
  const listed = (algorithm: string, base64: string) => [
    { partNumber: 1, etag: summed.get(1)!.md5, checksum: { algorithm, base64 } },
  ];
  assert.equal(code(checkCompleteParts(listed("crc32", "AAAAAA=="), summed, 1)), "ok");
  assert.equal(code(checkCompleteParts(listed("crc32", "AAAAAQ=="), summed, 1)), "InvalidPart");
  assert.equal(code(checkCompleteParts(listed("crc32c", "AAAAAA=="), summed, 1)), "InvalidPart");
});

Deno.test("parseCopyRange: bytes=first-last within the source", () => {
  assert.deepEqual(parseCopyRange("bytes=0-9", 10), { start: 0, end: 9 });
  assert.deepEqual(parseCopyRange("bytes=5-5", 10), { start: 5, end: 5 });
  for (const bad of ["bytes=5-4", "bytes=-5", "bytes=3-", "0-1", "bytes=0-1,2-3"]) {
    const refused = parseCopyRange(bad, 10);
    assert.ok(refused instanceof S3Error && refused.code === "InvalidArgument", bad);
  }
  // Past the source's end is S3's InvalidRange, 416.
  const past = parseCopyRange("bytes=0-10", 10);
  assert.ok(past instanceof S3Error && past.code === "InvalidRange" && past.status === 416);
});

Deno.test("afterPrefix: the first string past every string with the prefix", () => {
  assert.equal(afterPrefix("a/"), "a0");
  assert.equal(afterPrefix("ab"), "ac");
  assert.ok(afterPrefix("x/") > "x/\u{10ffff}\u{10ffff}");
  assert.equal(afterPrefix("a\u{10ffff}"), "b");
  assert.equal(afterPrefix("\ud7ff"), "\ue000");
});

Deno.test("payloadLength: the decoded length, never aws-chunked framing", () => {
  const headers = (init: Record<string, string>) => new Headers(init);
  assert.equal(payloadLength(headers({ "content-length": "12" })), 12);
  assert.equal(payloadLength(headers({})), undefined);
  assert.equal(
    payloadLength(headers({ "content-length": "200", "x-amz-decoded-content-length": "100" })),
    100,
  );
  assert.equal(
    payloadLength(headers({ "content-length": "200", "content-encoding": "aws-chunked" })),
    undefined,
  );
  assert.equal(
    payloadLength(
      headers({
        "content-length": "200",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
      }),
    ),
    undefined,
  );
});
