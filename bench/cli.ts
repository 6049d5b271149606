// The bench's command line (`deno task bench --help`): its flags, their usage text, and the
// options they give once checked together.

import { FlagError, type FlagSpec, parseFlags, usageFlags } from "../lib/flags.ts";
import { parseIndexFlags, type PeerKind } from "./peer.ts";

export const BENCH_FLAGS: FlagSpec = {
  url: { type: "string", default: "", help: "a running server to measure (default: start one)" },
  peer: {
    type: "string",
    default: "",
    help: "a minikeyvalue binary to start on the same volumes and measure side by side",
    arg: "PATH",
  },
  vs: { type: "string", default: "", help: "a second server to measure the same way", arg: "URL" },
  "vs-flags": {
    type: "string",
    default: "",
    help: "start a second mkv.ts index with these flags on the same volumes, measure both",
    arg: "FLAGS",
  },
  smoke: { type: "bool", default: false, help: "a tiny quick run that writes no results" },
  keys: {
    type: "int",
    default: 0,
    help: "measure a store of N keys instead (bench/keys.ts): rebuild, listing, random GETs",
    arg: "N",
  },
  "keys-list-only": {
    type: "bool",
    default: false,
    help: "with --keys: rebuild (mkv.ts with --md5sum=false) and measure the listing alone",
  },
  "value-bytes": {
    type: "int",
    default: 256,
    help: "with --keys: the size of each value written onto the volumes",
    arg: "BYTES",
  },
  "index-pid": {
    type: "int",
    default: 0,
    help: "pid of the index's Deno process, for its RSS and CPU with --url",
    arg: "PID",
  },
};

export const BENCH_USAGE = `bench.ts: measures mkv.ts against its targets, and against minikeyvalue.

  deno task bench [flags]

Needs wrk (bash .ci/install bench installs it).

Flags:
${usageFlags(BENCH_FLAGS)}`;

/** What the command line asks for. */
export interface BenchOptions {
  smoke: boolean;
  /** A running server to measure, without a trailing slash; "" to start a cluster. */
  url: string;
  indexPid: number;
  /** A second running server (--vs); "". */
  vsUrl: string;
  /** A second server the bench starts on its own volumes (--peer, --vs-flags), or null. */
  peer: PeerKind | null;
  /** With --keys: the bench at many keys instead (bench/keys.ts); 0 otherwise. */
  keys: number;
  valueBytes: number;
  /** With --keys: the listing alone (--keys-list-only). */
  keysListOnly: boolean;
}

/**
 * The bench's command line: its flags, checked together. --peer and --vs-flags start their second
 * server on the bench's own volumes, so neither goes with --url; each of them and --vs add a second
 * server, so only one of the three may be given.
 */
export function parseBenchArgs(args: string[]): BenchOptions | "help" {
  const parsed = parseFlags(args, BENCH_FLAGS);
  if (parsed.positionals.length > 0) {
    throw new FlagError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  }
  if (parsed.help) return "help";
  const values = parsed.values;
  const seconds = (["peer", "vs", "vs-flags"] as const).filter((name) => values[name] !== "");
  if (seconds.length > 1) {
    throw new FlagError(
      `${seconds.map((name) => `--${name}`).join(" and ")} each add a second server: give one`,
    );
  }
  for (const name of ["peer", "vs-flags"] as const) {
    if (values[name] !== "" && values.url !== "") {
      throw new FlagError(`--${name} runs on the bench's own volumes: it cannot go with --url`);
    }
  }
  const keys = values.keys as number;
  if (keys < 0) throw new FlagError(`--keys ${keys}: a number of keys, 1 or more`);
  if (keys > 0 && (values.url !== "" || values.vs !== "" || values["vs-flags"] !== "")) {
    throw new FlagError("--keys starts its own volumes and compares with --peer only");
  }
  const valueBytes = values["value-bytes"] as number;
  if (valueBytes < 1) throw new FlagError(`--value-bytes ${valueBytes}: 1 or more`);
  const peer: PeerKind | null = values.peer !== ""
    ? { kind: "minikeyvalue", binary: String(values.peer) }
    : values["vs-flags"] !== ""
    ? { kind: "mkv", flags: parseIndexFlags(String(values["vs-flags"])) }
    : null;
  return {
    smoke: values.smoke as boolean,
    url: String(values.url).replace(/\/+$/, ""),
    indexPid: values["index-pid"] as number,
    vsUrl: String(values.vs).replace(/\/+$/, ""),
    peer,
    keys,
    valueBytes,
    keysListOnly: values["keys-list-only"] as boolean,
  };
}
