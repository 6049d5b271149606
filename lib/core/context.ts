// What the parts of the core share (lib/core/core.ts puts them together): its options, the store
// and the volumes, the metrics hook, and the per-key state in memory (replicas seen present, the
// writes and removals under way, the replaced values waiting out their grace).

import type { Auth } from "../auth/auth.ts";
import type { KeyPath, Placement } from "../placement.ts";
import { verifiedBytes } from "./footprint.ts";
import { Lru } from "./lru.ts";
import type { KeyRecord, ObjectInfo } from "./record.ts";
import type { Store } from "./store.ts";
import type { Volumes } from "../volumes/mod.ts";
import type { WriteTrace } from "./writetrace.ts";

/**
 * Keys whose replicas were seen present (lib/core/locate.ts), kept in memory, oldest dropped
 * first, in bytes of heap as lib/core/footprint.ts weighs them: about 45,000 short keys.
 */
export const VERIFIED_CACHE_BYTES = 16 * 1024 * 1024;

export interface CoreOptions {
  placement: Placement;
  protect: boolean;
  md5sum: boolean;
  /** `host:port` that GETs of absent keys are sent to, or "". */
  fallback: string;
  verbose: boolean;
  /** Access keys and their rights (`--credentials`); absent or null: open to all. */
  auth?: Auth | null;
  /** Private reads: each `Location` is signed for GET/HEAD for this long; absent: unsigned. */
  readExpiryMs?: number;
  /** `--metrics=false`: requests and commits are not measured, `/-/metrics` answers 404. */
  metrics?: boolean;
  /** S3 multipart uploads older than this are aborted (`--multipart-max-age`); default a week. */
  multipartMaxAgeMs?: number;
}

/** What the core tells the metrics (lib/http/metrics.ts IndexMetrics is one). */
export interface CoreMetrics {
  /** A write took its key's lock... */
  writeStarted(): void;
  /** ...and ended, whatever its outcome. */
  writeEnded(): void;
  /** Bytes of a value stored by a write. */
  bodyReceived(bytes: number): void;
  /** Bytes of a value the index streams itself (an S3 GET through its nginx). */
  bodySent(bytes: number): void;
  /** A KV commit took `seconds`. */
  commit(seconds: number): void;
}

/** Metrics that keep nothing, for a core that nobody measures. */
export const NO_METRICS: CoreMetrics = {
  writeStarted() {},
  writeEnded() {},
  bodyReceived() {},
  bodySent() {},
  commit() {},
};

export interface WriteOptions {
  /** The body's length from `Content-Length`, if given: small bodies take a faster path. */
  sizeBytes?: number;
  /** S3's attributes of the value, kept in its record. */
  attributes?: Omit<ObjectInfo, "size" | "mtime">;
  /**
   * Replace a live value (S3's PutObject and CompleteMultipartUpload); without it a live key is
   * refused with 403, as minikeyvalue does, and so it is with --protect (a live value is only
   * ever removed after an UNLINK there).
   */
  overwrite?: boolean;
  /**
   * Store an empty value (S3 has them; minikeyvalue's PUT refuses them with 411). An overwrite
   * always may: it cannot know a body is empty before the old value is replaced.
   */
  allowEmpty?: boolean;
  /**
   * A condition on the key's current value (its live record, or null where none is live),
   * checked under the key's lock right after its record is read: null, or the status and reason
   * to refuse the write with, changing nothing (S3's If-Match, If-None-Match).
   */
  precondition?: (current: KeyRecord | null) => { status: number; reason: string } | null;
  /**
   * How long to wait for a write in progress to the same key (S3's last writer wins) before
   * refusing with 409, as a write that does not wait (minikeyvalue's PUT) is refused at once.
   */
  lockWaitMs?: number;
}

/** How a write ended: the committed record, or the status and reason to answer with. */
export type WriteResult =
  | { ok: true; record: KeyRecord; md5: string; sizeBytes: number }
  | { ok: false; status: number; reason: string };

/** How a change of a key ended (remove, rebalance): done, or the status and reason to answer. */
export type KeyResult = { ok: true } | { ok: false; status: number; reason: string };

/** Where a key can be read: its live record and a live replica that holds its file, or why not. */
export type Located =
  | { ok: true; record: KeyRecord; location: string; path: KeyPath }
  | { ok: false; status: 404 | 410; reason: string };

/** What a redirect to a record needs, computed once per record and placement. */
export interface RedirectParts {
  placement: Placement;
  path: KeyPath;
  volumes: string;
  balance: "balanced" | "unbalanced";
}

/** The state of the core that its parts share; each part is functions over it. */
export class CoreContext {
  readonly store: Store;
  readonly volumes: Volumes;
  options: CoreOptions;
  readonly metrics: CoreMetrics;
  /** The phases of every write, with MKV_TRACE_WRITES=FILE (lib/core/writetrace.ts); else null. */
  readonly trace: WriteTrace | null;
  /** Per key: when its files were last seen present, and where (the replicas trusted then). */
  readonly verified = new Lru<string, { atMs: number; locations: string[] }>(
    VERIFIED_CACHE_BYTES,
    verifiedBytes,
  );
  /** What a redirect to each record needs (redirectParts), kept with the record itself. */
  readonly redirects = new WeakMap<KeyRecord, RedirectParts>();
  /** Accepted DELETEs whose files are being removed, by key; each holds its key's lock. */
  readonly removals = new Map<string, Promise<void>>();
  /** The writes under way, which `setPlacement` waits for. */
  readonly writes = new Set<Promise<WriteResult>>();
  /** Per key, removals of replaced values waiting out their grace, and what starts each now. */
  readonly retiring = new Map<string, { wake: () => void; done: Promise<void> }[]>();
  /** The last version given to an overwrite's file (newVersion). */
  lastVersion: string | undefined;

  constructor(
    store: Store,
    volumes: Volumes,
    options: CoreOptions,
    hooks: { metrics: CoreMetrics; trace: WriteTrace | null },
  ) {
    this.store = store;
    this.volumes = volumes;
    this.options = options;
    this.metrics = hooks.metrics;
    this.trace = hooks.trace;
  }
}
