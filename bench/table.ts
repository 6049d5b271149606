// The rows of the bench's table, one per figure: mkv.ts's figure, the second server's and their
// ratio, the share of the ceiling, minikeyvalue's reference figure, the target and whether it is
// met. Pure; report.ts lays them out.

import { OPERATIONS } from "../thrasher.ts";
import {
  advantage,
  type BenchResult,
  type Better,
  cpuPerMibUs,
  cpuPerRequestUs,
  MIB,
  PEER_TARGETS,
  REFERENCE,
  REPLICAS,
  type ServerFigures,
  TAIL_TARGETS,
  tailMet,
  TARGETS,
} from "./figures.ts";
import {
  latencyParts,
  ms,
  orDash,
  percent,
  seconds,
  sizeName,
  thousands,
  times,
  yesNo,
} from "./format.ts";

/** One row of the table. */
export interface Row {
  figure: string;
  mkv: string;
  other: string;
  ratio: string;
  better: Better | null;
  ofCeiling: string;
  reference: string;
  target: string;
  met: string;
}

/** The rows of the table, one per figure. */
export function tableRows(result: BenchResult): Row[] {
  const { mkv, other, ceiling, load } = result;
  const peer = other !== null && result.otherIsPeer;
  const ref = REFERENCE;
  const rows: Row[] = [];
  const blank = {
    other: "—",
    ratio: "—",
    better: null,
    ofCeiling: "—",
    reference: "—",
    target: "—",
    met: "—",
  };
  /** A row of one number per server, with its ratio. */
  const single = (
    figure: string,
    pick: (figures: ServerFigures) => number | null,
    format: (n: number) => string,
    better: Better,
    extra: Partial<Row> = {},
  ) => {
    const ours = pick(mkv);
    const theirs = other === null ? null : pick(other);
    rows.push({
      ...blank,
      figure,
      mkv: orDash(ours, format),
      other: orDash(theirs, format),
      ratio: times(advantage(ours, theirs, better)),
      better,
      ...extra,
    });
  };
  /** A row of several numbers per server (`a / b / c`), with a ratio for each. */
  const parts = (
    figure: string,
    pick: (figures: ServerFigures) => (number | null)[] | null,
    format: (n: number) => string,
    better: Better,
    extra: Partial<Row> = {},
  ) => {
    const ours = pick(mkv);
    const theirs = other === null ? null : pick(other);
    const join = (values: (number | null)[] | null) =>
      values === null ? "—" : values.map((v) => orDash(v, format)).join(" / ");
    rows.push({
      ...blank,
      figure,
      mkv: join(ours),
      other: join(theirs),
      ratio: ours === null || theirs === null
        ? "—"
        : ours.map((v, i) => times(advantage(v, theirs[i], better))).join(" / "),
      better,
      ...extra,
    });
  };
  const ratioTarget = (
    pick: (figures: ServerFigures) => number | null,
    better: Better,
    target: number,
  ): Partial<Row> => {
    if (!peer) return {};
    const ratio = advantage(pick(mkv), pick(other!), better);
    return {
      target: `≥ ${target.toFixed(1)}×`,
      met: ratio === null ? "—" : yesNo(ratio >= target),
    };
  };
  const wrk = `wrk -t${load.wrkThreads} -c${load.wrkConnections} -d${load.wrkSeconds}s, ` +
    `best of ${load.wrkRounds}`;

  rows.push({
    ...blank,
    figure: `ceiling: bare Deno.serve 404, ${wrk} (req/s)`,
    mkv: thousands(ceiling.rps),
    ofCeiling: "100%",
    reference: `${thousands(ref.ceilingRps)} (bare Deno)`,
  });
  single(`fetch missing key, ${wrk} (req/s)`, (f) => f.missingRps, thousands, "higher", {
    ofCeiling: percent(mkv.missingRps / ceiling.rps),
    reference: `${thousands(ref.missingRps)} (${percent(ref.missingRps / ref.ceilingRps)})`,
    ...(peer ? ratioTarget((f) => f.missingRps, "higher", PEER_TARGETS.missing) : {
      target: `≥ ${percent(TARGETS.missingShareOfCeiling)} of ceiling`,
      met: yesNo(mkv.missingRps >= TARGETS.missingShareOfCeiling * ceiling.rps),
    }),
  });
  single(
    `fetch present keys at random of ${thousands(load.randomKeys)} (302), ${wrk} (req/s)`,
    (f) => f.randomRps,
    thousands,
    "higher",
    {
      ofCeiling: percent(mkv.randomRps / ceiling.rps),
      reference: `${thousands(ref.presentRps)} (${percent(ref.presentRps / ref.ceilingRps)})`,
      ...(peer ? ratioTarget((f) => f.randomRps, "higher", PEER_TARGETS.random) : {
        target: `≥ ${percent(TARGETS.presentShareOfCeiling)} of ceiling`,
        met: yesNo(mkv.randomRps >= TARGETS.presentShareOfCeiling * ceiling.rps),
      }),
    },
  );
  single(
    `fetch one present key, hot (302), ${wrk} (req/s)`,
    (f) => f.presentRps,
    thousands,
    "higher",
    {
      ofCeiling: percent(mkv.presentRps / ceiling.rps),
      reference: `${thousands(ref.presentRps)} (${percent(ref.presentRps / ref.ceilingRps)})`,
      ...(peer ? ratioTarget((f) => f.presentRps, "higher", PEER_TARGETS.present) : {
        target: `≥ ${percent(TARGETS.presentShareOfCeiling)} of ceiling`,
        met: yesNo(mkv.presentRps >= TARGETS.presentShareOfCeiling * ceiling.rps),
      }),
    },
  );
  const us = (n: number) => n.toFixed(1);
  single(
    "index CPU per request, fetch missing (µs)",
    (f) => cpuPerRequestUs(f.cost.missing),
    us,
    "lower",
  );
  single(
    "index CPU per request, fetch random (µs)",
    (f) => cpuPerRequestUs(f.cost.random),
    us,
    "lower",
  );
  single(
    "index CPU per request, fetch present (µs)",
    (f) => cpuPerRequestUs(f.cost.present),
    us,
    "lower",
  );

  const thrash = `thrasher: ${thousands(load.thrashCount)} × (PUT, GET, DELETE), ` +
    `${load.thrashConcurrency} workers, ${load.thrashRuns} runs`;
  single(`${thrash} (cycles/s)`, (f) => f.thrashCyclesPerSecond, thousands, "higher", {
    reference: thousands(ref.thrashCyclesPerSecond),
    ...(peer ? ratioTarget((f) => f.thrashCyclesPerSecond, "higher", PEER_TARGETS.thrash) : {
      target: `≥ ${thousands(TARGETS.thrashCyclesPerSecond)}`,
      met: yesNo(mkv.thrashCyclesPerSecond >= TARGETS.thrashCyclesPerSecond),
    }),
  });
  for (const op of OPERATIONS) {
    const write = op !== "GET";
    parts(
      `thrash ${op} latency p50 / p99 / p99.9 / max (ms)`,
      (f) => latencyParts(f.thrashLatency[op]),
      ms,
      "lower",
      write
        ? {
          target: `max ≤ ${TAIL_TARGETS.maxMs}, p99.9 ≤ ${TAIL_TARGETS.p999OverP99}× p99`,
          met: yesNo(tailMet(mkv.thrashLatency[op])),
        }
        : {},
    );
  }
  single(
    "index CPU per thrash cycle (µs)",
    (f) => {
      const perRequest = cpuPerRequestUs(f.cost.thrash);
      return perRequest === null ? null : perRequest * 3;
    },
    (n) => thousands(n),
    "lower",
  );

  const clients = `${load.blobConcurrency} clients`;
  load.blobs.forEach((blob, i) => {
    const size = sizeName(blob.sizeBytes);
    const mb = (n: number) => n.toFixed(0);
    const isMib = blob.sizeBytes === MIB;
    single(
      `${size} values ×${blob.count}, ${clients}: PUT (MB/s, best of ${load.blobRounds})`,
      (f) => f.blobs[i].putMBps,
      mb,
      "higher",
      isMib ? ratioTarget((f) => f.blobs[i].putMBps, "higher", PEER_TARGETS.mibPut) : {},
    );
    single(
      `${size} values: GET through the 302, every byte checked (MB/s)`,
      (f) => f.blobs[i].getMBps,
      mb,
      "higher",
      isMib ? ratioTarget((f) => f.blobs[i].getMBps, "higher", PEER_TARGETS.mibGet) : {},
    );
    parts(
      `${size} values: PUT latency p50 / p99 / p99.9 / max (ms)`,
      (f) => latencyParts(f.blobs[i].latency.PUT),
      ms,
      "lower",
    );
    for (const op of ["put", "get"] as const) {
      parts(
        `${size} values: index CPU per ${op.toUpperCase()}, per request / per MiB (µs)`,
        (f) => [cpuPerRequestUs(f.blobs[i].cost[op]), cpuPerMibUs(f.blobs[i].cost[op])],
        (n) => thousands(n),
        "lower",
      );
    }
  });

  const big = `${load.bigBytes / MIB} MiB`;
  single(
    `PUT of one ${big} value, ${REPLICAS} replicas (s)`,
    (f) => f.bigPutSeconds,
    seconds,
    "lower",
    {
      reference: seconds(ref.bigPutSeconds),
      ...(peer ? ratioTarget((f) => f.bigPutSeconds, "lower", PEER_TARGETS.bigPut) : {
        target: `< ${seconds(TARGETS.bigPutSeconds)}`,
        met: yesNo(mkv.bigPutSeconds < TARGETS.bigPutSeconds),
      }),
    },
  );
  single(
    "index peak RSS during that PUT (VmHWM, MiB)",
    (f) => f.bigPeakRssMib,
    (n) => thousands(n),
    "lower",
    {
      reference: thousands(ref.bigPeakRssMib),
      target: `≤ ${TARGETS.bigPeakRssMib}`,
      met: mkv.bigPeakRssMib === null ? "—" : yesNo(mkv.bigPeakRssMib <= TARGETS.bigPeakRssMib),
    },
  );
  single(
    "index CPU per MiB of that PUT (µs)",
    (f) => cpuPerMibUs(f.cost.bigPut),
    (n) => thousands(n),
    "lower",
  );
  single(`GET of it through the 302, streamed (s)`, (f) => f.bigGetSeconds, seconds, "lower", {
    reference: seconds(ref.bigGetSeconds),
  });
  return rows;
}
