// The indexes the bench at many keys (keys.ts) measures, over the volumes it filled: mkv.ts's
// index (and its commands: rebuild, verify, gc) and minikeyvalue's, with their start-up times.

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnIndex } from "../dev/cluster.ts";
import { peerArgs } from "./peer.ts";
import { run, timed } from "./tools.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** `deno run -A index.ts ARGS` of this checkout. */
export function indexTool(args: string[]): Promise<string> {
  return run(Deno.execPath(), [
    "run",
    "-A",
    "--config",
    join(ROOT, "deno.json"),
    join(ROOT, "index.ts"),
    ...args,
  ]);
}

/** A server under measure. */
export interface Served {
  url: string;
  pid: number;
  startSeconds: number;
  stop(): Promise<void>;
}

/** mkv.ts's index on `port` over a built `db`; resolves once it serves. */
export async function serveMkv(port: number, db: string, volumes: string[]): Promise<Served> {
  const [startSeconds, index] = await timed(() =>
    spawnIndex({ port, db, volumes, args: ["--replicas", "1", "--subvolumes", "1"] })
  );
  return { url: index.url, pid: index.pid, startSeconds, stop: () => index.stop() };
}

/** minikeyvalue on `port` over a rebuilt `db`; resolves once it answers a missing key with 404. */
export async function servePeer(binary: string, port: number, db: string, volumes: string[]) {
  const [startSeconds, child] = await timed(async () => {
    const child = new Deno.Command(binary, {
      args: peerArgs({ port, volumes, replicas: 1, subvolumes: 1, dbDir: db }),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 30_000;
    while (true) {
      const status = await fetch(`http://localhost:${port}/bench-probe`, {
        redirect: "manual",
        signal: AbortSignal.timeout(1_000),
      }).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      }, () => 0);
      if (status === 404) return child;
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await child.status;
        throw new Error(`minikeyvalue :${port} did not start`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  return {
    url: `http://localhost:${port}`,
    pid: child.pid,
    startSeconds,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}
