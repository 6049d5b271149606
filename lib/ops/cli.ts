// The command line of the operations (`index.ts rebuild|rebalance|verify|gc`): it runs the
// operation through a running server's admin socket when one answers, or else on the index
// directly, and shows its events (Reporter: a live progress line on a terminal, findings and the
// summary as text, or JSON lines with --json).

import type { IndexOptions } from "../config.ts";
import { firstLine } from "../errors.ts";
import { adminSocketPath, Store, StoreError } from "../core/mod.ts";
import { type VolumeTls, volumeTlsFor } from "../nginx/tls.ts";
import { readSecretFile, Volumes } from "../volumes/mod.ts";
import { execute } from "./execute.ts";
import {
  formatItem,
  formatProgress,
  formatSummary,
  OPERATION_PATH,
  type OperationEvent,
  type OperationRequest,
  operationRequest,
} from "./protocol.ts";

/** Shows events: JSON lines, or a live line on a terminal, findings and the summary as text. */
class Reporter {
  #json: boolean;
  #tty: boolean;
  #lineShown = false;
  #encoder = new TextEncoder();
  exitCode = 1;

  constructor(json: boolean) {
    this.#json = json;
    this.#tty = Deno.stderr.isTerminal();
  }

  #clearLine(): void {
    if (!this.#lineShown) return;
    Deno.stderr.writeSync(this.#encoder.encode("\r\x1b[K"));
    this.#lineShown = false;
  }

  event(event: OperationEvent): void {
    if (event.type === "summary") this.exitCode = event.undone > 0 ? 1 : 0;
    if (event.type === "error") this.exitCode = 1;
    if (this.#json) {
      console.log(JSON.stringify(event));
      return;
    }
    if (event.type === "progress") {
      if (!this.#tty) return;
      Deno.stderr.writeSync(this.#encoder.encode(`\r\x1b[K${formatProgress(event)}`));
      this.#lineShown = true;
      return;
    }
    this.#clearLine();
    if (event.type === "item") console.log(formatItem(event));
    else if (event.type === "summary") console.log(formatSummary(event));
    else console.error(`index: ${event.command} failed: ${event.message}`);
  }

  log(line: string): void {
    this.#clearLine();
    console.error(line);
  }
}

/** Runs the operation on a server answering the admin socket; null if none answers. */
async function runOnline(
  socketPath: string,
  operation: OperationRequest,
  reporter: Reporter,
): Promise<number | null> {
  try {
    await Deno.stat(socketPath);
  } catch {
    return null;
  }
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  try {
    let response: Response;
    try {
      response = await fetch(`http://localhost${OPERATION_PATH}`, {
        method: "POST",
        body: JSON.stringify(operation),
        client,
      });
    } catch {
      return null;
    }
    if (response.status !== 200) {
      reporter.log(
        `index: the server refused ${operation.command}: ${(await response.text()).trim()}`,
      );
      return 1;
    }
    let pending = "";
    let ended = false;
    try {
      for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        const lines = pending.split("\n");
        pending = lines.pop()!;
        for (const line of lines) {
          if (line === "") continue;
          const event = JSON.parse(line) as OperationEvent;
          if (event.type === "summary" || event.type === "error") ended = true;
          reporter.event(event);
        }
      }
    } catch (err) {
      reporter.log(`index: lost the server during ${operation.command}: ${firstLine(err)}`);
      return 1;
    }
    if (!ended) {
      reporter.log(`index: the server stopped before ${operation.command} finished`);
      return 1;
    }
    return reporter.exitCode;
  } finally {
    client.close();
  }
}

/** Runs an operation command (`rebuild`, ...); resolves to the exit code. */
export async function runOperation(options: IndexOptions): Promise<number> {
  const operation = operationRequest(options);
  const reporter = new Reporter(options.json);
  const socketPath = adminSocketPath(options.db);
  const online = await runOnline(socketPath, operation, reporter);
  if (online !== null) return online;
  let volumeTls: VolumeTls | undefined;
  try {
    volumeTls = await volumeTlsFor(options);
  } catch (err) {
    reporter.log(`index: ${firstLine(err)}`);
    return 1;
  }
  // Offline, the requests to volumes are ours to sign (online, the server signs its own).
  let secret: string | undefined;
  try {
    if (options.volumeSecretFile) secret = await readSecretFile(options.volumeSecretFile);
  } catch (err) {
    reporter.log(`index: ${firstLine(err)}`);
    return 1;
  }
  let store: Store;
  try {
    store = await Store.open(options.db);
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    reporter.log(
      `index: ${err.message}, and no server answers on ${socketPath}; ` +
        `is a server still starting or stuck?`,
    );
    return 1;
  }
  const volumes = new Volumes({
    hosts: options.volumes,
    timeoutMs: options.voltimeoutMs,
    tls: volumeTls,
    secret,
    log: (_event, fields) => reporter.log(fields.msg),
  });
  const abort = new AbortController();
  const stop = () => abort.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    await volumes.probeAll();
    volumes.start();
    await execute({ store, volumes }, operation, (event) => {
      reporter.event(event);
      return Promise.resolve();
    }, abort.signal);
    return reporter.exitCode;
  } catch (err) {
    reporter.event({ type: "error", command: operation.command, message: firstLine(err) });
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    volumes.close();
    store.close();
  }
}
