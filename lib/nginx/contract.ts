// What the index and the nginx in front of it agree on, as strings: the named location the index
// sends an S3 GET to, the headers the index answers with for nginx to read and the ones nginx sets
// for the index, and the one page that is the index's own. The renderers (lib/nginx/proxyconf.ts)
// write these into the config; the index's fronts spell them from here, so that a name changed on
// one side cannot go unnoticed on the other (docs/design.md, Why the index never relays GETs).

/**
 * The named location of the index's nginx that proxies a replica for an S3 GET: the index answers
 * with `X-Accel-Redirect` to it (ACCEL_REDIRECT_HEADER) and the REPLICA_HEADERS.
 */
export const REPLICA_LOCATION = "@mkv_replica";

/** nginx's own header: the index names the internal location that answers in its place. */
export const ACCEL_REDIRECT_HEADER = "x-accel-redirect";
/** nginx's own header: "no" makes nginx pass an answer on as it comes, unbuffered. */
export const ACCEL_BUFFERING_HEADER = "x-accel-buffering";

/**
 * The headers of the index's answer that the replica location reads (as
 * `$upstream_http_x_mkv_*`) before it proxies: the volume's address, the signed path on it, the
 * Host and TLS server name to send, the Range to ask for, and the headers to answer with. Empty
 * ones are left out of the answer by nginx.
 */
export const REPLICA_HEADERS = {
  volume: "x-mkv-volume",
  target: "x-mkv-target",
  host: "x-mkv-host",
  sni: "x-mkv-sni",
  range: "x-mkv-range",
  etag: "x-mkv-etag",
  modified: "x-mkv-modified",
  type: "x-mkv-type",
  encoding: "x-mkv-encoding",
  language: "x-mkv-language",
} as const;

/**
 * Set by the index's nginx to "1" on every request of --s3-port and emptied on the main port, so
 * that no client can set it: the index takes such a request for S3's.
 */
export const S3_PORT_HEADER = "x-mkv-s3";

/** Set by the index's nginx to the scheme the client used, for the absolute URLs S3 answers with. */
export const FORWARDED_PROTO_HEADER = "X-Forwarded-Proto";

/** The index's status page: the one answer that is our own page, with a script. */
export const STATUS_PAGE_PATH = "/-/status";
