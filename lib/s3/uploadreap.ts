// The reaping of abandoned multipart uploads (docs/s3.md, "Multipart uploads"): uploads older
// than --multipart-max-age are aborted, and parts whose upload is gone are removed (a crash
// between a Complete's or an Abort's removal of the upload and of its parts, or an index rebuilt
// from the volumes).

import { isPending } from "../core/mod.ts";
import { uploadExists, uploadsByAge } from "../core/mod.ts";
import { PARTS_PREFIX } from "../placement.ts";
import type { Core } from "../core/mod.ts";
import { parsePartKey } from "./uploadparse.ts";
import { forget, removePart, removeParts, tryLockUpload } from "./uploadstate.ts";

/**
 * Aborts the uploads older than `maxAgeMs`, and removes parts whose upload is gone. Returns how
 * many uploads it removed, of either kind. The index calls it periodically; an upload in a
 * Complete or Abort is left for the next time.
 */
export async function reapUploads(core: Core, options: { maxAgeMs: number }): Promise<number> {
  const cutoff = Date.now() - options.maxAgeMs;
  let reaped = 0;
  // Upload ids begin with their creation time: the oldest come first.
  for await (const { uploadId, state } of uploadsByAge(core.store)) {
    if (state.initiated > cutoff) break;
    using lock = tryLockUpload(core, uploadId);
    if (lock === null) continue;
    await forget(core, uploadId, state);
    await removeParts(core, uploadId);
    reaped++;
  }
  let current = "";
  let orphaned = false;
  for await (
    const [key, record] of core.store.list({ prefix: PARTS_PREFIX, state: "all" })
  ) {
    const parsed = parsePartKey(key);
    if (parsed === null || isPending(record)) continue;
    if (parsed.uploadId !== current) {
      current = parsed.uploadId;
      orphaned = !await uploadExists(core.store, current);
      if (orphaned) reaped++;
    }
    if (orphaned) await removePart(core, key);
  }
  return reaped;
}
