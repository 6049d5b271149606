// The S3 errors that the index's nginx answers by itself when the replica it proxies for an S3 GET
// (X-Accel-Redirect to its replica location, lib/nginx/contract.ts) fails: the volume's file gone
// (a DELETE raced the GET), the volume down or refusing. Without them nginx would pass on the
// volume's HTML error page, or its own, which no S3 client can read; with them every such answer is
// S3's XML. The plain API redirects its clients to the volume and is not concerned. Pure: nginx
// config lines.

import { S3Error } from "./error.ts";
import { renderError } from "./xml.ts";

/** nginx's id of the request, as the errors' RequestId. */
const REQUEST_ID = "$request_id";
/** The named locations that answer the errors. */
const MISSING_LOCATION = "@mkv_replica_missing";
const UNAVAILABLE_LOCATION = "@mkv_replica_unavailable";
const FAILED_LOCATION = "@mkv_replica_failed";

/** What the volume (or nginx, failing to reach it) answered, and what the client gets for it. */
const ANSWERS: { location: string; statuses: number[]; error: S3Error }[] = [
  {
    location: MISSING_LOCATION,
    statuses: [404],
    error: new S3Error(404, "NoSuchKey", "The specified key does not exist."),
  },
  {
    location: UNAVAILABLE_LOCATION,
    statuses: [502, 503, 504],
    error: new S3Error(
      503,
      "ServiceUnavailable",
      "The volume holding the object did not answer; try again.",
    ),
  },
  {
    location: FAILED_LOCATION,
    statuses: [400, 403, 405, 416, 500],
    error: new S3Error(500, "InternalError", "The volume holding the object refused to serve it."),
  },
];

/** `text` as an nginx quoted string, where REQUEST_ID is the only variable allowed. */
function nginxString(text: string): string {
  if (text.replaceAll(REQUEST_ID, "").includes("$")) {
    throw new Error(`no variable but ${REQUEST_ID} allowed in an nginx string: ${text}`);
  }
  return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`;
}

/**
 * The lines that go inside the replica location: the volume's error answers are intercepted and
 * sent to the locations of renderReplicaErrorLocations, as are nginx's own (no connection,
 * timeout).
 */
export function renderReplicaErrorPages(): string[] {
  return [
    `      proxy_intercept_errors on;`,
    ...ANSWERS.map(({ location, statuses }) =>
      `      error_page ${statuses.join(" ")} = ${location};`
    ),
  ];
}

/** The named locations, at server level beside the replica location, that answer S3's XML. */
export function renderReplicaErrorLocations(): string[] {
  return ANSWERS.flatMap(({ location, error }) => [
    `    location ${location} {`,
    `      default_type application/xml;`,
    `      return ${error.status} ${nginxString(renderError(error, REQUEST_ID) + "\n")};`,
    `    }`,
  ]);
}
