// The index's own events (a volume down or up again, a write that failed, an operation started or
// finished, a sweep that settled records) as one-line JSON records on stderr, so that a log
// shipper can parse them and a person can still read them: every record carries `msg`, the same
// sentence the index printed before, beside its fields. See docs/monitoring.md, "Event log".

/** A field of an event: what JSON keeps as is (counts by name, too). */
export type EventValue = string | number | boolean | null | Record<string, number>;

/** The fields of an event: `msg`, the readable sentence, and any others. */
export type EventFields = { msg: string } & Record<string, EventValue | undefined>;

/** Where events go: the default writes them to stderr; tests and tools may collect them. */
export type EventLog = (event: string, fields: EventFields) => void;

const encoder = new TextEncoder();

/**
 * The JSON line of an event: `time` (ISO 8601, UTC), `event`, `msg`, then the other fields in
 * their order; undefined fields are left out. Pure.
 */
export function eventRecord(event: string, fields: EventFields, timeMs: number): string {
  return `${JSON.stringify({ time: new Date(timeMs).toISOString(), event, ...fields })}\n`;
}

/**
 * Writes an event as one JSON line to stderr, synchronously, so that lines of events never
 * interleave (a line shorter than a pipe's buffer goes in one write).
 */
export const logEvent: EventLog = (event, fields) => {
  let bytes = encoder.encode(eventRecord(event, fields, Date.now()));
  try {
    while (bytes.length > 0) bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
  } catch (err) {
    // No one reads the log any more (its pipe closed): the index goes on without it.
    if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
  }
};
