// The pure parts of S3 multipart uploads (docs/s3.md, "Multipart uploads"): upload ids (the
// creation time in hex, then random hex, so that they sort by age), the keys of parts under the
// index's reserved prefix, part numbers and listing counts, CompleteMultipartUpload's body and
// the check of its list against the stored parts, the multipart ETag, copy ranges and payload
// lengths. Golden-tested in tests/unit/s3_multipart_test.ts and tests/unit/s3_xml_test.ts.

import { PARTS_PREFIX, toHex } from "../placement.ts";
import type { KeyRecord } from "../core/mod.ts";
import { Md5 } from "../md5.ts";
import { CHECKSUM_ALGORITHMS } from "./checksum.ts";
import { S3Error } from "./error.ts";
import { malformedXml, parseXml } from "./xml.ts";

/** S3's smallest part but the last; a constructor option lowers it for tests. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** S3's largest part. */
export const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
/** S3's part numbers run from 1 to this. */
export const MAX_PART_NUMBER = 10_000;
/** Digits of a part number in its key, so that keys sort in part order. */
const PART_DIGITS = 5;
/** Hex digits of the creation time (milliseconds) that begin an upload id. */
const ID_TIME_DIGITS = 12;
/** Random hex digits that end an upload id. */
const ID_RANDOM_DIGITS = 20;
const UPLOAD_ID = new RegExp(`^[0-9a-f]{${ID_TIME_DIGITS + ID_RANDOM_DIGITS}}$`);

/** A part as its record tells it. */
export interface StoredPart {
  partNumber: number;
  /** Lower-case hex md5 of the part: its ETag, unquoted. */
  md5: string;
  sizeBytes: number;
  mtime: number;
  volumes: string[];
  /** The version of its file (a part uploaded again has a new one), if any. */
  version?: string;
  /** The checksum it was uploaded and checked with, if any. */
  checksum?: { algorithm: string; base64: string };
}

/** A part named by CompleteMultipartUpload's body. */
export interface RequestedPart {
  partNumber: number;
  /** Unquoted, lower-case. */
  etag: string;
  /** The part's checksum as the list gives it (`<ChecksumSHA256>`), if it does. */
  checksum?: { algorithm: string; base64: string };
}

/** A new upload id: the time in hex (so ids sort by age), then random hex. */
export function newUploadId(nowMs: number, random: Uint8Array): string {
  const time = Math.floor(nowMs).toString(16).padStart(ID_TIME_DIGITS, "0");
  return time + toHex(random).slice(0, ID_RANDOM_DIGITS).padEnd(ID_RANDOM_DIGITS, "0");
}

/** Whether `text` could be an upload id of ours: anything else is NoSuchUpload. */
export function isUploadId(text: string): boolean {
  return UPLOAD_ID.test(text);
}

/** The index key of a part. Ends in digits, so its base64 file name never ends in `/`. */
export function partKey(uploadId: string, partNumber: number): string {
  return `${PARTS_PREFIX}${uploadId}/${String(partNumber).padStart(PART_DIGITS, "0")}`;
}

/** The upload id and part number of a part's key, or null if it is not one. */
export function parsePartKey(key: string): { uploadId: string; partNumber: number } | null {
  const match = key.match(/^\/-\/mpu\/([0-9a-f]+)\/(\d{5})$/);
  if (match === null || !isUploadId(match[1])) return null;
  return { uploadId: match[1], partNumber: Number(match[2]) };
}

/** S3's ETag of a multipart object: the md5 of the parts' binary md5s, then `-N`. */
export function multipartEtag(partMd5s: string[]): string {
  const hash = new Md5();
  for (const md5 of partMd5s) hash.update(Uint8Array.fromHex(md5));
  return `${hash.hex()}-${partMd5s.length}`;
}

/** A part number of a request (`partNumber=`), or an S3Error. */
export function parsePartNumber(text: string | null | undefined): number | S3Error {
  if (text === null || text === undefined || !/^\d{1,5}$/.test(text)) {
    return new S3Error(
      400,
      "InvalidArgument",
      `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    );
  }
  const number = Number(text);
  if (number < 1 || number > MAX_PART_NUMBER) {
    return new S3Error(
      400,
      "InvalidArgument",
      `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    );
  }
  return number;
}

/** A count or marker of a listing's query: a whole number up to `max`, `fallback` if absent. */
export function parseCount(
  query: URLSearchParams,
  name: string,
  options: { fallback: number; max: number },
): number | S3Error {
  const text = query.get(name);
  if (text === null) return options.fallback;
  if (!/^\d{1,9}$/.test(text)) {
    return new S3Error(400, "InvalidArgument", `${name} must be a whole number`);
  }
  return Math.min(Number(text), options.max);
}

/** An ETag as clients quote it (`"abc"`), unquoted and lower-case. */
function unquote(etag: string): string {
  return etag.trim().replace(/^"(.*)"$/, "$1").toLowerCase();
}

/** The parts CompleteMultipartUpload names, in the order given; throws S3Error (MalformedXML). */
export function parseCompleteBody(xml: string): RequestedPart[] {
  const root = parseXml(xml).CompleteMultipartUpload;
  if (typeof root !== "object" || root === null) throw malformedXml();
  const parts = (root as Record<string, unknown>).Part;
  if (!Array.isArray(parts) || parts.length === 0) throw malformedXml();
  if (parts.length > MAX_PART_NUMBER) throw malformedXml();
  return parts.map((part) => {
    if (typeof part !== "object" || part === null) throw malformedXml();
    const fields = part as Record<string, unknown>;
    const { PartNumber, ETag } = fields;
    if (typeof PartNumber !== "string" || typeof ETag !== "string") throw malformedXml();
    const number = parsePartNumber(PartNumber);
    if (number instanceof S3Error) throw number;
    const checksum = CHECKSUM_ALGORITHMS.map((algorithm) => ({
      algorithm,
      base64: fields[`Checksum${algorithm.toUpperCase()}`],
    })).find((given) => typeof given.base64 === "string");
    return {
      partNumber: number,
      etag: unquote(ETag),
      ...(checksum &&
        { checksum: { algorithm: checksum.algorithm, base64: `${checksum.base64}` } }),
    };
  });
}

/**
 * Checks Complete's list against the stored parts as S3 does: ascending order (InvalidPartOrder),
 * each part present with its ETag (InvalidPart), each but the last at least `minPartBytes`
 * (EntityTooSmall). Returns the parts to join, in order.
 */
export function checkCompleteParts(
  requested: RequestedPart[],
  stored: Map<number, StoredPart>,
  minPartBytes: number,
): StoredPart[] | S3Error {
  for (let i = 1; i < requested.length; i++) {
    if (requested[i].partNumber <= requested[i - 1].partNumber) {
      return new S3Error(
        400,
        "InvalidPartOrder",
        "The list of parts was not in ascending order. The parts list must be specified in " +
          "order of the part number.",
      );
    }
  }
  const parts: StoredPart[] = [];
  for (const { partNumber, etag, checksum: given } of requested) {
    const part = stored.get(partNumber);
    if (
      part === undefined || part.md5 !== etag ||
      (given !== undefined &&
        (given.algorithm !== part.checksum?.algorithm || given.base64 !== part.checksum.base64))
    ) {
      return new S3Error(
        400,
        "InvalidPart",
        `One or more of the specified parts could not be found or its entity tag did not ` +
          `match: part ${partNumber}`,
      );
    }
    parts.push(part);
  }
  for (const part of parts.slice(0, -1)) {
    if (part.sizeBytes < minPartBytes) {
      return new S3Error(
        400,
        "EntityTooSmall",
        `Your proposed upload is smaller than the minimum allowed size: part ` +
          `${part.partNumber} has ${part.sizeBytes} bytes, parts but the last need ` +
          `${minPartBytes}`,
      );
    }
  }
  return parts;
}

/** `x-amz-copy-source-range: bytes=first-last` within a source of `sizeBytes`, or an S3Error. */
export function parseCopyRange(
  header: string,
  sizeBytes: number,
): { start: number; end: number } | S3Error {
  const match = header.match(/^bytes=(\d{1,15})-(\d{1,15})$/);
  if (match === null) {
    return new S3Error(
      400,
      "InvalidArgument",
      "The x-amz-copy-source-range value must be of the form bytes=first-last where first " +
        "and last are the zero-based offsets of the first and last bytes to copy",
    );
  }
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (start > end) {
    return new S3Error(
      400,
      "InvalidArgument",
      `Range specified is not valid for source object of size: ${sizeBytes}`,
    );
  }
  if (end >= sizeBytes) {
    return new S3Error(416, "InvalidRange", "The requested range is not satisfiable");
  }
  return { start, end };
}

/**
 * The length of the decoded payload, where the request says it: `x-amz-decoded-content-length`
 * for aws-chunked bodies, else `Content-Length` (which for aws-chunked counts the framing).
 */
export function payloadLength(headers: Headers): number | undefined {
  const whole = (text: string | null) =>
    text !== null && /^\d{1,15}$/.test(text) ? Number(text) : undefined;
  const decoded = headers.get("x-amz-decoded-content-length");
  if (decoded !== null) return whole(decoded);
  const chunked = (headers.get("content-encoding") ?? "").includes("aws-chunked") ||
    (headers.get("x-amz-content-sha256") ?? "").startsWith("STREAMING-");
  return chunked ? undefined : whole(headers.get("content-length"));
}

/** The smallest string after every string that begins with `prefix` (UTF-8 byte order). */
export function afterPrefix(prefix: string): string {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    // Skips the surrogate range, which UTF-8 strings never hold.
    const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
    if (next <= 0x10ffff) return points.join("") + String.fromCodePoint(next);
  }
  return "\u{10ffff}".repeat(prefix.length + 1);
}

/** A part from its key's record, or null if it is not a readable part. */
export function storedPart(key: string, record: KeyRecord): StoredPart | null {
  const parsed = parsePartKey(key);
  if (parsed === null || record.state !== "live" || record.info === undefined) return null;
  return {
    partNumber: parsed.partNumber,
    md5: record.md5,
    sizeBytes: record.info.size,
    mtime: record.info.mtime,
    volumes: record.volumes,
    ...(record.version !== undefined && { version: record.version }),
    ...(record.info.checksum !== undefined && { checksum: record.info.checksum }),
  };
}
