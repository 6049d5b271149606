// The headers of S3 objects (docs/s3.md): what a PUT keeps with a value (Content-Type, user
// metadata `x-amz-meta-*` and its bound, the standard headers S3 stores), and what a GET or HEAD
// answers with from the record (ETag, Last-Modified, overrides by `response-*` parameters, the
// stored checksum). Pure; golden-tested in tests/unit/s3_route_test.ts.

import { utf8Length } from "../placement.ts";
import type { KeyRecord } from "../core/mod.ts";
import { CHECKSUM_HEADER_PREFIX } from "./checksum.ts";

/** The header that says how a multipart object's checksum was made. */
const CHECKSUM_TYPE_HEADER = "x-amz-checksum-type";
import { S3Error } from "./error.ts";

/** S3's bound on user metadata: names and values of every `x-amz-meta-*` header, in bytes. */
const MAX_METADATA_BYTES = 2048;
/** The largest Content-Type kept (it goes back in a header). */
const MAX_CONTENT_TYPE_BYTES = 1024;
/** What S3 answers as the type of a value stored without one. */
const DEFAULT_CONTENT_TYPE = "binary/octet-stream";

const META_PREFIX = "x-amz-meta-";
/** The standard headers an object keeps from its PUT and answers with, as S3's do. */
export const STORED_HEADERS = [
  "cache-control",
  "content-disposition",
  "content-encoding",
  "content-language",
  "expires",
];
/** The most the stored standard headers of one object may hold, names and values. */
const MAX_STORED_HEADER_BYTES = 2048;
/** The query parameters that override a GET's answer headers, and the header each replaces. */
export const RESPONSE_OVERRIDES: Record<string, string> = {
  "response-cache-control": "cache-control",
  "response-content-disposition": "content-disposition",
  "response-content-encoding": "content-encoding",
  "response-content-language": "content-language",
  "response-content-type": "content-type",
  "response-expires": "expires",
};

/**
 * The `x-amz-meta-*` headers as metadata (names lower-case, without the prefix), or undefined
 * when there are none; throws MetadataTooLarge beyond MAX_METADATA_BYTES.
 */
export function userMetadata(headers: Headers): Record<string, string> | undefined {
  let meta: Record<string, string> | undefined;
  let bytes = 0;
  for (const [name, value] of headers) {
    if (!name.startsWith(META_PREFIX)) continue;
    const short = name.slice(META_PREFIX.length);
    bytes += utf8Length(short) + utf8Length(value);
    (meta ??= {})[short] = value;
  }
  if (bytes > MAX_METADATA_BYTES) {
    throw new S3Error(
      400,
      "MetadataTooLarge",
      `Your metadata headers exceed the maximum allowed metadata size (${MAX_METADATA_BYTES} bytes).`,
    );
  }
  return meta;
}

/**
 * The standard headers to keep for a PUT (STORED_HEADERS), or undefined for none; throws
 * InvalidArgument beyond MAX_STORED_HEADER_BYTES. `aws-chunked`, the framing of the upload, is
 * not the value's encoding: S3 keeps what Content-Encoding says besides it.
 */
export function storedHeaders(headers: Headers): Record<string, string> | undefined {
  let kept: Record<string, string> | undefined;
  let bytes = 0;
  for (const name of STORED_HEADERS) {
    let value = headers.get(name);
    if (name === "content-encoding" && value !== null) {
      value = value.split(",").map((part) => part.trim())
        .filter((part) => part !== "" && part.toLowerCase() !== "aws-chunked").join(", ");
    }
    if (value === null || value === "") continue;
    bytes += name.length + utf8Length(value);
    (kept ??= {})[name] = value;
  }
  if (bytes > MAX_STORED_HEADER_BYTES) {
    throw new S3Error(
      400,
      "InvalidArgument",
      `Cache-Control, Content-Disposition, Content-Encoding, Content-Language and Expires ` +
        `together exceed ${MAX_STORED_HEADER_BYTES} bytes.`,
    );
  }
  return kept;
}

/** The answer headers a GET's `response-*` query parameters replace, by header name. */
export function responseOverrides(query: URLSearchParams): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const [parameter, header] of Object.entries(RESPONSE_OVERRIDES)) {
    const value = query.get(parameter);
    if (value !== null) overrides[header] = value;
  }
  return overrides;
}

/** The Content-Type to keep for a PUT, or undefined for none; throws for one too long. */
export function contentTypeOf(headers: Headers): string | undefined {
  const type = headers.get("content-type");
  if (type === null || type === "") return undefined;
  if (utf8Length(type) > MAX_CONTENT_TYPE_BYTES) {
    throw new S3Error(400, "InvalidArgument", "Content-Type is too long.");
  }
  return type;
}

/** S3's ETag of a record: the multipart ETag if it has one, else the md5; quoted. "" if none. */
export function etagOf(record: KeyRecord): string {
  const tag = record.info?.etag ?? record.md5;
  return tag === "" ? "" : `"${tag}"`;
}

/** An HTTP date (`Fri, 04 Dec 2026 14:06:34 GMT`), as Last-Modified has it. */
export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** An ISO 8601 date with milliseconds, as S3's listings have it. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

/** The headers a GET or HEAD of an object answers with, from its record (no Content-Length). */
export function objectHeaders(record: KeyRecord): Record<string, string> {
  const info = record.info;
  const headers: Record<string, string> = {
    "accept-ranges": "bytes",
    "content-type": info?.type ?? DEFAULT_CONTENT_TYPE,
    "last-modified": httpDate(info?.mtime ?? 0),
  };
  const etag = etagOf(record);
  if (etag !== "") headers.etag = etag;
  Object.assign(headers, info?.headers);
  for (const [name, value] of Object.entries(info?.meta ?? {})) headers[META_PREFIX + name] = value;
  return headers;
}

/**
 * The stored checksum's header (`x-amz-checksum-crc32: ...`) where a GET or HEAD asks for it
 * (`x-amz-checksum-mode: ENABLED`) and reads the whole value: a range has no checksum of its own.
 */
export function checksumHeaders(
  headers: Headers,
  record: KeyRecord,
  options: { ranged: boolean },
): Record<string, string> {
  const checksum = record.info?.checksum;
  if (
    checksum === undefined || options.ranged ||
    headers.get("x-amz-checksum-mode")?.toUpperCase() !== "ENABLED"
  ) {
    return {};
  }
  return checksumHeader(checksum);
}

/** Whether answer headers carry an `x-amz-checksum-*`. */
export function hasChecksumHeader(headers: Record<string, string>): boolean {
  return Object.keys(headers).some((name) => name.startsWith(CHECKSUM_HEADER_PREFIX));
}

/** The header of a stored checksum, as answers carry it (`x-amz-checksum-crc32: ...`). */
export function checksumHeader(
  checksum: { algorithm: string; base64: string; type?: string },
): Record<string, string> {
  const headers = { [CHECKSUM_HEADER_PREFIX + checksum.algorithm]: checksum.base64 };
  // A multipart object's checksum says how it was made (COMPOSITE or FULL_OBJECT).
  if (checksum.type !== undefined) headers[CHECKSUM_TYPE_HEADER] = checksum.type;
  return headers;
}
