// Which requests are S3's. The index serves minikeyvalue's API and S3's on the same port and the
// same keys (docs/s3.md), so each request is told apart by what S3 clients always send and
// plain clients never do: a SigV4 or SigV2 signature (header or presigned query), an S3
// sub-resource or listing query, an `x-amz-*` or `amz-sdk-*` header; or it came in on
// `--s3-port`, where the index's nginx marks every request with S3_PORT_HEADER (and strips that
// header on the main port).
// Pure; golden-tested in tests/unit/s3_route_test.ts.

import { S3_PORT_HEADER } from "../nginx/contract.ts";
import { RESPONSE_OVERRIDES } from "./headers.ts";

/**
 * Query parameters that only S3 requests carry: sub-resources, listing parameters, presigned URLs'
 * X-Amz-* (SigV4) or AWSAccessKeyId (SigV2), and response overrides. The plain API's own (`list`,
 * `unlinked`, `start`, `limit`) are not among them.
 */
const S3_QUERY_NAMES = new Set([
  "acl",
  "accelerate",
  "awsaccesskeyid",
  "analytics",
  "attributes",
  "continuation-token",
  "cors",
  "delete",
  "delimiter",
  "encoding-type",
  "encryption",
  "fetch-owner",
  "intelligent-tiering",
  "inventory",
  "key-marker",
  "legal-hold",
  "lifecycle",
  "list-type",
  "location",
  "logging",
  "marker",
  "max-keys",
  "max-parts",
  "max-uploads",
  "metrics",
  "notification",
  "object-lock",
  "ownershipcontrols",
  "part-number-marker",
  "partnumber",
  "policy",
  "policystatus",
  "prefix",
  "publicaccessblock",
  "replication",
  "requestpayment",
  ...Object.keys(RESPONSE_OVERRIDES),
  "restore",
  "retention",
  "select",
  "start-after",
  "tagging",
  "torrent",
  "upload-id-marker",
  "uploadid",
  "uploads",
  "versioning",
  "versionid",
  "versions",
  "website",
  "x-id",
  "x-amz-algorithm",
  "x-amz-credential",
  "x-amz-signature",
]);

/** What detection looks at: the method is not needed (REBALANCE and UNLINK are plain). */
export interface DetectInput {
  /** The query as sent, without `?` ("" for none). */
  rawQuery: string;
  headers: Headers;
}

/**
 * Whether a request is an S3 request. In order: the mark of --s3-port; an Authorization header in
 * SigV4 (`AWS4-HMAC-SHA256 ...`) or SigV2 (`AWS KEY:SIG`); any
 * `x-amz-*` header or the `amz-sdk-invocation-id`/`amz-sdk-request` that every AWS SDK sends, even
 * unsigned; a query parameter from S3_QUERY_NAMES (case-insensitive). Everything else is plain.
 */
export function isS3Request(input: DetectInput): boolean {
  const { headers } = input;
  if (headers.get(S3_PORT_HEADER) === "1") return true;
  const authorization = headers.get("authorization");
  if (authorization !== null && /^\s*AWS4?[- ]/.test(authorization)) return true;
  // forEach, not for-of: Deno's Headers iterator costs five times as much, on every request.
  let sdkHeader = false;
  headers.forEach((_value, name) => {
    if (name.startsWith("x-amz-") || name.startsWith("amz-sdk-")) sdkHeader = true;
  });
  if (sdkHeader) return true;
  if (input.rawQuery === "") return false;
  for (const part of input.rawQuery.split("&")) {
    const eq = part.indexOf("=");
    const raw = eq === -1 ? part : part.slice(0, eq);
    let name: string;
    try {
      name = decodeURIComponent(raw.replaceAll("+", " "));
    } catch {
      continue;
    }
    if (S3_QUERY_NAMES.has(name.toLowerCase())) return true;
  }
  return false;
}
