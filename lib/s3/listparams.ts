// The parameters of S3's object listings (docs/s3.md): ListObjects (v1), ListObjectsV2 and
// ListObjectVersions, their continuation tokens, and `encoding-type=url`. Pure; golden-tested in
// tests/unit/s3_route_test.ts.

import { S3Error } from "./error.ts";

/** S3's largest and default page of a listing. */
export const MAX_LIST_KEYS = 1000;

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

/** A listing's `encoding-type`: "url" or none; throws InvalidArgument for another. */
export function parseEncodingType(query: URLSearchParams): "url" | undefined {
  const encoding = query.get("encoding-type");
  if (encoding !== null && encoding !== "url") {
    throw new S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request");
  }
  return encoding === null ? undefined : "url";
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
  const encoding = parseEncodingType(query);
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
