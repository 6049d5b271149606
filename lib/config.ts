// The command line of index.ts: its flags (minikeyvalue's names and defaults) and subcommands,
// parsed into options. Pure; golden-tested in tests/config_test.ts.

import { FlagError, type FlagSpec, parseFlags, splitList, usageFlags } from "./flags.ts";
import { isHostPort, type Placement } from "./placement.ts";

export const COMMANDS = ["server", "rebuild", "rebalance", "verify", "gc"] as const;
export type Command = typeof COMMANDS[number];

export const INDEX_FLAGS: FlagSpec = {
  port: { type: "int", default: 3000, help: "port the index listens on (server)", arg: "PORT" },
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
  md5sum: { type: "bool", default: true, help: "compute and keep each value's md5" },
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
  v: { type: "bool", default: false, help: "log every request" },
  md5: { type: "bool", default: false, help: "verify: also read each replica and check its md5" },
  repair: { type: "bool", default: false, help: "verify: re-create missing or corrupt replicas" },
  "dry-run": { type: "bool", default: false, help: "gc, rebalance: only list what would change" },
  concurrency: { type: "int", default: 8, help: "operations: keys worked on at once", arg: "N" },
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
  md5: boolean;
  repair: boolean;
  dryRun: boolean;
  concurrency: number;
  json: boolean;
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
  const concurrency = values.concurrency as number;
  if (concurrency < 1 || concurrency > 1024) throw new FlagError("-concurrency must be 1 to 1024");
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
    md5: values.md5 as boolean,
    repair: values.repair as boolean,
    dryRun: values["dry-run"] as boolean,
    concurrency,
    json: values.json as boolean,
  };
}
