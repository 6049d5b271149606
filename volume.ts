// volume.ts: a mkv.ts volume, which is stock nginx with its WebDAV module serving one directory.
// The index stores each value here with PUT, reads it with GET (byte ranges too), removes it with
// DELETE and lists directories as JSON. The program writes nginx's config to a temp file, runs
// nginx as its child, and takes it down (and the temp files) on SIGINT/SIGTERM.
//
//   deno run -A volume.ts --port 3001 --dir ./data/volume1
//
// Subvolume directories (`sv00`, `sv01`, ...) are plain directories under --dir: nothing to set.
// With --volume-secret-file, nginx takes PUT/DELETE only with the index's signature (and, with
// --private-reads, GET/HEAD too): see lib/volumes/signing.ts. With --index URL, a client whose
// GET or HEAD finds no file is sent back to the index (URL/-/miss/...), which reads another
// replica: the index then redirects GETs here without checking first (docs/design.md).

import { commandLine, FlagError, type FlagSpec, parseFlags, usageFlags } from "./lib/flags.ts";
import { parseTlsFlags, TLS_FLAGS } from "./lib/nginx/tls.ts";
import { readSecretFile, SecretError, startPruner } from "./lib/volumes/mod.ts";
import {
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_WORKER_USER,
  Nginx,
  NginxError,
  prepareVolumeDir,
  renderVolumeHttpBlocks,
  renderVolumeLocations,
  startDiskReport,
  stopOnSignals,
  type TlsFiles,
  validIndexUrl,
  type WorkerAccount,
  workerAccount,
} from "./nginx.ts";
import { resolve } from "node:path";

const FLAGS: FlagSpec = {
  port: { type: "int", default: 3001, help: "port the volume listens on", arg: "PORT" },
  dir: { type: "string", default: "", help: "directory holding the values", arg: "DIR" },
  workers: { type: "int", default: 1, help: "nginx worker processes", arg: "N" },
  keepalive: {
    type: "duration",
    default: DEFAULT_KEEPALIVE_MS,
    help: "idle client connections are closed after this (nginx's keepalive_timeout)",
    arg: "DURATION",
  },
  user: {
    type: "string",
    default: DEFAULT_WORKER_USER,
    help: "the account nginx's workers run as when root starts the volume",
    arg: "NAME",
  },
  ...TLS_FLAGS,
  "volume-secret-file": {
    type: "string",
    default: "",
    help: "file (mode 0600/0400) with the secret shared with the index: PUT/DELETE must be signed",
    arg: "FILE",
  },
  "private-reads": {
    type: "bool",
    default: false,
    help: "GET/HEAD must be signed too (needs --volume-secret-file)",
  },
  index: {
    type: "string",
    default: "",
    help: "the index's URL as clients reach it: a GET/HEAD of a missing file is sent back " +
      "there for another replica, and the index's GETs skip their check of this volume",
    arg: "URL",
  },
};

const USAGE = `volume.ts: a mkv.ts volume (nginx WebDAV serving one directory)

usage: deno run -A volume.ts --port PORT --dir DIR [--workers N] [--keepalive DURATION] [--user NAME]
                             [--tls-cert FILE --tls-key FILE]
                             [--volume-secret-file FILE [--private-reads]] [--index URL]

${usageFlags(FLAGS)}
`;

export interface VolumeOptions {
  port: number;
  dir: string;
  workers: number;
  keepaliveMs: number;
  /** The account of nginx's workers when root runs the volume; absent: DEFAULT_WORKER_USER. */
  user?: string;
  /** HTTPS instead of plain HTTP; absent without --tls-cert. */
  tls?: TlsFiles;
  /** The file of the volume secret (lib/volumes/signing.ts); absent: writes are not signed. */
  secretFile?: string;
  /** GET and HEAD must be signed too; only with `secretFile`. */
  privateReads?: boolean;
  /** The index's URL that misses are sent back to (--index); absent: a miss is a 404. */
  index?: string;
}

/** Parses volume.ts's command line; throws FlagError with a one-line reason. */
export function parseVolumeArgs(args: string[]): VolumeOptions | "help" {
  const { values, positionals, help } = parseFlags(args, FLAGS);
  if (help) return "help";
  if (positionals.length > 0) throw new FlagError(`unexpected argument ${positionals[0]}`);
  const port = values.port as number;
  if (port < 1 || port > 65535) throw new FlagError(`-port ${port} is not a port number`);
  if (values.dir === "") throw new FlagError("-dir is required (the directory to serve)");
  const workers = values.workers as number;
  if (workers < 1) throw new FlagError("-workers must be at least 1");
  const keepaliveMs = values.keepalive as number;
  // nginx takes whole milliseconds; 0 turns keep-alive off.
  if (!Number.isInteger(keepaliveMs)) {
    throw new FlagError(`-keepalive ${keepaliveMs}ms is not a whole number of milliseconds`);
  }
  const tls = parseTlsFlags(values["tls-cert"] as string, values["tls-key"] as string);
  const secretFile = values["volume-secret-file"] as string;
  const privateReads = values["private-reads"] as boolean;
  if (privateReads && secretFile === "") {
    throw new FlagError("-private-reads needs -volume-secret-file (the secret signs the reads)");
  }
  const index = (values.index as string).replace(/\/+$/, "");
  if (index !== "" && !validIndexUrl(index)) {
    throw new FlagError(`-index ${values.index}: not an http(s)://host[:port] URL`);
  }
  const signing = {
    ...(secretFile !== "" && { secretFile: resolve(secretFile) }),
    ...(privateReads && { privateReads }),
  };
  return {
    port,
    dir: resolve(values.dir as string),
    workers,
    keepaliveMs,
    ...(values.user !== DEFAULT_WORKER_USER && { user: values.user as string }),
    ...(tls && { tls }),
    ...signing,
    ...(index !== "" && { index }),
  };
}

/** A running volume: its nginx, and the disk figures kept current for the index. */
export interface RunningVolume {
  nginx: Nginx;
  stop(): Promise<void>;
}

/**
 * Starts a volume: nginx serving `dir` on `port`, its disk figures (free and total bytes,
 * lib/nginx/diskreport.ts) rewritten every few seconds for the index to read, and the removal of
 * empty directories (lib/volumes/prune.ts) in the background, until `stop()`.
 */
export async function startVolume(
  options: VolumeOptions & { onGiveUp?: (reason: string) => void },
): Promise<RunningVolume> {
  // Read here, never passed on a command line; it ends up only in nginx's 0600 temp config.
  const secret = options.secretFile ? await readSecretFile(options.secretFile) : undefined;
  const user = await workerAccount(options.user ?? DEFAULT_WORKER_USER);
  await prepareVolumeDir(options.dir, user);
  const report = await startDiskReport(options.dir, (message) => {
    console.error(`volume :${options.port}: ${message}`);
  });
  let nginx: Nginx;
  try {
    nginx = await startNginx(options, { secret, user });
  } catch (err) {
    await report.stop();
    throw err;
  }
  const pruner = startPruner(options.dir, {
    report: (message) => console.error(`volume :${options.port}: ${message}`),
    // Root never walks the workers' directories itself: the pass runs as their account.
    ...(user !== null && { account: user }),
  });
  return {
    nginx,
    async stop() {
      await pruner.stop();
      await report.stop();
      await nginx.stop();
    },
  };
}

function startNginx(
  options: VolumeOptions & { onGiveUp?: (reason: string) => void },
  { secret, user }: { secret: string | undefined; user: WorkerAccount | null },
): Promise<Nginx> {
  return Nginx.start({
    name: `volume :${options.port}`,
    port: options.port,
    user,
    workerProcesses: options.workers,
    tls: options.tls,
    ...(secret && { httpBlocks: renderVolumeHttpBlocks() }),
    locations: renderVolumeLocations({
      dir: options.dir,
      keepaliveMs: options.keepaliveMs,
      secret,
      privateReads: options.privateReads,
      index: options.index,
    }),
    onGiveUp: options.onGiveUp,
  });
}

async function main(): Promise<void> {
  const options = commandLine("volume", parseVolumeArgs, USAGE);
  if (options === null) return;
  const starting = startVolume({
    ...options,
    onGiveUp: (reason) => {
      console.error(`volume :${options.port}: ${reason}; exiting`);
      Deno.exit(1);
    },
  });
  // Listening from the start: a signal during the start stops what it started (its nginx) once
  // the start is done, rather than ending the process and leaving nginx behind.
  stopOnSignals(() => starting.then((started) => started.stop(), () => {}));
  let volume: RunningVolume;
  try {
    volume = await starting;
  } catch (err) {
    if (!(err instanceof NginxError || err instanceof SecretError)) throw err;
    console.error(`volume: ${err.message}`);
    Deno.exit(1);
  }
  console.error(
    options.secretFile === undefined
      ? `volume: OPEN: anyone who reaches :${options.port} can PUT and DELETE values here ` +
        `(start with --volume-secret-file to accept only the index's signed writes)`
      : `volume: PUT/DELETE need the index's signature; GET/HEAD ` +
        (options.privateReads ? "need one too (private reads)" : "are open"),
  );
  if (options.index !== undefined) {
    console.error(`volume: a GET/HEAD of a missing file is sent back to ${options.index}`);
  }
  const https = options.tls ? "https, " : "";
  console.error(
    `volume: serving ${options.dir} on :${options.port} (${https}nginx pid ${volume.nginx.pid})`,
  );
}

if (import.meta.main) await main();
