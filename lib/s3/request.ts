// Where an S3 request points (docs/s3.md): its target split into the raw path and query, the
// bucket and key of a path-style path (and the index key `/BUCKET/KEY` it maps to), bucket name
// rules, and the object an `x-amz-copy-source` names. Pure; golden-tested in
// tests/unit/s3_route_test.ts.

import { splitTarget } from "../rawtarget.ts";
import { MAX_KEY_BYTES, utf8Length } from "../placement.ts";
import { S3Error } from "./error.ts";

/** What a path-style request names: the service (`/`), a bucket, or an object. */
export type S3Target =
  | { kind: "service" }
  | { kind: "bucket"; bucket: string }
  | { kind: "object"; bucket: string; objectKey: string; key: string };

/** The object a handler works on: its bucket and its index key `/BUCKET/KEY`. */
export interface ObjectTarget {
  bucket: string;
  key: string;
}

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
  const trimmed = header.trim();
  const { rawPath, rawQuery } = splitTarget(trimmed);
  // A version may be named only as the one there is: none, or "null".
  if (rawPath !== trimmed && !/^versionId=(null)?$/.test(rawQuery)) {
    throw new S3Error(400, "InvalidArgument", "Versions are not supported.");
  }
  let text = rawPath;
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
