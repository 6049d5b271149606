// Opt-in tracing of the index's writes, for bench/tail.ts (bench/NOTES.md, "Write tail latency").
// With MKV_TRACE_WRITES=FILE in the index's environment at start, the index appends to FILE one
// JSON line per PUT or DELETE (when each phase of it ended, in ms after the write began), one per
// KV commit (how long it took and how many records it carried), and one per stall of the event
// loop. Unset, the default, `openWriteTrace` returns null and the core's calls are
// `trace?.mark(...)`: nothing is measured or kept.

/** The environment variable naming the trace file. */
export const TRACE_ENV = "MKV_TRACE_WRITES";
/** The event loop is sampled this often... */
const LAG_INTERVAL_MS = 5;
/** ...and a timer that fires this much later than asked is written down as a stall. */
const LAG_REPORT_MS = 10;
/** Lines are written out this often. */
const FLUSH_INTERVAL_MS = 100;
/** Writes whose line is still open at once; more (a leak) are not traced. */
const MAX_OPEN = 10_000;

/** A line of the trace file; `at` is the wall clock (ms since the epoch), `up` performance.now(). */
export type TraceLine =
  | {
    kind: "write";
    op: string;
    key: string;
    at: number;
    up: number;
    status: number;
    phases: [string, number][];
  }
  | { kind: "commit"; at: number; up: number; ms: number; records: number }
  | { kind: "lag"; at: number; up: number; ms: number };

interface OpenWrite {
  op: string;
  at: number;
  up: number;
  phases: [string, number][];
}

const encoder = new TextEncoder();

/** The wall clock at `up` (a performance.now()), in ms since the epoch, with its fractions. */
function wallAt(up: number): number {
  return performance.timeOrigin + up;
}

/** The trace of one index process (see the header). */
export class WriteTrace {
  #file: Deno.FsFile;
  #open = new Map<string, OpenWrite>();
  #lines: string[] = [];
  #writing: Promise<void> = Promise.resolve();
  #flusher: ReturnType<typeof setInterval>;
  #sampler: ReturnType<typeof setInterval>;

  constructor(file: Deno.FsFile) {
    this.#file = file;
    this.#flusher = setInterval(() => this.#flush(), FLUSH_INTERVAL_MS);
    let expected = performance.now() + LAG_INTERVAL_MS;
    this.#sampler = setInterval(() => {
      const now = performance.now();
      const late = now - expected;
      expected = now + LAG_INTERVAL_MS;
      if (late >= LAG_REPORT_MS) this.#push({ kind: "lag", at: wallAt(now), up: now, ms: late });
    }, LAG_INTERVAL_MS);
    Deno.unrefTimer(this.#flusher);
    Deno.unrefTimer(this.#sampler);
  }

  /** A write of `key` (`op`: PUT, DELETE, ...) begins; the caller holds the key's lock. */
  begin(key: string, op: string): void {
    if (this.#open.size >= MAX_OPEN) return;
    const up = performance.now();
    this.#open.set(key, { op, at: wallAt(up), up, phases: [] });
  }

  /** The write of `key` finished its phase `phase` now. */
  mark(key: string, phase: string): void {
    const write = this.#open.get(key);
    if (write !== undefined) write.phases.push([phase, performance.now() - write.up]);
  }

  /** The write of `key` ended with `status`; its line is written. */
  end(key: string, status: number): void {
    const write = this.#open.get(key);
    if (write === undefined) return;
    this.#open.delete(key);
    write.phases.push(["end", performance.now() - write.up]);
    this.#push({ kind: "write", key, status, ...write });
  }

  /** A KV commit of `records` records took `ms`, ending now. */
  commit(ms: number, records: number): void {
    const up = performance.now();
    this.#push({ kind: "commit", at: wallAt(up), up, ms, records });
  }

  #push(line: TraceLine): void {
    this.#lines.push(JSON.stringify(line));
  }

  /**
   * Writes the lines out off the JS thread (a write to a file can block while the kernel
   * throttles dirty pages, which would add the very stalls the trace looks for); in order, one
   * write at a time. The trace lives as long as the process: the last FLUSH_INTERVAL_MS of lines
   * are lost when it exits.
   */
  #flush(): void {
    if (this.#lines.length === 0) return;
    const bytes = encoder.encode(this.#lines.join("\n") + "\n");
    this.#lines = [];
    this.#writing = this.#writing.then(async () => {
      for (let offset = 0; offset < bytes.length;) {
        offset += await this.#file.write(bytes.subarray(offset));
      }
    });
  }
}

/** The trace named by MKV_TRACE_WRITES (appended to), or null when it is unset or empty. */
export function openWriteTrace(): WriteTrace | null {
  const path = Deno.env.get(TRACE_ENV);
  if (path === undefined || path === "") return null;
  return new WriteTrace(Deno.openSync(path, { append: true, create: true, mode: 0o600 }));
}
