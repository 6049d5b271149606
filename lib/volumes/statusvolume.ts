// A volume's own figures, as the index reads them: its filesystem's free and total bytes (volume.ts
// rewrites a small JSON file every few seconds, which its nginx serves at DISK_STATUS_PATH) and
// nginx's `stub_status` (connections and requests, at STUB_STATUS_PATH). Both are static answers
// of nginx, so reading them costs the volume nothing; the index reads them every few seconds,
// never on a request's path. Parsing and encoding are pure; golden-tested in tests/status_test.ts.

import { firstLine } from "../errors.ts";
import { VOLUME_OWN_DIR } from "./protocol.ts";
import { writeNewFile } from "../nginx/nofollow.ts";

/** How often volume.ts rewrites its disk figures. */
const DISK_REPORT_INTERVAL_MS = 5_000;

/** A volume's filesystem as volume.ts last saw it. */
export interface DiskFigures {
  /** Bytes that nginx's workers may still write (the filesystem's available blocks). */
  freeBytes: number;
  totalBytes: number;
  /** When they were read, in milliseconds since the epoch. */
  timeMs: number;
}

/** nginx's `stub_status` answer: connections now, and requests since nginx started. */
export interface StubStatus {
  active: number;
  accepts: number;
  handled: number;
  requests: number;
  reading: number;
  writing: number;
  waiting: number;
}

/** The file volume.ts writes, as JSON. Pure. */
export function encodeDiskFigures(figures: DiskFigures): string {
  return `${JSON.stringify(figures)}\n`;
}

/** Reads the disk file's JSON; null if it is not what volume.ts writes. Pure. */
export function parseDiskFigures(text: string): DiskFigures | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const v = value as Partial<DiskFigures> | null;
  if (typeof v !== "object" || v === null) return null;
  const { freeBytes, totalBytes, timeMs } = v;
  if (![freeBytes, totalBytes, timeMs].every((n) => Number.isSafeInteger(n) && n! >= 0)) {
    return null;
  }
  return { freeBytes: freeBytes!, totalBytes: totalBytes!, timeMs: timeMs! };
}

const STUB_STATUS =
  /^Active connections:\s*(\d+)\s+server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)\s+Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)\s*$/;

/** Parses nginx's `stub_status` text; null if it is not that. Pure. */
export function parseStubStatus(text: string): StubStatus | null {
  const match = text.match(STUB_STATUS);
  if (match === null) return null;
  const [active, accepts, handled, requests, reading, writing, waiting] = match.slice(1).map(
    Number,
  );
  return { active, accepts, handled, requests, reading, writing, waiting };
}

/**
 * The free and total bytes of the filesystem holding `dir`, now. Node's `statfs` is loaded here,
 * not with the module: the index imports this module for its parsers and would otherwise carry
 * Node's fs layer in memory for nothing.
 */
export async function readDiskFigures(dir: string): Promise<DiskFigures> {
  const { statfs } = await import("node:fs/promises");
  const fs = await statfs(dir);
  return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize, timeMs: Date.now() };
}

/**
 * Keeps `dir/.mkv/disk.json` (served as DISK_STATUS_PATH) current: written now and every
 * DISK_REPORT_INTERVAL_MS, through a temp file and a rename so that nginx never serves half of
 * it. Both are in the volume's own directory, which only we can write (nginx.ts's
 * prepareVolumeDir); the temp file is still made new, never written through a link, should
 * anything be in its place. `stop()` ends it; a failed write is reported once per failure, and
 * tried again.
 */
export async function startDiskReport(
  dir: string,
  onError: (message: string) => void,
): Promise<{ stop(): Promise<void> }> {
  const file = `${dir}${VOLUME_OWN_DIR}/disk.json`;
  const write = async () => {
    try {
      // A temp file left by a crash: removed, never opened (a link goes, its target stays).
      await Deno.remove(`${file}.tmp`).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
      await writeNewFile(`${file}.tmp`, encodeDiskFigures(await readDiskFigures(dir)), 0o644);
      await Deno.rename(`${file}.tmp`, file);
    } catch (err) {
      onError(`cannot write ${file}: ${firstLine(err)}`);
    }
  };
  let writing = write();
  await writing;
  const timer = setInterval(() => {
    writing = writing.then(write);
  }, DISK_REPORT_INTERVAL_MS);
  return {
    async stop() {
      clearInterval(timer);
      await writing;
    },
  };
}
