// The index's health endpoints and Prometheus metrics: the renderer (lib/http/metrics.ts) against a
// golden text, and `/-/health`, `/-/ready`, `/-/metrics` on real clusters, with and without
// --credentials.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Counter,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  Gauge,
  Histogram,
  render,
} from "../lib/http/_prometheus.ts";
import { IndexMetrics } from "../lib/http/metrics.ts";
import parsePrometheusTextFormat from "npm:parse-prometheus-text-format@1.1.1";
import { requiredRight } from "../lib/auth/auth.ts";
import { parseIndexArgs } from "../lib/config.ts";
import { NO_STATS } from "../lib/core/store.ts";
import { spawnVolume } from "../dev/cluster.ts";
import { put, request, tempDir, testCluster } from "./helpers.ts";

/** How long a condition polled for (a probe) may take to come true. */
const POLL_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 50;

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + POLL_TIMEOUT_MS;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

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

/** A metric family as the exposition parser gives it (values as text, as in the format). */
interface Family {
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
interface Exposition {
  text: string;
  families: Family[];
}

function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  return { text, families: parsePrometheusTextFormat(text) as Family[] };
}

/**
 * One series of a histogram, parsed alone with its labels taken off: the parser (1.1.1) merges
 * the series of a labelled histogram into one, so each is given to it by itself.
 */
function histogramSeries(
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
function valueOf(
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

/** The series of a family in an exposition. */
function seriesOf(exposition: Exposition, name: string): Family["metrics"] {
  return exposition.families.find((family) => family.name === name)?.metrics ?? [];
}

Deno.test("a cluster: /-/health, /-/ready, /-/metrics after PUT/GET/DELETE, a volume down", async (t) => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "3"] });
  const base = `http://localhost:${cluster.index.port}`;
  const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);

  await t.step("health and ready", async () => {
    const health = await request(`${base}/-/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body, "ok\n");
    const ready = await request(`${base}/-/ready`);
    assert.equal(ready.status, 200);
    assert.equal(ready.body, "ready: 3 of 3 volumes up, 3 replicas needed\n");
    assert.equal((await request(`${base}/-/health`, { method: "HEAD" })).status, 200);
  });

  await t.step("keys under /-/ cannot be written or deleted", async () => {
    for (const method of ["PUT", "DELETE", "UNLINK"]) {
      for (const path of ["/-/health", "/-/mine", "/%2D/mine"]) {
        const answer = await request(`${base}${path}`, {
          method,
          body: method === "PUT" ? "value" : undefined,
        });
        assert.equal(answer.status, 400, `${method} ${path}`);
        assert.match(answer.body, /^keys under \/-\/ are reserved for the index's endpoints/);
      }
    }
    assert.equal((await request(`${base}/-/mine`)).status, 404, "other GETs are keys' GETs");
    assert.equal((await request(`${base}/-/metrics?x`)).status, 400);
  });

  await t.step("metrics count requests by method and status; every volume up", async () => {
    const before = parseExposition((await request(`${base}/-/metrics`)).body);
    for (const key of ["/m/1", "/m/2", "/m/3"]) assert.equal(await put(base, key, "12345"), 201);
    assert.equal(await put(base, "/m/1", "again"), 403);
    assert.equal((await request(`${base}/m/1`)).status, 302);
    assert.equal((await request(`${base}/m/2`)).status, 302);
    assert.equal((await request(`${base}/m/absent`)).status, 404);
    assert.equal((await request(`${base}/m/3`, { method: "DELETE" })).status, 204);
    const answer = await request(`${base}/-/metrics`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const after = parseExposition(answer.body);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      valueOf(after, name, labels) - valueOf(before, name, labels);
    const requests = "mkv_requests_total";
    assert.equal(valueOf(after, requests, { method: "PUT", status: "201" }), 3, "exactly 3");
    assert.equal(delta(requests, { method: "PUT", status: "201" }), 3);
    assert.equal(delta(requests, { method: "PUT", status: "403" }), 1);
    assert.equal(delta(requests, { method: "GET", status: "302" }), 2);
    assert.equal(delta(requests, { method: "GET", status: "404" }), 1);
    assert.equal(delta(requests, { method: "DELETE", status: "204" }), 1);
    assert.equal(delta("mkv_request_duration_seconds_count", { method: "PUT" }), 4);
    assert.equal(
      valueOf(after, "mkv_request_duration_seconds_bucket", { method: "PUT", le: "+Inf" }),
      valueOf(after, "mkv_request_duration_seconds_count", { method: "PUT" }),
    );
    assert.equal(delta("mkv_request_body_bytes_total"), 15);
    assert.equal(valueOf(after, "mkv_writes_in_progress"), 0);
    assert.ok(delta("mkv_kv_commit_seconds_count") >= 2, "each PUT commits twice at least");
    for (const host of hosts) {
      assert.equal(valueOf(after, "mkv_volume_up", { volume: host }), 1, host);
      assert.equal(valueOf(after, "mkv_volume_errors_total", { volume: host }), 0, host);
      const probe = valueOf(after, "mkv_volume_probe_seconds", { volume: host });
      assert.ok(probe > 0 && probe < 5, `${host} probe ${probe}`);
    }
  });

  await t.step("keys and bytes stored follow PUT, UNLINK and DELETE", async () => {
    // Now: /m/1 and /m/2 live, 5 bytes each (/m/3 was deleted).
    const figures = async () => parseExposition((await request(`${base}/-/metrics`)).body);
    // A DELETE's files are removed just after its 204: its record is pending until then.
    let samples = await figures();
    await waitFor("the last DELETE's removal", async () => {
      samples = await figures();
      return valueOf(samples, "mkv_pending_records") === 0;
    });
    assert.equal(valueOf(samples, "mkv_keys", { state: "live" }), 2);
    assert.equal(valueOf(samples, "mkv_bytes", { state: "live" }), 10);
    assert.equal(valueOf(samples, "mkv_keys", { state: "unlinked" }), 0);
    assert.equal(await put(base, "/m/big", "x".repeat(1000)), 201);
    assert.equal((await request(`${base}/m/1`, { method: "UNLINK" })).status, 204);
    samples = await figures();
    assert.equal(valueOf(samples, "mkv_keys", { state: "live" }), 2);
    assert.equal(valueOf(samples, "mkv_bytes", { state: "live" }), 1005);
    assert.equal(valueOf(samples, "mkv_keys", { state: "unlinked" }), 1);
    assert.equal(valueOf(samples, "mkv_bytes", { state: "unlinked" }), 5);
    for (const key of ["/m/1", "/m/2", "/m/big"]) {
      assert.equal((await request(`${base}${key}`, { method: "DELETE" })).status, 204);
    }
    samples = await figures();
    for (const state of ["live", "unlinked"]) {
      assert.equal(valueOf(samples, "mkv_keys", { state }), 0, state);
      assert.equal(valueOf(samples, "mkv_bytes", { state }), 0, state);
    }
    assert.equal(valueOf(samples, "mkv_operation_running", { operation: "verify" }), 0);
  });

  await t.step("each volume's own figures: disk space and nginx's requests", async () => {
    let samples = parseExposition((await request(`${base}/-/metrics`)).body);
    await waitFor("the volumes' figures", async () => {
      samples = parseExposition((await request(`${base}/-/metrics`)).body);
      return hosts.every((host) => valueOf(samples, "mkv_volume_size_bytes", { volume: host }) > 0);
    });
    for (const host of hosts) {
      const free = valueOf(samples, "mkv_volume_free_bytes", { volume: host });
      const size = valueOf(samples, "mkv_volume_size_bytes", { volume: host });
      assert.ok(free > 0 && free <= size, `${host}: ${free} free of ${size}`);
      assert.ok(valueOf(samples, "mkv_volume_requests_total", { volume: host }) > 0, host);
    }
  });

  await t.step("a stopped volume: ready 503 naming it, up 0, errors counted", async () => {
    await cluster.volumes[0].stop();
    await waitFor("the index to see the volume down", async () => {
      return (await request(`${base}/-/ready`)).status === 503;
    });
    const ready = await request(`${base}/-/ready`);
    assert.equal(
      ready.body,
      `not ready: 2 of 3 volumes up, 3 replicas needed; down: ${hosts[0]}\n`,
    );
    assert.equal((await request(`${base}/-/health`)).status, 200, "the index itself is fine");
    const samples = parseExposition((await request(`${base}/-/metrics`)).body);
    assert.equal(valueOf(samples, "mkv_volume_up", { volume: hosts[0] }), 0);
    assert.equal(valueOf(samples, "mkv_volume_up", { volume: hosts[1] }), 1);
    assert.ok(valueOf(samples, "mkv_volume_errors_total", { volume: hosts[0] }) >= 1);
  });

  await t.step("the volume restarted: ready again, up 1", async () => {
    await using _volume = await spawnVolume({
      port: cluster.volumes[0].port,
      dir: join(cluster.dir, "volume1"),
    });
    await waitFor("the index to see the volume up", async () => {
      return (await request(`${base}/-/ready`)).status === 200;
    });
    const samples = parseExposition((await request(`${base}/-/metrics`)).body);
    assert.equal(valueOf(samples, "mkv_volume_up", { volume: hosts[0] }), 1);
  });
});

Deno.test("--replicas 2: ready while one of three volumes is down", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "2"] });
  const base = `http://localhost:${cluster.index.port}`;
  const down = `localhost:${cluster.volumes[2].port}`;
  await cluster.volumes[2].stop();
  await waitFor("the index to see the volume down", async () => {
    return (await request(`${base}/-/ready`)).body.includes("down:");
  });
  const ready = await request(`${base}/-/ready`);
  assert.equal(ready.status, 200);
  assert.equal(ready.body, `ready: 2 of 3 volumes up, 2 replicas needed; down: ${down}\n`);
});

Deno.test("--credentials: /-/metrics needs admin; /-/health and /-/ready stay open", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "credentials");
  await Deno.writeTextFile(file, "admin SECRETSECRET all\nreader READREADREAD read,list\n");
  await Deno.chmod(file, 0o600);
  await using cluster = await testCluster({
    indexArgs: ["--replicas", "1", "--credentials", file],
  });
  const base = `http://localhost:${cluster.index.port}`;
  const basic = (pair: string) => ({ authorization: `Basic ${btoa(pair)}` });
  assert.equal((await request(`${base}/-/health`)).status, 200);
  assert.equal((await request(`${base}/-/ready`)).status, 200);
  const anonymous = await request(`${base}/-/metrics`);
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers.get("www-authenticate"), 'Basic realm="mkv"');
  const wrong = await request(`${base}/-/metrics`, { headers: basic("admin:WRONG") });
  assert.equal(wrong.status, 401);
  const reader = await request(`${base}/-/metrics`, { headers: basic("reader:READREADREAD") });
  assert.equal(reader.status, 403);
  assert.match(reader.body, /may not admin/);
  const admin = await request(`${base}/-/metrics`, { headers: basic("admin:SECRETSECRET") });
  assert.equal(admin.status, 200);
  for (const page of ["/-/status", "/-/status.json"]) {
    assert.equal((await request(`${base}${page}`)).status, 401, page);
    const asReader = await request(`${base}${page}`, { headers: basic("reader:READREADREAD") });
    assert.equal(asReader.status, 403, page);
    const asAdmin = await request(`${base}${page}`, { headers: basic("admin:SECRETSECRET") });
    assert.equal(asAdmin.status, 200, page);
  }
  const samples = parseExposition(admin.body);
  assert.equal(valueOf(samples, "mkv_requests_total", { method: "GET", status: "401" }), 2);
  assert.equal(valueOf(samples, "mkv_requests_total", { method: "GET", status: "403" }), 1);
  const put = await request(`${base}/-/x`, {
    method: "PUT",
    body: "v",
    headers: basic("admin:SECRETSECRET"),
  });
  assert.equal(put.status, 400);
});

Deno.test("--metrics=false: /-/metrics answers 404; the status page still shows the volumes", async () => {
  await using cluster = await testCluster({ indexArgs: ["--replicas", "1", "--metrics=false"] });
  const base = `http://localhost:${cluster.index.port}`;
  assert.equal(await put(base, "/k", "value"), 201);
  const metrics = await request(`${base}/-/metrics`);
  assert.equal(metrics.status, 404);
  assert.equal(metrics.body, "metrics are off (--metrics=false)\n");
  const status = await request(`${base}/-/status.json`);
  assert.equal(status.status, 200);
  const data = JSON.parse(status.body);
  assert.equal(data.metrics, false);
  assert.deepEqual(data.samples, []);
  assert.equal(data.store.liveKeys, 1, "keys are counted by the store, metrics or not");
  assert.equal(data.volumes.length, 3);
});
