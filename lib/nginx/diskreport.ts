// The volume's side of its disk figures (lib/volumes/statusvolume.ts): volume.ts keeps a small
// JSON file of its filesystem's free and total bytes current in the volume's own directory, and
// its nginx serves it at DISK_STATUS_PATH for the index.

import { firstLine } from "../errors.ts";
import { type DiskFigures, encodeDiskFigures, VOLUME_OWN_DIR } from "../volumes/mod.ts";
import { writeNewFile } from "./nofollow.ts";

/** How often volume.ts rewrites its disk figures. */
const DISK_REPORT_INTERVAL_MS = 5_000;

/**
 * The free and total bytes of the filesystem holding `dir`, now. Node's `statfs` is loaded here,
 * not with the module: the index loads this module with the folder's interface (mod.ts) and
 * would otherwise carry Node's fs layer in memory for nothing.
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
