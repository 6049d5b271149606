// The conditions of S3 requests against a key's record (docs/s3.md): Range and If-Range of a GET,
// the conditional headers of a GET or HEAD (and of a copy's source), and If-Match/If-None-Match of
// a write. Pure; golden-tested in tests/unit/s3_route_test.ts.

import type { KeyRecord } from "../core/mod.ts";
import { etagOf, httpDate } from "./headers.ts";

/** The conditional headers a copy's source is checked with, as `x-amz-copy-source-<name>`. */
const COPY_SOURCE_CONDITIONS = [
  "if-match",
  "if-none-match",
  "if-modified-since",
  "if-unmodified-since",
];

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
 * The conditions of a copy's source (`x-amz-copy-source-if-match`, ...) as the conditional
 * headers `checkConditions` reads.
 */
export function copySourceConditions(headers: Headers): Headers {
  const conditions = new Headers();
  for (const name of COPY_SOURCE_CONDITIONS) {
    const value = headers.get(`x-amz-copy-source-${name}`);
    if (value !== null) conditions.set(name, value);
  }
  return conditions;
}
