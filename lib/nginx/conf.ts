// The whole nginx config a program runs: foreground, logs to stderr, temp paths inside its own
// prefix directory, the listeners (plain or TLS, IPv4 and IPv6) and the access log; the server's
// locations come from volumeconf.ts or proxyconf.ts. Pure; golden-tested in
// tests/unit/nginx_test.ts.

import { ACCESS_LOG_FORMAT, renderRedactedUri } from "./accesslog.ts";
import type { WorkerAccount } from "./_account.ts";
import { NginxError } from "./runtime.ts";
import { TLS_PROTOCOLS, type TlsFiles } from "./tls.ts";

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

/** `text` as an nginx quoted string: backslashes and double quotes escaped. */
export function quote(text: string): string {
  return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
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
