// Operations on a cluster: rebuild (the index from the volumes' files), rebalance (values to where
// the placement puts them), verify (every replica, optionally its md5; --repair fixes them) and gc
// (files and interrupted writes that no key points to). `index.ts COMMAND` runs them: through the
// admin socket of a running server when one answers (admin.ts; it then works with the server's own
// store, so key locks and the write-through cache stay coherent, and streams its progress back as
// NDJSON), or else on the index directly (cli.ts). Keys are iterated lazily and values are
// streamed, so memory stays bounded whatever the size of the cluster. This file runs one of them.
//
//   deno run -A index.ts verify --db ./data/index --volumes localhost:3001,localhost:3002 --md5

import { firstLine } from "../errors.ts";
import { gc } from "./gc.ts";
import type { Emit, Operation, OperationRequest } from "./protocol.ts";
import { rebalance } from "./rebalance.ts";
import { rebuild } from "./rebuild.ts";
import { type OperationContext, OperationRun } from "./runner.ts";
import { verify } from "./verify.ts";

/** What each operation counts its progress in. */
const UNITS: Record<Operation, string> = {
  rebuild: "dirs",
  rebalance: "keys",
  verify: "keys",
  gc: "dirs",
};

/**
 * Runs an operation to its end (or until `signal` aborts it), reporting through `emit`; the last
 * event is the summary. Unexpected failures reject.
 */
export async function execute(
  ctx: OperationContext,
  request: OperationRequest,
  emit: Emit,
  signal: AbortSignal,
): Promise<void> {
  const run = new OperationRun(request.command, emit, UNITS[request.command]);
  ctx.board?.begin(run);
  try {
    await run.tick(true);
    const operation = { rebuild, rebalance, verify, gc }[request.command];
    await operation(ctx, request, run, signal);
    if (signal.aborted) await run.outcome("failed", { detail: "interrupted; run it again" });
    await run.finish();
  } catch (err) {
    ctx.board?.end(run, firstLine(err));
    throw err;
  }
  ctx.board?.end(run);
}
