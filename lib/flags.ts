// Command-line flags in the style of Go's `flag` package, so that minikeyvalue's command lines
// work unchanged: `-port 3000`, `--port=3000`, `-protect`, `-md5sum=false`, and the subcommand
// before or after the flags. Pure: every program parses with this and prints `usage()`.

/** What kind of value a flag takes. Durations are Go's: `500ms`, `1s`, `2m`. */
export type FlagType = "string" | "int" | "bool" | "duration";

export interface FlagDef {
  type: FlagType;
  /** The value when the flag is absent; durations in milliseconds. */
  default: string | number | boolean;
  help: string;
  /** A placeholder shown in usage, e.g. `PORT`. */
  arg?: string;
}

export type FlagSpec = Record<string, FlagDef>;

export type FlagValues = Record<string, string | number | boolean>;

export interface ParsedFlags {
  values: FlagValues;
  positionals: string[];
  help: boolean;
}

/** A bad command line; the message is one line, fit to print before exiting with status 2. */
export class FlagError extends Error {
  override name = "FlagError";
}

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration such as `1s`, `250ms` or `1m30s` into milliseconds. */
export function parseDurationMs(text: string): number {
  const parts = text.match(/^(\d+(?:\.\d+)?(?:ms|s|m|h))+$/);
  if (!parts) throw new FlagError(`invalid duration ${JSON.stringify(text)} (use e.g. 500ms, 1s)`);
  let totalMs = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    totalMs += Number(amount) * DURATION_UNITS_MS[unit];
  }
  return totalMs;
}

function parseValue(name: string, def: FlagDef, text: string): string | number | boolean {
  switch (def.type) {
    case "string":
      return text;
    case "int": {
      if (!/^-?\d+$/.test(text)) {
        throw new FlagError(`invalid value ${JSON.stringify(text)} for -${name}: not an integer`);
      }
      return Number(text);
    }
    case "bool": {
      if (["true", "1", "t", "T", "TRUE", "True"].includes(text)) return true;
      if (["false", "0", "f", "F", "FALSE", "False"].includes(text)) return false;
      throw new FlagError(`invalid value ${JSON.stringify(text)} for -${name}: not a boolean`);
    }
    case "duration":
      try {
        return parseDurationMs(text);
      } catch (err) {
        if (err instanceof FlagError) throw new FlagError(`-${name}: ${err.message}`);
        throw err;
      }
  }
}

/**
 * Parses `args` against `spec`. Flags may come before or after positionals; `--` ends flags.
 * A bool flag takes no separate value (`-protect`, `-protect=false`); `-h`/`--help` sets `help`.
 */
export function parseFlags(args: string[], spec: FlagSpec): ParsedFlags {
  const values: FlagValues = {};
  for (const [name, def] of Object.entries(spec)) values[name] = def.default;
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq === -1 ? body : body.slice(0, eq);
    if (name === "h" || name === "help") {
      help = true;
      continue;
    }
    const def = spec[name];
    if (!def) throw new FlagError(`unknown flag ${arg} (see --help)`);
    if (eq !== -1) {
      values[name] = parseValue(name, def, body.slice(eq + 1));
    } else if (def.type === "bool") {
      values[name] = true;
    } else {
      if (i + 1 >= args.length) throw new FlagError(`flag -${name} needs a value`);
      values[name] = parseValue(name, def, args[++i]);
    }
  }
  return { values, positionals, help };
}

/** Renders the flag table of a usage message, one flag per line, in the order of `spec`. */
export function usageFlags(spec: FlagSpec): string {
  const rows = Object.entries(spec).map(([name, def]) => {
    const arg = def.type === "bool" ? "" : ` ${def.arg ?? def.type.toUpperCase()}`;
    const shown = def.type === "duration"
      ? formatDurationMs(def.default as number)
      : JSON.stringify(def.default);
    return [`  --${name}${arg}`, `${def.help} (default ${shown})`];
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => left.padEnd(width) + right).join("\n");
}

/** Writes milliseconds as a Go duration in its largest whole unit: `1s`, `168h`, `250ms`. */
export function formatDurationMs(ms: number): string {
  for (const [unit, unitMs] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms >= unitMs && ms % unitMs === 0) return `${ms / unitMs}${unit}`;
  }
  return `${ms}ms`;
}

/** A `parse` for `commandLine` that gives the flags of `spec` as parsed, or "help". */
export function flagsOf(spec: FlagSpec): (args: string[]) => ParsedFlags | "help" {
  return (args) => {
    const parsed = parseFlags(args, spec);
    return parsed.help ? "help" : parsed;
  };
}

/**
 * The options of the command line, as `parse` reads them; null once `usage` is printed for
 * --help. A bad command line is printed as `program: reason` and the process exits 2. The one
 * place each program's `main()` meets its flags.
 */
export function commandLine<T>(
  program: string,
  parse: (args: string[]) => T | "help",
  usage: string,
): T | null {
  try {
    const parsed = parse(Deno.args);
    if (parsed !== "help") return parsed;
    console.log(usage);
    return null;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    console.error(`${program}: ${err.message}`);
    Deno.exit(2);
  }
}

/** Splits a comma-separated list, dropping empty items and surrounding spaces. */
export function splitList(text: string): string[] {
  return text.split(",").map((item) => item.trim()).filter((item) => item !== "");
}
