// Prometheus metrics of the index (`GET /-/metrics`): what it counts and measures, as counters,
// gauges and histograms (lib/http/_prometheus.ts), and the series its hot path uses, looked up
// once. Cheap enough to leave on: after the lookup an update is an addition; nothing is formatted
// until a scrape. What is kept elsewhere (keys and bytes in the store, the volumes' figures, the
// running operation) is copied in at each scrape.

import type { OperationProgress } from "../ops/runner.ts";
import type { StoreStats } from "../core/mod.ts";
import type { VolumeStats } from "../volumes/mod.ts";
import {
  type AnyMetric,
  type Buckets,
  Counter,
  Gauge,
  Histogram,
  render,
  type Value,
} from "./_prometheus.ts";

export { CONTENT_TYPE } from "./_prometheus.ts";

/** Latency buckets, in seconds: from half a millisecond to ten seconds. */
const LATENCY_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
] as const;

/** The methods of the API, as labels; any other method is counted as `other`. */
const METHODS = ["GET", "HEAD", "PUT", "DELETE", "UNLINK"];
/** The operations, each with its `mkv_operation_running` series. */
const OPERATIONS = ["rebuild", "rebalance", "verify", "gc"];

/** What the index has answered since it started, all methods together (for the status page). */
export interface RequestTotals {
  requests: number;
  /** Their durations added up. */
  seconds: number;
  /** Answers with a 5xx status. */
  serverErrors: number;
}

interface MethodSeries {
  label: string;
  statuses: Map<number, Value>;
  seconds: Buckets;
}

/** A per-volume series by host. */
function byVolume(name: string, help: string): Gauge {
  return new Gauge({ name, help, labelNames: ["volume"] });
}

/** What the index measures, and the series its hot path uses, looked up once. */
export class IndexMetrics {
  readonly requests = new Counter({
    name: "mkv_requests_total",
    help: "Requests answered by the index, by method and status.",
    labelNames: ["method", "status"],
  });
  readonly requestSeconds = new Histogram({
    name: "mkv_request_duration_seconds",
    help: "Time from a request's arrival at the index to its answer, by method.",
    labelNames: ["method"],
    buckets: LATENCY_BUCKETS,
  });
  readonly bodyBytes = new Counter({
    name: "mkv_request_body_bytes_total",
    help: "Bytes of values received in PUTs that were stored.",
  });
  readonly responseBytes = new Counter({
    name: "mkv_response_body_bytes_total",
    help: "Bytes of values sent to S3 GETs (by the index or its nginx, as announced); reads " +
      "redirected to a volume send none.",
  });
  readonly keys = new Gauge({
    name: "mkv_keys",
    help: "Keys whose values are on the volumes, by state (live, unlinked); kept in the KV.",
    labelNames: ["state"],
  });
  readonly bytes = new Gauge({
    name: "mkv_bytes",
    help: "Bytes of the values of those keys (one replica each), by state; kept in the KV.",
    labelNames: ["state"],
  });
  readonly pendingRecords = new Gauge({
    name: "mkv_pending_records",
    help: "Records of writes in progress or interrupted, and of deletes whose files remain.",
  });
  readonly writesInProgress = new Gauge({
    name: "mkv_writes_in_progress",
    help: "PUTs being written to the volumes right now.",
  });
  readonly volumeUp = new Gauge({
    name: "mkv_volume_up",
    help: "Whether the volume answered its last probe (1: up or full) or not (0: down).",
    labelNames: ["volume"],
  });
  readonly volumeFull = new Gauge({
    name: "mkv_volume_full",
    help: "Whether the volume answers but cannot store a file (1: full or read-only; writes " +
      "placed on it answer 507) or not (0).",
    labelNames: ["volume"],
  });
  readonly volumeProbeSeconds = new Gauge({
    name: "mkv_volume_probe_seconds",
    help: "How long the volume's last probe took.",
    labelNames: ["volume"],
  });
  readonly volumeErrors = new Counter({
    name: "mkv_volume_errors_total",
    help: "Requests to the volume that failed (probes included), since the index started.",
    labelNames: ["volume"],
  });
  readonly volumeFreeBytes = byVolume(
    "mkv_volume_free_bytes",
    "Bytes the volume's filesystem can still take, as the volume last reported.",
  );
  readonly volumeSizeBytes = byVolume(
    "mkv_volume_size_bytes",
    "Bytes of the volume's filesystem in all, as the volume last reported.",
  );
  readonly volumeRequests = new Counter({
    name: "mkv_volume_requests_total",
    help: "Requests the volume's nginx answered since it started (its stub_status), as last read.",
    labelNames: ["volume"],
  });
  readonly volumeConnections = byVolume(
    "mkv_volume_connections",
    "Client connections open at the volume's nginx, as last read.",
  );
  readonly kvCommitSeconds = new Histogram({
    name: "mkv_kv_commit_seconds",
    help: "Time of each atomic commit to the index's Deno KV (one commit carries many writes).",
    buckets: LATENCY_BUCKETS,
  });
  readonly operationRunning = new Gauge({
    name: "mkv_operation_running",
    help: "Whether the operation (rebuild, rebalance, verify, gc) is running on this server.",
    labelNames: ["operation"],
  });
  readonly operationDone = new Gauge({
    name: "mkv_operation_done",
    help: "Work done by the running operation, in its unit (keys, or dirs of the volumes).",
    labelNames: ["operation", "unit"],
  });
  readonly operationSize = new Gauge({
    name: "mkv_operation_size",
    help: "Work of the running operation in all, in its unit; absent while it is being counted.",
    labelNames: ["operation", "unit"],
  });
  readonly operationProblems = new Gauge({
    name: "mkv_operation_problems",
    help: "Findings of the running operation that leave work undone (missing, corrupt, failed).",
    labelNames: ["operation"],
  });
  readonly operationStarted = new Gauge({
    name: "mkv_operation_start_time_seconds",
    help: "When the running operation started, in seconds since the epoch.",
    labelNames: ["operation"],
  });
  readonly all: readonly AnyMetric[] = [
    this.requests,
    this.requestSeconds,
    this.bodyBytes,
    this.responseBytes,
    this.writesInProgress,
    this.keys,
    this.bytes,
    this.pendingRecords,
    this.volumeUp,
    this.volumeFull,
    this.volumeProbeSeconds,
    this.volumeErrors,
    this.volumeFreeBytes,
    this.volumeSizeBytes,
    this.volumeRequests,
    this.volumeConnections,
    this.kvCommitSeconds,
    this.operationRunning,
    this.operationDone,
    this.operationSize,
    this.operationProblems,
    this.operationStarted,
  ];
  #byMethod = new Map<string, MethodSeries>();
  #bodyBytes = this.bodyBytes.labels();
  #responseBytes = this.responseBytes.labels();
  #writes = this.writesInProgress.labels();
  #commits = this.kvCommitSeconds.labels();

  /** Counts an answered request and its duration: two map lookups and two additions. */
  request(method: string, status: number, seconds: number): void {
    const entry = this.#byMethod.get(method) ?? this.#methodEntry(method);
    let counter = entry.statuses.get(status);
    if (counter === undefined) {
      counter = this.requests.labels(entry.label, String(status));
      entry.statuses.set(status, counter);
    }
    counter.value++;
    entry.seconds.observe(seconds);
  }

  /** The series of a method; any method not in the API shares `other`. */
  #methodEntry(method: string): MethodSeries {
    const label = METHODS.includes(method) ? method : "other";
    let entry = this.#byMethod.get(label);
    if (entry === undefined) {
      entry = { label, statuses: new Map(), seconds: this.requestSeconds.labels(label) };
      this.#byMethod.set(label, entry);
    }
    return entry;
  }

  bodyReceived(bytes: number): void {
    this.#bodyBytes.value += bytes;
  }

  /** Counts bytes of a value the index streams itself (an S3 GET through its nginx). */
  bodySent(bytes: number): void {
    this.#responseBytes.value += bytes;
  }

  /** PUTs being written now. */
  get writes(): number {
    return this.#writes.value;
  }

  /** Requests answered since the start, all methods together: a walk of a few series. */
  totals(): RequestTotals {
    const totals = { requests: 0, seconds: 0, serverErrors: 0 };
    for (const entry of new Set(this.#byMethod.values())) {
      totals.requests += entry.seconds.count;
      totals.seconds += entry.seconds.sum;
      for (const [status, counter] of entry.statuses) {
        if (status >= 500) totals.serverErrors += counter.value;
      }
    }
    return totals;
  }

  writeStarted(): void {
    this.#writes.value++;
  }

  writeEnded(): void {
    this.#writes.value--;
  }

  commit(seconds: number): void {
    this.#commits.observe(seconds);
  }

  /**
   * The volumes' figures as of now (called at each scrape): up or down, the last probe's time,
   * failed requests; volumes no longer known are dropped.
   */
  setVolumes(volumes: readonly VolumeStats[]): void {
    for (
      const metric of [
        this.volumeUp,
        this.volumeFull,
        this.volumeProbeSeconds,
        this.volumeErrors,
        this.volumeFreeBytes,
        this.volumeSizeBytes,
        this.volumeRequests,
        this.volumeConnections,
      ]
    ) {
      metric.reset();
    }
    for (const volume of volumes) {
      this.volumeUp.labels(volume.host).set(volume.health === "down" ? 0 : 1);
      this.volumeFull.labels(volume.host).set(volume.health === "full" ? 1 : 0);
      this.volumeProbeSeconds.labels(volume.host).set(volume.probeSeconds);
      this.volumeErrors.labels(volume.host).set(volume.errors);
      if (volume.disk !== undefined) {
        this.volumeFreeBytes.labels(volume.host).set(volume.disk.freeBytes);
        this.volumeSizeBytes.labels(volume.host).set(volume.disk.totalBytes);
      }
      if (volume.nginx !== undefined) {
        this.volumeRequests.labels(volume.host).set(volume.nginx.requests);
        this.volumeConnections.labels(volume.host).set(volume.nginx.active);
      }
    }
  }

  /** The store's figures as of now (called at each scrape). */
  setStore(stats: Readonly<StoreStats>): void {
    this.keys.labels("live").set(stats.liveKeys);
    this.keys.labels("unlinked").set(stats.unlinkedKeys);
    this.bytes.labels("live").set(stats.liveBytes);
    this.bytes.labels("unlinked").set(stats.unlinkedBytes);
    this.pendingRecords.labels().set(stats.pending);
  }

  /** The running operation, or none (called at each scrape). */
  setOperation(progress: OperationProgress | null): void {
    for (const metric of [this.operationDone, this.operationSize, this.operationProblems]) {
      metric.reset();
    }
    this.operationStarted.reset();
    for (const operation of OPERATIONS) {
      this.operationRunning.labels(operation).set(progress?.command === operation ? 1 : 0);
    }
    if (progress === null) return;
    const { command, unit } = progress;
    this.operationDone.labels(command, unit).set(progress.done);
    if (progress.total !== null) this.operationSize.labels(command, unit).set(progress.total);
    this.operationProblems.labels(command).set(progress.problems);
    this.operationStarted.labels(command).set(progress.startedMs / 1000);
  }

  /** The exposition of every metric. */
  render(): string {
    return render(this.all);
  }
}
