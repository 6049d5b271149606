// The bench's value load (bench.ts): `count` values of `sizeBytes` each, written by `concurrency`
// clients at once (PUT), read back by as many through the index's 302 to a volume with every byte
// compared (GET), then deleted (DELETE). Each phase is a separate call, so the bench can read the
// servers' CPU time around it. The values are one random block with the key written over its
// start, so every value differs and a wrong key's bytes are caught; the compare is a memcmp
// (node:buffer), cheap next to the transfer.

import { Buffer } from "node:buffer";
import { type LatencySummary, summarize } from "../thrasher.ts";

/** The longest a single request of the load may take before the run fails. */
const REQUEST_TIMEOUT_MS = 120_000;

export type BlobOperation = "PUT" | "GET" | "DELETE";

export interface BlobLoadOptions {
  /** The server, `http://host:port`. */
  url: string;
  /** Starts every key of this load; unique per server and run, so no server reads another's. */
  prefix: string;
  count: number;
  sizeBytes: number;
  concurrency: number;
}

/** What one phase did: how long it took, how many bytes moved, the latency of its requests. */
export interface BlobPhase {
  operation: BlobOperation;
  seconds: number;
  requests: number;
  bytes: number;
  latency: LatencySummary;
}

// ---- pure ----

/** The value stored under `key`: `block` with the key's bytes written over its start. */
export function blobValue(block: Uint8Array, key: string): Uint8Array<ArrayBuffer> {
  const value = new Uint8Array(block.length);
  value.set(block);
  value.set(new TextEncoder().encode(key).subarray(0, block.length));
  return value;
}

/** Whether `body` is exactly `blobValue(block, key)`, compared without a copy. */
export function isBlobValue(body: Uint8Array, block: Uint8Array, key: string): boolean {
  if (body.length !== block.length) return false;
  const stamp = new TextEncoder().encode(key).subarray(0, block.length);
  const buffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return buffer(body.subarray(0, stamp.length)).equals(buffer(stamp)) &&
    buffer(body.subarray(stamp.length)).equals(buffer(block.subarray(stamp.length)));
}

/** Megabytes (10^6 bytes) per second of a phase. */
export function megabytesPerSecond(phase: BlobPhase): number {
  return phase.bytes / 1e6 / phase.seconds;
}

// ---- I/O ----

/** A value load against one server; its phases run in order: put, get, remove. */
export class BlobLoad implements Disposable {
  readonly options: BlobLoadOptions;
  #block: Uint8Array;
  #client: Deno.HttpClient;

  constructor(options: BlobLoadOptions) {
    this.options = options;
    this.#block = new Uint8Array(options.sizeBytes);
    // getRandomValues fills at most 64 KiB at a time.
    for (let i = 0; i < options.sizeBytes; i += 65_536) {
      crypto.getRandomValues(this.#block.subarray(i, i + 65_536));
    }
    this.#client = Deno.createHttpClient({ poolMaxIdlePerHost: options.concurrency });
  }

  key(i: number): string {
    return `${this.options.prefix}${i}`;
  }

  /** Runs `step` on every key with `concurrency` requests in flight, timing each. */
  async #phase(
    operation: BlobOperation,
    step: (key: string, signal: AbortSignal) => Promise<number>,
  ): Promise<BlobPhase> {
    const samples: number[] = [];
    let next = 0;
    let bytes = 0;
    let failure: unknown = null;
    // The first failure stops every worker; it is thrown once those in flight have finished.
    const worker = async () => {
      while (failure === null && next < this.options.count) {
        const key = this.key(next++);
        const started = performance.now();
        try {
          // Awaited first: `bytes += await ...` would add to the value read before the wait.
          const moved = await step(key, AbortSignal.timeout(REQUEST_TIMEOUT_MS));
          bytes += moved;
        } catch (err) {
          failure ??= err;
          return;
        }
        samples.push(performance.now() - started);
      }
    };
    const started = performance.now();
    const workers = Math.min(this.options.concurrency, this.options.count);
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure !== null) throw failure;
    return {
      operation,
      seconds: (performance.now() - started) / 1000,
      requests: samples.length,
      bytes,
      latency: summarize(samples),
    };
  }

  /** PUTs every value; each must be answered 201. */
  put(): Promise<BlobPhase> {
    return this.#phase("PUT", async (key, signal) => {
      const url = `${this.options.url}${key}`;
      const response = await fetch(url, {
        method: "PUT",
        body: blobValue(this.#block, key),
        client: this.#client,
        signal,
      });
      const text = await response.text();
      if (response.status !== 201) {
        throw new Error(`PUT ${url}: status ${response.status}: ${text.trim().slice(0, 200)}`);
      }
      return this.options.sizeBytes;
    });
  }

  /** GETs every value through the 302 and compares it with what was PUT. */
  get(): Promise<BlobPhase> {
    return this.#phase("GET", async (key, signal) => {
      const url = `${this.options.url}${key}`;
      const response = await fetch(url, { client: this.#client, signal });
      const body = await response.bytes();
      if (response.status !== 200 || !response.redirected) {
        throw new Error(
          `GET ${url}: status ${response.status}${response.redirected ? "" : ", no redirect"}`,
        );
      }
      if (!isBlobValue(body, this.#block, key)) {
        throw new Error(`GET ${url}: wrong value from ${response.url} (${body.length} bytes)`);
      }
      return body.length;
    });
  }

  /** DELETEs every value; each must be answered 204. */
  remove(): Promise<BlobPhase> {
    return this.#phase("DELETE", async (key, signal) => {
      const url = `${this.options.url}${key}`;
      const response = await fetch(url, { method: "DELETE", client: this.#client, signal });
      await response.body?.cancel();
      if (response.status !== 204) throw new Error(`DELETE ${url}: status ${response.status}`);
      return 0;
    });
  }

  [Symbol.dispose](): void {
    this.#client.close();
  }
}
