// The index itself, without HTTP: key → record in the store, values on the volumes. Writes,
// overwrites, reads (locate), deletes, the rebalance of a key, and the sweeps in the background;
// both fronts (lib/http/api.ts, lib/s3/) call it. Each concept is a module over a CoreContext
// (lib/core/context.ts); this class puts them together.

import type { Placement } from "../placement.ts";
import type { Volumes } from "../volumes/mod.ts";
import {
  CoreContext,
  type CoreMetrics,
  type CoreOptions,
  type KeyResult,
  type Located,
  NO_METRICS,
  type RedirectParts,
  type WriteOptions,
  type WriteResult,
} from "./context.ts";
import { locate, redirectParts } from "./locate.ts";
import { locateMiss } from "./miss.ts";
import { rebalanceKey } from "./rebalance.ts";
import type { KeyRecord } from "./record.ts";
import { remove } from "./remove.ts";
import { type Reaper, Sweeps } from "./sweep.ts";
import { Store } from "./store.ts";
import { write } from "./write.ts";
import { openWriteTrace, type WriteTrace } from "./writetrace.ts";

/** The index: its records, its volumes, and what it does with them. */
export class Core {
  readonly #ctx: CoreContext;
  readonly #sweeps: Sweeps;

  /**
   * A core on an open store. Its commits are measured only when the store was opened with the
   * hook (Core.open does both).
   */
  constructor(
    store: Store,
    volumes: Volumes,
    options: CoreOptions,
    hooks: { metrics?: CoreMetrics; trace?: WriteTrace | null } = {},
  ) {
    this.#ctx = new CoreContext(store, volumes, options, {
      metrics: hooks.metrics ?? NO_METRICS,
      trace: hooks.trace ?? null,
    });
    this.#sweeps = new Sweeps(this.#ctx);
  }

  /**
   * Opens the store in directory `db` (Store.open: throws StoreError) with its commits measured
   * (unless --metrics=false) and traced (MKV_TRACE_WRITES), and makes the core on it.
   */
  static async open(
    db: string,
    volumes: Volumes,
    options: CoreOptions,
    metrics: CoreMetrics,
  ): Promise<Core> {
    const trace = openWriteTrace();
    const measure = options.metrics !== false;
    const store = await Store.open(db, {
      onCommit: measure || trace !== null
        ? (seconds, records) => {
          if (measure) metrics.commit(seconds);
          trace?.commit(seconds * 1000, records);
        }
        : undefined,
    });
    return new Core(store, volumes, options, { metrics, trace });
  }

  get store(): Store {
    return this.#ctx.store;
  }

  get volumes(): Volumes {
    return this.#ctx.volumes;
  }

  get options(): CoreOptions {
    return this.#ctx.options;
  }

  get metrics(): CoreMetrics {
    return this.#ctx.metrics;
  }

  /**
   * Changes where new values go (a rebalance to new volumes does this); resolves once the writes
   * already under way have ended. They took their volumes from the old placement: a rebalance
   * lists the records only after they are committed, so that none lands behind it, unbalanced.
   */
  async setPlacement(placement: Placement): Promise<void> {
    this.#ctx.options = { ...this.#ctx.options, placement };
    this.#ctx.volumes.track(placement.volumes);
    await Promise.allSettled([...this.#ctx.writes]);
  }

  /**
   * Writes a value under its key's lock: streamed to every replica, answered once the record is
   * committed. The one write path of the API, S3 and multipart uploads (lib/core/write.ts).
   */
  write(
    key: string,
    body: ReadableStream<Uint8Array> | null,
    options: WriteOptions = {},
  ): Promise<WriteResult> {
    return write(this.#ctx, key, body, options);
  }

  /** Deletes or unlinks a key (lib/core/remove.ts). */
  remove(
    key: string,
    options: { unlink?: boolean; force?: boolean; background?: boolean } = {},
  ): Promise<KeyResult> {
    return remove(this.#ctx, key, options);
  }

  /** Where a GET of a key reads (lib/core/locate.ts); with `check`, never unchecked. */
  locate(key: string, options: { check?: boolean } = {}): Promise<Located> {
    return locate(this.#ctx, key, options);
  }

  /**
   * Where a client that a volume sent back for want of a file reads it (lib/core/miss.ts):
   * `volumePath` as the volume saw it, `reporter` the volume as the client named it.
   */
  miss(volumePath: string, reporter: string): Promise<Located> {
    return locateMiss(this.#ctx, volumePath, reporter);
  }

  /** What a redirect to this record needs, computed once per record and placement. */
  redirectParts(key: string, record: KeyRecord): RedirectParts {
    return redirectParts(this.#ctx, key, record);
  }

  /** Moves the key's replicas to where the placement puts them (lib/core/rebalance.ts). */
  rebalance(key: string): Promise<KeyResult> {
    return rebalanceKey(this.#ctx, key);
  }

  /** Whether a value of the key that an overwrite replaced waits out its grace to be removed. */
  isRetiring(key: string): boolean {
    return this.#ctx.retiring.has(key);
  }

  /**
   * A volume came back (it answers its probe again). It may have come back empty (a new disk), so
   * replicas trusted until now are checked again before a GET is sent to them (docs/operations.md,
   * "Volume health"); and the removals that waited for it are done.
   */
  volumeUp(): void {
    this.#ctx.verified.clear();
    this.sweepPending().catch(() => {});
  }

  /** Settles the pending records that no write holds (lib/core/sweep.ts); how many it settled. */
  sweepPending(): Promise<number> {
    return this.#sweeps.sweepPending();
  }

  /**
   * Sweeps pending records, and reaps with `reap`, now and at their intervals, until stopped;
   * builds the store's key pages where they are not built.
   */
  startSweeps(reap: Reaper): void {
    this.#sweeps.start(reap);
    this.#ctx.store.startPageBuild();
  }

  /** Stops the sweeps and the pages' build; waits for those running and the removals under way. */
  async stopSweeps(): Promise<void> {
    await this.#ctx.store.stopPageBuild();
    await this.#sweeps.stop();
  }
}
