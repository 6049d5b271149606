// The index's health endpoints and Prometheus metrics on real clusters: `/-/health`, `/-/ready`,
// `/-/metrics`, with and without --credentials. The renderer's golden tests are in
// tests/unit/metrics_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnVolume } from "../../dev/cluster.ts";
import { put, request, tempDir, testCluster, waitFor } from "../helpers.ts";
import { parseExposition, valueOf } from "../exposition.ts";

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
