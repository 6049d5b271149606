// Copying a value between replicas, as the operations (verify, rebalance) do: composed of the
// client's own requests.

import { firstLine } from "../errors.ts";
import type { KeyPath } from "../placement.ts";
import { reason, UploadError, VolumeError } from "./errors.ts";
import type { PutResult } from "./fanout.ts";

/** The client's requests a copy is made of (lib/volumes/client.ts, Volumes). */
export interface Replicas {
  get(location: string, path: KeyPath): Promise<Response>;
  putAll(
    locations: string[],
    path: KeyPath,
    body: ReadableStream<Uint8Array>,
    options: { sizeBytes?: number; md5?: boolean },
  ): Promise<PutResult>;
  deleteAll(locations: string[], path: KeyPath): Promise<VolumeError[]>;
}

/**
 * Copies a key's value from the first of `sources` that gives it whole to every one of
 * `targets`, streamed, and checks what was sent on the way: its md5 against `expectedMd5` when
 * one is recorded, its length against the source's Content-Length always. `targets` must be
 * locations that hold no good copy: after a failed attempt they are cleared, so that a bad or
 * partial copy never stays behind. Returns null on success, or why each source failed.
 */
export async function copyReplica(
  volumes: Replicas,
  path: KeyPath,
  options: { sources: string[]; targets: string[]; expectedMd5: string },
): Promise<string | null> {
  const reasons: string[] = [];
  for (const source of options.sources) {
    let sent = false;
    try {
      const response = await volumes.get(source, path);
      sent = true;
      const length = response.headers.get("content-length");
      const sizeBytes = length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
      const result = await volumes.putAll(options.targets, path, response.body!, {
        sizeBytes,
        md5: options.expectedMd5 !== "",
      });
      if (options.expectedMd5 === "" || result.md5 === options.expectedMd5) return null;
      reasons.push(`${source} has md5 ${result.md5}, the record says ${options.expectedMd5}`);
    } catch (err) {
      if (!(err instanceof VolumeError || err instanceof UploadError)) throw err;
      reasons.push(reason(err));
    }
    if (!sent) continue;
    const failures = await volumes.deleteAll(options.targets, path);
    reasons.push(...failures.map((failure) => `bad copy left: ${firstLine(failure)}`));
  }
  if (options.sources.length === 0) reasons.push("no replica to copy from");
  return reasons.join("; ");
}
