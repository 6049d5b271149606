// What bench/tail.ts reads back after its rounds, parsed: the index's write trace
// (lib/core/writetrace.ts), the volumes' access logs, V8's GC trace, strace's output. All pure.

import type { TraceLine } from "../lib/core/writetrace.ts";

/** The volumes' access log line: end time (s), method, path, status, time taken (s). */
export const VOLUME_LOG_FORMAT = "$msec $request_method $uri $status $request_time";

/** A volume request, from its access log. */
export interface VolumeRequest {
  volume: number;
  endAt: number;
  method: string;
  path: string;
  status: number;
  ms: number;
}

/** A GC pause, from V8's trace; `up` is the isolate's clock, as performance.now() in the index. */
export interface GcPause {
  up: number;
  kind: string;
  ms: number;
}

/** A traced system call that ended at `endAt` (wall clock, ms), `ms` long. */
export interface Syscall {
  endAt: number;
  name: string;
  ms: number;
}

/** The lines of a trace file (lib/core/writetrace.ts). Pure. */
export function parseTrace(text: string): TraceLine[] {
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

/** A volume's access log lines (VOLUME_LOG_FORMAT). Pure. */
export function parseVolumeLog(text: string, volume: number): VolumeRequest[] {
  const out: VolumeRequest[] = [];
  for (const line of text.split("\n")) {
    const [msec, method, path, status, seconds] = line.split(" ");
    if (seconds === undefined) continue;
    out.push({
      volume,
      endAt: Number(msec) * 1000,
      method,
      path,
      status: Number(status),
      ms: Number(seconds) * 1000,
    });
  }
  return out;
}

/** GC pauses of V8's `--trace-gc` output (`[pid:0x..]   1234 ms: Scavenge ..., 1.2 / 0.0 ms`). */
export function parseGcTrace(text: string): GcPause[] {
  const out: GcPause[] = [];
  const re =
    /^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: ([A-Za-z][A-Za-z -]*?) [\d.]+ \(.*?([\d.]+) \/ [\d.]+ ms/;
  for (const line of text.split("\n")) {
    const m = line.match(re);
    if (m) out.push({ up: Number(m[1]), kind: m[2], ms: Number(m[3]) });
  }
  return out;
}

/**
 * System calls of `strace -T -tt` output (`[pid] HH:MM:SS.uuuuuu name(...) = 0 <0.000123>`),
 * the clock taken as today's local time of `day`. Unfinished/resumed pairs are joined. Pure.
 */
export function parseStrace(text: string, day: Date): Syscall[] {
  const out: Syscall[] = [];
  const re =
    /^(?:\d+\s+)?(\d\d):(\d\d):(\d\d)\.(\d{6}) (?:<\.\.\. )?(\w+)(?:\(| resumed>).*<([\d.]+)>$/;
  for (const line of text.split("\n")) {
    const m = line.match(re);
    if (!m) continue;
    const start = new Date(day.getFullYear(), day.getMonth(), day.getDate(), +m[1], +m[2], +m[3])
      .getTime() + Number(m[4]) / 1000;
    const ms = Number(m[6]) * 1000;
    // A resumed line is stamped at its end; a whole one at its start.
    const endAt = line.includes("resumed>") ? start : start + ms;
    out.push({ endAt, name: m[5], ms });
  }
  return out;
}
