// A volume's own figures, as the index reads them (lib/volumes/figures.ts): its filesystem's free
// and total bytes (a small JSON file that volume.ts rewrites every few seconds,
// lib/nginx/diskreport.ts, and its nginx serves at DISK_STATUS_PATH) and nginx's `stub_status`
// (connections and requests, at STUB_STATUS_PATH). Both are static answers of nginx, so reading
// them costs the volume nothing; the index reads them every few seconds, never on a request's
// path. Pure; golden-tested in tests/unit/status_test.ts.

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
