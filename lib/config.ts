// The command line of index.ts: its flags (minikeyvalue's names and defaults) and subcommands,
// parsed into options. Pure; golden-tested in tests/unit/config_test.ts.

import { resolve } from "node:path";
import { FlagError, type FlagSpec, parseFlags, splitList, usageFlags } from "./flags.ts";
import { isHostPort, type Placement } from "./placement.ts";
import {
  DEFAULT_WORKER_USER,
  parseTlsFlags,
  type ProxyLimits,
  TLS_FLAGS,
  type TlsFiles,
} from "./nginx/mod.ts";

export const COMMANDS = ["server", "rebuild", "rebalance", "verify", "gc"] as const;
export type Command = typeof COMMANDS[number];

/** How long a signed `Location` works by default, with --private-reads. */
const DEFAULT_READ_EXPIRY_MS = 60_000;
/**
 * How long an S3 multipart upload may stay incomplete by default: a week, as S3's own lifecycle
 * rules commonly allow, so that a slow upload is not cut off while abandoned parts do not stay.
 */
export const DEFAULT_MULTIPART_MAX_AGE_MS = 7 * 24 * 3_600_000;

export const INDEX_FLAGS: FlagSpec = {
  port: { type: "int", default: 3000, help: "port the index listens on (server)", arg: "PORT" },
  "s3-port": {
    type: "int",
    default: 0,
    help: "server: a second port on which every request is S3's (0: none)",
    arg: "PORT",
  },
  db: { type: "string", default: "", help: "directory of the index database", arg: "DIR" },
  volumes: {
    type: "string",
    default: "",
    help: "volumes, comma-separated host:port",
    arg: "LIST",
  },
  replicas: { type: "int", default: 3, help: "replicas of each value", arg: "N" },
  subvolumes: { type: "int", default: 10, help: "subvolume directories per volume", arg: "N" },
  protect: { type: "bool", default: false, help: "DELETE only keys that were UNLINKed first" },
  md5sum: {
    type: "bool",
    default: true,
    help: "compute and keep each value's md5 (false: none computed; S3 writes keep theirs)",
  },
  voltimeout: {
    type: "duration",
    default: 1000,
    help: "timeout of a request to a volume",
    arg: "DURATION",
  },
  fallback: {
    type: "string",
    default: "",
    help: "host:port that GETs of absent keys are redirected to",
    arg: "HOST",
  },
  v: { type: "bool", default: false, help: "log every request (and the access log to stderr)" },
  "access-log": {
    type: "string",
    default: "",
    help: "server: a JSON line per request from nginx to FILE or stderr (empty: off)",
    arg: "FILE",
  },
  metrics: {
    type: "bool",
    default: true,
    help:
      "server: measure requests for /-/metrics and /-/status (=false: off, to measure the cost)",
  },
  user: {
    type: "string",
    default: DEFAULT_WORKER_USER,
    help: "server: the account nginx's workers run as when root starts the index",
    arg: "NAME",
  },
  credentials: {
    type: "string",
    default: "",
    help: "file of ACCESS_KEY SECRET RIGHTS lines (mode 0600); without it the API is open",
    arg: "FILE",
  },
  "public-read": {
    type: "bool",
    default: false,
    help: "with --credentials: GET/HEAD of keys need no credentials",
  },
  ...TLS_FLAGS,
  "volume-tls": {
    type: "bool",
    default: false,
    help: "the volumes serve HTTPS (volume.ts --tls-cert): talk TLS, redirect to https://",
  },
  "volume-ca": {
    type: "string",
    default: "",
    help: "with --volume-tls: PEM CA certificate(s) to verify the volumes with",
    arg: "FILE",
  },
  "limit-conn": {
    type: "int",
    default: 0,
    help: "connections at once per client address, more get 429 (0: no limit)",
    arg: "N",
  },
  "limit-rate": {
    type: "string",
    default: "",
    help: "requests per client address, N/s or N/m; more get 429 (empty: no limit)",
    arg: "RATE",
  },
  "limit-burst": {
    type: "int",
    default: 0,
    help: "with --limit-rate: requests over the rate let through in a burst",
    arg: "N",
  },
  "volume-secret-file": {
    type: "string",
    default: "",
    help: "file (mode 0600/0400) with the secret the volumes check: signs every request to them",
    arg: "FILE",
  },
  "private-reads": {
    type: "bool",
    default: false,
    help: "302 Locations carry a signature (volumes run --private-reads); needs the secret",
  },
  "multipart-max-age": {
    type: "duration",
    default: DEFAULT_MULTIPART_MAX_AGE_MS,
    help: "server: S3 multipart uploads not completed within this long are aborted",
    arg: "DURATION",
  },
  "read-expiry": {
    type: "duration",
    default: DEFAULT_READ_EXPIRY_MS,
    help: "with --private-reads: how long a signed Location works",
    arg: "DURATION",
  },
  md5: { type: "bool", default: false, help: "verify: also read each replica and check its md5" },
  repair: { type: "bool", default: false, help: "verify: re-create missing or corrupt replicas" },
  "dry-run": { type: "bool", default: false, help: "gc, rebalance: only list what would change" },
  concurrency: {
    type: "int",
    default: 8,
    help:
      "operations: keys worked on at once (rebuild with md5: reads of files, or batches of small ones, at once)",
    arg: "N",
  },
  json: { type: "bool", default: false, help: "operations: print progress and summary as JSON" },
};

export const INDEX_USAGE = `index.ts: the mkv.ts index (key → volumes, in Deno KV, behind nginx)

usage: deno run -A index.ts COMMAND --db DIR --volumes HOST:PORT,... [flags]

commands:
  server      serve the HTTP API on --port
  rebuild     rebuild the index from the volumes' files
  rebalance   move values to where --volumes places them
  verify      check every replica exists (and with --md5, its md5); --repair fixes them
  gc          remove files and records that no key points to; --dry-run lists them

The operations work beside a running server on the same --db (they go through it).

flags (minikeyvalue's; -flag and --flag both work):
${usageFlags(INDEX_FLAGS)}
`;

export interface IndexOptions extends Placement {
  command: Command;
  port: number;
  db: string;
  protect: boolean;
  md5sum: boolean;
  voltimeoutMs: number;
  fallback: string;
  verbose: boolean;
  /** The credentials file, or "" for an open API (minikeyvalue's). */
  credentials: string;
  publicRead: boolean;
  md5: boolean;
  repair: boolean;
  dryRun: boolean;
  concurrency: number;
  json: boolean;
  /** The file of the volume secret (lib/volumes/signing.ts); absent: requests to volumes are unsigned. */
  volumeSecretFile?: string;
  /** How long a signed `Location` works; present only with --private-reads. */
  readExpiryMs?: number;
  /** HTTPS at the index's nginx; absent without --tls-cert. */
  tls?: TlsFiles;
  /** The volumes speak HTTPS; present (true) only with --volume-tls. */
  volumeTls?: boolean;
  /** CA certificates (a PEM file) the volumes are verified with, with --volume-tls. */
  volumeCa?: string;
  /** Per-client limits at the index's nginx; absent when none is set. */
  limits?: ProxyLimits;
  /** nginx's access log: an absolute path or "stderr" (-v without --access-log); absent: off. */
  accessLog?: string;
  /** `--multipart-max-age`: S3 uploads older than this are aborted by the reaper. */
  multipartMaxAgeMs: number;
  /** `--s3-port`: a second port where every request is S3's; absent: none. */
  s3Port?: number;
  /** `--metrics=false`: requests are not measured; absent: they are. */
  metrics?: false;
  /** `--user`: nginx's workers' account when root runs the index; absent: DEFAULT_WORKER_USER. */
  user?: string;
}

/** `--access-log` (made absolute), "stderr" with `-v` alone, or undefined: no access log. */
function parseAccessLog(text: string, verbose: boolean): string | undefined {
  if (text === "") return verbose ? "stderr" : undefined;
  if (text === "stderr") return text;
  // nginx would take a `$` for a variable, and open a file per request.
  if (/[$\n\0]/.test(text)) {
    throw new FlagError(`-access-log ${JSON.stringify(text)} has a bad character`);
  }
  return resolve(text);
}

/** `--limit-rate` (`10/s`, `10r/s`, `600/m`) in nginx's syntax (`10r/s`). */
function parseLimitRate(text: string): string {
  const match = text.match(/^(\d{1,9})r?\/(s|m)$/);
  if (match === null || Number(match[1]) < 1) {
    throw new FlagError(`-limit-rate ${JSON.stringify(text)} is not N/s or N/m (N at least 1)`);
  }
  return `${Number(match[1])}r/${match[2]}`;
}

function parseLimits(values: Record<string, unknown>): ProxyLimits | undefined {
  const conn = values["limit-conn"] as number;
  const rateText = values["limit-rate"] as string;
  const burst = values["limit-burst"] as number;
  if (conn < 0) throw new FlagError("-limit-conn must be 0 (no limit) or more");
  if (burst < 0) throw new FlagError("-limit-burst must be 0 or more");
  if (burst > 0 && rateText === "") throw new FlagError("-limit-burst needs -limit-rate");
  if (conn === 0 && rateText === "") return undefined;
  const limits: ProxyLimits = {};
  if (conn > 0) limits.conn = conn;
  if (rateText !== "") {
    limits.rate = parseLimitRate(rateText);
    limits.burst = burst;
  }
  return limits;
}

/** `--volume-secret-file`, `--private-reads` and `--read-expiry` as options. */
function parseSigning(
  values: Record<string, unknown>,
): { volumeSecretFile?: string; readExpiryMs?: number } {
  const file = values["volume-secret-file"] as string;
  const readExpiryMs = values["read-expiry"] as number;
  if (!values["private-reads"]) return file === "" ? {} : { volumeSecretFile: resolve(file) };
  if (file === "") {
    throw new FlagError("-private-reads needs -volume-secret-file (the secret signs the reads)");
  }
  if (readExpiryMs < 1000) throw new FlagError("-read-expiry must be at least 1s");
  return { volumeSecretFile: resolve(file), readExpiryMs };
}

function parseMultipartMaxAge(ms: number): number {
  if (ms < 1000) throw new FlagError("-multipart-max-age must be at least 1s");
  return ms;
}

/** Parses index.ts's command line; throws FlagError with a one-line reason. */
export function parseIndexArgs(args: string[]): IndexOptions | "help" {
  const { values, positionals, help } = parseFlags(args, INDEX_FLAGS);
  if (help) return "help";
  if (positionals.length === 0) {
    throw new FlagError(`a command is needed: ${COMMANDS.join(", ")} (see --help)`);
  }
  if (positionals.length > 1) throw new FlagError(`unexpected argument ${positionals[1]}`);
  const command = positionals[0] as Command;
  if (!COMMANDS.includes(command)) {
    throw new FlagError(`unknown command ${positionals[0]} (${COMMANDS.join(", ")})`);
  }
  const port = values.port as number;
  if (port < 1 || port > 65535) throw new FlagError(`-port ${port} is not a port number`);
  const s3Port = values["s3-port"] as number;
  if (s3Port < 0 || s3Port > 65535) {
    throw new FlagError(`-s3-port ${s3Port} is not a port number`);
  }
  if (s3Port === port) throw new FlagError("-s3-port must differ from -port");
  if (values.db === "") throw new FlagError("-db is required (the index's directory)");
  const volumes = splitList(values.volumes as string);
  if (volumes.length === 0) throw new FlagError("-volumes is required (host:port,...)");
  for (const volume of volumes) {
    if (!isHostPort(volume)) {
      throw new FlagError(`volume ${JSON.stringify(volume)} is not host:port`);
    }
  }
  if (new Set(volumes).size !== volumes.length) throw new FlagError("-volumes has a duplicate");
  const replicas = values.replicas as number;
  if (replicas < 1) throw new FlagError("-replicas must be at least 1");
  if (replicas > volumes.length) {
    throw new FlagError(`-replicas ${replicas} is more than the ${volumes.length} volumes`);
  }
  const subvolumes = values.subvolumes as number;
  if (subvolumes < 1 || subvolumes > 256) throw new FlagError("-subvolumes must be 1 to 256");
  const voltimeoutMs = values.voltimeout as number;
  if (voltimeoutMs <= 0) throw new FlagError("-voltimeout must be more than 0");
  const fallback = values.fallback as string;
  if (fallback !== "" && !isHostPort(fallback, { optionalPort: true })) {
    throw new FlagError(`-fallback ${JSON.stringify(fallback)} is not host:port`);
  }
  if (values["public-read"] && values.credentials === "") {
    throw new FlagError("-public-read needs -credentials (without them everything is public)");
  }
  const signing = parseSigning(values);
  const concurrency = values.concurrency as number;
  if (concurrency < 1 || concurrency > 1024) throw new FlagError("-concurrency must be 1 to 1024");
  const tls = parseTlsFlags(values["tls-cert"] as string, values["tls-key"] as string);
  const volumeCa = values["volume-ca"] as string;
  if (volumeCa !== "" && !values["volume-tls"]) {
    throw new FlagError("-volume-ca needs -volume-tls (the volumes speak HTTPS)");
  }
  const limits = parseLimits(values);
  const accessLog = parseAccessLog(values["access-log"] as string, values.v as boolean);
  return {
    command,
    port,
    db: values.db as string,
    volumes,
    replicas,
    subvolumes,
    protect: values.protect as boolean,
    md5sum: values.md5sum as boolean,
    voltimeoutMs,
    fallback,
    verbose: values.v as boolean,
    credentials: values.credentials as string,
    publicRead: values["public-read"] as boolean,
    md5: values.md5 as boolean,
    repair: values.repair as boolean,
    dryRun: values["dry-run"] as boolean,
    concurrency,
    json: values.json as boolean,
    ...(tls && { tls }),
    ...(values["volume-tls"] ? { volumeTls: true } : {}),
    ...(volumeCa !== "" && { volumeCa: resolve(volumeCa) }),
    ...(limits && { limits }),
    ...(accessLog !== undefined && { accessLog }),
    multipartMaxAgeMs: parseMultipartMaxAge(values["multipart-max-age"] as number),
    ...(s3Port > 0 && { s3Port }),
    ...(values.metrics === false && { metrics: false as const }),
    ...(values.user !== DEFAULT_WORKER_USER && { user: values.user as string }),
    ...signing,
  };
}
