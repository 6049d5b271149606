// The index's Prometheus metrics, pure: the renderer (lib/http/metrics.ts) against a golden text,
// the index's figures and the rights its pages need. The endpoints on real clusters are in
// tests/cluster/metrics_test.ts.

import assert from "node:assert/strict";
import {
  Counter,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  Gauge,
  Histogram,
  render,
} from "../../lib/http/_prometheus.ts";
import { IndexMetrics } from "../../lib/http/metrics.ts";
import { requiredRight } from "../../lib/auth/auth.ts";
import { parseIndexArgs } from "../../lib/config.ts";
import { NO_STATS } from "../../lib/core/store.ts";
import { Exposition, Family, parseExposition, valueOf } from "../exposition.ts";

Deno.test("escaping: label values, HELP texts, special values", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  assert.equal(escapeLabelValue("plain €"), "plain €");
  assert.equal(escapeHelp('a\\b"c\nd'), 'a\\\\b"c\\nd');
  assert.equal(formatValue(Infinity), "+Inf");
  assert.equal(formatValue(-Infinity), "-Inf");
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(0.25), "0.25");
  assert.equal(formatValue(42), "42");
});

Deno.test("render: counters, gauges, histograms, in the exposition format 0.0.4", () => {
  const requests = new Counter({
    name: "x_requests_total",
    help: "Requests.\nBy method \\ status.",
    labelNames: ["method", "status"],
  });
  const up = new Gauge({ name: "x_up", help: "Up.", labelNames: ["volume"] });
  const plain = new Gauge({ name: "x_plain", help: "No labels." });
  const seconds = new Histogram({
    name: "x_seconds",
    help: "Time.",
    labelNames: ["method"],
    buckets: [0.1, 1],
  });
  const unused = new Counter({ name: "x_unused_total", help: "Never set." });
  requests.labels("GET", "302").inc();
  requests.labels("GET", "302").inc(2);
  requests.labels("PUT", "201").inc();
  up.labels('we"ird\\host\n').set(1);
  up.labels("b:2").set(0);
  plain.labels().dec(1.5);
  seconds.labels("GET").observe(0.05);
  seconds.labels("GET").observe(0.1);
  seconds.labels("GET").observe(0.5);
  seconds.labels("GET").observe(3);
  assert.equal(
    render([requests, up, plain, seconds, unused]),
    [
      "# HELP x_requests_total Requests.\\nBy method \\\\ status.",
      "# TYPE x_requests_total counter",
      'x_requests_total{method="GET",status="302"} 3',
      'x_requests_total{method="PUT",status="201"} 1',
      "# HELP x_up Up.",
      "# TYPE x_up gauge",
      'x_up{volume="we\\"ird\\\\host\\n"} 1',
      'x_up{volume="b:2"} 0',
      "# HELP x_plain No labels.",
      "# TYPE x_plain gauge",
      "x_plain -1.5",
      "# HELP x_seconds Time.",
      "# TYPE x_seconds histogram",
      'x_seconds_bucket{method="GET",le="0.1"} 2',
      'x_seconds_bucket{method="GET",le="1"} 3',
      'x_seconds_bucket{method="GET",le="+Inf"} 4',
      'x_seconds_sum{method="GET"} 3.65',
      'x_seconds_count{method="GET"} 4',
      "# HELP x_unused_total Never set.",
      "# TYPE x_unused_total counter",
      "",
    ].join("\n"),
  );
  assert.equal(render([]), "");
});

Deno.test("metrics refuse bad names, labels and buckets", () => {
  assert.throws(() => new Counter({ name: "bad-name", help: "" }), /bad metric name/);
  assert.throws(() => new Gauge({ name: "g", help: "", labelNames: ["le"] }), /bad label/);
  assert.throws(() => new Gauge({ name: "g", help: "", labelNames: ["__x"] }), /bad label/);
  assert.throws(
    () => new Histogram({ name: "h", help: "", buckets: [1, 1] }),
    /must increase/,
  );
  const counter = new Counter({ name: "c", help: "", labelNames: ["a"] });
  assert.throws(() => counter.labels(), /takes 1 label values/);
});

Deno.test("IndexMetrics: requests by method and status, unknown methods as other", () => {
  const metrics = new IndexMetrics();
  metrics.request("GET", 302, 0.001);
  metrics.request("GET", 302, 0.002);
  metrics.request("GET", 404, 0.001);
  metrics.request("BREW", 405, 0.001);
  metrics.request("PATCH", 405, 0.001);
  metrics.writeStarted();
  metrics.bodyReceived(10);
  metrics.bodyReceived(5);
  metrics.commit(0.003);
  metrics.setVolumes([
    { host: "a:1", health: "up", probeSeconds: 0.002, errors: 0 },
    { host: "b:2", health: "down", probeSeconds: 1, errors: 7 },
  ]);
  const text = metrics.render();
  assert.match(text, /^mkv_requests_total\{method="GET",status="302"\} 2$/m);
  assert.match(text, /^mkv_requests_total\{method="GET",status="404"\} 1$/m);
  assert.match(text, /^mkv_requests_total\{method="other",status="405"\} 2$/m);
  assert.match(text, /^mkv_request_duration_seconds_count\{method="GET"\} 3$/m);
  assert.match(text, /^mkv_request_duration_seconds_count\{method="other"\} 2$/m);
  assert.match(text, /^mkv_request_body_bytes_total 15$/m);
  assert.match(text, /^mkv_writes_in_progress 1$/m);
  assert.match(text, /^mkv_kv_commit_seconds_count 1$/m);
  assert.match(text, /^mkv_volume_up\{volume="a:1"\} 1$/m);
  assert.match(text, /^mkv_volume_up\{volume="b:2"\} 0$/m);
  assert.match(text, /^mkv_volume_errors_total\{volume="b:2"\} 7$/m);
  assert.match(text, /^mkv_volume_probe_seconds\{volume="b:2"\} 1$/m);
  metrics.setVolumes([{ host: "a:1", health: "up", probeSeconds: 0.002, errors: 0 }]);
  assert.doesNotMatch(metrics.render(), /b:2/, "a volume no longer known is dropped");
  assert.ok(parseExposition(text).families.length > 0);
  assert.deepEqual(metrics.totals(), { requests: 5, seconds: 0.006, serverErrors: 0 });
});

Deno.test("IndexMetrics: the store's figures, volumes' own figures, the running operation", () => {
  const metrics = new IndexMetrics();
  metrics.setStore({ ...NO_STATS, liveKeys: 3, liveBytes: 300, unlinkedKeys: 1, pending: 2 });
  metrics.setVolumes([{
    host: "a:1",
    health: "up",
    probeSeconds: 0.001,
    errors: 0,
    disk: { freeBytes: 250, totalBytes: 1000, timeMs: 1 },
    nginx: { active: 2, accepts: 9, handled: 9, requests: 40, reading: 0, writing: 1, waiting: 1 },
  }, { host: "b:2", health: "down", probeSeconds: 1, errors: 1 }]);
  metrics.setOperation({
    command: "verify",
    startedMs: 1_700_000_000_000,
    done: 40,
    total: 100,
    unit: "keys",
    counts: { ok: 39, missing: 1 },
    problems: 1,
  });
  metrics.bodySent(123);
  let families = parseExposition(metrics.render());
  assert.equal(valueOf(families, "mkv_keys", { state: "live" }), 3);
  assert.equal(valueOf(families, "mkv_keys", { state: "unlinked" }), 1);
  assert.equal(valueOf(families, "mkv_bytes", { state: "live" }), 300);
  assert.equal(valueOf(families, "mkv_pending_records"), 2);
  assert.equal(valueOf(families, "mkv_response_body_bytes_total"), 123);
  assert.equal(valueOf(families, "mkv_volume_free_bytes", { volume: "a:1" }), 250);
  assert.equal(valueOf(families, "mkv_volume_size_bytes", { volume: "a:1" }), 1000);
  assert.equal(valueOf(families, "mkv_volume_requests_total", { volume: "a:1" }), 40);
  assert.equal(valueOf(families, "mkv_volume_connections", { volume: "a:1" }), 2);
  assert.equal(seriesOf(families, "mkv_volume_free_bytes").length, 1, "none without figures");
  assert.equal(valueOf(families, "mkv_operation_running", { operation: "verify" }), 1);
  assert.equal(valueOf(families, "mkv_operation_running", { operation: "gc" }), 0);
  assert.equal(valueOf(families, "mkv_operation_done", { operation: "verify", unit: "keys" }), 40);
  assert.equal(valueOf(families, "mkv_operation_size", { operation: "verify", unit: "keys" }), 100);
  assert.equal(valueOf(families, "mkv_operation_problems", { operation: "verify" }), 1);
  assert.equal(
    valueOf(families, "mkv_operation_start_time_seconds", { operation: "verify" }),
    1_700_000_000,
  );
  metrics.setOperation(null);
  families = parseExposition(metrics.render());
  assert.equal(valueOf(families, "mkv_operation_running", { operation: "verify" }), 0);
  assert.equal(seriesOf(families, "mkv_operation_done").length, 0);
});

Deno.test("--metrics=false parses; metrics are on by default", () => {
  const base = ["server", "--db", "/tmp/i", "--volumes", "localhost:3001", "--replicas", "1"];
  const off = parseIndexArgs([...base, "--metrics=false"]);
  assert.ok(off !== "help");
  assert.equal(off.metrics, false);
  const on = parseIndexArgs(base);
  assert.ok(on !== "help");
  assert.equal(on.metrics, undefined);
});

Deno.test("requiredRight: the index's own pages need admin whatever the method", () => {
  assert.equal(requiredRight("GET", "admin"), "admin");
  assert.equal(requiredRight("HEAD", "admin"), "admin");
});

/** The series of a family in an exposition. */
function seriesOf(exposition: Exposition, name: string): Family["metrics"] {
  return exposition.families.find((family) => family.name === name)?.metrics ?? [];
}
