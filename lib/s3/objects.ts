// The pure parts of the S3 API (docs/s3.md): where a path-style request points (bucket and key,
// and the index key `/BUCKET/KEY` it maps to), bucket name rules, user metadata and its bound,
// Range and conditional headers against a record, ETags, dates, copy sources and listing
// parameters. Golden-tested in tests/s3_route_test.ts; lib/s3/api.ts does the I/O.

import { utf8Length } from "../placement.ts";
import { MAX_KEY_BYTES } from "../placement.ts";
import type { KeyRecord } from "../core/record.ts";
import { S3Error } from "./error.ts";

/**
 * S3's status and code for the index's refusals of a write (lib/http/server.ts `WriteResult`). A 409
 * is a write to the key that was still in progress once this one had waited its while for it
 * (`lockWaitMs`): S3's SlowDown, which clients retry.
 */
const WRITE_FAILURES: Record<number, [number, string]> = {
  400: [400, "IncompleteBody"],
  403: [403, "AccessDenied"],
  404: [404, "NoSuchKey"],
  409: [503, "SlowDown"],
  411: [411, "MissingContentLength"],
  412: [412, "PreconditionFailed"],
  503: [503, "ServiceUnavailable"],
  507: [507, "InsufficientStorage"],
};

/**
 * How long an S3 write waits for a write in progress to the same key before SlowDown (503):
 * S3's last writer wins, where minikeyvalue's PUT is refused with 409 at once. Long enough for
 * writers of small values to take turns; a client contending with a large upload retries.
 */
export const WRITE_LOCK_WAIT_MS = 5_000;
/** S3's bound on user metadata: names and values of every `x-amz-meta-*` header, in bytes. */
export const MAX_METADATA_BYTES = 2048;
/** S3's largest and default page of a listing. */
export const MAX_LIST_KEYS = 1000;
/** The largest Content-Type kept (it goes back in a header). */
export const MAX_CONTENT_TYPE_BYTES = 1024;
/** What S3 answers as the type of a value stored without one. */
export const DEFAULT_CONTENT_TYPE = "binary/octet-stream";

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
export const MAX_STORED_HEADER_BYTES = 2048;
/** The query parameters that override a GET's answer headers, and the header each replaces. */
export const RESPONSE_OVERRIDES: Record<string, string> = {
  "response-cache-control": "cache-control",
  "response-content-disposition": "content-disposition",
  "response-content-encoding": "content-encoding",
  "response-content-language": "content-language",
  "response-content-type": "content-type",
  "response-expires": "expires",
};

/** What a path-style request names: the service (`/`), a bucket, or an object. */
export type S3Target =
  | { kind: "service" }
  | { kind: "bucket"; bucket: string }
  | { kind: "object"; bucket: string; objectKey: string; key: string };

/** Why `name` is not an S3 bucket name, or null if it is one (S3's general purpose rules). */
export function bucketNameProblem(name: string): string | null {
  if (name.length < 3 || name.length > 63) return "must be 3 to 63 characters long";
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) {
    return "must be lower-case letters, digits, dots and hyphens, starting and ending with a " +
      "letter or digit";
  }
  if (name.includes("..")) return "must not hold two adjacent dots";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return "must not be formatted as an IP address";
  if (name.startsWith("xn--") || name.startsWith("sthree-")) return "has a reserved prefix";
  if (name.endsWith("-s3alias") || name.endsWith("--ol-s3")) return "has a reserved suffix";
  return null;
}

/**
 * The target of a path-style request from its raw (percent-encoded) path. Throws S3Error:
 * InvalidURI for bad percent-encoding, InvalidBucketName, KeyTooLongError when `/BUCKET/KEY`
 * exceeds the index's MAX_KEY_BYTES.
 */
export function parseS3Path(rawPath: string): S3Target {
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw new S3Error(400, "InvalidURI", "Couldn't parse the specified URI.");
  }
  if (path === "/" || path === "") return { kind: "service" };
  const slash = path.indexOf("/", 1);
  const bucket = slash === -1 ? path.slice(1) : path.slice(1, slash);
  const problem = bucketNameProblem(bucket);
  if (problem !== null) {
    throw new S3Error(400, "InvalidBucketName", `The specified bucket is not valid: ${problem}.`);
  }
  const objectKey = slash === -1 ? "" : path.slice(slash + 1);
  if (objectKey === "") return { kind: "bucket", bucket };
  // S3 refuses the C1 control characters (U+0080 to U+009F) in a key.
  if (/[\u0080-\u009f]/.test(objectKey)) {
    throw new S3Error(400, "InvalidURI", "Couldn't parse the specified URI.", `/${bucket}`);
  }
  const key = `/${bucket}/${objectKey}`;
  if (utf8Length(key) > MAX_KEY_BYTES) {
    throw new S3Error(
      400,
      "KeyTooLongError",
      `Your key is too long: /BUCKET/KEY may be at most ${MAX_KEY_BYTES} bytes here.`,
      key,
    );
  }
  return { kind: "object", bucket, objectKey, key };
}

/** The region a CreateBucketConfiguration body asks for, "" when it names none. */
export function locationConstraint(body: Record<string, unknown>): string {
  const config = body.CreateBucketConfiguration;
  if (typeof config !== "object" || config === null) return "";
  const region = (config as Record<string, unknown>).LocationConstraint;
  return typeof region === "string" ? region.trim() : "";
}

/** The index key of an object. */
export function objectIndexKey(bucket: string, objectKey: string): string {
  return `/${bucket}/${objectKey}`;
}

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

/** A satisfiable byte range, inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * A Range header against a value of `sizeBytes`: the range to serve, null to serve the whole
 * value (no header, one S3 ignores such as several ranges or another unit), or "invalid" when it
 * is unsatisfiable (InvalidRange, 416).
 */
export function parseRange(header: string | null, sizeBytes: number): ByteRange | null | "invalid" {
  if (header === null) return null;
  const match = header.trim().match(/^bytes=(\d{0,15})-(\d{0,15})$/);
  if (match === null) return null;
  const [, first, last] = match;
  if (first === "" && last === "") return null;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || sizeBytes === 0) return "invalid";
    return { start: Math.max(0, sizeBytes - suffix), end: sizeBytes - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return null;
  if (start >= sizeBytes) return "invalid";
  const end = last === "" ? sizeBytes - 1 : Math.min(Number(last), sizeBytes - 1);
  return { start, end };
}

/**
 * Whether a request's Range applies: always without If-Range, else only if If-Range names the
 * value's ETag or its Last-Modified (otherwise the whole value is sent, as RFC 9110 says).
 */
export function rangeApplies(headers: Headers, record: KeyRecord): boolean {
  const ifRange = headers.get("if-range");
  if (ifRange === null) return true;
  const text = ifRange.trim();
  if (text.startsWith('"') || text.startsWith("W/")) return text === etagOf(record);
  return text === httpDate(record.info?.mtime ?? 0);
}

/** Whether an If-Match / If-None-Match list (`"a", "b"`, `*`) names `etag` (quoted). */
function etagListMatches(list: string, etag: string): boolean {
  return list.split(",").some((item) => {
    const tag = item.trim().replace(/^W\//, "");
    return tag === "*" || (etag !== "" && (tag === etag || `"${tag}"` === etag));
  });
}

function parseHttpDate(text: string | null): number | null {
  if (text === null) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * The conditional headers of a GET or HEAD against a record, in the order of RFC 9110 (as S3
 * applies them): 412 PreconditionFailed, 304 Not Modified, or null to answer normally.
 */
export function checkConditions(headers: Headers, record: KeyRecord): 304 | 412 | null {
  const etag = etagOf(record);
  // Last-Modified has whole seconds; compare at that precision.
  const mtimeMs = Math.floor((record.info?.mtime ?? 0) / 1000) * 1000;
  const ifMatch = headers.get("if-match");
  if (ifMatch !== null) {
    if (!etagListMatches(ifMatch, etag)) return 412;
  } else {
    const since = parseHttpDate(headers.get("if-unmodified-since"));
    if (since !== null && mtimeMs > since) return 412;
  }
  const ifNoneMatch = headers.get("if-none-match");
  if (ifNoneMatch !== null) {
    if (etagListMatches(ifNoneMatch, etag)) return 304;
  } else {
    const since = parseHttpDate(headers.get("if-modified-since"));
    if (since !== null && mtimeMs <= since) return 304;
  }
  return null;
}

/** Why a write may not go ahead: S3's status for it and a short reason. */
export interface WriteRefusal {
  status: 404 | 412;
  reason: string;
}

/**
 * A write's If-Match and If-None-Match (PutObject, CopyObject, CompleteMultipartUpload) against
 * the key's live value (null where there is none): If-Match needs a value (404 NoSuchKey
 * without one) whose ETag it lists, or `*`; If-None-Match refuses a value whose ETag it lists,
 * or any value for `*`. Null when the write may go ahead.
 */
export function writeConditionFailure(
  headers: Headers,
  current: KeyRecord | null,
): WriteRefusal | null {
  const ifMatch = headers.get("if-match");
  if (ifMatch !== null) {
    if (current === null) return { status: 404, reason: "The specified key does not exist." };
    if (!etagListMatches(ifMatch, etagOf(current))) {
      return { status: 412, reason: "At least one of the preconditions failed: If-Match." };
    }
  }
  const ifNoneMatch = headers.get("if-none-match");
  if (ifNoneMatch !== null && current !== null && etagListMatches(ifNoneMatch, etagOf(current))) {
    return { status: 412, reason: "At least one of the preconditions failed: If-None-Match." };
  }
  return null;
}

/**
 * What every S3 write of an object asks of the index's write path: replace a live value, store an
 * empty one, wait its turn behind a write in progress, and the request's If-Match and
 * If-None-Match, checked under the key's lock.
 */
export function s3WriteOptions(headers: Headers): {
  overwrite: true;
  allowEmpty: true;
  lockWaitMs: number;
  precondition?: (current: KeyRecord | null) => WriteRefusal | null;
} {
  const conditional = headers.has("if-match") || headers.has("if-none-match");
  return {
    overwrite: true,
    allowEmpty: true,
    lockWaitMs: WRITE_LOCK_WAIT_MS,
    ...(conditional && { precondition: (current) => writeConditionFailure(headers, current) }),
  };
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
  return { [`x-amz-checksum-${checksum.algorithm}`]: checksum.base64 };
}

/** The object an `x-amz-copy-source` names (`bucket/key` or `/bucket/key`, URL-encoded). */
export function parseCopySource(
  header: string,
): { bucket: string; objectKey: string; key: string } {
  const bad = () =>
    new S3Error(
      400,
      "InvalidArgument",
      "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
    );
  let text = header.trim();
  const query = text.indexOf("?");
  if (query !== -1) {
    if (!/^versionId=(null)?$/.test(text.slice(query + 1))) {
      throw new S3Error(400, "InvalidArgument", "Versions are not supported.");
    }
    text = text.slice(0, query);
  }
  if (!text.startsWith("/")) text = `/${text}`;
  let target: S3Target;
  try {
    target = parseS3Path(text);
  } catch (err) {
    if (err instanceof S3Error && err.code === "KeyTooLongError") throw err;
    throw bad();
  }
  if (target.kind !== "object") throw bad();
  return target;
}

/** The parameters of ListObjects (v1) and ListObjectsV2, checked. */
export interface ListParams {
  /** ListObjects (1), ListObjectsV2 (2) or ListObjectVersions ("versions"). */
  version: 1 | 2 | "versions";
  prefix: string;
  delimiter: string;
  maxKeys: number;
  /** The object key to start after (v2's start-after or continuation-token, v1's marker). */
  after: string;
  /** v2's continuation-token as given, echoed back. */
  continuationToken?: string;
  startAfter?: string;
  marker?: string;
  encodingType?: "url";
  fetchOwner: boolean;
}

/** An opaque continuation token: the last object key of the page, base64url. */
export function encodeToken(objectKey: string): string {
  return new TextEncoder().encode(objectKey).toBase64({ alphabet: "base64url", omitPadding: true });
}

/** The object key of a continuation token; throws InvalidArgument for one not ours. */
export function decodeToken(token: string): string {
  try {
    const bytes = Uint8Array.fromBase64(token, { alphabet: "base64url" });
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new S3Error(400, "InvalidArgument", "The continuation token provided is incorrect");
  }
}

/** The listing parameters of a query; throws InvalidArgument for bad ones. */
export function parseListParams(query: URLSearchParams): ListParams {
  const version = query.has("versions") ? "versions" : query.get("list-type") === "2" ? 2 : 1;
  if (query.has("list-type") && version === 1) {
    throw new S3Error(400, "InvalidArgument", "Invalid List Type specified: list-type must be 2");
  }
  let maxKeys = MAX_LIST_KEYS;
  const max = query.get("max-keys");
  if (max !== null) {
    if (!/^\d{1,9}$/.test(max)) {
      throw new S3Error(400, "InvalidArgument", "max-keys must be a whole number from 0 to 1000");
    }
    maxKeys = Math.min(Number(max), MAX_LIST_KEYS);
  }
  const encoding = query.get("encoding-type");
  if (encoding !== null && encoding !== "url") {
    throw new S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request");
  }
  const params: ListParams = {
    version,
    prefix: query.get("prefix") ?? "",
    delimiter: query.get("delimiter") ?? "",
    maxKeys,
    after: "",
    fetchOwner: query.get("fetch-owner") === "true",
    ...(encoding === "url" && { encodingType: "url" as const }),
  };
  if (version === 2) {
    const token = query.get("continuation-token");
    const startAfter = query.get("start-after");
    if (startAfter !== null) params.startAfter = startAfter;
    if (token !== null) {
      params.continuationToken = token;
      params.after = decodeToken(token);
    } else if (startAfter !== null) params.after = startAfter;
  } else {
    // ListObjectVersions' key-marker is v1's marker; its version-id-marker can only be "null".
    const marker = query.get(version === "versions" ? "key-marker" : "marker");
    if (marker !== null) {
      params.marker = marker;
      params.after = marker;
    }
  }
  return params;
}

/** S3's `encoding-type=url`: keys percent-encoded as a URL's path would be (`/` kept). */
export function urlEncodeKey(text: string): string {
  return encodeURIComponent(text).replaceAll("%2F", "/");
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
 * The S3 error of a write that did not happen: what broke the body (`cause`, kept by
 * keepFailure or a reader of parts), else the index's status in S3's terms.
 */
export function writeFailure(
  result: { status: number; reason: string },
  options: { key?: string; cause?: unknown } = {},
): S3Error {
  if (options.cause instanceof S3Error) return options.cause;
  const [status, code] = WRITE_FAILURES[result.status] ?? [500, "InternalError"];
  return new S3Error(status, code, result.reason, options.key);
}
