// The bench's own I/O helpers: its log line, timing a step, running a program (wrk, du, the index's
// commands) to its end, wrk on one URL, and one request whose status is checked.

import type { Load } from "./figures.ts";
import { parseWrkRate, parseWrkRequests, wrkTrouble } from "./wrk.ts";

/** The bound of the bench's own single requests (checks, the big value's HEAD and DELETE). */
const CHECK_TIMEOUT_MS = 30_000;
/** What the bench says when wrk is missing. */
const INSTALL_HINT = "run `bash .ci/install bench` (Debian package wrk)";

/** A line of the bench's log, on stderr (the table goes to stdout). */
export function log(line: string): void {
  console.error(`bench: ${line}`);
}

/** How long `work` took, in seconds, and what it gave. */
export async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [(performance.now() - started) / 1000, value];
}

/**
 * Runs a program to its end and gives its stdout and stderr; throws with them if it fails, and
 * with `installHint` if it is not installed.
 */
export async function run(command: string, args: string[], installHint?: string): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, stdin: "null" }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && installHint !== undefined) {
      throw new Error(`${command} is not installed: ${installHint}`);
    }
    throw err;
  }
  const decoder = new TextDecoder();
  const text = decoder.decode(output.stdout) + decoder.decode(output.stderr);
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")} failed (status ${output.code}):\n${text}`);
  }
  return text;
}

/**
 * Requests per second of `wrk` on one URL (or on the requests a Lua `script` makes, to its host),
 * and what it said was wrong.
 */
export async function wrk(
  url: string,
  load: Load,
  script?: string,
): Promise<{ rps: number; requests: number; trouble: string[] }> {
  const output = await run("wrk", [
    `-t${load.wrkThreads}`,
    `-c${load.wrkConnections}`,
    `-d${load.wrkSeconds}s`,
    ...(script === undefined ? [] : ["-s", script]),
    url,
  ], INSTALL_HINT);
  return {
    rps: parseWrkRate(output),
    requests: parseWrkRequests(output),
    trouble: wrkTrouble(output),
  };
}

/** One request (no redirect followed), its body dropped; throws unless its status is `expected`. */
export async function expectStatus(
  url: string,
  init: RequestInit,
  expected: number,
): Promise<Response> {
  const response = await fetch(url, {
    redirect: "manual",
    signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    ...init,
  });
  await response.body?.cancel();
  if (response.status !== expected) {
    throw new Error(`${init.method ?? "GET"} ${url}: status ${response.status}, not ${expected}`);
  }
  return response;
}
