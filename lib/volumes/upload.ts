// One replica's streamed PUT (lib/volumes/fanout.ts writes to every replica at once through
// these): HTTP/1.1 by hand on a socket of the pool, so that each chunk is written straight from
// the shared buffer and is out of it when `write` resolves.

import { locationHost } from "../placement.ts";
import { CHUNK_END, chunkHead, encodeStreamHead, LAST_CHUNK } from "./_http1.ts";
import { describe, VolumeError } from "./errors.ts";
import type { Http1Pool, StreamedRequest } from "./http1.ts";

/** A replica write that makes no progress for this long is given up. */
export const WRITE_STALL_MS = 30_000;

/**
 * One replica's PUT on a socket of its own. Framed by Content-Length when the size is known,
 * chunked otherwise; closing the socket early makes nginx drop the partial upload.
 */
export class Upload {
  readonly location: string;
  readonly path: string;
  failed = false;
  #sizeBytes: number | undefined;
  #timeoutMs: number;
  #pool: Http1Pool;
  #target: string;
  #request: StreamedRequest | null = null;
  #closed = false;

  constructor(
    options: {
      location: string;
      path: string;
      /** What the request line names: the path on the volume, signed if need be. */
      target: string;
      sizeBytes: number | undefined;
      timeoutMs: number;
      pool: Http1Pool;
    },
  ) {
    this.location = options.location;
    this.path = options.path;
    this.#target = options.target;
    this.#sizeBytes = options.sizeBytes;
    this.#timeoutMs = options.timeoutMs;
    this.#pool = options.pool;
  }

  async open(): Promise<void> {
    const host = locationHost(this.location);
    const head = encodeStreamHead("PUT", host, this.#target, this.#sizeBytes);
    try {
      this.#request = await this.#pool.open(host, head, { timeoutMs: this.#timeoutMs });
      if (this.#closed) this.#request.close();
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    try {
      if (this.#sizeBytes === undefined) {
        await this.#request!.write(chunkHead(chunk.length));
        await this.#request!.write(chunk);
        await this.#request!.write(CHUNK_END);
      } else {
        await this.#request!.write(chunk);
      }
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /** Ends the body and reads the volume's answer; throws VolumeError unless it stored it. */
  async finish(): Promise<void> {
    let status: number | null;
    try {
      if (this.#sizeBytes === undefined) await this.#request!.write(LAST_CHUNK);
      status = await this.answer(Math.max(this.#timeoutMs, WRITE_STALL_MS), { whole: true });
    } catch (err) {
      this.failed = true;
      this.abort();
      throw err;
    }
    if (status === 201 || status === 204) return;
    throw new VolumeError(
      locationHost(this.location),
      status,
      describe(this.location, "PUT", this.path, status ? `status ${status}` : "no answer"),
    );
  }

  /**
   * The status of the volume's answer, or null if none comes within `timeoutMs`. A volume that
   * refuses a value (a full disk, say) answers before it has read it all. The socket goes back to
   * the pool only after a keep-alive answer to a `whole` request (every byte of its body sent):
   * after a partial body the server may still be waiting for the rest.
   */
  async answer(timeoutMs: number, options: { whole: boolean }): Promise<number | null> {
    if (this.#request === null) return null;
    return await this.#request.answer("PUT", timeoutMs, { reuse: options.whole });
  }

  /** Closes the socket unless it went back to the pool; safe at any time, more than once. */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#request?.close();
  }
}
