// The config of the index's nginx: every request passed to the index's Deno server over a unix
// socket, per-client limits, the headers that keep a stored value from acting on the index's
// origin, and the replica location that streams an S3 GET's body from a volume without Deno. The
// strings the index shares with it are contract.ts's. Pure; golden-tested in
// tests/unit/nginx_test.ts.

import {
  FORWARDED_PROTO_HEADER,
  REPLICA_HEADERS,
  REPLICA_LOCATION,
  S3_PORT_HEADER,
  STATUS_PAGE_PATH,
} from "./contract.ts";
import { quote } from "./conf.ts";
import { FROM_INDEX_HEADER } from "../volumes/mod.ts";
import { TLS_PROTOCOLS } from "./tls.ts";

/**
 * What keeps a stored value from acting on the index's origin, where the status page's
 * credentials are: browsers take each answer for what its Content-Type says (no sniffing a text
 * value into a page), and run any page in a sandbox, an origin of its own without scripts, so
 * that a value stored as `text/html` (or asked for with `?response-content-type=`) can neither
 * read `/-/status.json` nor write with an admin's cached Basic credentials. Every answer of the
 * index's port carries them, but for the status page, our own, which must run its script: its
 * `$mkv_csp` is empty, and nginx adds no header with an empty value.
 */
const CONTENT_HEADERS = [
  `add_header X-Content-Type-Options nosniff always;`,
  `add_header Content-Security-Policy $mkv_csp always;`,
];

export interface ProxyOptions {
  /** Unix socket of the Deno server behind nginx. */
  socketPath: string;
  /** Keep-alive connections nginx keeps to the Deno server. */
  keepalive: number;
}

/** Per-client (per address) limits at the index's nginx; each one absent or 0 is off. */
export interface ProxyLimits {
  /** Connections open at once per client. */
  conn?: number;
  /** Requests per client in nginx's `rate=` syntax (`10r/s`, `600r/m`); more are refused. */
  rate?: string;
  /** Requests beyond `rate` let through at once in a burst (nginx's `burst`, with `nodelay`). */
  burst?: number;
}

/** What the index's locations do beyond passing requests on (see renderProxyLocations). */
export interface ProxyLocationOptions {
  /** The server of --s3-port: every request is marked S3's for the index (S3_PORT_HEADER). */
  s3Port?: boolean;
  /** The volumes speak HTTPS: replicas are proxied over TLS, verified with this PEM CA file. */
  volumeCaFile?: string;
  /** How a replica that fails is answered in the front's own terms; absent: as nginx answers. */
  replicaErrors?: ReplicaErrorLines;
}

/**
 * The lines that answer a failed replica (the volume's error, or none) in S3's terms rather than
 * with nginx's or the volume's own page: lib/s3/replicaerrors.ts renders them, nginx.ts passes
 * them in, since this folder sits below S3's.
 */
export interface ReplicaErrorLines {
  /** Inside the replica location: which answers go to which named location. */
  pages: string[];
  /** At server level beside the replica location: the named locations that answer. */
  locations: string[];
}

/** The `upstream` block for the index's Deno server, to go in `httpBlocks`. */
export function renderProxyUpstream(options: ProxyOptions): string {
  return [
    `  upstream mkv_index {`,
    `    server ${quote(`unix:${options.socketPath}`)};`,
    `    keepalive ${options.keepalive};`,
    `    keepalive_requests 1000000;`,
    `  }`,
  ].join("\n");
}

/** The http-level zones of `limits`, to go in `httpBlocks`; "" when no limit is on. */
export function renderLimitZones(limits: ProxyLimits = {}): string {
  const lines: string[] = [];
  if (limits.conn) lines.push(`  limit_conn_zone $binary_remote_addr zone=mkv_conn:10m;`);
  if (limits.rate) {
    lines.push(`  limit_req_zone $binary_remote_addr zone=mkv_req:10m rate=${limits.rate};`);
  }
  return lines.join("\n");
}

/** The server-level lines of `limits`: a client over one gets 429 with the reason. */
function renderLimits(limits: ProxyLimits): string[] {
  if (!limits.conn && !limits.rate) return [];
  const lines: string[] = [];
  // Refusals are not logged (info is below error_log's level): a flood must not flood the log.
  if (limits.conn) {
    lines.push(
      `    limit_conn mkv_conn ${limits.conn};`,
      `    limit_conn_status 429;`,
      `    limit_conn_log_level info;`,
    );
  }
  if (limits.rate) {
    lines.push(
      `    limit_req zone=mkv_req burst=${limits.burst ?? 0} nodelay;`,
      `    limit_req_status 429;`,
      `    limit_req_log_level info;`,
    );
  }
  lines.push(
    `    error_page 429 = @limited;`,
    `    location @limited {`,
    `      return 429 "too many requests or connections from your address\\n";`,
    `    }`,
  );
  return lines;
}

/**
 * The named location the index sends an S3 GET to with `X-Accel-Redirect: @mkv_replica`
 * (contract.ts; lib/s3/get.ts): nginx proxies the replica the index chose, so the value streams
 * from the volume through nginx and never through Deno. The index's answer names the volume (an
 * address, so no resolver is needed), the signed path, the Range to ask for and the headers to
 * answer with; nginx reads them as $upstream_http_x_mkv_* before it proxies. Nothing of the
 * client's request goes to the volume but Range. A replica that fails mid-body cuts the connection
 * (the Content-Length is the volume's), so a client never takes a short body for a whole one.
 */
function renderReplicaLocation(options: ProxyLocationOptions): string[] {
  const scheme = options.volumeCaFile === undefined ? "http" : "https";
  const tls = options.volumeCaFile === undefined ? [] : [
    `      proxy_ssl_server_name on;`,
    `      proxy_ssl_name $mkv_sni;`,
    `      proxy_ssl_verify on;`,
    `      proxy_ssl_trusted_certificate ${quote(options.volumeCaFile)};`,
    `      proxy_ssl_protocols ${TLS_PROTOCOLS};`,
  ];
  return [
    `    location ${REPLICA_LOCATION} {`,
    // `$mkv_volume` from `x-mkv-volume`, and so on: nginx reads an answer's header as
    // `$upstream_http_` and its name in lower case with `_` for `-`.
    ...Object.entries(REPLICA_HEADERS).map(([name, header]) =>
      `      set $mkv_${name} $upstream_http_${header.toLowerCase().replaceAll("-", "_")};`
    ),
    `      proxy_pass ${scheme}://$mkv_volume$mkv_target;`,
    ...tls,
    `      proxy_http_version 1.1;`,
    `      proxy_pass_request_headers off;`,
    `      proxy_pass_request_body off;`,
    `      proxy_set_header Host $mkv_host;`,
    `      proxy_set_header Range $mkv_range;`,
    // The index's own read: a volume with --index answers a missing file with its 404.
    `      proxy_set_header ${FROM_INDEX_HEADER} 1;`,
    `      proxy_set_header Connection "";`,
    `      proxy_hide_header ETag;`,
    `      proxy_hide_header Last-Modified;`,
    `      proxy_hide_header Content-Type;`,
    `      add_header ETag $mkv_etag;`,
    `      add_header Last-Modified $mkv_modified;`,
    `      add_header Content-Type $mkv_type;`,
    // Empty for most values: nginx adds no header whose value is empty.
    `      add_header Content-Encoding $mkv_encoding;`,
    `      add_header Content-Language $mkv_language;`,
    ...CONTENT_HEADERS.map((line) => `      ${line}`),
    `      proxy_buffering off;`,
    `      proxy_connect_timeout 10s;`,
    `      proxy_read_timeout 60s;`,
    ...(options.replicaErrors?.pages ?? []),
    `    }`,
    ...(options.replicaErrors?.locations ?? []),
  ];
}

/**
 * Passes every request unchanged to the index's Deno server, with the Host header as the client
 * sent it (S3's signatures cover it); request bodies stream through. With `limits`, each client
 * address is held to them (see renderLimitZones). The mark of --s3-port's requests is set there
 * and removed from the main port's, so that no client can set it. Every answer carries
 * CONTENT_HEADERS.
 */
export function renderProxyLocations(
  limits: ProxyLimits = {},
  options: ProxyLocationOptions = {},
): string {
  return [
    `    client_max_body_size 0;`,
    `    set $mkv_csp sandbox;`,
    `    if ($uri = ${STATUS_PAGE_PATH}) {`,
    `      set $mkv_csp "";`,
    `    }`,
    ...CONTENT_HEADERS.map((line) => `    ${line}`),
    ...renderLimits(limits),
    // A raw `#` would reach the index as part of the key, while nginx, curl and browsers take it
    // for the start of a fragment: refused, so that no key means two things.
    `    if ($request_uri ~ "#") {`,
    `      return 400 "percent-encode # as %23\\n";`,
    `    }`,
    // nginx answers a Transfer-Encoding it does not know with 501; it is the client's mistake.
    `    error_page 501 = @unsupported;`,
    `    location @unsupported {`,
    `      return 400 "unsupported Transfer-Encoding\\n";`,
    `    }`,
    ...renderReplicaLocation(options),
    `    location / {`,
    `      proxy_pass http://mkv_index;`,
    `      proxy_http_version 1.1;`,
    `      proxy_set_header Connection "";`,
    `      proxy_set_header Host $http_host;`,
    // The scheme the client used, for the absolute URLs S3 answers with; a client's own is
    // replaced.
    `      proxy_set_header ${FORWARDED_PROTO_HEADER} $scheme;`,
    `      proxy_set_header ${S3_PORT_HEADER} "${options.s3Port ? "1" : ""}";`,
    `      proxy_request_buffering off;`,
    // Bodies pass through in pieces of this size: larger pieces, fewer writes per byte.
    `      client_body_buffer_size 256k;`,
    // Answers are small (redirects, listings): buffered, nginx sends head and body in one
    // write, measurably cheaper per request; a large listing is passed on, never spooled to disk.
    `      proxy_buffering on;`,
    `      proxy_max_temp_file_size 0;`,
    `      proxy_redirect off;`,
    `      proxy_read_timeout 1h;`,
    `      proxy_send_timeout 1h;`,
    `    }`,
  ].join("\n");
}
