// The status page's pure parts (lib/http/status.ts), the volumes' own figures
// (lib/volumes/statusvolume.ts) and the event log's lines (lib/events.ts), against golden values.
// The page in a real browser on a real cluster is in tests/cluster/status_test.ts.

import assert from "node:assert/strict";
import { eventRecord } from "../../lib/events.ts";
import { NO_STATS } from "../../lib/core/store.ts";
import {
  renderState,
  renderStatusPage,
  SAMPLES_KEPT,
  type StatusData,
  StatusHistory,
} from "../../lib/http/status.ts";
import {
  encodeDiskFigures,
  parseDiskFigures,
  parseStubStatus,
} from "../../lib/volumes/statusvolume.ts";
import { readDiskFigures } from "../../lib/nginx/diskreport.ts";
import { ROOT } from "../helpers.ts";

Deno.test("parseStubStatus: nginx's stub_status text (golden)", () => {
  const text = "Active connections: 3 \nserver accepts handled requests\n 17 17 42 \n" +
    "Reading: 0 Writing: 1 Waiting: 2 \n";
  assert.deepEqual(parseStubStatus(text), {
    active: 3,
    accepts: 17,
    handled: 17,
    requests: 42,
    reading: 0,
    writing: 1,
    waiting: 2,
  });
  assert.equal(parseStubStatus("<html>404 Not Found</html>"), null);
  assert.equal(parseStubStatus(""), null);
});

Deno.test("disk figures: encoded as JSON, read back, refused when malformed", async () => {
  const figures = { freeBytes: 100, totalBytes: 1000, timeMs: 1_700_000_000_000 };
  assert.equal(
    encodeDiskFigures(figures),
    '{"freeBytes":100,"totalBytes":1000,"timeMs":1700000000000}\n',
  );
  assert.deepEqual(parseDiskFigures(encodeDiskFigures(figures)), figures);
  for (const bad of ["", "null", "[]", '{"freeBytes":-1,"totalBytes":1,"timeMs":1}', "{"]) {
    assert.equal(parseDiskFigures(bad), null, bad);
  }
  assert.equal(parseDiskFigures('{"freeBytes":1.5,"totalBytes":2,"timeMs":1}'), null);
  const here = await readDiskFigures(ROOT);
  assert.ok(here.totalBytes > 0 && here.freeBytes <= here.totalBytes, JSON.stringify(here));
});

Deno.test("eventRecord: one JSON line with time, event, msg and the fields (golden)", () => {
  assert.equal(
    eventRecord("volume_down", {
      msg: 'volume a:1: marked down: probe failed: "x"',
      volume: "a:1",
      reason: "probe failed",
      absent: undefined,
    }, Date.UTC(2026, 0, 2, 3, 4, 5, 6)),
    '{"time":"2026-01-02T03:04:05.006Z","event":"volume_down",' +
      '"msg":"volume a:1: marked down: probe failed: \\"x\\"","volume":"a:1",' +
      '"reason":"probe failed"}\n',
  );
});

Deno.test("StatusHistory: rates and mean latency per interval, the last SAMPLES_KEPT kept", () => {
  const history = new StatusHistory();
  history.record({ requests: 0, seconds: 0, serverErrors: 0 }, 10_000);
  assert.deepEqual(history.samples(), [], "the first totals only set the start");
  history.record({ requests: 20, seconds: 0.1, serverErrors: 2 }, 12_000);
  history.record({ requests: 20, seconds: 0.1, serverErrors: 2 }, 14_000);
  assert.deepEqual(history.samples(), [
    { timeMs: 12_000, requestsPerSecond: 10, latencyMs: 5, serverErrorsPerSecond: 1 },
    { timeMs: 14_000, requestsPerSecond: 0, latencyMs: 0, serverErrorsPerSecond: 0 },
  ]);
  for (let i = 0; i < SAMPLES_KEPT + 10; i++) {
    history.record({ requests: 20 + i, seconds: 1, serverErrors: 2 }, 16_000 + i * 2000);
  }
  const samples = history.samples();
  assert.equal(samples.length, SAMPLES_KEPT);
  assert.equal(samples[samples.length - 1].timeMs, 16_000 + (SAMPLES_KEPT + 9) * 2000);
});

/** Data for the renderer: two volumes (one down), a running verify, some samples. */
function sampleData(): StatusData {
  return {
    timeMs: Date.UTC(2026, 0, 1, 12, 0, 30),
    replicas: 2,
    volumes: [
      {
        host: "a:1",
        health: "up",
        probeSeconds: 0.0012,
        errors: 0,
        disk: { freeBytes: 250e9, totalBytes: 1000e9, timeMs: 1 },
        nginx: {
          active: 1,
          accepts: 5,
          handled: 5,
          requests: 1234,
          reading: 0,
          writing: 1,
          waiting: 0,
        },
      },
      { host: '<b onmouseover="x">:2', health: "down", probeSeconds: 1, errors: 3 },
    ],
    store: { ...NO_STATS, liveKeys: 12345, liveBytes: 5_600_000, unlinkedKeys: 2, pending: 1 },
    writesInProgress: 0,
    metrics: true,
    samples: [
      { timeMs: 1000, requestsPerSecond: 10, latencyMs: 2, serverErrorsPerSecond: 0 },
      { timeMs: 3000, requestsPerSecond: 30, latencyMs: 4, serverErrorsPerSecond: 0 },
    ],
    operation: {
      command: "verify",
      startedMs: Date.UTC(2026, 0, 1, 12, 0, 0),
      done: 250,
      total: 1000,
      unit: "keys",
      counts: { ok: 249, missing: 1 },
      problems: 1,
    },
    lastOperation: null,
  };
}

Deno.test("renderState: a full volume counts towards ready and is shown full, not down", () => {
  const data = sampleData();
  const fullOne = { ...data.volumes[1], host: "b:2", health: "full" as const, probeSeconds: 0.002 };
  const html = renderState({ ...data, volumes: [data.volumes[0], fullOne] });
  assert.match(
    html,
    /class="summary degraded" id="summary">1 of 2 volumes up, 1 full, 2 replicas needed: degraded \(reads work; writes placed on a full volume get 507; delete to free space\)/,
  );
  assert.match(
    html,
    /<tr data-volume="b:2" data-state="full"><td class="host">b:2<\/td><td><span class="badge full">full<\/span>/,
  );
  assert.match(html, /2\.0 ms/);
});

Deno.test("renderState: volumes, fill, keys, the operation's progress; every text escaped", () => {
  const html = renderState(sampleData());
  assert.match(html, /1 of 2 volumes up, 2 replicas needed: NOT READY/);
  assert.match(html, /<tr data-volume="a:1" data-state="up">/);
  assert.match(html, /75% · 250 GB free of 1\.0 TB/);
  assert.match(html, /data-state="down">/);
  assert.ok(!html.includes("<b onmouseover"), "a volume's name is escaped");
  assert.match(html, /&lt;b onmouseover=&quot;x&quot;&gt;:2/);
  assert.match(html, /12,345/);
  assert.match(html, /5\.6 MB/);
  assert.match(html, /<strong>verify<\/strong> running · 250 \/ 1,000 keys \(25%\) · 0:30/);
  assert.match(html, /ok 249, missing 1/);
  assert.match(html, /problems: 1/);
  assert.match(html, /requests\/s, last &lt;1 min, peak 30\.0<\/figcaption><svg/);
  assert.match(html, /<polyline points="0\.0,26\.0 300\.0,2\.0"\/>/);
  const idle = renderState({
    ...sampleData(),
    operation: null,
    lastOperation: { ...sampleData().operation!, finishedMs: Date.UTC(2026, 0, 1, 12, 1, 0) },
  });
  assert.match(idle, /none running/);
  assert.match(idle, /<strong>verify<\/strong> finished · 250 \/ 1,000 keys/);
});

Deno.test("renderStatusPage: a whole page whose script runs the same renderer", () => {
  const page = renderStatusPage(sampleData());
  assert.match(page, /^<!doctype html>/);
  assert.match(page, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  assert.ok(page.includes(renderState(sampleData())), "the state is rendered in, for no-JS");
  assert.doesNotMatch(page, /<(script|link|img)[^>]+(src|href)="https?:/, "no external assets");
  const script = page.slice(page.indexOf("<script>") + 8, page.lastIndexOf("</script>"));
  assert.doesNotMatch(script, /<\/script/i);
  // The script compiles (it runs in the browser test).
  new Function(script);
});
