// The index's health endpoints and Prometheus metrics: the renderer (lib/metrics.ts) against a
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
  IndexMetrics,
  render,
} from "../lib/metrics.ts";
import { requiredRight } from "../lib/auth.ts";
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
    { host: "a:1", up: true, probeSeconds: 0.002, errors: 0 },
    { host: "b:2", up: false, probeSeconds: 1, errors: 7 },
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
  metrics.setVolumes([{ host: "a:1", up: true, probeSeconds: 0.002, errors: 0 }]);
  assert.doesNotMatch(metrics.render(), /b:2/, "a volume no longer known is dropped");
  assert.ok(parseExposition(text).length > 0);
});

Deno.test("requiredRight: the index's own pages need admin whatever the method", () => {
  assert.equal(requiredRight("GET", "admin"), "admin");
  assert.equal(requiredRight("HEAD", "admin"), "admin");
});

/** A sample of the exposition format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

/**
 * Parses the text exposition format strictly: every line is a `# HELP`/`# TYPE` comment naming a
 * metric, or a sample `name{labels} value` of a metric whose TYPE came before it.
 */
function parseExposition(text: string): Sample[] {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.slice(0, -1).split("\n")) {
    const comment = line.match(/^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/);
    if (comment !== null) {
      if (comment[1] === "TYPE") {
        assert.match(comment[3], /^(counter|gauge|histogram|summary|untyped)$/);
        types.set(comment[2], comment[3]);
      }
      continue;
    }
    const match = line.match(SAMPLE);
    assert.ok(match !== null, `not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, valueText] = match;
    const family = name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(name) || types.get(family) === "histogram", `no TYPE for ${name}`);
    const value = valueText === "+Inf" ? Infinity : Number(valueText);
    assert.ok(!Number.isNaN(value) || valueText === "NaN", `bad value in ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (labelText ?? "").matchAll(LABEL_PAIR)) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
    }
    samples.push({ name, labels, value });
  }
  return samples;
}

/** The value of the one sample with this name and these labels (0 if absent). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((sample) =>
    sample.name === name &&
    Object.entries(labels).every(([label, value]) => sample.labels[label] === value)
  );
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value ?? 0;
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
