// Operations on a cluster: rebuild, rebalance, verify, gc. Being written (issue 6).

import type { IndexOptions } from "./config.ts";
import type { IndexServer } from "./server.ts";

/** The handler of the admin socket of a running server, through which operations run online. */
export function adminHandler(_server: IndexServer): (request: Request) => Promise<Response> {
  return async (request) => {
    await request.body?.cancel();
    return new Response("not yet\n", { status: 501 });
  };
}

/** Runs an operation command (`rebuild`, ...); resolves to the exit code. */
export function runOperation(options: IndexOptions): Promise<number> {
  console.error(`index: ${options.command} is not available yet`);
  return Promise.resolve(1);
}
