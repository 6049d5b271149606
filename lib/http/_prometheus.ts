// The Prometheus text exposition format 0.0.4, as the index's metrics (lib/http/metrics.ts) use
// it: counters, gauges and histograms with fixed buckets, each holding its series by label values,
// and `render`, which writes them out. A series is looked up once by its label values and kept
// (`labels()`), after which an update is an addition; nothing is formatted until a scrape.
// `render` is pure; golden-tested in tests/unit/metrics_test.ts.

/** The Content-Type of the text exposition format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

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
