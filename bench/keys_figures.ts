// What the bench at many keys (keys.ts) measures: its loads, its options, the figures of each
// server and of the run, and the run as a Markdown table. Pure.

/** Keys per `?list` page, the most either index gives. */
export const LIST_PAGE_KEYS = 10_000;
/** Fresh keys PUT then DELETEd per round. */
const FRESH_KEYS = 2_000;
/** The volumes the keys are written onto, one replica each. */
export const VOLUMES = 3;

/** How hard each figure is pushed. */
export interface KeysLoad {
  wrkThreads: number;
  wrkConnections: number;
  wrkSeconds: number;
  /** Rounds of each alternating figure; the best is kept. */
  rounds: number;
  freshKeys: number;
}

export const KEYS_LOAD: KeysLoad = {
  wrkThreads: 2,
  wrkConnections: 64,
  wrkSeconds: 5,
  rounds: 2,
  freshKeys: FRESH_KEYS,
};
export const KEYS_SMOKE_LOAD: KeysLoad = {
  wrkThreads: 1,
  wrkConnections: 4,
  wrkSeconds: 1,
  rounds: 1,
  freshKeys: 50,
};

export interface KeysOptions {
  keys: number;
  valueBytes: number;
  /** A minikeyvalue binary to measure beside mkv.ts; null for mkv.ts alone. */
  peer: string | null;
  smoke: boolean;
  /** Rebuild (mkv.ts with --md5sum=false only) and the listing, no other figure. */
  listOnly: boolean;
}

/** One server's figures; null where it has none (minikeyvalue has no verify). */
export interface KeysFigures {
  /** mkv.ts: `rebuild` with md5, the key pages' build included; null with --keys-list-only. */
  rebuildSeconds: number | null;
  /** mkv.ts only: `rebuild --md5sum=false`. */
  rebuildNoMd5Seconds: number | null;
  /** mkv.ts only: the key pages' build from the records of the rebuilt index alone. */
  pagesBuildSeconds: number | null;
  startSeconds: number;
  listSeconds: number;
  listedKeys: number;
  getRps: number | null;
  getP99Ms: number | null;
  freshOpsPerSecond: number | null;
  rssMib: number | null;
  diskBytesPerKey: number;
  verifyKeysPerSecond: number | null;
  gcKeysPerSecond: number | null;
  trouble: string[];
}

export interface KeysResult {
  date: string;
  keys: number;
  valueBytes: number;
  fillSeconds: number;
  mkv: KeysFigures;
  peer: KeysFigures | null;
}

function ratio(ours: number | null, theirs: number | null, better: "higher" | "lower"): string {
  if (ours === null || theirs === null || ours === 0 || theirs === 0) return "–";
  const value = better === "higher" ? ours / theirs : theirs / ours;
  return `${value.toFixed(2)}×`;
}

function fixed(value: number | null, digits: number): string {
  return value === null ? "–" : value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** The result as a Markdown table; ratios are turned so that above 1× mkv.ts is better. */
export function renderKeysMarkdown(result: KeysResult): string {
  const { mkv, peer } = result;
  const rows: [string, number | null, number | null, "higher" | "lower", number][] = [
    ["rebuild (s)", mkv.rebuildSeconds, peer?.rebuildSeconds ?? null, "lower", 1],
    [
      "rebuild --md5sum=false (s)",
      mkv.rebuildNoMd5Seconds,
      peer?.rebuildSeconds ?? null,
      "lower",
      1,
    ],
    ["key pages build, within rebuild (s)", mkv.pagesBuildSeconds, null, "lower", 2],
    ["start-up (s)", mkv.startSeconds, peer?.startSeconds ?? null, "lower", 2],
    [
      `?list of every key, pages of ${LIST_PAGE_KEYS.toLocaleString("en-US")} (s)`,
      mkv.listSeconds,
      peer?.listSeconds ?? null,
      "lower",
      2,
    ],
    ["GET of random keys (req/s)", mkv.getRps, peer?.getRps ?? null, "higher", 0],
    ["GET of random keys, p99 (ms)", mkv.getP99Ms, peer?.getP99Ms ?? null, "lower", 2],
    [
      "PUT + DELETE of fresh keys (ops/s)",
      mkv.freshOpsPerSecond,
      peer?.freshOpsPerSecond ?? null,
      "higher",
      0,
    ],
    ["index RSS after the GETs (MiB)", mkv.rssMib, peer?.rssMib ?? null, "lower", 0],
    [
      "index on disk per key (bytes)",
      mkv.diskBytesPerKey,
      peer?.diskBytesPerKey ?? null,
      "lower",
      0,
    ],
    ["verify (keys/s)", mkv.verifyKeysPerSecond, null, "higher", 0],
    ["gc --dry-run (keys/s)", mkv.gcKeysPerSecond, null, "higher", 0],
  ];
  const lines = [
    `# Bench at ${result.keys.toLocaleString("en-US")} keys of ${result.valueBytes} bytes, ` +
    result.date,
    "",
    `Values written straight onto ${VOLUMES} volumes (1 replica, no subvolumes) in ` +
    `${result.fillSeconds.toFixed(1)} s.`,
    "",
    "| figure | mkv.ts | minikeyvalue | ratio (above 1× mkv.ts is better) |",
    "| --- | --- | --- | --- |",
    ...rows.map(([figure, ours, theirs, better, digits]) =>
      `| ${figure} | ${fixed(ours, digits)} | ${fixed(theirs, digits)} | ` +
      `${ratio(ours, theirs, better)} |`
    ),
  ];
  const trouble = [...mkv.trouble, ...(peer?.trouble ?? [])];
  if (trouble.length > 0) lines.push("", ...trouble.map((line) => `- ${line}`));
  return lines.join("\n") + "\n";
}
