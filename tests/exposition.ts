// Reading the index's Prometheus exposition in the tests: with a real parser of the format
// (parse-prometheus-text-format), and the value of one sample by name and labels. Shared by
// tests/unit/metrics_test.ts and tests/cluster/metrics_test.ts.

import assert from "node:assert/strict";
import parsePrometheusTextFormat from "npm:parse-prometheus-text-format@1.1.1";

/** A metric family as the exposition parser gives it (values as text, as in the format). */
export interface Family {
  name: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

/** An exposition: its text, and its families as a real parser of the format reads them. */
export interface Exposition {
  text: string;
  families: Family[];
}

export function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  return { text, families: parsePrometheusTextFormat(text) as Family[] };
}

/**
 * One series of a histogram, parsed alone with its labels taken off: the parser (1.1.1) merges
 * the series of a labelled histogram into one, so each is given to it by itself.
 */
export function histogramSeries(
  exposition: Exposition,
  name: string,
  labels: Record<string, string>,
): Family["metrics"][number] | undefined {
  const pairs = Object.entries(labels).map(([label, value]) => `${label}="${value}",?`);
  const ofSeries = (line: string) =>
    new RegExp(`^${name}_(bucket|sum|count)[{ ]`).test(line) &&
    pairs.every((pair) => new RegExp(`[{,]${pair}`).test(line));
  const lines = exposition.text.split("\n").filter((line) =>
    line.startsWith(`# TYPE ${name} `) || ofSeries(line)
  ).map((line) =>
    pairs.reduce((out, pair) => out.replace(new RegExp(pair), ""), line)
      .replace(/,?\}/, "}").replace("{}", "")
  );
  const families = parsePrometheusTextFormat(`${lines.join("\n")}\n`) as Family[];
  return families.find((family) => family.name === name)?.metrics[0];
}

/**
 * The value of the one sample of `name` with these labels (0 if absent): a counter's or gauge's,
 * or a histogram's `_count`, `_sum` or `_bucket` (with `le` among the labels).
 */
export function valueOf(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number {
  const part = name.match(/^(.*)_(count|sum|bucket)$/);
  if (
    part !== null && exposition.families.some((f) => f.name === part[1] && f.type === "HISTOGRAM")
  ) {
    const { le, ...wanted } = labels;
    const series = histogramSeries(exposition, part[1], wanted);
    const text = part[2] === "bucket"
      ? series?.buckets?.[le]
      : series?.[part[2] as "count" | "sum"];
    return Number(text ?? 0);
  }
  const found = (exposition.families.find((f) => f.name === name)?.metrics ?? []).filter((metric) =>
    Object.entries(labels).every(([label, value]) => metric.labels?.[label] === value)
  );
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return Number(found[0]?.value ?? 0);
}
