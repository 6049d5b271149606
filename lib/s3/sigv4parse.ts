// The SigV4 signature a request presents (docs/s3.md, "Credentials"), parsed but not yet checked:
// from an `Authorization: AWS4-HMAC-SHA256 ...` header or from a presigned URL's `X-Amz-*` query
// parameters, with S3's answers to each malformed form. Pure; golden-tested in
// tests/unit/s3_sigv4_test.ts.

import {
  ALGORITHM,
  formatAmzDate,
  parseAmzDate,
  parseQuery,
  SERVICE,
  SIGNATURE_PARAM,
  type SignedParts,
  type SigV4Input,
  TERMINATOR,
} from "./sigv4canonical.ts";

export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** aws-chunked bodies whose chunks are signed, without and with a signed trailer. */
export const STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
export const STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/** An aws-chunked body without signatures, whose trailer carries a checksum. */
export const STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/** The longest a presigned URL may live: a week, as S3 allows. */
const MAX_PRESIGNED_EXPIRES_SECONDS = 604_800;
/** Bounds on what a client can make the index parse and hash. */
const MAX_SIGNED_HEADERS = 64;
const MAX_QUERY_PARAMS = 256;

const SHA256_HEX_PATTERN = /^[0-9a-fA-F]{64}$/;
const SIGNATURE_PATTERN = /^[0-9a-f]{64}$/;
const HEADER_NAME_PATTERN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const QUERY_PARAMS = {
  algorithm: "X-Amz-Algorithm",
  credential: "X-Amz-Credential",
  date: "X-Amz-Date",
  expires: "X-Amz-Expires",
  signedHeaders: "X-Amz-SignedHeaders",
  signature: SIGNATURE_PARAM,
  contentSha256: "X-Amz-Content-Sha256",
} as const;

/** A SigV4 signature as the request presents it, not yet checked. */
export interface ParsedSigV4 extends SignedParts {
  accessKey: string;
  /** The X-Amz-Date (or the Date header, in that form): `20130524T000000Z`. */
  amzDate: string;
  /** When amzDate is, in ms since the epoch. */
  dateMs: number;
  region: string;
  scope: string;
  signature: string;
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

/** A refusal of a request's signature. */
export function sigV4Failure(status: 400 | 403, code: string, message: string): SigV4Failure {
  return { ok: false, status, code, message };
}

function headerMalformed(reason: string): SigV4Failure {
  return sigV4Failure(
    400,
    "AuthorizationHeaderMalformed",
    `The authorization header is malformed; ${reason}`,
  );
}

function queryError(message: string): SigV4Failure {
  return sigV4Failure(400, "AuthorizationQueryParametersError", message);
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
    return sigV4Failure(
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
    return sigV4Failure(
      400,
      "InvalidRequest",
      "Missing required header for this request: x-amz-content-sha256",
    );
  }
  if (!validPayloadHash(payloadHash)) {
    return sigV4Failure(
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
    return sigV4Failure(
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
    return sigV4Failure(
      400,
      "InvalidArgument",
      `A request may have at most ${MAX_QUERY_PARAMS} query parameters.`,
    );
  }
  const params = new Map(query);
  const byQuery = params.has(QUERY_PARAMS.algorithm) || params.has(QUERY_PARAMS.signature) ||
    params.has(QUERY_PARAMS.credential);
  if (byHeader && byQuery) {
    return sigV4Failure(
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

/** Whether a signed payload hash is a sha256 to check the body against (`sha256Verifier`). */
export function isSha256Payload(payloadHash: string): boolean {
  return SHA256_HEX_PATTERN.test(payloadHash);
}
