// Where an object's bytes are, for the handlers that read them (GET, HEAD, CopyObject,
// UploadPartCopy): the core's locate, its failure in S3's terms in one place.

import type { Core, Located } from "../core/mod.ts";
import { needBucket } from "./buckets.ts";
import { S3Error } from "./error.ts";

/** A located key: its live record and a live replica that holds its file. */
export type Found = Extract<Located, { ok: true }>;

/**
 * The key's record and a replica to read it from. Throws S3Error: ServiceUnavailable when no
 * live replica holds it (410), else NoSuchKey; NoSuchBucket first where `bucket` is given and
 * does not exist.
 */
export async function locateObject(
  core: Core,
  key: string,
  options: { bucket?: string } = {},
): Promise<Found> {
  // Checked: the index's nginx proxies these reads, so no client would come back on a miss.
  const found = await core.locate(key, { check: true });
  if (found.ok) return found;
  if (found.status === 410) throw new S3Error(503, "ServiceUnavailable", found.reason);
  if (options.bucket !== undefined) await needBucket(core, options.bucket);
  throw new S3Error(404, "NoSuchKey", "The specified key does not exist.", key);
}
