// The protocol of the operations: what to run (a request, sent as JSON to a running server's admin
// socket, or made from the command line's options) and what an operation reports as it runs
// (events, one JSON line each on the socket and with --json), with the pure functions that turn
// events into lines of text. Pure: no I/O.

import { type Command, COMMANDS, type IndexOptions } from "../config.ts";
import { isHostPort, type Placement } from "../placement.ts";

/** The admin socket's one endpoint. */
export const OPERATION_PATH = "/operation";

/** The commands of index.ts that are operations: all but `server`. */
export type Operation = Exclude<Command, "server">;
const OPERATION_COMMANDS: readonly Operation[] = COMMANDS.filter(
  (command): command is Operation => command !== "server",
);

/** What to run; sent as JSON to a running server's admin socket. */
export interface OperationRequest {
  command: Operation;
  placement: Placement;
  /** rebuild: compute each value's md5. */
  md5sum: boolean;
  /** verify: read each replica and check its md5. */
  md5: boolean;
  /** verify: re-create missing and corrupt replicas. */
  repair: boolean;
  /** gc, rebalance: only list what would change. */
  dryRun: boolean;
  /** Keys worked on at once. */
  concurrency: number;
}

export type Counts = Record<string, number>;

/** What an operation reports as it runs; one JSON line each with --json and on the socket. */
export type OperationEvent =
  | {
    type: "progress";
    command: Operation;
    done: number;
    total: number | null;
    unit: string;
    elapsedMs: number;
    counts: Counts;
  }
  | {
    type: "item";
    command: Operation;
    outcome: string;
    key?: string;
    location?: string;
    detail: string;
  }
  | { type: "summary"; command: Operation; counts: Counts; undone: number; elapsedMs: number }
  | { type: "error"; command: Operation; message: string };

/** Where an operation sends its events. */
export type Emit = (event: OperationEvent) => Promise<void>;

/**
 * Outcomes that leave work undone (so the command exits non-zero). The others are done, or
 * informational (a dry run's findings, a write in progress that was rightly left alone).
 */
const UNDONE = new Set([
  "conflict",
  "failed",
  "busy",
  "missing",
  "corrupt",
  "unreachable",
  "lost",
  "cleanup-failed",
]);

/** A request for the admin socket from the command line's options. */
export function operationRequest(options: IndexOptions): OperationRequest {
  if (!(OPERATION_COMMANDS as readonly string[]).includes(options.command)) {
    throw new Error(`${options.command} is not an operation`);
  }
  return {
    command: options.command as Operation,
    placement: {
      volumes: options.volumes,
      replicas: options.replicas,
      subvolumes: options.subvolumes,
    },
    md5sum: options.md5sum,
    md5: options.md5,
    repair: options.repair,
    dryRun: options.dryRun,
    concurrency: options.concurrency,
  };
}

/** Checks a request that came over the admin socket; throws with a one-line reason. */
export function parseOperationRequest(value: unknown): OperationRequest {
  const v = value as Partial<OperationRequest> | null;
  if (v === null || typeof v !== "object") throw new Error("request is not a JSON object");
  if (!(OPERATION_COMMANDS as readonly unknown[]).includes(v.command)) {
    throw new Error(`command must be one of ${OPERATION_COMMANDS.join(", ")}`);
  }
  const p = v.placement;
  if (
    p === undefined || !Array.isArray(p.volumes) || p.volumes.length === 0 ||
    !p.volumes.every((h) => typeof h === "string" && isHostPort(h)) ||
    !Number.isInteger(p.replicas) || p.replicas < 1 || p.replicas > p.volumes.length ||
    !Number.isInteger(p.subvolumes) || p.subvolumes < 1 || p.subvolumes > 256
  ) {
    throw new Error("placement must have volumes (host:port), replicas and subvolumes");
  }
  for (const flag of ["md5sum", "md5", "repair", "dryRun"] as const) {
    if (typeof v[flag] !== "boolean") throw new Error(`${flag} must be true or false`);
  }
  if (!Number.isInteger(v.concurrency) || v.concurrency! < 1 || v.concurrency! > 1024) {
    throw new Error("concurrency must be 1 to 1024");
  }
  return v as OperationRequest;
}

/** Whether an outcome leaves work undone. */
export function isUndone(outcome: string): boolean {
  return UNDONE.has(outcome);
}

/** `1:02:03` or `2:03` from milliseconds. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function formatCounts(counts: Counts): string {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).sort(([a], [b]) => a < b ? -1 : 1);
  return parts.length === 0 ? "nothing" : parts.map(([name, n]) => `${name} ${n}`).join(", ");
}

/** The live progress line: done/total, rate, ETA and counts so far. */
export function formatProgress(
  event: Extract<OperationEvent, { type: "progress" }>,
): string {
  const seconds = event.elapsedMs / 1000;
  const rate = seconds > 0 ? event.done / seconds : 0;
  const rateText = `${rate >= 100 ? Math.round(rate) : rate.toFixed(1)} ${event.unit}/s`;
  if (event.total === null && event.done === 0) return `${event.command}: starting`;
  let position = `${event.done} ${event.unit}`;
  let eta = "";
  if (event.total !== null && event.total > 0) {
    const percent = Math.min(100, (event.done / event.total) * 100).toFixed(1);
    position = `${event.done}/${event.total} ${event.unit} ${percent}%`;
    if (rate > 0) eta = `, ETA ${formatDuration(((event.total - event.done) / rate) * 1000)}`;
  }
  return `${event.command}: ${position}, ${rateText}${eta} (${formatCounts(event.counts)})`;
}

/** One reported finding, as a line of text. */
export function formatItem(event: Extract<OperationEvent, { type: "item" }>): string {
  const where = [event.key === undefined ? "" : JSON.stringify(event.key), event.location ?? ""]
    .filter((part) => part !== "").join(" at ");
  const head = where === "" ? event.outcome : `${event.outcome} ${where}`;
  return `${event.command}: ${head}${event.detail ? `: ${event.detail}` : ""}`;
}

/** The summary line at the end. */
export function formatSummary(event: Extract<OperationEvent, { type: "summary" }>): string {
  const undone = event.undone > 0 ? `; ${event.undone} left undone` : "";
  return `${event.command}: ${formatCounts(event.counts)} in ${
    formatDuration(event.elapsedMs)
  }${undone}`;
}

/** An event as one NDJSON line. */
export function eventLine(event: OperationEvent): string {
  return `${JSON.stringify(event)}\n`;
}
