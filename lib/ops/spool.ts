// The keys a walk of the volumes found, put in key order through temporary files (an external
// merge sort), so that the operation reads and writes their records in key order. A walk finds
// keys in the order of their directories (an md5 of the key), which scatters them over the whole
// index: each commit of a few hundred records then rewrote a page of the KV file per record, and
// each read fetched one; in key order a page serves dozens. Memory holds one run (RUN_BYTES of
// items) while the walk goes, then a line buffer per run while they are merged; the files go to
// a private temporary directory (0700: keys are the users'), removed at the end.

import type { FoundReplica, KeyFiles } from "./walk.ts";

/** Bytes of items (as their lines) sorted in memory and written as one run. */
export const RUN_BYTES = 16 * 1024 * 1024;

/** An item as one line: JSON, which escapes every character a key may hold that ends a line. */
export function encodeItem(item: KeyFiles): string {
  return JSON.stringify([item.key, item.found]);
}

export function decodeItem(line: string): KeyFiles {
  const [key, found] = JSON.parse(line) as [string, FoundReplica[]];
  return { key, found };
}

/** Lines of a file, lazily, through a buffer. */
async function* linesOf(path: string): AsyncGenerator<string> {
  using file = await Deno.open(path);
  const decoder = new TextDecoder();
  let rest = "";
  const buffer = new Uint8Array(256 * 1024);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    const text = rest + decoder.decode(buffer.subarray(0, n), { stream: true });
    const lines = text.split("\n");
    rest = lines.pop()!;
    yield* lines;
  }
  rest += decoder.decode();
  if (rest !== "") yield rest;
}

/** Merges runs sorted by key (each an iterator of items in key order) into one, in key order. */
export async function* mergeRuns(runs: AsyncIterator<KeyFiles>[]): AsyncGenerator<KeyFiles> {
  const heads: { item: KeyFiles; run: AsyncIterator<KeyFiles> }[] = [];
  for (const run of runs) {
    const next = await run.next();
    if (!next.done) heads.push({ item: next.value, run });
  }
  // About 85 runs at 10^7 short keys (RUN_BYTES each): a linear scan for the least is cheaper
  // than a heap's bookkeeping at that size.
  try {
    while (heads.length > 0) {
      let least = 0;
      for (let i = 1; i < heads.length; i++) {
        if (heads[i].item.key < heads[least].item.key) least = i;
      }
      const head = heads[least];
      yield head.item;
      const next = await head.run.next();
      if (next.done) heads.splice(least, 1);
      else head.item = next.value;
    }
  } finally {
    // Stopped early (an operation aborted): the runs' files are closed.
    for (const { run } of heads) await run.return?.();
  }
}

/**
 * The key items of `items` in key order (by JavaScript's string order), through sorted runs in
 * temporary files; `onCount` is told how many there are in all once the walk is done, before
 * the first is yielded.
 */
export async function* inKeyOrder(
  items: AsyncIterable<KeyFiles>,
  onCount: (count: number) => void = () => {},
): AsyncGenerator<KeyFiles> {
  const dir = await Deno.makeTempDir({ prefix: "mkv-walk-" });
  try {
    const runs: string[] = [];
    let run: { key: string; line: string }[] = [];
    let runBytes = 0;
    let count = 0;
    const writeRun = async () => {
      if (run.length === 0) return;
      run.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
      const path = `${dir}/${runs.length}`;
      await Deno.writeTextFile(path, run.map(({ line }) => line).join("\n") + "\n");
      runs.push(path);
      run = [];
      runBytes = 0;
    };
    for await (const item of items) {
      const line = encodeItem(item);
      run.push({ key: item.key, line });
      runBytes += line.length * 2;
      count++;
      if (runBytes >= RUN_BYTES) await writeRun();
    }
    // The last run is merged from memory rather than written.
    run.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    const last = run;
    run = [];
    onCount(count);
    const fromFile = async function* (path: string): AsyncGenerator<KeyFiles> {
      for await (const line of linesOf(path)) yield decodeItem(line);
    };
    const fromMemory = async function* (): AsyncGenerator<KeyFiles> {
      for (const { line } of last) yield decodeItem(line);
    };
    yield* mergeRuns([...runs.map((path) => fromFile(path)), fromMemory()]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
