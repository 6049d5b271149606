// The checksum of a multipart object (lib/s3/uploadchecksum.ts): the type an upload asks for and
// S3's COMPOSITE checksum, golden against the values ceph's s3-tests publish for S3.

import assert from "node:assert/strict";
import {
  compositeChecksum,
  keptPartChecksums,
  MAX_PART_CHECKSUM_CHARS,
  uploadChecksum,
} from "../../lib/s3/uploadchecksum.ts";

Deno.test("compositeChecksum: the digest of the parts' digests, then -N", () => {
  // Three parts of 5 MiB of "A", "B" and "C" (s3-tests' test_multipart_reupload_checksum_and_etag).
  assert.equal(
    compositeChecksum("sha256", [
      "275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=",
      "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM=",
      "Vw7oB/nKQ5xWb3hNgbyfkvDiivl+U+/Dft48nfJfDow=",
    ]),
    "uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3",
  );
  // One part of 1 KiB of "A" (test_multipart_checksum_sha256).
  assert.equal(
    compositeChecksum("sha256", ["arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="]),
    "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1",
  );
});

Deno.test("uploadChecksum: S3's defaults and refusals", () => {
  const ask = (headers: Record<string, string>) => uploadChecksum(new Headers(headers));
  assert.equal(ask({}), null);
  assert.deepEqual(ask({ "x-amz-checksum-algorithm": "SHA256" }), {
    algorithm: "sha256",
    type: "COMPOSITE",
  });
  assert.deepEqual(ask({ "x-amz-checksum-algorithm": "CRC64NVME" }), {
    algorithm: "crc64nvme",
    type: "FULL_OBJECT",
  });
  assert.deepEqual(
    ask({ "x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "FULL_OBJECT" }),
    { algorithm: "crc32", type: "FULL_OBJECT" },
  );
  for (
    const bad of [
      { "x-amz-checksum-algorithm": "MD4" } as Record<string, string>,
      { "x-amz-checksum-algorithm": "SHA1", "x-amz-checksum-type": "FULL_OBJECT" },
      { "x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE" },
      { "x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "WHOLE" },
      { "x-amz-checksum-type": "COMPOSITE" },
    ]
  ) {
    assert.throws(() => ask(bad), { code: "InvalidRequest" }, JSON.stringify(bad));
  }
});

Deno.test("keptPartChecksums: kept while they fit a record", () => {
  const sha256 = "275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=";
  const fitting = Array(Math.floor(MAX_PART_CHECKSUM_CHARS / sha256.length)).fill(sha256);
  assert.equal(keptPartChecksums(fitting), fitting);
  assert.equal(keptPartChecksums([...fitting, sha256]), undefined);
});
