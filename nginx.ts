// What the volume and the index share: rendering an nginx config from options (pure, golden-tested
// in tests/nginx_test.ts) and running nginx as a child safely. The child runs in the foreground
// with its own prefix directory, pid file and temp paths, logs to our stderr, is stopped with us,
// and is restarted if it dies on its own. The port's lock keeps a second program off the port;
// the runtime files and the leftover of a crashed run are lib/nginx/runtime.ts's.
//
// Not an entry point: volume.ts and index.ts import it.

import {
  DEFAULT_WORKER_USER,
  ensureRuntimeDir,
  lockFileFor,
  NginxError,
  pidFileFor,
  removeListedFiles,
  stopLeftover,
  tempListFor,
} from "./lib/nginx/runtime.ts";
import {
  DISK_STATUS_PATH,
  STUB_STATUS_PATH,
  validSecret,
  VOLUME_OWN_DIR,
  WRITE_PROBE_PATH,
} from "./lib/volumes/mod.ts";
import { createFileNoFollow, ensureDirNoFollow } from "./lib/nginx/nofollow.ts";
import { checkTlsFiles, TLS_PROTOCOLS, type TlsFiles } from "./lib/nginx/tls.ts";
import { REPLICA_LOCATION, S3_PORT_HEADER } from "./lib/s3/detect.ts";
import { renderReplicaErrorLocations, renderReplicaErrorPages } from "./lib/s3/replicaerrors.ts";

export { DEFAULT_WORKER_USER, NginxError };
export type { TlsFiles };

/** How long nginx may take to answer on its port after starting. */
const START_TIMEOUT_MS = 10_000;
/** How long a stopping nginx may take before it is killed. */
const STOP_TIMEOUT_MS = 5_000;
/** A child that dies this many times within RESTART_WINDOW_MS is given up. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** Our config files and nginx's prefix directories start with this. */
const CONF_PREFIX = "mkv-nginx-";
/**
 * How long nginx keeps an idle client connection open unless told otherwise: nginx's own default.
 * The index's connection pool closes its idle connections to a volume sooner than this.
 */
export const DEFAULT_KEEPALIVE_MS = 75_000;
/**
 * The paths a volume takes PUT and DELETE on: a key's file, `[/svXX]/HH/hh/BASE64` (base64 may
 * nest into directories, but never ends in `/`: that would be a directory), or one version of it,
 * `BASE64~/VERSION` (lib/placement.ts, versionPath). nginx matches it
 * against the decoded, dot-resolved path, the very one it maps to a file.
 */
const KEY_PATH_REGEX =
  "^(/sv[0-9A-F]{2})?/[0-9a-f]{2}/[0-9a-f]{2}/[A-Za-z0-9+/]*[A-Za-z0-9+]={0,2}(~/[0-9a-f]{16})?$";
/** nginx's upload spool inside a volume's directory, in the volume's own directory. */
const VOLUME_SPOOL = `${VOLUME_OWN_DIR}/tmp`;
/** The disk figures (lib/volumes/statusvolume.ts) inside a volume's directory. */
const VOLUME_DISK_FILE = `${VOLUME_OWN_DIR}/disk.json`;
/** A volume's directory when root runs it: root's, writable by the workers' group, sticky. */
const VOLUME_DIR_MODE = 0o1770;
/** The volume's own directory: root's (or ours), readable by the workers' group. */
const VOLUME_OWN_DIR_MODE = 0o750;
/** The command that makes the workers' account, in a refusal's message. */
const CREATE_ACCOUNT = "useradd --system --no-create-home --shell /usr/sbin/nologin";
/** Lines of nginx's stderr kept to explain a failed start. */
const STDERR_LINES_KEPT = 20;

/** The account of nginx's workers, as the system knows it (see workerAccount). */
export interface WorkerAccount {
  name: string;
  uid: number;
  gid: number;
  /** The name of its primary group, for nginx's `user` directive. */
  group: string;
}

export interface ConfigOptions {
  /** nginx's prefix directory: pid file and temp paths go here. */
  prefixDir: string;
  /** The workers' account when nginx's master runs as root; absent: they run as the master. */
  user?: WorkerAccount;
  /** The pid file; derived from the port so that a leftover of a crashed run can be found. */
  pidFile: string;
  port: number;
  /** Also listen on [::] (when the machine has IPv6), so `localhost` works either way. */
  ipv6: boolean;
  workerProcesses: number;
  /** The `location` blocks of the server and any http-level blocks before it. */
  httpBlocks?: string;
  locations: string;
  /** A second server on another port with its own locations (the index's --s3-port). */
  second?: { port: number; locations: string };
  /** Serve HTTPS with this certificate and key instead of plain HTTP. */
  tls?: TlsFiles;
  /**
   * Log each request as a JSON line (format mkv_json) to this absolute path, or to our stderr
   * with "stderr"; absent: `access_log off`.
   */
  accessLog?: string;
}

/**
 * The query parameters whose values are secrets or credentials, never logged: SigV4's and SigV2's
 * signatures, access keys and session tokens (presigned URLs), and a volume's signature (`md5`).
 * A log that leaks them lets its reader replay the request until it expires.
 */
export const SECRET_PARAMS = [
  "X-Amz-Signature",
  "X-Amz-Credential",
  "X-Amz-Security-Token",
  "Signature",
  "AWSAccessKeyId",
  "md5",
];
/** What a secret parameter's value is logged as. */
export const REDACTED = "REDACTED";
const SECRET_PARAM_VALUE = new RegExp(`([?&](?:${SECRET_PARAMS.join("|")})=)[^&\\s"]*`, "gi");

/** `text` (a URL, or a log line holding one) with each secret parameter's value redacted. Pure. */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_PARAM_VALUE, `$1${REDACTED}`);
}

/**
 * The access log's line: one JSON object per request. The query string is in `uri` as sent but
 * for the values of SECRET_PARAMS (renderRedactedUri); the Authorization header and any other
 * header but the User-Agent are never logged.
 */
export const ACCESS_LOG_FORMAT = `{"time":"$time_iso8601","remote_addr":"$remote_addr",` +
  `"method":"$request_method","uri":"$mkv_logged_uri","status":$status,` +
  `"body_bytes_sent":$body_bytes_sent,"request_length":$request_length,` +
  `"request_time":$request_time,"upstream_response_time":"$upstream_response_time",` +
  `"user_agent":"$http_user_agent"}`;

/**
 * `$mkv_logged_uri`: `$request_uri` with the value of each of SECRET_PARAMS replaced, one map
 * per parameter (nginx has no replace-all), evaluated only when a line is logged.
 */
function renderRedactedUri(): string[] {
  const lines: string[] = [];
  let from = "$request_uri";
  SECRET_PARAMS.forEach((param, i) => {
    const to = i === SECRET_PARAMS.length - 1 ? "$mkv_logged_uri" : `$mkv_logged_uri_${i}`;
    lines.push(
      `  map ${from} ${to} {`,
      `    "~*^(?<mkv_before_${i}>.*[?&]${param}=)[^&]*(?<mkv_after_${i}>.*)$" ` +
        `"\${mkv_before_${i}}${REDACTED}\${mkv_after_${i}}";`,
      `    default ${from};`,
      `  }`,
    );
    from = to;
  });
  return lines;
}

/** The http-level lines of the access log: `access_log off` unless `accessLog` is set. */
function renderAccessLog(accessLog: string | undefined): string[] {
  if (accessLog === undefined) return [`  access_log off;`];
  if (accessLog !== "stderr" && !accessLog.startsWith("/")) {
    throw new NginxError(`access log ${accessLog} is not an absolute path`);
  }
  // nginx would take a `$` for a variable in the path, and open a file per request.
  if (/[$\n\0]/.test(accessLog)) {
    throw new NginxError(`access log ${accessLog} has a bad character`);
  }
  const target = accessLog === "stderr" ? "/dev/stderr" : accessLog;
  return [
    ...renderRedactedUri(),
    `  log_format mkv_json escape=json '${ACCESS_LOG_FORMAT}';`,
    `  access_log ${quote(target)} mkv_json;`,
  ];
}

export interface VolumeLocationOptions {
  dir: string;
  /** nginx's keepalive_timeout for clients (the index); DEFAULT_KEEPALIVE_MS if absent. */
  keepaliveMs?: number;
  /**
   * The volume secret (lib/volumes/signing.ts): PUT and DELETE need a signed URL. Needs the map of
   * renderVolumeHttpBlocks() in the http block. Absent: the config is as without signatures.
   */
  secret?: string;
  /** With `secret`: GET and HEAD (files and listings) need a signed URL too. */
  privateReads?: boolean;
}

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

function quote(text: string): string {
  return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** Renders a whole nginx config: foreground, logs to stderr, temp paths inside the prefix. */
export function renderConfig(options: ConfigOptions): string {
  const temp = (name: string) => quote(`${options.prefixDir}/${name}`);
  const ssl = options.tls ? " ssl" : "";
  const tlsLines = options.tls
    ? [
      `    ssl_certificate ${quote(options.tls.cert)};`,
      `    ssl_certificate_key ${quote(options.tls.key)};`,
      `    ssl_protocols ${TLS_PROTOCOLS};`,
      `    ssl_session_cache shared:mkv_tls:1m;`,
      `    ssl_session_timeout 1h;`,
    ]
    : [];
  const listen = (port: number) => [
    `    listen ${port}${ssl};`,
    ...(options.ipv6 ? [`    listen [::]:${port}${ssl};`] : []),
    ...tlsLines,
  ];
  return [
    `# mkv.ts: rendered by nginx.ts; lives only as long as the program that wrote it.`,
    `daemon off;`,
    `master_process on;`,
    ...(options.user ? [`user ${options.user.name} ${options.user.group};`] : []),
    `worker_processes ${options.workerProcesses};`,
    `pid ${quote(options.pidFile)};`,
    `error_log stderr warn;`,
    `events {`,
    `  worker_connections 4096;`,
    `}`,
    `http {`,
    ...renderAccessLog(options.accessLog),
    `  server_tokens off;`,
    `  sendfile on;`,
    `  tcp_nopush on;`,
    `  keepalive_requests 1000000;`,
    `  merge_slashes off;`,
    `  large_client_header_buffers 4 16k;`,
    `  client_body_temp_path ${temp("client_body")};`,
    `  proxy_temp_path ${temp("proxy")};`,
    `  fastcgi_temp_path ${temp("fastcgi")};`,
    `  uwsgi_temp_path ${temp("uwsgi")};`,
    `  scgi_temp_path ${temp("scgi")};`,
    `  types {`,
    `    application/octet-stream bin;`,
    `  }`,
    `  default_type application/octet-stream;`,
    ...(options.httpBlocks ? [options.httpBlocks] : []),
    `  server {`,
    ...listen(options.port),
    options.locations,
    `  }`,
    ...(options.second
      ? [`  server {`, ...listen(options.second.port), options.second.locations, `  }`]
      : []),
    `}`,
    ``,
  ].join("\n");
}

/** An nginx duration: whole seconds as `75s`, anything else in milliseconds. */
function nginxDuration(ms: number): string {
  const whole = Math.round(ms);
  return whole % 1000 === 0 ? `${whole / 1000}s` : `${whole}ms`;
}

/**
 * A WebDAV volume serving `dir`: GET/HEAD of everything (files, byte ranges, directories as JSON
 * listings), but PUT and DELETE only on a key's file, so that no request can remove a directory
 * (`DELETE /` would remove every value) or write outside the layout. Parent directories are made
 * on PUT; no body limit. Uploads are spooled in the volume's own `dir/.mkv/tmp` so that the final
 * rename stays on one filesystem and a partial upload never appears under its name. Files are
 * made 0600 and directories 0700: values are the workers' alone. With a secret, writes (and with
 * private reads, reads) need a signed URL (renderSignatureCheck).
 */
export function renderVolumeLocations(options: VolumeLocationOptions): string {
  const root = quote(options.dir);
  const spool = `      client_body_temp_path ${quote(`${options.dir}${VOLUME_SPOOL}`)};`;
  const signed = renderSignatureCheck(options);
  return [
    `    root ${root};`,
    `    keepalive_timeout ${nginxDuration(options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS)};`,
    `    location / {`,
    ...(options.privateReads ? signed : []),
    `      limit_except GET {`,
    `        deny all;`,
    `      }`,
    `      autoindex on;`,
    `      autoindex_format json;`,
    `    }`,
    `    location ~ ${quote(KEY_PATH_REGEX)} {`,
    ...signed,
    `      limit_except GET PUT DELETE {`,
    `        deny all;`,
    `      }`,
    spool,
    `      client_max_body_size 0;`,
    `      dav_methods PUT DELETE;`,
    `      dav_access user:rw;`,
    `      create_full_put_path on;`,
    `    }`,
    `    location ^~ /. {`,
    `      return 404;`,
    `    }`,
    `    location = ${WRITE_PROBE_PATH} {`,
    ...signed,
    `      limit_except GET PUT {`,
    `        deny all;`,
    `      }`,
    spool,
    `      dav_methods PUT;`,
    `      dav_access user:rw;`,
    `    }`,
    // The volume's own figures for the index (lib/volumes/statusvolume.ts): nginx's counters, and the
    // disk figures that volume.ts keeps in a file. Static answers, read every few seconds.
    `    location = ${STUB_STATUS_PATH} {`,
    ...(options.privateReads ? signed : []),
    `      limit_except GET {`,
    `        deny all;`,
    `      }`,
    `      stub_status;`,
    `    }`,
    `    location = ${DISK_STATUS_PATH} {`,
    ...(options.privateReads ? signed : []),
    `      limit_except GET {`,
    `        deny all;`,
    `      }`,
    `      default_type application/json;`,
    `      alias ${quote(`${options.dir}${VOLUME_DISK_FILE}`)};`,
    `    }`,
  ].join("\n");
}

/**
 * The http-level blocks a volume with a secret needs: HEAD is signed as GET (lib/volumes/signing.ts), so
 * that one signed `Location` serves `curl -L` and `curl -I -L` alike.
 */
export function renderVolumeHttpBlocks(): string {
  return [
    `  map $request_method $mkv_signed_method {`,
    `    HEAD GET;`,
    `    default $request_method;`,
    `  }`,
  ].join("\n");
}

/**
 * The lines that make a location check a request's signature (nginx's secure_link module, the
 * scheme of lib/volumes/signing.ts): `?md5=` must be the base64url md5 of expires, method and decoded
 * path with the secret, and `&expires=` not past; else 403, before anything is read or written.
 * With private reads every request is checked; without, GET and HEAD pass unsigned. None without
 * a secret.
 */
function renderSignatureCheck(options: VolumeLocationOptions): string[] {
  if (options.secret === undefined || options.secret === "") return [];
  if (!validSecret(options.secret)) throw new NginxError("the volume secret has bad characters");
  const expression = `$secure_link_expires$mkv_signed_method$uri ${options.secret}`;
  const check = options.privateReads ? [`      if ($secure_link != "1") {`] : [
    `      set $mkv_signed "$request_method:$secure_link";`,
    `      if ($mkv_signed !~ "^(GET|HEAD):|:1$") {`,
  ];
  return [
    `      secure_link $arg_md5,$arg_expires;`,
    `      secure_link_md5 ${quote(expression)};`,
    ...check,
    `        return 403;`,
    `      }`,
  ];
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

/** What the index's locations do beyond passing requests on (see renderProxyLocations). */
export interface ProxyLocationOptions {
  /** The server of --s3-port: every request is marked S3's for the index (S3_PORT_HEADER). */
  s3Port?: boolean;
  /** The volumes speak HTTPS: replicas are proxied over TLS, verified with this PEM CA file. */
  volumeCaFile?: string;
}

/**
 * The named location the index sends an S3 GET to with `X-Accel-Redirect: @mkv_replica`
 * (lib/s3/api.ts): nginx proxies the replica the index chose, so the value streams from the
 * volume through nginx and never through Deno. The index's answer names the volume (an address,
 * so no resolver is needed), the signed path, the Range to ask for and the headers to answer
 * with; nginx reads them as $upstream_http_x_mkv_* before it proxies. Nothing of the client's
 * request goes to the volume but Range. A replica that fails mid-body cuts the connection (the
 * Content-Length is the volume's), so a client never takes a short body for a whole one.
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
    `      set $mkv_volume $upstream_http_x_mkv_volume;`,
    `      set $mkv_target $upstream_http_x_mkv_target;`,
    `      set $mkv_host $upstream_http_x_mkv_host;`,
    `      set $mkv_sni $upstream_http_x_mkv_sni;`,
    `      set $mkv_range $upstream_http_x_mkv_range;`,
    `      set $mkv_etag $upstream_http_x_mkv_etag;`,
    `      set $mkv_modified $upstream_http_x_mkv_modified;`,
    `      set $mkv_type $upstream_http_x_mkv_type;`,
    `      set $mkv_encoding $upstream_http_x_mkv_encoding;`,
    `      set $mkv_language $upstream_http_x_mkv_language;`,
    `      proxy_pass ${scheme}://$mkv_volume$mkv_target;`,
    ...tls,
    `      proxy_http_version 1.1;`,
    `      proxy_pass_request_headers off;`,
    `      proxy_pass_request_body off;`,
    `      proxy_set_header Host $mkv_host;`,
    `      proxy_set_header Range $mkv_range;`,
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
    ...renderReplicaErrorPages(),
    `    }`,
    ...renderReplicaErrorLocations(),
  ];
}

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
/** The index's status page: the one answer that is our own page, with a script. */
const STATUS_PAGE_PATH = "/-/status";

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
    // The scheme the client used, for the absolute URLs S3 answers with; a client's own is replaced.
    `      proxy_set_header X-Forwarded-Proto $scheme;`,
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

/**
 * Stops a child process with `signal`, then SIGKILL if it has not exited within `timeoutMs`;
 * resolves once it has exited. A child that exited already is fine.
 */
export async function stopChild(
  child: Deno.ChildProcess,
  options: { signal: Deno.Signal; timeoutMs: number },
): Promise<void> {
  try {
    child.kill(options.signal);
  } catch {
    // Exited already.
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited in the meantime.
    }
  }, options.timeoutMs);
  await child.status;
  clearTimeout(timer);
}

/** Takes the lock of `port`, or fails with a one-line reason if a live program of ours has it. */
async function lockPort(port: number): Promise<Deno.FsFile> {
  const file = await Deno.open(lockFileFor(port), { create: true, write: true });
  if (!await file.tryLock(true)) {
    file.close();
    throw new NginxError(`port ${port} is busy: another mkv.ts program runs nginx on it`);
  }
  return file;
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** The refusal when the workers' account is missing, with the command that makes it. Pure. */
export function missingAccountMessage(name: string): string {
  return `user ${name} (for nginx's workers) does not exist; run: ${CREATE_ACCOUNT} ${name}`;
}

/** Parses a line of `getent passwd` and the group name of `getent group`. Pure. */
export function parseAccount(passwd: string, groupLine: string): WorkerAccount | null {
  const [name, , uid, gid] = passwd.trim().split(":");
  const group = groupLine.trim().split(":")[0];
  if (!name || !/^\d+$/.test(uid ?? "") || !/^\d+$/.test(gid ?? "") || !group) return null;
  return { name, uid: Number(uid), gid: Number(gid), group };
}

/**
 * The line of `key` (a name, or for groups a gid) in the system's `database` (passwd, group) as
 * getent finds it (NSS too), or in /etc's file where getent is missing; "" if there is none.
 */
async function getent(database: "passwd" | "group", key: string): Promise<string> {
  try {
    const { code, stdout } = await new Deno.Command("getent", {
      args: [database, key],
      stdout: "piped",
      stderr: "null",
    }).output();
    return code === 0 ? new TextDecoder().decode(stdout) : "";
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const field = database === "group" && /^\d+$/.test(key) ? 2 : 0;
  const lines = (await Deno.readTextFile(`/etc/${database}`)).split("\n");
  return lines.find((line) => line.split(":")[field] === key) ?? "";
}

/**
 * The account nginx's workers run as: `name`'s when we are root (fails with the command that
 * makes it if it does not exist; root itself is refused), null otherwise, when the workers run
 * as we do and `name` does not matter.
 */
export async function workerAccount(name: string): Promise<WorkerAccount | null> {
  if (!isRoot()) return null;
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(name)) throw new NginxError(`bad user name ${name}`);
  const passwd = await getent("passwd", name);
  const gid = passwd.split(":")[3] ?? "";
  const account = passwd === "" ? null : parseAccount(passwd, await getent("group", gid));
  if (account === null) throw new NginxError(missingAccountMessage(name));
  if (account.uid === 0 || account.gid === 0) {
    throw new NginxError(`user ${name} is root's uid or gid: nginx's workers must not be root`);
  }
  return account;
}

/**
 * What is wrong with an existing volume directory for root to run it with `account`'s workers:
 * it must be root's, of the workers' group, mode 1770 (the workers make and remove what is
 * theirs; the sticky bit keeps the volume's own root directory from being renamed away and
 * replaced by a link). null if it is right. Pure.
 */
export function volumeDirProblem(
  dir: string,
  info: { uid: number | null; gid: number | null; mode: number | null },
  account: WorkerAccount,
): string | null {
  const mode = (info.mode ?? 0) & 0o7777;
  if (info.uid === 0 && info.gid === account.gid && mode === VOLUME_DIR_MODE) return null;
  const { name } = account;
  return `volume directory ${dir} is not root's with group ${name} and mode 1770, so ` +
    `${name}'s nginx workers could not store there or could plant links for root to follow; ` +
    `run: chown -R ${name}:${name} ${dir} && chmod -R go= ${dir} && ` +
    `chown root:${name} ${dir} && chmod 1770 ${dir}`;
}

/**
 * Readies a volume's directory for nginx's workers, failing with a one-line reason: `dir`
 * (made if missing), the volume's own directory in it and nginx's upload spool. As root, with
 * the workers' `account`: `dir` is root's, group the account's, mode 1770 (see volumeDirProblem;
 * an existing one is checked, never changed), the own directory root's and the spool the
 * workers', each made and changed without following a link. Otherwise all of it is ours.
 */
export async function prepareVolumeDir(dir: string, account: WorkerAccount | null): Promise<void> {
  let info = await Deno.stat(dir).catch((err) => {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  });
  if (info === null) {
    // Parents as mkdir -p makes them; the directory itself without following a link.
    await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")) || "/", { recursive: true });
    await ensureDirNoFollow(
      dir,
      account ? { mode: VOLUME_DIR_MODE, uid: 0, gid: account.gid } : { mode: 0o700 },
      Deno.uid()!,
    );
    info = await Deno.stat(dir);
  }
  if (!info.isDirectory) throw new NginxError(`${dir} is not a directory`);
  if (account) {
    const problem = volumeDirProblem(dir, info, account);
    if (problem !== null) throw new NginxError(problem);
    await checkReachable(dir, account);
  } else {
    await Deno.makeTempFile({ dir, prefix: ".mkv-write-check-" }).then(Deno.remove).catch(() => {
      throw new NginxError(`directory ${dir} is not writable`);
    });
  }
  const own = `${dir}${VOLUME_OWN_DIR}`;
  const uid = Deno.uid()!;
  await ensureDirNoFollow(own, {
    mode: VOLUME_OWN_DIR_MODE,
    ...(account && { uid: 0, gid: account.gid }),
  }, uid);
  // The own directory is root's and cannot be renamed (sticky): nothing below it can be planted.
  await ensureDirNoFollow(`${dir}${VOLUME_SPOOL}`, {
    mode: 0o700,
    ...(account && { uid: account.uid, gid: account.gid }),
  }, account?.uid ?? uid);
}

/** Fails with a one-line reason unless the workers can reach `dir` through its parents. */
async function checkReachable(dir: string, account: WorkerAccount): Promise<void> {
  let parent = await Deno.realPath(dir);
  while (parent !== "/") {
    parent = parent.slice(0, parent.lastIndexOf("/")) || "/";
    const info = await Deno.stat(parent);
    const mode = info.mode ?? 0;
    const searchable = (mode & 0o001) !== 0 || (info.gid === account.gid && (mode & 0o010) !== 0);
    if (!searchable) {
      throw new NginxError(
        `directory ${dir} cannot be reached by nginx's workers (user ${account.name}): ` +
          `${parent} is not searchable by others; run: chmod o+x ${parent}`,
      );
    }
  }
}

/**
 * Lets nginx's workers, and no one else but root, connect to the unix socket `socketPath` in the
 * directory `dir` (ours, mode 0700, as Deno.makeTempDir makes it, while the socket is made).
 * Connecting takes write permission on the socket. As root, the socket becomes the workers'
 * `account`'s, mode 0600, and the directory 0711, which lets others pass through but not list or
 * change it, so that the workers cannot replace the socket either. Otherwise the workers run as
 * we do, and the socket stays ours, 0600 in a 0700 directory.
 */
export async function shareSocketWithWorkers(
  dir: string,
  socketPath: string,
  account: WorkerAccount | null,
): Promise<void> {
  await Deno.chmod(socketPath, 0o600);
  if (account === null) return;
  await Deno.chown(socketPath, account.uid, account.gid);
  await Deno.chmod(dir, 0o711);
}

/**
 * Creates the access log file `path` with mode 0600 if it is missing, before nginx opens it (its
 * master, as root when we are root, would create it 0644: a key is in every line). An existing
 * file is appended to and keeps its mode. Fails with a one-line reason if it cannot be opened.
 */
export async function prepareAccessLog(path: string): Promise<void> {
  try {
    const info = await Deno.lstat(path).catch((err) => {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    });
    if (info !== null && !info.isFile) throw new Error("not a regular file");
    // A link put in its place after that look is not followed either.
    await createFileNoFollow(path, 0o600);
  } catch (err) {
    throw new NginxError(`cannot open access log ${path}: ${(err as Error).message}`);
  }
}

/** Whether the machine can listen on IPv6 loopback. */
export function hasIpv6(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** Fails with a one-line reason if something already listens on `port`. */
export function checkPortFree(port: number): void {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) throw new NginxError(`port ${port} is busy`);
    throw err;
  }
}

async function nginxAvailable(): Promise<void> {
  try {
    await new Deno.Command("nginx", { args: ["-v"], stdout: "null", stderr: "null" }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new NginxError("nginx not found on PATH: install it with `apt-get install -y nginx`");
    }
    throw err;
  }
}

/** Whether something accepts connections on `port` of this machine. */
export async function portAnswers(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

export interface NginxOptions {
  /** Names the program in log lines, e.g. `volume :3001`. */
  name: string;
  port: number;
  /**
   * The account of nginx's workers (workerAccount): required when we are root, so that they never
   * run as nginx's default, the shared `nobody`; null otherwise.
   */
  user: WorkerAccount | null;
  /** Serve HTTPS; the files are checked (the key must be private) before nginx starts. */
  tls?: TlsFiles;
  workerProcesses?: number;
  httpBlocks?: string;
  locations: string;
  /** A second server on another port (the index's --s3-port); see ConfigOptions. */
  second?: { port: number; locations: string };
  /** Called once nginx died on its own too often to restart; the program should exit non-zero. */
  onGiveUp?: (reason: string) => void;
  /** The access log (see ConfigOptions.accessLog); a file is created mode 0600 if missing. */
  accessLog?: string;
  /**
   * More temp paths of the program (`$TMPDIR/mkv-...`), removed with nginx's own, and by the
   * next run on the port if this one crashes.
   */
  tempPaths?: string[];
}

/** A running nginx child, restarted if it dies on its own, stopped by `stop()`. */
export class Nginx {
  #options: NginxOptions;
  #child: Deno.ChildProcess | null = null;
  #prefixDir = "";
  #confFile = "";
  #stopping = false;
  #restarts: number[] = [];
  #stderrTail: string[] = [];
  #supervised: Promise<void> = Promise.resolve();
  #portLock: Deno.FsFile | null = null;

  private constructor(options: NginxOptions) {
    this.#options = options;
  }

  /** Starts nginx and resolves once its port answers; rejects with a one-line NginxError. */
  static async start(options: NginxOptions): Promise<Nginx> {
    await nginxAvailable();
    if (isRoot() && options.user === null) {
      throw new NginxError(`${options.name}: root runs nginx only with an account for its workers`);
    }
    if (options.tls) await checkTlsFiles(options.tls);
    await ensureRuntimeDir();
    if (options.accessLog !== undefined && options.accessLog !== "stderr") {
      await prepareAccessLog(options.accessLog);
    }
    const nginx = new Nginx(options);
    nginx.#portLock = await lockPort(options.port);
    try {
      await stopLeftover(pidFileFor(options.port), { portLocked: true });
      checkPortFree(options.port);
      if (options.second !== undefined) checkPortFree(options.second.port);
    } catch (err) {
      await Deno.remove(lockFileFor(options.port)).catch(() => {});
      nginx.#portLock.close();
      throw err;
    }
    nginx.#prefixDir = await Deno.makeTempDir({ prefix: CONF_PREFIX });
    await Deno.chmod(nginx.#prefixDir, 0o755);
    nginx.#confFile = await Deno.makeTempFile({ prefix: CONF_PREFIX, suffix: ".conf" });
    // Listed where a run after a crash of this one looks, so that it can remove them.
    await Deno.writeTextFile(
      tempListFor(pidFileFor(options.port)),
      JSON.stringify([nginx.#confFile, nginx.#prefixDir, ...(options.tempPaths ?? [])]),
    );
    const config = renderConfig({
      prefixDir: nginx.#prefixDir,
      ...(options.user && { user: options.user }),
      pidFile: pidFileFor(options.port),
      port: options.port,
      ipv6: hasIpv6(),
      workerProcesses: options.workerProcesses ?? 1,
      httpBlocks: options.httpBlocks,
      locations: options.locations,
      second: options.second,
      tls: options.tls,
      accessLog: options.accessLog,
    });
    // makeTempFile made it 0600: only we (and nginx's master, as us or root) read it.
    await Deno.writeTextFile(nginx.#confFile, config);
    try {
      await nginx.#spawn();
    } catch (err) {
      await nginx.#removeTempFiles();
      throw err;
    }
    return nginx;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  async #spawn(): Promise<void> {
    const child = new Deno.Command("nginx", {
      args: ["-e", "stderr", "-p", this.#prefixDir, "-c", this.#confFile],
      stdin: "null",
      stdout: "inherit",
      stderr: "piped",
      // Its own process group: a Ctrl-C on the terminal reaches us, and we stop nginx, rather
      // than nginx dying first and looking like a crash.
      detached: true,
    }).spawn();
    this.#child = child;
    const stderrDone = this.#pumpStderr(child.stderr);
    let exited = false;
    const status = child.status.then(async (s) => {
      exited = true;
      await stderrDone;
      return s;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    // Ready once every port it serves answers: nginx that cannot bind one exits, and that is
    // a failure to start, never a start that dies later.
    const ports = [
      this.#options.port,
      ...(this.#options.second ? [this.#options.second.port] : []),
    ];
    const answering = async () => (await Promise.all(ports.map(portAnswers))).every(Boolean);
    while (!exited && !await answering()) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await status;
        throw new NginxError(`${this.#options.name}: nginx did not answer within 10s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (exited) {
      const s = await status;
      const last = this.#stderrTail.at(-1) ?? `exit code ${s.code}`;
      throw new NginxError(`${this.#options.name}: nginx failed to start: ${last}`);
    }
    this.#supervised = status.then((s) => this.#onExit(s));
  }

  async #pumpStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const raw of lines) {
        // nginx's error lines name the request (`request: "PUT /x?md5=..."`): a volume's
        // signature or a presigned URL's must not reach the log.
        const line = redactSecrets(raw);
        console.error(`${this.#options.name}: ${line}`);
        // An access log line (to stderr) is no reason for a failure.
        if (line.startsWith("{")) continue;
        this.#stderrTail.push(line.replace(/^.*?\[\w+\] \d+#\d+: /, ""));
        if (this.#stderrTail.length > STDERR_LINES_KEPT) this.#stderrTail.shift();
      }
    }
  }

  async #onExit(status: Deno.CommandStatus): Promise<void> {
    if (this.#stopping) return;
    const now = Date.now();
    this.#restarts = this.#restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    const reason = `nginx exited on its own (code ${status.code}, signal ${status.signal})`;
    if (this.#restarts.length >= MAX_RESTARTS) {
      await this.#removeTempFiles();
      this.#options.onGiveUp?.(`${reason} ${MAX_RESTARTS} times within a minute`);
      return;
    }
    this.#restarts.push(now);
    console.error(`${this.#options.name}: ${reason}; restarting it`);
    try {
      await this.#spawn();
    } catch (err) {
      await this.#removeTempFiles();
      this.#options.onGiveUp?.(err instanceof Error ? err.message : String(err));
    }
  }

  async #removeTempFiles(): Promise<void> {
    await removeListedFiles(tempListFor(pidFileFor(this.#options.port)));
    // Removed while still held, so that no one takes a lock on a file that is going away.
    if (this.#portLock) await Deno.remove(lockFileFor(this.#options.port)).catch(() => {});
    this.#portLock?.close();
    this.#portLock = null;
  }

  /** Stops nginx (fast shutdown, then kill) and removes its temp files. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopping) {
      await this.#supervised;
      return;
    }
    this.#stopping = true;
    if (this.#child) {
      await stopChild(this.#child, { signal: "SIGTERM", timeoutMs: STOP_TIMEOUT_MS });
    }
    await this.#supervised;
    await this.#removeTempFiles();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Runs `stop` on SIGINT or SIGTERM, then exits 0; the program's way to take nginx down with it. */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = async () => {
    if (stopping) return;
    stopping = true;
    await stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", handler);
  Deno.addSignalListener("SIGTERM", handler);
}
