// The S3 operations (docs/s3.md, "Operations"): which one a request is, by its method, target and
// query, and the rights (lib/auth/credentials.ts) each needs. Pure; golden-tested in
// tests/unit/s3_route_test.ts and tests/cluster/hostile_test.ts.

import type { Right } from "../auth/credentials.ts";
import { S3Error } from "./error.ts";
import type { S3Target } from "./request.ts";

/** The methods of S3's REST API; any other is 405 MethodNotAllowed. */
const S3_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"];

/** Sub-resources of buckets and objects that the API does not have: 501 NotImplemented. */
export const UNSUPPORTED = [
  "accelerate",
  "acl",
  "analytics",
  "cors",
  "encryption",
  "lifecycle",
  "logging",
  "notification",
  "object-lock",
  "policy",
  "replication",
  "tagging",
  "website",
  "restore",
  "select",
  "torrent",
  "retention",
  "legal-hold",
  "intelligent-tiering",
  "inventory",
  "metrics",
  "ownershipControls",
  "publicAccessBlock",
  "requestPayment",
];

/** The S3 operations the API knows, and the rights (lib/auth/credentials.ts) each needs. */
export type Operation =
  | "ListBuckets"
  | "CreateBucket"
  | "HeadBucket"
  | "DeleteBucket"
  | "GetBucketLocation"
  | "GetBucketVersioning"
  | "ListObjects"
  | "ListObjectVersions"
  | "DeleteObjects"
  | "GetObject"
  | "GetObjectAttributes"
  | "HeadObject"
  | "PutObject"
  | "CopyObject"
  | "DeleteObject"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "UploadPartCopy"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "ListParts"
  | "ListMultipartUploads";

export const OPERATION_RIGHTS: Record<Operation, Right[]> = {
  ListBuckets: ["list"],
  CreateBucket: ["write"],
  HeadBucket: ["list"],
  DeleteBucket: ["delete"],
  GetBucketLocation: ["list"],
  GetBucketVersioning: ["list"],
  ListObjects: ["list"],
  ListObjectVersions: ["list"],
  DeleteObjects: ["delete"],
  GetObject: ["read"],
  GetObjectAttributes: ["read"],
  HeadObject: ["read"],
  PutObject: ["write"],
  CopyObject: ["read", "write"],
  DeleteObject: ["delete"],
  CreateMultipartUpload: ["write"],
  UploadPart: ["write"],
  UploadPartCopy: ["read", "write"],
  CompleteMultipartUpload: ["write"],
  AbortMultipartUpload: ["delete"],
  ListParts: ["list"],
  ListMultipartUploads: ["list"],
};

/**
 * The operation of a request, by its method, target and query (pure). Throws S3Error:
 * MethodNotAllowed, or NotImplemented for a sub-resource the API does not have.
 */
export function s3Operation(
  method: string,
  target: S3Target,
  query: URLSearchParams,
  headers: Headers,
): Operation {
  const notAllowed = () =>
    new S3Error(405, "MethodNotAllowed", `The ${method} method is not allowed here.`);
  // A method S3 does not have is the client's mistake (405), whatever it asks for; a feature S3
  // has and this API does not is S3's own answer, 501 NotImplemented.
  if (!S3_METHODS.includes(method)) throw notAllowed();
  const unsupported = UNSUPPORTED.find((name) => query.has(name));
  if (unsupported !== undefined) {
    throw new S3Error(501, "NotImplemented", `The ?${unsupported} sub-resource is not supported.`);
  }
  if (target.kind === "service") {
    if (method === "GET" || method === "HEAD") return "ListBuckets";
    throw notAllowed();
  }
  if (target.kind === "bucket") {
    switch (method) {
      case "GET":
        if (query.has("uploads")) return "ListMultipartUploads";
        if (query.has("location")) return "GetBucketLocation";
        if (query.has("versioning")) return "GetBucketVersioning";
        if (query.has("versions")) return "ListObjectVersions";
        return "ListObjects";
      case "HEAD":
        return "HeadBucket";
      case "PUT":
        // Versioning cannot be turned on: a PUT of it is no CreateBucket.
        if (query.has("versioning")) {
          throw new S3Error(501, "NotImplemented", "Versioning cannot be enabled here.");
        }
        return "CreateBucket";
      case "DELETE":
        return "DeleteBucket";
      case "POST":
        if (query.has("delete")) return "DeleteObjects";
        throw notAllowed();
      default:
        throw notAllowed();
    }
  }
  switch (method) {
    case "GET":
      if (query.has("uploadId")) return "ListParts";
      if (query.has("attributes")) return "GetObjectAttributes";
      return "GetObject";
    case "HEAD":
      return "HeadObject";
    case "PUT":
      if (query.has("uploadId") || query.has("partNumber")) {
        return headers.has("x-amz-copy-source") ? "UploadPartCopy" : "UploadPart";
      }
      return headers.has("x-amz-copy-source") ? "CopyObject" : "PutObject";
    case "POST":
      if (query.has("uploads")) return "CreateMultipartUpload";
      if (query.has("uploadId")) return "CompleteMultipartUpload";
      throw notAllowed();
    case "DELETE":
      return query.has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
    default:
      throw notAllowed();
  }
}
