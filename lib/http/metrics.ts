// Prometheus metrics of the index (`GET /-/metrics`): counters, gauges and histograms with fixed
// buckets, and `render`, which writes them in the text exposition format 0.0.4. Cheap enough to
// leave on: a series is looked up once by its label values and kept (`labels()`), after which an
// update is an addition; nothing is formatted until a scrape. What is kept elsewhere (keys and
// bytes in the store, the volumes' figures, the running operation) is copied in at each scrape.
// `render` is pure; golden-tested in tests/metrics_test.ts.

import type { OperationProgress } from "../ops/runner.ts";
import type { StoreStats } from "../core/store.ts";
import type { VolumeStats } from "../volumes/mod.ts";

/** The Content-Type of the text exposition format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Latency buckets, in seconds: from half a millisecond to ten seconds. */
export const LATENCY_BUCKETS = [
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

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value as the format wants it: `\`, `"` and newlines escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** A HELP text as the format wants it: `\` and newlines escaped. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

/** A sample value: Prometheus's spellings of the infinities and NaN. */
export function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

/** `{a="1",b="2"}` for the label names and values, or "" with none. */
function labelText(names: readonly string[], values: readonly string[], extra = ""): string {
  const parts = names.map((name, i) => `${name}="${escapeLabelValue(values[i])}"`);
  if (extra !== "") parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

interface MetricOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
}

/** What counters, gauges and histograms share: a name, a help text, and series by labels. */
abstract class Metric<S> {
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Series by their label values joined with NUL; in the order they were first used. */
  readonly series = new Map<string, { values: readonly string[]; series: S }>();

  constructor(options: MetricOptions) {
    if (!NAME.test(options.name)) throw new Error(`bad metric name ${options.name}`);
    for (const label of options.labelNames ?? []) {
      if (!LABEL.test(label) || label.startsWith("__") || label === "le") {
        throw new Error(`bad label name ${label} of ${options.name}`);
      }
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
  }

  protected abstract create(): S;

  /** The series of these label values (one per label name), made on first use; keep it. */
  labels(...values: string[]): S {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values`);
    }
    const key = values.join("\0");
    let entry = this.series.get(key);
    if (entry === undefined) {
      entry = { values, series: this.create() };
      this.series.set(key, entry);
    }
    return entry.series;
  }

  /** Forgets every series (a gauge refilled at each scrape drops volumes no longer known). */
  reset(): void {
    this.series.clear();
  }
}

/** A value of a counter or a gauge. */
export class Value {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
  set(value: number): void {
    this.value = value;
  }
}

/** A number that only goes up (or is set, by a collector, from a count kept elsewhere). */
export class Counter extends Metric<Value> {
  readonly type = "counter";
  protected create(): Value {
    return new Value();
  }
}

/** A number that goes up and down. */
export class Gauge extends Metric<Value> {
  readonly type = "gauge";
  protected create(): Value {
    return new Value();
  }
}

/** The observations of one histogram series: a count per bucket (not cumulative), sum, count. */
export class Buckets {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length).fill(0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

/** Observations (durations, in seconds) counted into fixed buckets. */
export class Histogram extends Metric<Buckets> {
  readonly type = "histogram";
  readonly buckets: readonly number[];

  constructor(options: MetricOptions & { buckets: readonly number[] }) {
    super(options);
    for (let i = 1; i < options.buckets.length; i++) {
      if (!(options.buckets[i] > options.buckets[i - 1])) {
        throw new Error(`buckets of ${options.name} must increase`);
      }
    }
    this.buckets = options.buckets;
  }

  protected create(): Buckets {
    return new Buckets(this.buckets);
  }
}

export type AnyMetric = Counter | Gauge | Histogram;

/**
 * The text exposition format (0.0.4) of `metrics`, in their order, each with its `# HELP` and
 * `# TYPE` lines and its series in the order they were first used. Pure.
 */
export function render(metrics: readonly AnyMetric[]): string {
  const lines: string[] = [];
  for (const metric of metrics) {
    lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
    lines.push(`# TYPE ${metric.name} ${metric.type}`);
    for (const { values, series } of metric.series.values()) {
      if (series instanceof Buckets) {
        let cumulative = 0;
        for (let i = 0; i < series.bounds.length; i++) {
          cumulative += series.counts[i];
          const le = `le="${formatValue(series.bounds[i])}"`;
          lines.push(
            `${metric.name}_bucket${labelText(metric.labelNames, values, le)} ${cumulative}`,
          );
        }
        lines.push(
          `${metric.name}_bucket${
            labelText(metric.labelNames, values, 'le="+Inf"')
          } ${series.count}`,
        );
        const labels = labelText(metric.labelNames, values);
        lines.push(`${metric.name}_sum${labels} ${formatValue(series.sum)}`);
        lines.push(`${metric.name}_count${labels} ${series.count}`);
      } else {
        lines.push(
          `${metric.name}${labelText(metric.labelNames, values)} ${formatValue(series.value)}`,
        );
      }
    }
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

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
