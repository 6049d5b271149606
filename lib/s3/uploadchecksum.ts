// The checksum of an object joined from a multipart upload (docs/s3.md, "Checksums"): the upload
// names an algorithm at Create and a type, COMPOSITE (the checksum of the parts' checksums, then
// `-N`, as S3 computes it) or FULL_OBJECT (the checksum of the whole value, CRCs only); each part
// is checked and kept with its own checksum, which the object keeps too while the list fits its
// record, for part GETs and GetObjectAttributes. Pure.

import { type ChecksumAlgorithm, newChecksum, parseChecksumAlgorithm } from "./checksum.ts";
import { S3Error } from "./error.ts";

/** How a multipart object's checksum is made: of its parts' checksums, or of its bytes. */
export type ChecksumType = "COMPOSITE" | "FULL_OBJECT";

/**
 * The most characters of part checksums an object's record keeps (the base64 digests of 350
 * parts of sha256, 1,400 of crc32): KV keeps a record in at most 64 KiB. An object of more parts
 * keeps its own checksum but not its parts'.
 */
export const MAX_PART_CHECKSUM_CHARS = 16 * 1024;

/** The algorithms whose checksum may be of the whole value (FULL_OBJECT): CRCs combine. */
const FULL_OBJECT_ALGORITHMS: ChecksumAlgorithm[] = ["crc32", "crc32c", "crc64nvme"];

function invalidRequest(message: string): S3Error {
  return new S3Error(400, "InvalidRequest", message);
}

/**
 * The algorithm and type CreateMultipartUpload asks for (`x-amz-checksum-algorithm`,
 * `x-amz-checksum-type`), or null for none; S3's defaults: FULL_OBJECT for crc64nvme, which has
 * no other, COMPOSITE for the rest. Throws InvalidRequest for what S3 refuses.
 */
export function uploadChecksum(
  headers: Headers,
): { algorithm: ChecksumAlgorithm; type: ChecksumType } | null {
  const asked = headers.get("x-amz-checksum-algorithm");
  const typeAsked = headers.get("x-amz-checksum-type")?.toUpperCase() ?? null;
  if (asked === null) {
    if (typeAsked !== null) {
      throw invalidRequest("The x-amz-checksum-type header needs x-amz-checksum-algorithm.");
    }
    return null;
  }
  const algorithm = parseChecksumAlgorithm(asked);
  if (algorithm === null) throw invalidRequest("Checksum algorithm provided is unsupported.");
  const type = typeAsked ?? (algorithm === "crc64nvme" ? "FULL_OBJECT" : "COMPOSITE");
  if (type !== "COMPOSITE" && type !== "FULL_OBJECT") {
    throw invalidRequest("Value for x-amz-checksum-type header is invalid.");
  }
  if (type === "FULL_OBJECT" && !FULL_OBJECT_ALGORITHMS.includes(algorithm)) {
    throw invalidRequest(`The ${asked.toUpperCase()} algorithm has no FULL_OBJECT checksum.`);
  }
  if (type === "COMPOSITE" && algorithm === "crc64nvme") {
    throw invalidRequest("The CRC64NVME algorithm has no COMPOSITE checksum.");
  }
  return { algorithm, type };
}

/**
 * S3's COMPOSITE checksum of parts whose checksums are `partBase64s`: the algorithm's digest of
 * their digests' bytes, in part order, in base64, then `-` and the count of parts.
 */
export function compositeChecksum(algorithm: ChecksumAlgorithm, partBase64s: string[]): string {
  const checksum = newChecksum(algorithm);
  for (const base64 of partBase64s) checksum.update(Uint8Array.fromBase64(base64));
  return `${checksum.digestBase64()}-${partBase64s.length}`;
}

/** The parts' checksums, if they fit a record (MAX_PART_CHECKSUM_CHARS); else undefined. */
export function keptPartChecksums(partBase64s: string[]): string[] | undefined {
  const chars = partBase64s.reduce((sum, base64) => sum + base64.length, 0);
  return chars > MAX_PART_CHECKSUM_CHARS ? undefined : partBase64s;
}
