// The servers the bench measures besides a peer (bench/peer.ts): the ceiling, a bare Deno.serve
// of bench/ceiling.ts run as its own process, and our index with the nginx it runs in front of it;
// and the distinct free ports of the bench's own cluster.

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../dev/cluster.ts";
import type { Server } from "./meter.ts";
import { descendants } from "./proc.ts";
import { expectStatus } from "./tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** How long the ceiling server may take to answer. */
const CEILING_START_TIMEOUT_MS = 20_000;

/** The bare Deno.serve of bench/ceiling.ts, answering on `port`; stopped on dispose. */
export async function startCeiling(): Promise<{ port: number; pid: number } & AsyncDisposable> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "bench", "ceiling.ts"), String(port)],
    stdin: "null",
    stdout: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    await status;
  };
  try {
    const deadline = Date.now() + CEILING_START_TIMEOUT_MS;
    while (true) {
      if (exited) throw new Error(`ceiling :${port} exited while starting`);
      try {
        await expectStatus(`http://127.0.0.1:${port}/`, {}, 404);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`ceiling :${port} did not answer: ${err}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, pid: child.pid, [Symbol.asyncDispose]: stop };
}

/** `count` free ports, none twice. */
export function distinctFreePorts(count: number): number[] {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(freePort());
  return [...ports];
}

/** Our index: the index's Deno process and the nginx it runs in front of it. */
export async function indexServer(url: string, pid: number, runId: string): Promise<Server> {
  return {
    name: "mkv.ts",
    url,
    pid,
    pids: pid > 0 ? [pid, ...await descendants(pid)] : [],
    jsThread: true,
    prefix: `/bench-mkv-${runId}-`,
  };
}
