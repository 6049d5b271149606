// What the bench reads from wrk's report (Debian's wrk, with `--latency` for the percentiles):
// the rate, the request count, the lines that tell of trouble, and a latency percentile. Pure;
// tests/unit/thrasher_test.ts feeds them a real report.

/** The `Requests/sec:` of wrk's report. Throws if it has none. */
export function parseWrkRate(output: string): number {
  const match = output.match(/^Requests\/sec:\s+([\d.]+)/m);
  if (!match) throw new Error(`wrk printed no Requests/sec:\n${output}`);
  return Number(match[1]);
}

/** How many requests wrk's run made (`N requests in 5.00s`). Throws if it does not say. */
export function parseWrkRequests(output: string): number {
  const match = output.match(/^\s*(\d+) requests in /m);
  if (!match) throw new Error(`wrk printed no request count:\n${output}`);
  return Number(match[1]);
}

/** The lines of wrk's report that tell of trouble (socket errors, statuses other than 2xx/3xx). */
export function wrkTrouble(output: string): string[] {
  return output.split("\n").map((line) => line.trim()).filter((line) =>
    /^(Socket errors|Non-2xx or 3xx responses)/.test(line)
  );
}

/** Milliseconds per unit of wrk's durations. */
const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/**
 * A percentile of `--latency`'s distribution (` 99%    5.67ms`), in milliseconds. Throws if the
 * report has no such line.
 */
export function parseWrkLatencyMs(output: string, percentile: 50 | 75 | 90 | 99): number {
  const match = output.match(new RegExp(`^\\s+${percentile}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m"));
  if (!match) {
    throw new Error(`wrk printed no ${percentile}% latency (run with --latency):\n${output}`);
  }
  return Number(match[1]) * UNIT_MS[match[2]];
}
