// The watch over one exchange on a connection to a volume (lib/volumes/http1.ts and the
// pipelined listings of lib/volumes/listings.ts): the connection is closed when its deadline passes
// or the request's signal aborts, and the watch says which did it, so that the exchange can throw a
// TimeoutError or the signal's reason rather than the read error the close caused.

/** What ended an exchange from outside: its deadline, or its signal. */
export type WatchCause = "timeout" | "abort" | null;

/**
 * Closes `conn` once the deadline passes or `signal` aborts, until disposed. The deadline may move
 * on (`moveTo`, as each piece of a body arrives): the timer, set once, looks at it when it fires
 * rather than being set again per piece, since a timer costs more than a piece.
 */
export class ConnectionWatch implements Disposable {
  /** Which ended the exchange, if either did. */
  cause: WatchCause = null;
  #deadlineMs: number;
  #timer: ReturnType<typeof setTimeout>;
  #conn: { close(): void };
  #signal: AbortSignal | undefined;
  #onAbort = () => {
    this.cause ??= "abort";
    this.#conn.close();
  };

  constructor(conn: { close(): void }, options: { deadlineMs: number; signal?: AbortSignal }) {
    this.#conn = conn;
    this.#deadlineMs = options.deadlineMs;
    this.#signal = options.signal;
    this.#timer = setTimeout(this.#onTimeout, Math.max(1, options.deadlineMs - Date.now()));
    this.#signal?.addEventListener("abort", this.#onAbort);
  }

  /** Moves the deadline to `deadlineMs` (milliseconds since the epoch). */
  moveTo(deadlineMs: number): void {
    this.#deadlineMs = deadlineMs;
  }

  /**
   * The error to throw for a failure of the exchange: a TimeoutError or the signal's reason if
   * the watch closed the connection, else `err` itself.
   */
  failure(err: unknown): unknown {
    if (this.cause === "timeout") return new DOMException("timed out", "TimeoutError");
    if (this.cause === "abort") return this.#signal!.reason;
    return err;
  }

  [Symbol.dispose](): void {
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }

  #onTimeout = () => {
    const leftMs = this.#deadlineMs - Date.now();
    if (leftMs > 0) {
      this.#timer = setTimeout(this.#onTimeout, leftMs);
      return;
    }
    this.cause = "timeout";
    this.#conn.close();
  };
}
