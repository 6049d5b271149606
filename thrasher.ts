// thrasher.ts: load-tests any minikeyvalue-compatible server and checks every answer. In the
// default mode each key goes through PUT, GET (following the 302 to the volume, value compared bit
// for bit) and DELETE; the first wrong answer stops the run with exit status 1. `--mode get` PUTs
// the keys first and then times the GETs; `--mode missing` times GETs of absent keys (404).
// Prints throughput and per-operation latency percentiles (p50, p90, p99, p99.9, max), or one JSON
// object with `--json`.
//
//   deno run -A thrasher.ts --url http://localhost:3000 --count 10000 --concurrency 16
//   deno run -A thrasher.ts --help

import { commandLine, FlagError, type FlagSpec, parseFlags, usageFlags } from "./lib/flags.ts";

export const MODES = ["thrash", "get", "missing"] as const;
export type Mode = typeof MODES[number];
export const OPERATIONS = ["PUT", "GET", "DELETE"] as const;
export type Operation = typeof OPERATIONS[number];

/** How often the progress line on a terminal is redrawn. */
const PROGRESS_INTERVAL_MS = 250;
/** Characters of an unexpected answer's body quoted in the error. */
const BODY_QUOTED_CHARS = 200;

export const THRASHER_FLAGS: FlagSpec = {
  url: { type: "string", default: "http://localhost:3000", help: "the server", arg: "URL" },
  count: { type: "int", default: 10_000, help: "keys (cycles or requests)", arg: "N" },
  concurrency: { type: "int", default: 16, help: "requests in flight", arg: "N" },
  size: { type: "int", default: 32, help: "bytes per value", arg: "BYTES" },
  mode: { type: "string", default: "thrash", help: "thrash, get or missing", arg: "MODE" },
  json: { type: "bool", default: false, help: "print one JSON object instead of text" },
};

export const THRASHER_USAGE = `thrasher.ts: load-tests a minikeyvalue-compatible server.

  deno run -A thrasher.ts [flags]

Modes:
  thrash   every key: PUT, GET through the redirect (value checked), DELETE; rate in cycles/s
  get      PUT every key, then time GETs through the redirect (checked); DELETEs them after
  missing  GET keys that do not exist, expecting 404

Exits 1 on the first wrong answer, 2 on a bad command line.

Flags:
${usageFlags(THRASHER_FLAGS)}`;

export interface ThrasherOptions {
  url: string;
  count: number;
  concurrency: number;
  sizeBytes: number;
  mode: Mode;
  json: boolean;
}

/** Latency of one operation over a run, in milliseconds. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** The tail users notice first on writes (one request in a thousand). */
  p999Ms: number;
  maxMs: number;
}

export interface ThrashResult {
  mode: Mode;
  url: string;
  count: number;
  concurrency: number;
  sizeBytes: number;
  /** Wall time of the timed phase (for `get`, the GETs only). */
  seconds: number;
  /** Cycles per second for `thrash`, requests per second otherwise. */
  rate: number;
  rateUnit: "cycles/s" | "ops/s";
  latency: Partial<Record<Operation, LatencySummary>>;
}

/** A wrong answer from the server, or no answer; the message is one line. */
export class ThrashError extends Error {
  override name = "ThrashError";
}

/** Parses the command line; "help" for `--help`. Throws FlagError with a one-line reason. */
export function parseThrasherArgs(args: string[]): ThrasherOptions | "help" {
  const parsed = parseFlags(args, THRASHER_FLAGS);
  if (parsed.help) return "help";
  if (parsed.positionals.length > 0) {
    throw new FlagError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  }
  const values = parsed.values;
  const mode = String(values.mode);
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new FlagError(`-mode must be one of ${MODES.join(", ")}, not ${JSON.stringify(mode)}`);
  }
  for (const name of ["count", "concurrency", "size"]) {
    if ((values[name] as number) < 1) throw new FlagError(`-${name} must be at least 1`);
  }
  const url = String(values.url).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/?#]+$/.test(url)) {
    throw new FlagError(`-url must be like http://host:port, not ${JSON.stringify(values.url)}`);
  }
  return {
    url,
    count: values.count as number,
    concurrency: values.concurrency as number,
    sizeBytes: values.size as number,
    mode: mode as Mode,
    json: values.json as boolean,
  };
}

/** The `p`-th percentile (0–100) of ascending samples, by nearest rank; 0 for no samples. */
export function percentile(sortedSamples: ArrayLike<number>, p: number): number {
  if (sortedSamples.length === 0) return 0;
  // The epsilon keeps float error from raising an exact rank: 0.999 * 1000 is 999.0000000000001.
  const rank = Math.ceil((p / 100) * sortedSamples.length - 1e-9);
  return sortedSamples[Math.min(sortedSamples.length, Math.max(1, rank)) - 1];
}

/** Percentiles of latency samples in milliseconds, in any order. */
export function summarize(samplesMs: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samplesMs).sort();
  return {
    count: sorted.length,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    maxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1],
  };
}

function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

/** The human-readable report of a run: the rate, then one latency line per operation. */
export function formatResult(result: ThrashResult): string {
  const rate = Math.round(result.rate).toLocaleString("en-US");
  const lines = [
    `${result.mode}: ${result.count} keys of ${result.sizeBytes} bytes, ` +
    `${result.concurrency} in flight, ${result.url}`,
    `${rate} ${result.rateUnit} (${result.seconds.toFixed(2)} s)`,
  ];
  for (const op of OPERATIONS) {
    const s = result.latency[op];
    if (s === undefined) continue;
    lines.push(
      `${op.padEnd(6)} p50 ${formatMs(s.p50Ms)} ms  p90 ${formatMs(s.p90Ms)} ms  ` +
        `p99 ${formatMs(s.p99Ms)} ms  p99.9 ${formatMs(s.p999Ms)} ms  ` +
        `max ${formatMs(s.maxMs)} ms  (${s.count})`,
    );
  }
  return lines.join("\n");
}

/** The value stored under a key: the key's text repeated to `sizeBytes`, so each one differs. */
export function valueFor(key: string, sizeBytes: number): Uint8Array<ArrayBuffer> {
  const pattern = new TextEncoder().encode(`${key};`);
  const value = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i += pattern.length) {
    value.set(pattern.subarray(0, Math.min(pattern.length, sizeBytes - i)), i);
  }
  return value;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function quoted(body: string): string {
  const text = body.length > BODY_QUOTED_CHARS ? `${body.slice(0, BODY_QUOTED_CHARS)}…` : body;
  return JSON.stringify(text.trim());
}

/** Latency samples of one operation, filled by the workers. */
class Samples {
  #values: Float64Array;
  #length = 0;

  constructor(capacity: number) {
    this.#values = new Float64Array(capacity);
  }

  add(ms: number): void {
    this.#values[this.#length++] = ms;
  }

  summary(): LatencySummary {
    return summarize(this.#values.subarray(0, this.#length));
  }
}

/** One run against a server: its fetch client, keys and samples. */
class Run {
  readonly options: ThrasherOptions;
  readonly client: Deno.HttpClient;
  readonly samples: Record<Operation, Samples>;
  /** Keys of this run are unique to it, so runs never collide with each other or old data. */
  readonly prefix = `/thrasher-${crypto.randomUUID().slice(0, 8)}-`;
  /** What the workers do now, and how many keys they finished at it, for the progress line. */
  phase = "";
  done = 0;

  constructor(options: ThrasherOptions, client: Deno.HttpClient) {
    this.options = options;
    this.client = client;
    this.samples = {
      PUT: new Samples(options.count),
      GET: new Samples(options.count),
      DELETE: new Samples(options.count),
    };
  }

  key(i: number): string {
    return `${this.prefix}${i}`;
  }

  async #request(
    op: Operation,
    key: string,
    init: RequestInit,
    expected: number,
  ): Promise<{ response: Response; body: Uint8Array }> {
    const started = performance.now();
    let response: Response;
    let body: Uint8Array;
    try {
      response = await fetch(`${this.options.url}${key}`, { ...init, client: this.client });
      body = await response.bytes();
    } catch (err) {
      throw new ThrashError(`${op} ${key}: no answer: ${(err as Error).message.split("\n")[0]}`);
    }
    this.samples[op].add(performance.now() - started);
    if (response.status !== expected) {
      const text = new TextDecoder().decode(body);
      throw new ThrashError(
        `${op} ${key}: status ${response.status} (expected ${expected}), body ${quoted(text)}`,
      );
    }
    return { response, body };
  }

  async put(key: string): Promise<void> {
    await this.#request("PUT", key, {
      method: "PUT",
      body: valueFor(key, this.options.sizeBytes),
    }, 201);
  }

  async getChecked(key: string): Promise<void> {
    const { response, body } = await this.#request("GET", key, { redirect: "follow" }, 200);
    if (!response.redirected) {
      throw new ThrashError(`GET ${key}: answered 200 without a redirect to a volume`);
    }
    const expected = valueFor(key, this.options.sizeBytes);
    if (!sameBytes(body, expected)) {
      throw new ThrashError(
        `GET ${key}: wrong value from ${response.url}: ${body.length} bytes, ` +
          `expected ${expected.length} bytes ${quoted(new TextDecoder().decode(expected))}`,
      );
    }
  }

  async getMissing(key: string): Promise<void> {
    await this.#request("GET", key, { redirect: "manual" }, 404);
  }

  async delete(key: string): Promise<void> {
    await this.#request("DELETE", key, { method: "DELETE" }, 204);
  }

  /**
   * Runs `step` for every key index with `concurrency` workers; stops at the first failure and
   * throws it once the workers in flight have finished.
   */
  async forEach(phase: string, step: (i: number) => Promise<void>): Promise<void> {
    this.phase = phase;
    this.done = 0;
    let next = 0;
    let failure: unknown = null;
    const worker = async () => {
      while (failure === null && next < this.options.count) {
        const i = next++;
        try {
          await step(i);
          this.done++;
        } catch (err) {
          failure ??= err;
        }
      }
    };
    const workers = Math.min(this.options.concurrency, this.options.count);
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure !== null) throw failure;
  }
}

/**
 * Runs the load against `options.url` and returns what it measured; throws ThrashError on the
 * first wrong answer. `onProgress` is told now and then what the workers do and how far they got.
 */
export async function thrash(
  options: ThrasherOptions,
  onProgress?: (phase: string, done: number) => void,
): Promise<ThrashResult> {
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: options.concurrency });
  const run = new Run(options, client);
  const timer = onProgress
    ? setInterval(() => onProgress(run.phase, run.done), PROGRESS_INTERVAL_MS)
    : 0;
  let started = 0;
  let ended = 0;
  try {
    if (options.mode === "thrash") {
      started = performance.now();
      await run.forEach("PUT, GET, DELETE", async (i) => {
        const key = run.key(i);
        await run.put(key);
        await run.getChecked(key);
        await run.delete(key);
      });
      ended = performance.now();
    } else if (options.mode === "get") {
      await run.forEach("PUT", (i) => run.put(run.key(i)));
      started = performance.now();
      await run.forEach("GET", (i) => run.getChecked(run.key(i)));
      ended = performance.now();
      await run.forEach("DELETE", (i) => run.delete(run.key(i)));
    } else {
      started = performance.now();
      await run.forEach("GET", (i) => run.getMissing(run.key(i)));
      ended = performance.now();
    }
  } finally {
    clearInterval(timer);
  }
  const seconds = (ended - started) / 1000;
  const latency: Partial<Record<Operation, LatencySummary>> = {};
  for (const op of OPERATIONS) {
    const summary = run.samples[op].summary();
    if (summary.count > 0) latency[op] = summary;
  }
  return {
    mode: options.mode,
    url: options.url,
    count: options.count,
    concurrency: options.concurrency,
    sizeBytes: options.sizeBytes,
    seconds,
    rate: options.count / seconds,
    rateUnit: options.mode === "thrash" ? "cycles/s" : "ops/s",
    latency,
  };
}

/**
 * Runs thrasher.ts with `--json` as a process of its own, as a user would (its start included),
 * and returns its report: what the bench and its tools measure with. With `nice`, at that nice
 * value. Throws with thrasher.ts's stderr if it fails.
 */
export async function runThrasher(
  options: { url: string; count: number; concurrency: number; nice?: number },
): Promise<ThrashResult> {
  const args = [
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    "--url",
    options.url,
    "--count",
    String(options.count),
    "--concurrency",
    String(options.concurrency),
    "--json",
  ];
  const [command, commandArgs] = options.nice === undefined
    ? [Deno.execPath(), args]
    : ["nice", ["-n", String(options.nice), Deno.execPath(), ...args]];
  const output = await new Deno.Command(command, { args: commandArgs, stdin: "null" }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `thrasher.ts against ${options.url} failed (status ${output.code}): ` +
        decoder.decode(output.stderr).trim(),
    );
  }
  return JSON.parse(decoder.decode(output.stdout)) as ThrashResult;
}

async function main(): Promise<number> {
  const options = commandLine("thrasher", parseThrasherArgs, THRASHER_USAGE);
  if (options === null) return 0;
  const live = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  const progress = live
    ? (phase: string, done: number) =>
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${phase}: ${done}/${options.count} keys`))
    : undefined;
  let result: ThrashResult;
  try {
    result = await thrash(options, progress);
  } catch (err) {
    if (live) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    if (!(err instanceof ThrashError)) throw err;
    console.error(`thrasher: ${err.message}`);
    return 1;
  }
  if (live) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
  console.log(options.json ? JSON.stringify(result) : formatResult(result));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
