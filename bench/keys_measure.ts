// The measures of the bench at many keys (keys.ts), each on one running index: a full `?list` walk,
// GETs of random keys under wrk, PUT+DELETE of fresh keys, the index's bytes on disk.

import { KEY_DIGITS, KEY_PREFIX } from "./keys_fill.ts";
import { type KeysLoad, LIST_PAGE_KEYS } from "./keys_figures.ts";
import { run, timed } from "./tools.ts";
import { parseWrkLatencyMs, parseWrkRate, wrkTrouble } from "./wrk.ts";

/** Fresh keys are written by this many clients. */
const FRESH_CONCURRENCY = 16;
/** One request's bound. */
const REQUEST_TIMEOUT_MS = 30_000;

/** A wrk script asking for random keys of `keys`, each thread with a seed of its own. */
export function randomKeysScript(keys: number): string {
  return [
    `local keys = ${keys}`,
    `math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)`,
    `request = function()`,
    `  local path = string.format("${KEY_PREFIX}%0${KEY_DIGITS}d", math.random(0, keys - 1))`,
    `  return wrk.format("GET", path)`,
    `end`,
    ``,
  ].join("\n");
}

/** `{"next": ..., "keys": [...]}` of a `?list` answer, as both indexes give it. */
export function parseListPage(text: string): { next: string; keys: string[] } {
  const page = JSON.parse(text) as { next?: unknown; keys?: unknown };
  if (!Array.isArray(page.keys)) throw new Error(`not a ?list answer: ${text.slice(0, 200)}`);
  return { next: typeof page.next === "string" ? page.next : "", keys: page.keys as string[] };
}

/** Every key under the bench's prefix, page by page; the count and the time it took. */
export async function listAll(url: string): Promise<{ seconds: number; keys: number }> {
  const [elapsed, count] = await timed(async () => {
    let start = "";
    let count = 0;
    while (true) {
      const query = `list&limit=${LIST_PAGE_KEYS}` +
        (start === "" ? "" : `&start=${encodeURIComponent(start)}`);
      const response = await fetch(`${url}${KEY_PREFIX}?${query}`, {
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`?list: status ${response.status}: ${text}`);
      const page = parseListPage(text);
      count += page.keys.length;
      if (page.next === "" || page.keys.length === 0) return count;
      start = page.next;
    }
  });
  return { seconds: elapsed, keys: count };
}

/** GETs of random keys under wrk: the rate, p99 and any trouble it reported. */
export async function randomGets(
  url: string,
  script: string,
  load: KeysLoad,
): Promise<{ rps: number; p99Ms: number; trouble: string[] }> {
  const output = await run("wrk", [
    `-t${load.wrkThreads}`,
    `-c${load.wrkConnections}`,
    `-d${load.wrkSeconds}s`,
    "--latency",
    "-s",
    script,
    url,
  ]);
  return {
    rps: parseWrkRate(output),
    p99Ms: parseWrkLatencyMs(output, 99),
    trouble: wrkTrouble(output),
  };
}

/** PUT then DELETE of `count` keys no one has written, by FRESH_CONCURRENCY clients. */
export async function freshWrites(url: string, count: number, round: string): Promise<number> {
  const body = new Uint8Array(256).fill(0x2f);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const key = `/bench/fresh-${round}-${next++}`;
      for (const [method, want] of [["PUT", 201], ["DELETE", 204]] as const) {
        const response = await fetch(`${url}${key}`, {
          method,
          body: method === "PUT" ? body : undefined,
          redirect: "manual",
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        await response.body?.cancel();
        if (response.status !== want) throw new Error(`${method} ${key}: ${response.status}`);
      }
    }
  };
  const [elapsed] = await timed(() =>
    Promise.all(Array.from({ length: FRESH_CONCURRENCY }, worker))
  );
  return (2 * count) / elapsed;
}

export async function diskBytes(dir: string): Promise<number> {
  const output = await run("du", ["-sb", dir]);
  return Number(output.split(/\s/)[0]);
}
