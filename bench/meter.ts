// A server under measure, and the meter of its cost: the CPU time of its processes and of the
// index's JavaScript thread (from /proc, bench/proc.ts) and the wall time around a load.

import { type Cost, emptyCost } from "./figures.ts";
import { mainThreadCpuSeconds, totalCpuSeconds } from "./proc.ts";

/** A server under measure: where it answers, which processes are its own, where its keys go. */
export interface Server {
  name: string;
  url: string;
  /** The process whose RSS and main thread are read; 0 if unknown. */
  pid: number;
  /** Every process whose CPU time is the server's (the index and its nginx; the peer). */
  pids: number[];
  /** Whether the main thread is worth its own figure: the JavaScript thread of a Deno index. */
  jsThread: boolean;
  /** Starts every key the bench writes, so that no server reads keys another one wrote. */
  prefix: string;
}

/** Starts counting a server's CPU and wall time; the returned function stops and reports. */
export async function meter(
  server: Server,
): Promise<(requests: number, bytes: number) => Promise<Cost>> {
  const known = server.pids.length > 0;
  const mainKnown = server.jsThread && server.pid > 0;
  const cpuBefore = known ? await totalCpuSeconds(server.pids) : 0;
  const mainBefore = mainKnown ? await mainThreadCpuSeconds(server.pid) : null;
  const started = performance.now();
  return async (requests, bytes) => {
    const wallSeconds = (performance.now() - started) / 1000;
    const mainAfter = mainKnown ? await mainThreadCpuSeconds(server.pid) : null;
    return {
      cpuSeconds: known ? (await totalCpuSeconds(server.pids)) - cpuBefore : null,
      mainThreadCpuSeconds: mainAfter === null || mainBefore === null
        ? null
        : mainAfter - mainBefore,
      wallSeconds,
      requests,
      bytes,
    };
  };
}

/** A cost with nothing in it yet, of what can be read of `server`. */
export function emptyCostOf(server: Server): Cost {
  return emptyCost({ cpu: server.pids.length > 0, mainThread: server.jsThread && server.pid > 0 });
}
