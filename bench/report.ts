// The bench's Markdown report: a heading with the conditions of the run, the table (table.ts), and
// the notes under it (every round's figures, the cores each load kept busy, what the runs reported
// besides). Pure.

import {
  type BenchResult,
  coresBusy,
  type Cost,
  cpuPerRequestUs,
  MIB,
  type ServerFigures,
} from "./figures.ts";
import { microseconds, seconds, sizeName, thousands } from "./format.ts";
import { tableRows } from "./table.ts";

/** The cores a server kept busy per load, for the notes: `missing 1.10 (JS thread 0.85), ...`. */
function coresNote(figures: ServerFigures): string | null {
  const loads: [string, Cost][] = [
    ["fetch missing", figures.cost.missing],
    ["fetch random", figures.cost.random],
    ["fetch present", figures.cost.present],
    ["thrash", figures.cost.thrash],
    ...figures.blobs.map((b): [string, Cost] => [`${sizeName(b.sizeBytes)} PUT`, b.cost.put]),
    ["big PUT", figures.cost.bigPut],
  ];
  const parts = loads.flatMap(([name, cost]) => {
    const cores = coresBusy(cost);
    if (cores === null) return [];
    // The JS thread's time per request (per MiB for the value loads) bounds one index process
    // however many cores it gets.
    const per = cost.bytes > 0
      ? { unit: "MiB", count: cost.bytes / MIB }
      : { unit: "request", count: cost.requests };
    const main = cost.mainThreadCpuSeconds === null || cost.wallSeconds === 0 || per.count === 0
      ? ""
      : ` (JS thread ${(cost.mainThreadCpuSeconds / cost.wallSeconds).toFixed(2)}, ` +
        `${microseconds(cost.mainThreadCpuSeconds / per.count * 1e6)} µs per ${per.unit})`;
    return [`${name} ${cores.toFixed(2)}${main}`];
  });
  return parts.length === 0 ? null : parts.join(", ");
}

/** The Markdown report: a heading with the conditions of the run, the table, the notes. */
export function renderMarkdown(result: BenchResult): string {
  const other = result.other;
  const head = other === null
    ? ["figure", "mkv.ts", "of ceiling", "minikeyvalue (reference)", "target", "met"]
    : ["figure", "mkv.ts", other.name, "ratio", "ratio is", "of ceiling", "target", "met"];
  const lines = [
    `# mkv.ts bench, ${result.date}${result.smoke ? " (smoke run: figures mean nothing)" : ""}`,
    "",
    `Server: ${result.mkv.url}${other === null ? "" : `; ${other.name}: ${other.url}`}. ` +
    `Machine: ${result.machine.cpus} cores, load average at start ` +
    `${result.machine.loadAverageAtStart}; Deno ${result.machine.deno}; commit ` +
    `${result.machine.commit}. The load generators share the cores with the servers.` +
    (other === null ? "" : " The servers were measured in alternating rounds."),
    "",
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
  ];
  for (const row of tableRows(result)) {
    const cells = other === null
      ? [row.figure, row.mkv, row.ofCeiling, row.reference, row.target, row.met]
      : [
        row.figure,
        row.mkv,
        row.other,
        row.ratio,
        row.better === null ? "—" : row.better === "higher" ? "ours / theirs" : "theirs / ours",
        row.ofCeiling,
        row.target,
        row.met,
      ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  lines.push("");
  if (other !== null) {
    lines.push(
      "Every ratio is turned so that above 1× mkv.ts is better: rates (req/s, cycles/s, MB/s) are " +
        "ours / theirs, costs (seconds, latency, CPU, memory) theirs / ours.",
    );
  }
  if (other !== null && result.otherFlags !== undefined) {
    lines.push(
      `${other.name} is a second index of the same code on the same volumes (its own --db and ` +
        `port, the same --replicas and --subvolumes), started with \`${
          result.otherFlags.join(" ")
        }\`.`,
    );
  }
  if (result.otherIsPeer) {
    lines.push(
      "Durability differs: minikeyvalue's LevelDB does not fsync, while mkv.ts answers 201/204 " +
        "only after the KV commit (fsync) that records the write.",
    );
  }
  if (other !== null) lines.push("");
  for (const figures of [result.mkv, other]) {
    if (figures === null) continue;
    const runs = figures.thrashRunSeconds.map(seconds).join(", ");
    lines.push(
      `- ${figures.name}: thrasher runs ${runs} per ${thousands(result.load.thrashCount)} cycles ` +
        `(process start included); wrk rounds (req/s) missing ` +
        `${figures.wrkRoundsRps.missing.map(thousands).join(", ")}, random ` +
        `${figures.wrkRoundsRps.random.map(thousands).join(", ")}, present ` +
        `${figures.wrkRoundsRps.present.map(thousands).join(", ")}` +
        figures.blobs.map((b) =>
          `; ${sizeName(b.sizeBytes)} rounds (MB/s) PUT ${
            b.roundsMBps.put.map((n) => n.toFixed(0)).join(", ")
          }, ` +
          `GET ${b.roundsMBps.get.map((n) => n.toFixed(0)).join(", ")}`
        ).join("") + ".",
    );
    const cores = coresNote(figures);
    if (cores !== null) {
      lines.push(`- ${figures.name}: cores busy (CPU s / wall s) of the index: ${cores}.`);
    }
    if (figures.bigRssBeforeMib !== null) {
      lines.push(
        `- ${figures.name}: index RSS before the big PUT: ${
          figures.bigRssBeforeMib.toFixed(0)
        } MiB.`,
      );
    }
    for (const note of figures.notes) lines.push(`- ${figures.name}: ${note}`);
  }
  const ceilingUs = cpuPerRequestUs(result.ceiling.cost);
  lines.push(
    `- ceiling: wrk rounds (req/s) ${result.ceiling.roundsRps.map(thousands).join(", ")}` +
      (ceilingUs === null ? "." : `; CPU per request ${ceilingUs.toFixed(1)} µs.`),
  );
  return lines.join("\n") + "\n";
}
