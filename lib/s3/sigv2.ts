// AWS Signature Version 2 as S3 checked it, for the clients whose default is still SigV2: the
// presigned URLs of the AWS CLI v1, of Debian's boto3 and of `s3cmd signurl`
// (`?AWSAccessKeyId=...&Expires=...&Signature=...`), and s3cmd's `Authorization: AWS KEY:SIG`
// header. The signature is the base64 HMAC-SHA1, under the secret, of the method, Content-MD5,
// Content-Type, the date (or, presigned, the expiry), the x-amz-* headers and the resource: the
// path as sent plus the sub-resources S3 names. Only path-style requests reach the index, so the
// resource is the path itself. Pure; golden-tested in tests/unit/s3_sigv2_test.ts against AWS's
// published examples.

import { createHmac } from "node:crypto";
import { RESPONSE_OVERRIDES } from "./headers.ts";
import type { SigV4Verdict } from "./sigv4.ts";
import { signaturesEqual, type SigV4Input, wireBytes } from "./sigv4canonical.ts";
import { type SigV4Failure, UNSIGNED_PAYLOAD } from "./sigv4parse.ts";

/**
 * The query parameters that are part of the signed resource, with their values: S3's
 * sub-resources and the response header overrides (as botocore and s3cmd sign them).
 */
const SUB_RESOURCES = new Set([
  "acl",
  "cors",
  "delete",
  "lifecycle",
  "location",
  "logging",
  "notification",
  "partNumber",
  "policy",
  "requestPayment",
  "restore",
  "tagging",
  "torrent",
  "uploadId",
  "uploads",
  "versionId",
  "versioning",
  "versions",
  "website",
  ...Object.keys(RESPONSE_OVERRIDES),
]);
/** The query parameters of a presigned URL. */
const QUERY_ACCESS_KEY = "AWSAccessKeyId";
const QUERY_EXPIRES = "Expires";
const QUERY_SIGNATURE = "Signature";
/** `AWS KEY:BASE64`: an access key has no colon; a SHA-1 is 28 base64 characters. */
const HEADER_PATTERN = /^\s*AWS ([^\s:]+):([A-Za-z0-9+/]{27}=)\s*$/;
const SIGNATURE_PATTERN = /^[A-Za-z0-9+/]{27}=$/;

/** A SigV2-signed request's claims, before the secret is asked. */
export interface ParsedSigV2 {
  kind: "header" | "query";
  accessKey: string;
  /** Base64 of the HMAC-SHA1, as sent (decoded from the query). */
  signature: string;
  /** The date line of the string to sign: the Date header, "" under x-amz-date, or Expires. */
  dateLine: string;
  /** Header form: when the request was signed; query form: when the URL expires. */
  timeMs: number;
}

function refusal(status: 400 | 403, code: string, message: string): SigV4Failure {
  return { ok: false, status, code, message };
}

/** The SigV2 query parameters of a request, decoded; null where it has none. */
function queryAuth(rawQuery: string): Map<string, string> | null {
  if (!rawQuery.includes(QUERY_SIGNATURE) && !rawQuery.includes(QUERY_ACCESS_KEY)) return null;
  const found = new Map<string, string>();
  for (const part of rawQuery.split("&")) {
    const eq = part.indexOf("=");
    const name = eq === -1 ? part : part.slice(0, eq);
    if (name !== QUERY_ACCESS_KEY && name !== QUERY_EXPIRES && name !== QUERY_SIGNATURE) continue;
    const raw = eq === -1 ? "" : part.slice(eq + 1);
    try {
      found.set(name, decodeURIComponent(raw.replaceAll("+", " ")));
    } catch {
      found.set(name, "");
    }
  }
  return found.has(QUERY_ACCESS_KEY) || found.has(QUERY_SIGNATURE) ? found : null;
}

/**
 * Reads a request's SigV2 claims: null if it has none (no `Authorization: AWS ...`, no
 * `AWSAccessKeyId` or `Signature` in the query), a refusal if they are malformed.
 */
export function parseSigV2(input: SigV4Input): ParsedSigV2 | SigV4Failure | null {
  const authorization = input.headers.get("authorization");
  if (authorization !== null && /^\s*AWS /.test(authorization)) {
    const match = authorization.match(HEADER_PATTERN);
    if (match === null) {
      return refusal(400, "InvalidArgument", "The Authorization header is not AWS KEY:SIGNATURE.");
    }
    const amzDate = input.headers.get("x-amz-date");
    const date = amzDate ?? input.headers.get("date");
    const timeMs = date === null ? NaN : Date.parse(date);
    // S3 takes a date before 1970 for no date at all.
    if (date === null || Number.isNaN(timeMs) || timeMs < 0) {
      return refusal(
        403,
        "AccessDenied",
        "AWS authentication requires a valid Date or x-amz-date header",
      );
    }
    return {
      kind: "header",
      accessKey: match[1],
      signature: match[2],
      dateLine: amzDate === null ? date.trim() : "",
      timeMs,
    };
  }
  const query = queryAuth(input.rawQuery);
  if (query === null) return null;
  const accessKey = query.get(QUERY_ACCESS_KEY) ?? "";
  const expires = query.get(QUERY_EXPIRES) ?? "";
  const signature = query.get(QUERY_SIGNATURE) ?? "";
  if (accessKey === "" || !/^\d{1,12}$/.test(expires) || !SIGNATURE_PATTERN.test(signature)) {
    return refusal(
      400,
      "AuthorizationQueryParametersError",
      "Query-string authentication requires the AWSAccessKeyId, Expires and Signature " +
        "parameters, Expires in seconds since the epoch.",
    );
  }
  return { kind: "query", accessKey, signature, dateLine: expires, timeMs: Number(expires) * 1000 };
}

/**
 * `name:value\n` of every x-amz-* header but those in `leaveOut`, names lower-case and sorted,
 * values trimmed.
 */
function canonicalAmzHeaders(headers: Headers, leaveOut: string[] = []): string {
  const lines: string[] = [];
  // Headers iterates in sorted, lower-case order. A header sent twice reaches the index joined
  // with ", ", which cannot be told from one value holding ", " (as every date does): values are
  // signed as they arrive, so a header repeated in one SigV2 request does not verify.
  for (const [name, value] of headers) {
    if (!name.startsWith("x-amz-") || leaveOut.includes(name)) continue;
    lines.push(`${name}:${value.trim().replace(/\s*\r?\n\s*/g, " ")}\n`);
  }
  return lines.join("");
}

/** Percent-encoding decoded to bytes, each byte one latin-1 character (as headers arrive). */
function percentDecodeToBytes(raw: string): string {
  return raw.replace(/%([0-9A-Fa-f]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * The path as sent, then the sub-resources of the query, sorted, their values decoded to the
 * bytes they stand for.
 */
export function canonicalResource(rawPath: string, rawQuery: string): string {
  const kept: [string, string | null][] = [];
  for (const part of rawQuery === "" ? [] : rawQuery.split("&")) {
    const eq = part.indexOf("=");
    const name = eq === -1 ? part : part.slice(0, eq);
    if (!SUB_RESOURCES.has(name)) continue;
    kept.push([name, eq === -1 ? null : percentDecodeToBytes(part.slice(eq + 1))]);
  }
  kept.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const subs = kept.map(([name, value]) => (value === null ? name : `${name}=${value}`));
  return subs.length === 0 ? rawPath : `${rawPath}?${subs.join("&")}`;
}

/**
 * The strings a SigV2 signature may sign. S3's text puts an x-amz-date among the x-amz-* headers
 * and leaves the date line empty (as s3cmd signs); S3's own example puts it on the date line
 * instead: both are taken. A bucket's path (`/bucket`) is also taken as `/bucket/`, the resource
 * botocore signs for it.
 */
export function stringsToSignV2(input: SigV4Input, parsed: ParsedSigV2): string[] {
  const headers = input.headers;
  const head = `${input.method}\n${headers.get("content-md5")?.trim() ?? ""}\n` +
    `${headers.get("content-type")?.trim() ?? ""}\n`;
  const paths = /^\/[^/]+$/.test(input.rawPath)
    ? [input.rawPath, `${input.rawPath}/`]
    : [input.rawPath];
  const amzDate = headers.get("x-amz-date");
  const texts: string[] = [];
  for (const path of paths) {
    const resource = canonicalResource(path, input.rawQuery);
    texts.push(`${head}${parsed.dateLine}\n${canonicalAmzHeaders(headers)}${resource}`);
    if (parsed.kind === "header" && amzDate !== null) {
      texts.push(
        `${head}${amzDate.trim()}\n${canonicalAmzHeaders(headers, ["x-amz-date"])}${resource}`,
      );
    }
  }
  return texts;
}

/** Base64 of the HMAC-SHA1 of `text`, as the bytes it stands for (`wireBytes`), under `secret`. */
export function signV2(secret: string, text: string): string {
  return createHmac("sha1", secret).update(wireBytes(text)).digest("base64");
}

/**
 * Checks a request's SigV2 signature: who signed it (InvalidAccessKeyId), when
 * (RequestTimeTooSkewed for a header, AccessDenied for an expired URL), and the signature
 * (SignatureDoesNotMatch). A request without SigV2 claims is an AccessDenied here; call
 * `parseSigV2` first to tell it apart.
 */
export function verifySigV2(
  input: SigV4Input,
  options: { secretFor: (accessKey: string) => string | null; nowMs: number; maxSkewMs: number },
): SigV4Verdict {
  const parsed = parseSigV2(input);
  if (parsed === null) return refusal(403, "AccessDenied", "Access Denied");
  if ("ok" in parsed) return parsed;
  const secret = options.secretFor(parsed.accessKey);
  if (secret === null) {
    return refusal(
      403,
      "InvalidAccessKeyId",
      "The AWS Access Key Id you provided does not exist in our records.",
    );
  }
  if (parsed.kind === "header" && Math.abs(options.nowMs - parsed.timeMs) > options.maxSkewMs) {
    return refusal(
      403,
      "RequestTimeTooSkewed",
      "The difference between the request time and the current time is too large.",
    );
  }
  if (parsed.kind === "query" && options.nowMs > parsed.timeMs) {
    return refusal(403, "AccessDenied", "Request has expired");
  }
  const texts = stringsToSignV2(input, parsed);
  if (!texts.some((text) => signaturesEqual(signV2(secret, text), parsed.signature))) {
    return {
      ...refusal(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. " +
          "Check your key and signing method.",
      ),
      stringToSign: texts[0],
    };
  }
  return {
    ok: true,
    accessKey: parsed.accessKey,
    payloadHash: input.headers.get("x-amz-content-sha256") ?? UNSIGNED_PAYLOAD,
    presigned: parsed.kind === "query",
  };
}
