// The canonical form of a request that AWS Signature Version 4 signs (docs/s3.md, "Credentials"):
// AWS's UriEncode of the path and query, the signed headers' values, the payload hash; then the
// string to sign, the key derived from the secret and the credential scope, and the signature.
// Pure; golden-tested in tests/unit/s3_sigv4_test.ts against AWS's examples and its signer.

import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export const ALGORITHM = "AWS4-HMAC-SHA256";
/** sha256 of nothing, in hex: part of every chunk's string to sign. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** The service and terminator of every credential scope here. */
export const SERVICE = "s3";
export const TERMINATOR = "aws4_request";
/** The query parameter of a presigned URL that carries its signature (left out of what it signs). */
export const SIGNATURE_PARAM = "X-Amz-Signature";

const AMZ_DATE_PATTERN = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
/** Characters AWS's UriEncode keeps as they are; every other byte becomes %XX. */
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const HEX_UPPER = "0123456789ABCDEF";
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

/** What of a signature the canonical request takes: how it came, which headers, what payload. */
export interface SignedParts {
  /** `header` for an Authorization header, `query` for a presigned URL. */
  kind: "header" | "query";
  /** Lower-case header names, in the order the client listed them. */
  signedHeaders: string[];
  /** What stands for the payload: a hex sha256 or one of the markers. */
  payloadHash: string;
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
export function uriEncodeBytes(bytes: Uint8Array, keepSlash: boolean): string {
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
    if (presigned && name === SIGNATURE_PARAM) continue;
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
export function canonicalRequest(input: SigV4Input, parsed: SignedParts): string {
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
