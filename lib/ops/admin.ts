// The admin socket of a running server (DB/admin.sock), through which operations run online: one
// at a time, on the server's own store and volumes, with the events streamed back as NDJSON.

import { firstLine, textResponse } from "../errors.ts";
import { execute } from "./execute.ts";
import {
  type Emit,
  eventLine,
  type Operation,
  OPERATION_PATH,
  type OperationRequest,
  parseOperationRequest,
} from "./protocol.ts";
import type { OperationContext } from "./runner.ts";

/**
 * The handler of the admin socket of a running server, through which operations run online.
 * `ctx` is the server's own store and volumes, and its `setPlacement`.
 */
export function adminHandler(ctx: OperationContext): (request: Request) => Promise<Response> {
  let running: Operation | null = null;
  return async (request) => {
    if (new URL(request.url).pathname !== OPERATION_PATH || request.method !== "POST") {
      await request.body?.cancel();
      return textResponse(404, `POST ${OPERATION_PATH} runs an operation`);
    }
    let operation: OperationRequest;
    try {
      operation = parseOperationRequest(await request.json());
    } catch (err) {
      return textResponse(400, `bad operation request: ${firstLine(err)}`);
    }
    if (running !== null) return textResponse(409, `an operation is already running: ${running}`);
    running = operation.command;
    const abort = new AbortController();
    // A signal stops the server, which waits for this response: the operation stops first.
    const stop = () => abort.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    const stream = new TransformStream<Uint8Array, Uint8Array>();
    const writer = stream.writable.getWriter();
    const encoder = new TextEncoder();
    // The client going away (Ctrl-C) cancels the stream, and so the operation.
    const emit: Emit = async (event) => {
      if (abort.signal.aborted && event.type !== "summary" && event.type !== "error") return;
      try {
        await writer.ready;
        writer.write(encoder.encode(eventLine(event))).catch(() => abort.abort());
      } catch {
        abort.abort();
      }
    };
    (async () => {
      try {
        await execute(ctx, operation, emit, abort.signal);
      } catch (err) {
        await emit({ type: "error", command: operation.command, message: firstLine(err) });
      } finally {
        running = null;
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGTERM", stop);
        await writer.close().catch(() => {});
      }
    })();
    return new Response(stream.readable, { headers: { "content-type": "application/x-ndjson" } });
  };
}
