// The join of a multipart upload's parts (docs/s3.md, "Multipart uploads"): the parts streamed
// one after the other, each from a live replica, into the write of the final object, each checked
// against its record's size and md5 on the way; constant memory whatever the object's size.

import { firstLine } from "../errors.ts";
import { Md5 } from "../md5.ts";
import { recordPath } from "../placement.ts";
import { VolumeError } from "../volumes/mod.ts";
import type { Core } from "../core/mod.ts";
import { S3Error } from "./error.ts";
import { partKey, type StoredPart } from "./uploadparse.ts";

/** Bytes of each read of a part's replica, for a reader of the joined parts without a buffer. */
const JOIN_CHUNK_BYTES = 256 * 1024;

/**
 * The part's file (the one its record names) from the first of its live replicas (best first)
 * that opens; S3Error if none does.
 */
async function openReplica(core: Core, key: string, part: StoredPart): Promise<Response> {
  const path = recordPath(key, part);
  const locations = part.volumes;
  const reasons: string[] = [];
  for (const location of locations.filter((l) => core.volumes.isAlive(l))) {
    try {
      return await core.volumes.get(location, path);
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      reasons.push(firstLine(err));
    }
  }
  if (reasons.length === 0) reasons.push(`no live volume holds it (${locations.join(",")})`);
  throw new S3Error(503, "ServiceUnavailable", `key ${key}: cannot read: ${reasons.join("; ")}`);
}

/**
 * The parts joined into one stream, read one after the other from a live replica each, each
 * checked against its record's size and md5 on the way. A byte stream: the write reads it into
 * its one reused buffer, and each part is read from its replica straight into that buffer, so
 * that joining makes no garbage whatever the object's size. Why the stream failed is kept.
 */
export function joinParts(
  core: Core,
  uploadId: string,
  parts: StoredPart[],
): { stream: ReadableStream<Uint8Array>; cause(): unknown } {
  let index = 0;
  let reader: ReadableStreamBYOBReader | null = null;
  let hash = new Md5();
  let got = 0;
  let cause: unknown = undefined;
  /** Fills `view` from the parts, or gives it back empty at the end; its buffer is moved. */
  const fill = async (view: Uint8Array): Promise<{ done: boolean; view: Uint8Array }> => {
    while (true) {
      if (reader === null) {
        if (index === parts.length) return { done: true, view: view.subarray(0, 0) };
        const key = partKey(uploadId, parts[index].partNumber);
        const response = await openReplica(core, key, parts[index]);
        reader = response.body!.getReader({ mode: "byob" });
        hash = new Md5();
        got = 0;
      }
      const part = parts[index];
      // Reading moves the view's buffer: its length is known only before.
      const length = view.byteLength;
      let read;
      try {
        read = await reader.read(view);
      } catch (err) {
        throw new S3Error(
          503,
          "ServiceUnavailable",
          `part ${part.partNumber}: read failed: ${firstLine(err)}`,
        );
      }
      if (read.value === undefined) {
        throw new S3Error(503, "ServiceUnavailable", `part ${part.partNumber}: read cancelled`);
      }
      if (!read.done) {
        hash.update(read.value);
        got += read.value.byteLength;
        return { done: false, view: read.value };
      }
      // The part's replica gave the buffer back empty: on to the next part, in the same buffer.
      view = new Uint8Array(read.value.buffer, read.value.byteOffset, length);
      reader = null;
      const md5 = hash.hex();
      if (got !== part.sizeBytes || md5 !== part.md5) {
        throw new S3Error(
          500,
          "InternalError",
          `part ${part.partNumber}: read ${got} bytes with md5 ${md5}, its record says ` +
            `${part.sizeBytes} bytes with md5 ${part.md5}`,
        );
      }
      index++;
    }
  };
  const stream = new ReadableStream({
    type: "bytes",
    // A reader that brings no buffer of its own is given one of this size.
    autoAllocateChunkSize: JOIN_CHUNK_BYTES,
    async pull(controller) {
      const request = controller.byobRequest!;
      const given = request.view!;
      try {
        const filled = await fill(
          new Uint8Array(given.buffer, given.byteOffset, given.byteLength),
        );
        if (filled.done) controller.close();
        request.respondWithNewView(filled.view);
      } catch (err) {
        cause = err;
        throw err;
      }
    },
    async cancel(why) {
      await reader?.cancel(why);
    },
  });
  return { stream, cause: () => cause };
}
