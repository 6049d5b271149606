// The config of a volume's nginx: a WebDAV server of a volume's directory that takes writes only
// on a key's file (the layout of docs/design.md, On-disk layout), serves the volume's own figures
// for the index, and with a volume secret checks each request's signature (lib/volumes/signing.ts
// signs). Pure; golden-tested in tests/unit/nginx_test.ts and tests/unit/signing_test.ts.

import {
  DISK_STATUS_PATH,
  FROM_INDEX_HEADER,
  MISS_PREFIX,
  MISSES_HEADER,
  STUB_STATUS_PATH,
  validSecret,
  VOLUME_OWN_DIR,
  WRITE_PROBE_PATH,
} from "../volumes/mod.ts";
import { quote } from "./conf.ts";
import { NginxError } from "./runtime.ts";

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
export const VOLUME_SPOOL = `${VOLUME_OWN_DIR}/tmp`;
/** The disk figures (lib/volumes/statusvolume.ts) inside a volume's directory. */
const VOLUME_DISK_FILE = `${VOLUME_OWN_DIR}/disk.json`;

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
  /**
   * The index's URL (`http://host:port`, volume.ts --index): a GET or HEAD of a missing file of
   * the layout is answered with a 302 to the index's miss route there (renderMissLocation), and
   * the probe's answer says so (MISSES_HEADER). Absent: a missing file is a 404.
   */
  index?: string;
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
    ...(options.index === undefined
      ? []
      : [`      add_header ${MISSES_HEADER} ${quote(options.index)};`]),
    `      limit_except GET {`,
    `        deny all;`,
    `      }`,
    `      autoindex on;`,
    `      autoindex_format json;`,
    `    }`,
    `    location ~ ${quote(KEY_PATH_REGEX)} {`,
    ...signed,
    ...(options.index === undefined ? [] : [`      error_page 404 = ${MISS_LOCATION};`]),
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
    // The volume's own figures for the index (lib/volumes/statusvolume.ts): nginx's counters, and
    // the disk figures that volume.ts keeps in a file. Static answers, read every few seconds.
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
    ...(options.index === undefined ? [] : renderMissLocation(options.index)),
  ].join("\n");
}

/**
 * Whether `url` may be a volume's `--index`: `http(s)://host[:port]` with an optional path, of
 * plain characters, without a query or a trailing `/` (the miss route's path follows it).
 */
export function validIndexUrl(url: string): boolean {
  return /^https?:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(\/[A-Za-z0-9._~-]+)*$/.test(
    url,
  );
}

/** The named location a key's missing file goes to (error_page) when the volume has an index. */
const MISS_LOCATION = "@mkv_miss";
/** nginx's variable of the request header FROM_INDEX_HEADER. */
const FROM_INDEX_VARIABLE = `$http_${FROM_INDEX_HEADER.toLowerCase().replaceAll("-", "_")}`;

/**
 * A GET or HEAD of a key's file that is not there, from a client: a 302 to the index's miss route,
 * `INDEX/-/miss/PATH?volume=HOST` (PATH as the volume sees it, HOST as the client named the
 * volume), where the index checks the key's other replicas and sends the client to one that holds
 * it. The target is only ever the configured index: PATH is a path of the layout (the location's
 * regex), so it holds nothing but base64 and hex. The index's own requests (FROM_INDEX_HEADER),
 * and the DELETEs of files already gone, get the 404 as it is.
 */
function renderMissLocation(index: string): string[] {
  // A `$` would be an nginx variable, a quote or a space would end the string: none is in a URL
  // that volume.ts accepts (validIndexUrl).
  if (!validIndexUrl(index)) throw new NginxError(`bad index URL ${JSON.stringify(index)}`);
  return [
    `    location ${MISS_LOCATION} {`,
    `      if (${FROM_INDEX_VARIABLE}) {`,
    `        return 404;`,
    `      }`,
    `      if ($request_method !~ "^(GET|HEAD)$") {`,
    `        return 404;`,
    `      }`,
    `      return 302 ${quote(`${index}${MISS_PREFIX}$uri?volume=$http_host`)};`,
    `    }`,
  ];
}

/**
 * The http-level blocks a volume with a secret needs: HEAD is signed as GET
 * (lib/volumes/signing.ts), so that one signed `Location` serves `curl -L` and `curl -I -L` alike.
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
 * scheme of lib/volumes/signing.ts): `?md5=` must be the base64url md5 of expires, method and
 * decoded path with the secret, and `&expires=` not past; else 403, before anything is read or
 * written. With private reads every request is checked; without, GET and HEAD pass unsigned. None
 * without a secret.
 */
function renderSignatureCheck(options: VolumeLocationOptions): string[] {
  if (options.secret === undefined || options.secret === "") return [];
  // None of a valid secret's characters means anything to nginx in a quoted string, so the
  // secret goes into the config as it is.
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
