// How the bench writes its numbers in the table and the notes under it: thousands with commas,
// percentages, seconds, milliseconds, ratios, value sizes. All pure.

import type { LatencySummary } from "../thrasher.ts";
import { MIB } from "./figures.ts";

export function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

export function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

export function yesNo(ok: boolean): string {
  return ok ? "yes" : "**no**";
}

export function seconds(s: number): string {
  return `${s.toFixed(2)} s`;
}

export function ms(value: number): string {
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

export function microseconds(us: number): string {
  return us < 100 ? us.toFixed(1) : thousands(us);
}

export function times(ratio: number | null): string {
  return ratio === null ? "—" : `${ratio.toFixed(2)}×`;
}

export function orDash(value: number | null, format: (n: number) => string): string {
  return value === null ? "—" : format(value);
}

export function sizeName(sizeBytes: number): string {
  return sizeBytes >= MIB && sizeBytes % MIB === 0
    ? `${sizeBytes / MIB} MiB`
    : `${Math.round(sizeBytes / 1024)} KiB`;
}

/** p50 / p99 / p99.9 / max, the parts of a latency row. */
export function latencyParts(summary: LatencySummary): number[] {
  return [summary.p50Ms, summary.p99Ms, summary.p999Ms, summary.maxMs];
}
