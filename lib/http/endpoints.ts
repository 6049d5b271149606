// The index's own endpoints under `/-/`, all GET/HEAD: `/-/health` and `/-/ready` open to all
// (load balancers), and `/-/metrics`, `/-/status` and `/-/status.json`, which need `admin` with
// --credentials (docs/monitoring.md).

import type { Core } from "../core/mod.ts";
import { firstLine, textResponse } from "../errors.ts";
import type { OperationBoard } from "../ops/runner.ts";
import { CONTENT_TYPE, type IndexMetrics } from "./metrics.ts";
import { renderStatusPage, type StatusData, type StatusHistory } from "./status.ts";

/** Paths under this prefix are the index's own (health, metrics); no key under it is written. */
export const RESERVED_PREFIX = "/-/";
/** The index's own endpoints, all GET/HEAD. */
export const ENDPOINTS = [
  "/-/health",
  "/-/ready",
  "/-/metrics",
  "/-/status",
  "/-/status.json",
] as const;
/** How long `/-/health` waits for its read of the KV. */
const HEALTH_TIMEOUT_MS = 2_000;

/** What the endpoints show: the core, and what the front measures and runs. */
export interface Observed {
  core: Core;
  metrics: IndexMetrics;
  board: OperationBoard;
  history: StatusHistory;
  /** Whether requests are measured (`--metrics`). */
  measure: boolean;
}

/** The answer of the endpoint at `target`, or null for any other path. */
export async function endpoint(
  seen: Observed,
  target: string,
  request: Request,
): Promise<Response | null> {
  if (target === "/-/health") return await health(seen.core);
  if (target === "/-/ready") return ready(seen.core);
  if (target !== "/-/metrics" && target !== "/-/status" && target !== "/-/status.json") {
    return null;
  }
  const auth = seen.core.options.auth;
  if (auth) {
    const verdict = auth.check(request.method, "admin", request.headers.get("authorization"));
    if (!verdict.ok) return textResponse(verdict.status, verdict.reason, verdict.headers);
  }
  const noStore = { "cache-control": "no-store" };
  if (target === "/-/metrics") {
    if (!seen.measure) return textResponse(404, "metrics are off (--metrics=false)");
    seen.metrics.setVolumes(seen.core.volumes.stats());
    seen.metrics.setStore(seen.core.store.stats);
    seen.metrics.setOperation(seen.board.running());
    return new Response(seen.metrics.render(), {
      headers: { "content-type": CONTENT_TYPE, ...noStore },
    });
  }
  if (target === "/-/status.json") {
    return new Response(JSON.stringify(status(seen)), {
      headers: { "content-type": "application/json", ...noStore },
    });
  }
  return new Response(renderStatusPage(status(seen)), {
    headers: { "content-type": "text/html; charset=utf-8", ...noStore },
  });
}

/** What the status page shows, as of now. */
function status(seen: Observed): StatusData {
  return {
    timeMs: Date.now(),
    replicas: seen.core.options.placement.replicas,
    volumes: seen.core.volumes.stats(),
    store: { ...seen.core.store.stats },
    writesInProgress: seen.metrics.writes,
    metrics: seen.measure,
    samples: seen.history.samples(),
    operation: seen.board.running(),
    lastOperation: seen.board.last(),
  };
}

/** 200 `ok` if the KV answers a read (past the cache) within HEALTH_TIMEOUT_MS; else 503. */
async function health(core: Core): Promise<Response> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      core.store.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS / 1000}s`)),
          HEALTH_TIMEOUT_MS,
        );
      }),
    ]);
    return textResponse(200, "ok");
  } catch (err) {
    return textResponse(503, `index KV does not answer: ${firstLine(err)}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * 200 if enough volumes answer (up or full) to hold every replica of a value; else 503. Full
 * volumes count: they serve reads and DELETEs, and a DELETE through this index is how their
 * space is freed, so a load balancer must not take the index out for them; writes placed on
 * them answer 507 meanwhile. The answer names the full and the down volumes.
 */
function ready(core: Core): Response {
  const { volumes, replicas } = core.options.placement;
  const down = volumes.filter((volume) => core.volumes.health(volume) === "down");
  const full = volumes.filter((volume) => core.volumes.health(volume) === "full");
  const up = volumes.length - down.length - full.length;
  const summary = `${up} of ${volumes.length} volumes up, ${replicas} replicas needed` +
    (full.length === 0 ? "" : `; full (reads and deletes only): ${full.join(", ")}`) +
    (down.length === 0 ? "" : `; down: ${down.join(", ")}`);
  if (up + full.length >= replicas) return textResponse(200, `ready: ${summary}`);
  return textResponse(503, `not ready: ${summary}`);
}
