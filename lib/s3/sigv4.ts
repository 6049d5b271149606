// AWS Signature Version 4 as S3 checks it, for the requests that reach the index's S3 API (behind
// its nginx, which passes the client's Host header through). A request is signed either by an
// `Authorization: AWS4-HMAC-SHA256 ...` header or by presigned query parameters (`X-Amz-*`); both
// sign a canonical form of the request (method, path, query, chosen headers, payload hash) with a
// key derived from the secret and the credential scope. Verification rebuilds that form the way
// S3 does and compares signatures in constant time. The payload itself is checked later, as it
// streams: `sha256Verifier` for a body whose sha256 was signed, lib/s3/chunked.ts for aws-chunked
// bodies, whose chunk signatures chain from the seed signature this module verifies. Pure, but for
// the streams; golden-tested in tests/s3_sigv4_test.ts against AWS's examples and its signer.

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { S3Error } from "./error.ts";

export const ALGORITHM = "AWS4-HMAC-SHA256";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** aws-chunked bodies whose chunks are signed, without and with a signed trailer. */
export const STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
export const STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/** An aws-chunked body without signatures, whose trailer carries a checksum. */
export const STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/** sha256 of nothing, in hex: part of every chunk's string to sign. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** The longest a presigned URL may live: a week, as S3 allows. */
export const MAX_PRESIGNED_EXPIRES_SECONDS = 604_800;
/** Bounds on what a client can make the index parse and hash. */
export const MAX_SIGNED_HEADERS = 64;
export const MAX_QUERY_PARAMS = 256;

const SERVICE = "s3";
const TERMINATOR = "aws4_request";
const AMZ_DATE_PATTERN = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SHA256_HEX_PATTERN = /^[0-9a-fA-F]{64}$/;
const SIGNATURE_PATTERN = /^[0-9a-f]{64}$/;
const HEADER_NAME_PATTERN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** Characters AWS's UriEncode keeps as they are; every other byte becomes %XX. */
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const HEX_UPPER = "0123456789ABCDEF";
const QUERY_PARAMS = {
  algorithm: "X-Amz-Algorithm",
  credential: "X-Amz-Credential",
  date: "X-Amz-Date",
  expires: "X-Amz-Expires",
  signedHeaders: "X-Amz-SignedHeaders",
  signature: "X-Amz-Signature",
  contentSha256: "X-Amz-Content-Sha256",
} as const;
const encoder = new TextEncoder();

/** A request as it reached the index. */
export interface SigV4Input {
  method: string;
  /** The path as sent, percent-encoded, without the query. */
  rawPath: string;
  /** The query as sent, without '?'. */
  rawQuery: string;
  headers: Headers;
}

/** What chunk signatures of an aws-chunked body are checked with (lib/s3/chunked.ts). */
export interface ChunkSigning {
  signingKey: Uint8Array;
  /** The request's X-Amz-Date, `20130524T000000Z`. */
  amzDate: string;
  /** `20130524/us-east-1/s3/aws4_request`. */
  scope: string;
  /** The request's own signature, which the first chunk's signature chains from. */
  seedSignature: string;
}

/** A SigV4 signature as the request presents it, not yet checked. */
export interface ParsedSigV4 {
  /** `header` for an Authorization header, `query` for a presigned URL. */
  kind: "header" | "query";
  accessKey: string;
  /** The X-Amz-Date (or the Date header, in that form): `20130524T000000Z`. */
  amzDate: string;
  /** When amzDate is, in ms since the epoch. */
  dateMs: number;
  region: string;
  scope: string;
  /** Lower-case header names, in the order the client listed them. */
  signedHeaders: string[];
  signature: string;
  /** What stands for the payload in the canonical request: a hex sha256 or one of the markers. */
  payloadHash: string;
  /** A presigned URL's X-Amz-Expires. */
  expiresSeconds?: number;
}

/** Why a request is refused: S3's status, code and message. */
export interface SigV4Failure {
  ok: false;
  status: 400 | 403;
  code: string;
  message: string;
  /** For SignatureDoesNotMatch, what the index signed, as S3 shows it to help a client debug. */
  canonicalRequest?: string;
  stringToSign?: string;
}

export interface SigV4Success {
  ok: true;
  accessKey: string;
  /** The payload hash that was signed: a hex sha256 to check the body against, or a marker. */
  payloadHash: string;
  presigned: boolean;
  /** Set for STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) bodies, whose chunks are signed. */
  streaming?: ChunkSigning;
}

export type SigV4Verdict = SigV4Success | SigV4Failure;

export interface VerifyOptions {
  /** The secret of an access key, or null for a key the index does not know. */
  secretFor(accessKey: string): string | null;
  nowMs: number;
  /** How far a request's date may be from nowMs (S3 allows 15 minutes). */
  maxSkewMs: number;
}

function failure(status: 400 | 403, code: string, message: string): SigV4Failure {
  return { ok: false, status, code, message };
}

function headerMalformed(reason: string): SigV4Failure {
  return failure(
    400,
    "AuthorizationHeaderMalformed",
    `The authorization header is malformed; ${reason}`,
  );
}

function queryError(message: string): SigV4Failure {
  return failure(400, "AuthorizationQueryParametersError", message);
}

/** ms since the epoch of an ISO 8601 basic date-time (`20130524T000000Z`), or null. */
export function parseAmzDate(text: string): number | null {
  const m = AMZ_DATE_PATTERN.exec(text);
  if (m === null) return null;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  // Date.UTC rolls 20130231 over to March; a date that does not round-trip is not a date.
  const exact = back.getUTCMonth() === month - 1 && back.getUTCDate() === day &&
    back.getUTCHours() === hour && back.getUTCMinutes() === minute && second < 60;
  return exact ? ms : null;
}

/** The ISO 8601 basic form of a time, as X-Amz-Date writes it. */
export function formatAmzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
}

/** AWS's UriEncode of bytes: unreserved characters kept, '/' kept when `keepSlash`. */
function uriEncodeBytes(bytes: Uint8Array, keepSlash: boolean): string {
  let out = "";
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    if ((byte < 0x80 && UNRESERVED.test(char)) || (keepSlash && char === "/")) {
      out += char;
    } else {
      out += `%${HEX_UPPER[byte >> 4]}${HEX_UPPER[byte & 15]}`;
    }
  }
  return out;
}

/** The bytes a percent-encoded text stands for; a '%' not followed by two hex digits is itself. */
function percentDecode(text: string): Uint8Array {
  const raw = encoder.encode(text);
  const out = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i];
    if (byte === 0x25 && isHex(raw[i + 1]) && isHex(raw[i + 2])) {
      out[n++] = (hexValue(raw[i + 1]) << 4) | hexValue(raw[i + 2]);
      i += 2;
    } else {
      out[n++] = byte;
    }
  }
  return out.subarray(0, n);
}

function isHex(byte: number | undefined): boolean {
  return byte !== undefined &&
    ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) ||
      (byte >= 0x61 && byte <= 0x66));
}

function hexValue(byte: number): number {
  return byte <= 0x39 ? byte - 0x30 : (byte | 0x20) - 0x61 + 10;
}

/** AWS's UriEncode of a text, as a signer applies it to a key or a query name or value. */
export function uriEncode(text: string, keepSlash = false): string {
  return uriEncodeBytes(encoder.encode(text), keepSlash);
}

/** The canonical URI: the path as sent, decoded, then encoded again (dot segments stay). */
export function canonicalUri(rawPath: string): string {
  if (rawPath === "") return "/";
  return uriEncodeBytes(percentDecode(rawPath), true);
}

/** The query's parameters, decoded, in the order sent; a name without '=' has the value "". */
export function parseQuery(rawQuery: string): [string, string][] {
  if (rawQuery === "") return [];
  const decoder = new TextDecoder();
  return rawQuery.split("&").filter((part) => part !== "").map((part) => {
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? "" : part.slice(eq + 1);
    return [decoder.decode(percentDecode(name)), decoder.decode(percentDecode(value))];
  });
}

/**
 * The canonical query: every parameter encoded, sorted by name then value; a presigned URL's
 * `X-Amz-Signature` left out.
 */
export function canonicalQuery(rawQuery: string, presigned: boolean): string {
  const parts = rawQuery === "" ? [] : rawQuery.split("&").filter((part) => part !== "");
  const encoded: [string, string][] = [];
  for (const part of parts) {
    const eq = part.indexOf("=");
    const name = uriEncodeBytes(percentDecode(eq < 0 ? part : part.slice(0, eq)), false);
    if (presigned && name === QUERY_PARAMS.signature) continue;
    encoded.push([name, uriEncodeBytes(percentDecode(eq < 0 ? "" : part.slice(eq + 1)), false)]);
  }
  encoded.sort((a, b) =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0
  );
  return encoded.map(([name, value]) => `${name}=${value}`).join("&");
}

/** A header value as signed: trimmed, runs of spaces inside made one. */
function canonicalHeaderValue(value: string): string {
  return value.trim().replace(/ {2,}/g, " ");
}

/** The canonical request S3 signs. */
export function canonicalRequest(input: SigV4Input, parsed: ParsedSigV4): string {
  const headerLines = parsed.signedHeaders.map((name) =>
    `${name}:${canonicalHeaderValue(input.headers.get(name) ?? "")}\n`
  ).join("");
  return [
    input.method,
    canonicalUri(input.rawPath),
    canonicalQuery(input.rawQuery, parsed.kind === "query"),
    headerLines,
    parsed.signedHeaders.join(";"),
    parsed.payloadHash,
  ].join("\n");
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: string | Uint8Array, data: string): Uint8Array {
  return createHmac("sha256", key).update(data).digest();
}

/**
 * The bytes a text of the request stands for. Deno hands each byte of a header over as one
 * latin-1 character, and the rest of a canonical request is ASCII, so one byte per character
 * gives back what the client hashed: a UTF-8 x-amz-meta-* value verifies as sent.
 */
export function wireBytes(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0) & 0xff);
}

/** The string to sign of a request: the algorithm, date, scope and the canonical request's hash. */
export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(wireBytes(canonical))}`;
}

/** The key a secret signs with for one day, region and service (`aws4_request` scope). */
export function signingKey(
  secret: string,
  date: string,
  region: string,
  service = SERVICE,
): Uint8Array {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), TERMINATOR);
}

/** HMAC-SHA256 of `text` with the signing key, in hex: a request's or a chunk's signature. */
export function sign(key: Uint8Array, text: string): string {
  return createHmac("sha256", key).update(text).digest("hex");
}

/** Whether two signatures (hex) are the same, in time that does not depend on where they differ. */
export function signaturesEqual(a: string, b: string): boolean {
  const left = encoder.encode(a);
  const right = encoder.encode(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The four parts after the access key of `AKID/20130524/us-east-1/s3/aws4_request`. */
function parseCredential(
  credential: string,
  malformed: (reason: string) => SigV4Failure,
): { accessKey: string; date: string; region: string } | SigV4Failure {
  const parts = credential.split("/");
  if (parts.length < 5 || parts.slice(-4).some((part) => part === "") || parts[0] === "") {
    return malformed(
      `the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`,
    );
  }
  const [date, region, service, terminator] = parts.slice(-4);
  if (service !== SERVICE) {
    return malformed(`incorrect service "${service}". This endpoint belongs to "${SERVICE}".`);
  }
  if (terminator !== TERMINATOR) {
    return malformed(`incorrect terminal "${terminator}". This endpoint uses "${TERMINATOR}".`);
  }
  if (!/^\d{8}$/.test(date)) return malformed(`incorrect date format "${date}".`);
  return { accessKey: parts.slice(0, -4).join("/"), date, region };
}

/** Lower-case names of `a;b;c`; null when the list is empty, too long or not header names. */
function parseSignedHeaders(list: string): string[] | null {
  const names = list.split(";").map((name) => name.trim().toLowerCase());
  if (names.length > MAX_SIGNED_HEADERS || names.some((name) => !HEADER_NAME_PATTERN.test(name))) {
    return null;
  }
  return names;
}

/** `Credential=..., SignedHeaders=..., Signature=...` of an Authorization header, by name. */
function authorizationFields(rest: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of rest.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return fields;
}

/** Whether a payload hash is one S3 takes for a request signed in a header. */
function validPayloadHash(value: string): boolean {
  return SHA256_HEX_PATTERN.test(value) ||
    [
      UNSIGNED_PAYLOAD,
      STREAMING_PAYLOAD,
      STREAMING_PAYLOAD_TRAILER,
      STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    ]
      .includes(value);
}

function parseHeaderAuth(input: SigV4Input, authorization: string): ParsedSigV4 | SigV4Failure {
  const fields = authorizationFields(authorization.slice(ALGORITHM.length));
  const credential = fields.get("Credential");
  const signedHeaderList = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (credential === undefined || signedHeaderList === undefined || signature === undefined) {
    return headerMalformed(`it needs Credential, SignedHeaders and Signature.`);
  }
  const scope = parseCredential(credential, headerMalformed);
  if ("ok" in scope) return scope;
  const signedHeaders = parseSignedHeaders(signedHeaderList);
  if (signedHeaders === null) {
    return headerMalformed(`the SignedHeaders are not a list of header names.`);
  }
  if (!signedHeaders.includes("host")) {
    return headerMalformed(`the SignedHeaders do not include host.`);
  }
  if (!SIGNATURE_PATTERN.test(signature)) {
    return headerMalformed(`the Signature is not 64 lower-case hex digits.`);
  }
  let amzDate = input.headers.get("x-amz-date");
  if (amzDate === null) {
    const date = input.headers.get("date");
    const ms = date === null ? NaN : Date.parse(date);
    amzDate = Number.isNaN(ms) ? "" : formatAmzDate(ms);
  }
  const dateMs = parseAmzDate(amzDate);
  if (dateMs === null) {
    return failure(
      403,
      "AccessDenied",
      "AWS authentication requires a valid Date or x-amz-date header",
    );
  }
  if (scope.date !== amzDate.slice(0, 8)) {
    return headerMalformed(
      `Invalid credential date "${scope.date}". This date is not the same as X-Amz-Date: "${
        amzDate.slice(0, 8)
      }".`,
    );
  }
  const payloadHash = input.headers.get("x-amz-content-sha256");
  if (payloadHash === null) {
    return failure(
      400,
      "InvalidRequest",
      "Missing required header for this request: x-amz-content-sha256",
    );
  }
  if (!validPayloadHash(payloadHash)) {
    return failure(
      400,
      "InvalidArgument",
      "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, " +
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER " +
        "or a valid sha256 value.",
    );
  }
  return withScope(scope, {
    kind: "header",
    amzDate,
    dateMs,
    signedHeaders,
    signature,
    payloadHash,
  });
}

/** A parsed signature: `fields` with the access key, region and scope of its credential. */
function withScope(
  credential: { accessKey: string; date: string; region: string },
  fields: Omit<ParsedSigV4, "accessKey" | "region" | "scope">,
): ParsedSigV4 {
  const { accessKey, date, region } = credential;
  return { ...fields, accessKey, region, scope: `${date}/${region}/${SERVICE}/${TERMINATOR}` };
}

function parseQueryAuth(params: Map<string, string>): ParsedSigV4 | SigV4Failure {
  const algorithm = params.get(QUERY_PARAMS.algorithm);
  const credential = params.get(QUERY_PARAMS.credential);
  const amzDate = params.get(QUERY_PARAMS.date);
  const expires = params.get(QUERY_PARAMS.expires);
  const signedHeaderList = params.get(QUERY_PARAMS.signedHeaders);
  const signature = params.get(QUERY_PARAMS.signature);
  if (
    algorithm === undefined || credential === undefined || amzDate === undefined ||
    expires === undefined || signedHeaderList === undefined || signature === undefined
  ) {
    return queryError(
      "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, " +
        "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
    );
  }
  if (algorithm !== ALGORITHM) {
    return queryError(`X-Amz-Algorithm only supports "${ALGORITHM}"`);
  }
  const scope = parseCredential(
    credential,
    (reason) => queryError(`Error parsing the X-Amz-Credential parameter; ${reason}`),
  );
  if ("ok" in scope) return scope;
  const dateMs = parseAmzDate(amzDate);
  if (dateMs === null) {
    return queryError(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  }
  if (scope.date !== amzDate.slice(0, 8)) {
    return queryError(
      `Invalid credential date "${scope.date}". This date is not the same as X-Amz-Date: "${
        amzDate.slice(0, 8)
      }".`,
    );
  }
  if (!/^-?\d{1,15}$/.test(expires)) {
    return queryError("X-Amz-Expires should be a number of seconds");
  }
  // S3 answers an expiry out of its bounds as it answers an expired URL.
  const expiresSeconds = Number(expires);
  if (expiresSeconds < 0 || expiresSeconds > MAX_PRESIGNED_EXPIRES_SECONDS) {
    return failure(
      403,
      "AccessDenied",
      "X-Amz-Expires must be from 0 to a week (in seconds) that is " +
        String(MAX_PRESIGNED_EXPIRES_SECONDS),
    );
  }
  const signedHeaders = parseSignedHeaders(signedHeaderList);
  if (signedHeaders === null || !signedHeaders.includes("host")) {
    return queryError("X-Amz-SignedHeaders must be a list of header names that includes host");
  }
  if (!SIGNATURE_PATTERN.test(signature)) {
    return queryError("X-Amz-Signature must be 64 lower-case hex digits");
  }
  // Signers that hoist x-amz-* headers into the query keep their case: look it up in any case.
  const contentSha256 = QUERY_PARAMS.contentSha256.toLowerCase();
  const payloadHash = [...params].find(([name]) => name.toLowerCase() === contentSha256)?.[1] ??
    UNSIGNED_PAYLOAD;
  if (payloadHash !== UNSIGNED_PAYLOAD && !SHA256_HEX_PATTERN.test(payloadHash)) {
    return queryError("X-Amz-Content-Sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value");
  }
  return withScope(scope, {
    kind: "query",
    amzDate,
    dateMs,
    signedHeaders,
    signature,
    payloadHash,
    expiresSeconds,
  });
}

/**
 * The SigV4 signature a request presents: null when it has neither an `AWS4-HMAC-SHA256`
 * Authorization header nor `X-Amz-Algorithm`/`X-Amz-Signature`/`X-Amz-Credential` in its query
 * (the caller decides what an unsigned request, or one in another scheme, may do); a failure for
 * a malformed one, or for one signed both ways.
 */
export function parseSigV4(input: SigV4Input): ParsedSigV4 | SigV4Failure | null {
  const authorization = input.headers.get("authorization")?.trim() ?? null;
  const byHeader = authorization !== null && authorization.startsWith(`${ALGORITHM} `);
  const query = parseQuery(input.rawQuery);
  if (query.length > MAX_QUERY_PARAMS) {
    return failure(
      400,
      "InvalidArgument",
      `A request may have at most ${MAX_QUERY_PARAMS} query parameters.`,
    );
  }
  const params = new Map(query);
  const byQuery = params.has(QUERY_PARAMS.algorithm) || params.has(QUERY_PARAMS.signature) ||
    params.has(QUERY_PARAMS.credential);
  if (byHeader && byQuery) {
    return failure(
      400,
      "InvalidArgument",
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, " +
        "Signature query " +
        "string parameter or the Authorization header should be specified",
    );
  }
  if (byHeader) return parseHeaderAuth(input, authorization);
  if (byQuery) return parseQueryAuth(params);
  return null;
}

/**
 * `x-amz-*` headers that came with the request but are not signed. S3 refuses them, since they
 * change what a request does (x-amz-copy-source, x-amz-meta-*, checksums) and anyone on the path
 * could add them. A presigned URL's holder may add x-amz-content-sha256: for a presigned URL the
 * payload hash comes from the query, never from that header.
 */
function unsignedAmzHeaders(input: SigV4Input, parsed: ParsedSigV4): string[] {
  const unsigned: string[] = [];
  for (const [name] of input.headers) {
    if (!name.startsWith("x-amz-") || parsed.signedHeaders.includes(name)) continue;
    if (parsed.kind === "query" && name === "x-amz-content-sha256") continue;
    unsigned.push(name);
  }
  return unsigned;
}

/**
 * Checks a request's SigV4 signature: who signed it (InvalidAccessKeyId), when
 * (RequestTimeTooSkewed for a header, AccessDenied for an expired or not yet valid URL), which
 * headers (AccessDenied for unsigned x-amz-* headers), and the signature (SignatureDoesNotMatch).
 * A request that is not SigV4-signed at all is an AccessDenied here; call `parseSigV4` first to
 * tell it apart.
 */
export function verifySigV4(input: SigV4Input, options: VerifyOptions): SigV4Verdict {
  const parsed = parseSigV4(input);
  if (parsed === null) return failure(403, "AccessDenied", "Access Denied");
  if ("ok" in parsed) return parsed;
  const secret = options.secretFor(parsed.accessKey);
  if (secret === null) {
    return failure(
      403,
      "InvalidAccessKeyId",
      "The AWS Access Key Id you provided does not exist in our records.",
    );
  }
  if (parsed.kind === "header") {
    if (Math.abs(options.nowMs - parsed.dateMs) > options.maxSkewMs) {
      return failure(
        403,
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
      );
    }
  } else {
    if (parsed.dateMs - options.nowMs > options.maxSkewMs) {
      return failure(403, "AccessDenied", "Request is not valid yet");
    }
    if (options.nowMs > parsed.dateMs + (parsed.expiresSeconds ?? 0) * 1000) {
      return failure(403, "AccessDenied", "Request has expired");
    }
  }
  const unsigned = unsignedAmzHeaders(input, parsed);
  if (unsigned.length > 0) {
    return failure(
      403,
      "AccessDenied",
      `There were headers present in the request which were not signed: ${unsigned.join(", ")}`,
    );
  }
  const [date, region] = parsed.scope.split("/");
  const key = signingKey(secret, date, region);
  const canonical = canonicalRequest(input, parsed);
  const toSign = stringToSign(parsed.amzDate, parsed.scope, canonical);
  if (!signaturesEqual(sign(key, toSign), parsed.signature)) {
    return {
      ...failure(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. " +
          "Check your key and signing method.",
      ),
      canonicalRequest: canonical,
      stringToSign: toSign,
    };
  }
  const verdict: SigV4Success = {
    ok: true,
    accessKey: parsed.accessKey,
    payloadHash: parsed.payloadHash,
    presigned: parsed.kind === "query",
  };
  if (
    parsed.payloadHash === STREAMING_PAYLOAD || parsed.payloadHash === STREAMING_PAYLOAD_TRAILER
  ) {
    verdict.streaming = {
      signingKey: key,
      amzDate: parsed.amzDate,
      scope: parsed.scope,
      seedSignature: parsed.signature,
    };
  }
  return verdict;
}

/** Whether a signed payload hash is a sha256 to check the body against (`sha256Verifier`). */
export function isSha256Payload(payloadHash: string): boolean {
  return SHA256_HEX_PATTERN.test(payloadHash);
}

/**
 * A pass-through stream that hashes the body and, if its sha256 is not `expectedHex`, errors with
 * XAmzContentSHA256Mismatch (400) before it closes, so that a consumer never sees a clean end of a
 * body that is not the one signed.
 */
export function sha256Verifier(expectedHex: string): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("sha256");
  const expected = expectedHex.toLowerCase();
  return new TransformStream({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      if (hash.digest("hex") !== expected) {
        throw new S3Error(
          400,
          "XAmzContentSHA256Mismatch",
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
      }
    },
  });
}
