// The index's status page (`GET /-/status`) and its data (`GET /-/status.json`): volumes up, full
// or down with their fill level and errors, keys and bytes, request rate and latency over the last
// minutes, and the running operation. One HTML page with inline CSS and JS, no build step and no
// external assets. The current state is rendered into the HTML on the server, so that the page
// means something without JS (a terminal browser, `curl`); the page's JS polls the JSON and renders
// the same markup with the very same function (`renderState`, sent as its source), so there is one
// renderer. A small ring buffer of per-interval samples (StatusHistory) gives the sparklines.
// Rendering is pure; tested in tests/unit/status_test.ts, the page in headless Chromium.

import type { RequestTotals } from "./metrics.ts";
import type { OperationProgress } from "../ops/runner.ts";
import type { StoreStats } from "../core/mod.ts";
import type { VolumeStats } from "../volumes/mod.ts";

/** How often the history takes a sample. */
const SAMPLE_INTERVAL_MS = 2_000;
/** How often the page polls its data: a small JSON answer made from figures kept in memory. */
export const POLL_INTERVAL_MS = 1_000;
/** Samples kept: five minutes. */
export const SAMPLES_KEPT = 150;

/** One interval of the index's requests. */
export interface Sample {
  /** The end of the interval, in milliseconds since the epoch. */
  timeMs: number;
  requestsPerSecond: number;
  /** Mean time to answer in the interval, in milliseconds; 0 without requests. */
  latencyMs: number;
  serverErrorsPerSecond: number;
}

/** Everything the page shows; the JSON of `/-/status.json`. */
export interface StatusData {
  /** When this was taken, in milliseconds since the epoch. */
  timeMs: number;
  replicas: number;
  volumes: VolumeStats[];
  store: StoreStats;
  writesInProgress: number;
  /** Whether requests are measured (`--metrics`); without, there are no samples. */
  metrics: boolean;
  samples: Sample[];
  operation: OperationProgress | null;
  lastOperation: OperationProgress | null;
}

/** The samples of the last SAMPLES_KEPT intervals, oldest first, from running totals. */
export class StatusHistory {
  #samples: Sample[] = [];
  #previous: { totals: RequestTotals; timeMs: number } | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Takes a sample: what happened between the previous totals and these. */
  record(totals: RequestTotals, timeMs: number): void {
    const previous = this.#previous;
    this.#previous = { totals, timeMs };
    if (previous === null || timeMs <= previous.timeMs) return;
    const seconds = (timeMs - previous.timeMs) / 1000;
    const requests = totals.requests - previous.totals.requests;
    this.#samples.push({
      timeMs,
      requestsPerSecond: requests / seconds,
      latencyMs: requests > 0 ? ((totals.seconds - previous.totals.seconds) / requests) * 1000 : 0,
      serverErrorsPerSecond: (totals.serverErrors - previous.totals.serverErrors) / seconds,
    });
    if (this.#samples.length > SAMPLES_KEPT) this.#samples.shift();
  }

  samples(): Sample[] {
    return [...this.#samples];
  }

  /** Samples `read()` every SAMPLE_INTERVAL_MS until `stop()`. */
  start(read: () => RequestTotals): void {
    if (this.#timer !== undefined) return;
    this.record(read(), Date.now());
    this.#timer = setInterval(() => this.record(read(), Date.now()), SAMPLE_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * The page's changing part as HTML, from its data. Self-contained (no imports, no outer names):
 * the page's JS runs this very function's source. Every text from the data is escaped.
 */
export function renderState(data: StatusData): string {
  const esc = (text: unknown) =>
    String(text).replace(
      /[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
    );
  const bytes = (n: number) => {
    const units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i++;
    }
    return `${i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
  };
  const count = (n: number) => Math.round(n).toLocaleString("en-US");
  const rate = (n: number) => n >= 100 ? String(Math.round(n)) : n.toFixed(1);
  const duration = (ms: number) => {
    const s = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
  };
  const bar = (fraction: number, warn: boolean) =>
    `<span class="bar${warn ? " warn" : ""}" aria-hidden="true"><span style="width:${
      (Math.min(1, Math.max(0, fraction)) * 100).toFixed(1)
    }%"></span></span>`;
  const spark = (values: number[], label: string) => {
    const width = 300;
    const height = 40;
    if (values.length < 2) return `<svg class="spark" viewBox="0 0 ${width} ${height}"></svg>`;
    const max = Math.max(...values, 1e-9);
    const points = values.map((v, i) =>
      `${((i / (values.length - 1)) * width).toFixed(1)},${
        (height - 2 - (v / max) * (height - 4)).toFixed(1)
      }`
    ).join(" ");
    return `<svg class="spark" viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" ` +
      `role="img" aria-label="${esc(label)}"><polyline points="${points}"/></svg>`;
  };
  const chart = (label: string, values: number[], minutes: number) =>
    `<figure><figcaption>${esc(label)}, last ${minutes || "&lt;1"} min${
      values.length > 0 ? `, peak ${rate(Math.max(...values))}` : ""
    }</figcaption>${spark(values, label)}</figure>`;
  const stat = (label: string, value: string, detail = "") =>
    `<div class="stat"><div class="label">${esc(label)}</div><div class="value">${
      esc(value)
    }</div>${detail === "" ? "" : `<div class="detail">${esc(detail)}</div>`}</div>`;

  const up = data.volumes.filter((v) => v.health === "up").length;
  const full = data.volumes.filter((v) => v.health === "full").length;
  const last = data.samples[data.samples.length - 1];
  const parts: string[] = [];
  // A full volume answers reads and deletes: it counts towards readiness (see Server's /-/ready).
  const health = up === data.volumes.length
    ? "ok"
    : up + full >= data.replicas
    ? "degraded"
    : "down";
  const refused = full === 0
    ? "some writes get 503"
    : full + up === data.volumes.length
    ? "writes placed on a full volume get 507; delete to free space"
    : "some writes get 503 or 507";
  parts.push(
    `<p class="summary ${health}" id="summary">${up} of ${data.volumes.length} volumes up, ` +
      `${full > 0 ? `${full} full, ` : ""}${data.replicas} replicas needed: ${
        health === "ok"
          ? "all good"
          : health === "degraded"
          ? `degraded (reads work; ${refused})`
          : "NOT READY (writes fail)"
      }</p>`,
  );
  parts.push(
    `<section class="stats">${
      stat("keys", count(data.store.liveKeys), `${count(data.store.unlinkedKeys)} unlinked`) +
      stat("stored", bytes(data.store.liveBytes), `${bytes(data.store.unlinkedBytes)} unlinked`) +
      stat(
        "requests/s",
        data.metrics && last ? rate(last.requestsPerSecond) : "–",
        data.metrics ? `${last ? rate(last.serverErrorsPerSecond) : "0.0"} 5xx/s` : "metrics off",
      ) +
      stat(
        "latency",
        data.metrics && last ? `${last.latencyMs.toFixed(1)} ms` : "–",
        "mean per request",
      ) +
      stat(
        "writes",
        count(data.writesInProgress),
        `in progress; ${count(data.store.pending)} pending records`,
      )
    }</section>`,
  );
  if (data.metrics) {
    const spanMs = data.samples.length < 2 ? 0 : last.timeMs - data.samples[0].timeMs;
    const minutes = Math.round(spanMs / 60_000);
    parts.push(
      `<section class="charts">${
        chart("requests/s", data.samples.map((s) => s.requestsPerSecond), minutes)
      }${chart("latency (ms)", data.samples.map((s) => s.latencyMs), minutes)}</section>`,
    );
  }
  const rows = data.volumes.map((v) => {
    const disk = v.disk;
    const used = disk === undefined || disk.totalBytes === 0
      ? null
      : (disk.totalBytes - disk.freeBytes) / disk.totalBytes;
    const fill = used === null
      ? `<span class="muted">no figures</span>`
      : `${bar(used, used > 0.9)} ${Math.round(used * 100)}% · ${
        esc(bytes(disk!.freeBytes))
      } free of ${esc(bytes(disk!.totalBytes))}`;
    return `<tr data-volume="${esc(v.host)}" data-state="${v.health}">` +
      `<td class="host">${esc(v.host)}</td>` +
      `<td><span class="badge ${v.health}">${v.health}</span></td>` +
      `<td class="fill">${fill}</td>` +
      `<td class="num">${
        v.health !== "down" ? `${(v.probeSeconds * 1000).toFixed(1)} ms` : "–"
      }</td>` +
      `<td class="num${v.errors > 0 ? " bad" : ""}">${count(v.errors)}</td>` +
      `<td class="num">${v.nginx ? count(v.nginx.requests) : "–"}</td></tr>`;
  });
  parts.push(
    `<section><h2>Volumes</h2><div class="scroll"><table id="volumes"><thead><tr><th>volume</th>` +
      `<th>state</th><th>disk</th><th>probe</th><th>errors</th><th>requests</th></tr></thead>` +
      `<tbody>${rows.join("")}</tbody></table></div></section>`,
  );
  const operation = (op: OperationProgress, running: boolean) => {
    const fraction = op.total ? op.done / op.total : 0;
    const position = op.total === null
      ? `${count(op.done)} ${op.unit} (counting…)`
      : `${count(op.done)} / ${count(op.total)} ${op.unit} (${Math.floor(fraction * 100)}%)`;
    const counts = Object.entries(op.counts).filter(([, n]) => n > 0)
      .map(([name, n]) => `${name} ${count(n)}`).join(", ") || "nothing yet";
    const elapsed = (running ? data.timeMs : op.finishedMs!) - op.startedMs;
    return `<div class="operation" data-operation="${esc(op.command)}" data-running="${running}">` +
      `<p><strong>${esc(op.command)}</strong> ${
        running ? "running" : op.error ? `failed: ${esc(op.error)}` : "finished"
      } · ${esc(position)} · ${duration(elapsed)}${
        running ? "" : ` · ended ${esc(new Date(op.finishedMs!).toISOString())}`
      }</p>${running && op.total !== null ? bar(fraction, false) : ""}` +
      `<p class="detail">${esc(counts)}${
        op.problems > 0 ? ` · <span class="bad">problems: ${count(op.problems)}</span>` : ""
      }</p></div>`;
  };
  parts.push(
    `<section id="operation"><h2>Operation</h2>${
      data.operation
        ? operation(data.operation, true)
        : `<p class="muted">none running</p>${
          data.lastOperation ? `<h3>Last</h3>${operation(data.lastOperation, false)}` : ""
        }`
    }</section>`,
  );
  parts.push(
    `<p class="muted" id="updated">as of ${esc(new Date(data.timeMs).toISOString())}</p>`,
  );
  return parts.join("\n");
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #6a737d; --line: #d8dee4;
  --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --bar: #0969da; --card: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0; --line: #30363d;
  --ok: #3fb950; --bad: #f85149; --warn: #d29922; --bar: #4493f8; --card: #161b22; } }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  margin: 0 auto; padding: 12px 16px 32px; max-width: 1100px; }
h1 { font-size: 1.3em; margin: 4px 0 8px; } h2 { font-size: 1.05em; margin: 20px 0 8px; }
h3 { font-size: 0.95em; margin: 8px 0 4px; color: var(--muted); }
.summary { padding: 8px 12px; border-radius: 6px; border: 1px solid var(--line); margin: 8px 0; }
.summary.ok { border-color: var(--ok); } .summary.degraded { border-color: var(--warn); }
.summary.down { border-color: var(--bad); color: var(--bad); font-weight: 600; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 8px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.label, .detail, .muted, figcaption { color: var(--muted); font-size: 0.85em; }
.value { font-size: 1.5em; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 8px;
  margin-top: 8px; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 12px; }
.spark { width: 100%; height: 48px; display: block; }
.spark polyline { fill: none; stroke: var(--bar); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: 0.85em; }
td.num, th:nth-child(n+4) { text-align: right; }
td.fill { min-width: 220px; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 0.85em; font-weight: 600;
  color: #fff; }
.badge.up { background: var(--ok); } .badge.down { background: var(--bad); }
.badge.full { background: var(--warn); }
.bar { display: inline-block; vertical-align: middle; width: 110px; height: 10px; border-radius: 5px;
  background: var(--line); overflow: hidden; }
.bar > span { display: block; height: 100%; background: var(--bar); }
.bar.warn > span { background: var(--bad); }
.operation .bar { width: 100%; max-width: 480px; }
.operation p { margin: 4px 0; }
.bad { color: var(--bad); font-weight: 600; }
#live { font-size: 0.8em; color: var(--muted); margin-left: 8px; }
@media (max-width: 600px) { body { padding: 8px; font-size: 14px; } .value { font-size: 1.25em; }
  td.fill { min-width: 170px; } .bar { width: 70px; } }
`;

/** The page's JS: polls the JSON and renders it with `renderState`, whose source it is given. */
function pageScript(): string {
  return `"use strict";
const renderState = ${renderState.toString()};
const live = document.getElementById("live");
let failures = 0;
async function refresh() {
  try {
    const response = await fetch("/-/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error("status " + response.status);
    document.getElementById("state").innerHTML = renderState(await response.json());
    failures = 0;
    live.textContent = "live";
  } catch (err) {
    failures++;
    live.textContent = "not updating: " + err.message;
  }
}
setInterval(refresh, ${POLL_INTERVAL_MS});
`;
}

/**
 * The whole page with `data` rendered in. Without JS it is a snapshot (refreshed by a `noscript`
 * meta refresh); with JS it polls `/-/status.json`. Pure.
 */
export function renderStatusPage(data: StatusData): string {
  const title = "mkv.ts index";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="data:,">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<style>${STYLE}</style>
</head>
<body>
<h1>${title} status<span id="live"></span></h1>
<main id="state">
${renderState(data)}
</main>
<p class="muted">Metrics for Prometheus: <a href="/-/metrics">/-/metrics</a> · this page's data:
<a href="/-/status.json">/-/status.json</a></p>
<script>${pageScript()}</script>
</body>
</html>
`;
}
