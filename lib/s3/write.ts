// S3 writes of objects through the core's one write path (docs/s3.md, "Overwrites"): what every
// S3 write asks of it (replace a live value, store an empty one, wait its turn, the request's
// If-Match/If-None-Match under the key's lock), the attributes it keeps with the value, and the
// core's refusals in S3's terms. Pure.

import type { KeyRecord, ObjectInfo } from "../core/mod.ts";
import { writeConditionFailure, type WriteRefusal } from "./conditions.ts";
import { S3Error } from "./error.ts";

/**
 * S3's status and code for the index's refusals of a write (the core's `WriteResult`). A 409
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

/** The attributes an S3 write keeps with a value (the `attributes` of the core's write). */
export type ObjectInfoFields = Omit<ObjectInfo, "size" | "mtime">;

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

/** The attributes with their undefined fields left out, as a record keeps them. */
export function withoutUndefined<T extends Record<string, unknown>>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) if (field !== undefined) out[name] = field;
  return out as T;
}
