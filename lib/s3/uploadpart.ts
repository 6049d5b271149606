// UploadPart and UploadPartCopy (docs/s3.md, "Multipart uploads"): each part is an ordinary key
// of the index under its reserved prefix, `/-/mpu/<upload>/<00001>`, streamed to its replicas as
// it arrives by the core's one write path, its record keeping its md5 (the part's ETag), size and
// time; rebuild, verify, rebalance and gc treat parts as the data they are, and plain clients
// cannot write there. A copied part is read from a live replica of its source.

import { uploadExists } from "../core/mod.ts";
import type { Core, WriteResult } from "../core/mod.ts";
import { keepFailure } from "./body.ts";
import { announcedChecksum, type ChecksumAlgorithm, checksumRecorder } from "./checksum.ts";
import { checkConditions, copySourceConditions } from "./conditions.ts";
import { S3Error } from "./error.ts";
import { checksumHeader, isoDate } from "./headers.ts";
import { locateObject } from "./locate.ts";
import { parseCopySource } from "./request.ts";
import { MAX_PART_BYTES, parseCopyRange, partKey, payloadLength } from "./uploadparse.ts";
import { type MultipartRequest, noSuchUpload, partTarget, removePart } from "./uploadstate.ts";
import { WRITE_LOCK_WAIT_MS, writeFailure } from "./write.ts";
import { xmlResponse } from "./xml.ts";

/** The bytes `start..end` (inclusive) of `body`, the rest read past or cancelled. */
function sliced(
  body: ReadableStream<Uint8Array>,
  start: number,
  end: number,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        if (at > end) {
          await reader.cancel();
          controller.close();
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.error(new Error(`source ended at byte ${at}, before byte ${end}`));
          return;
        }
        const from = Math.max(start - at, 0);
        const to = Math.min(end + 1 - at, value.byteLength);
        at += value.byteLength;
        if (from < to) {
          controller.enqueue(value.subarray(from, to));
          return;
        }
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Writes a part (replacing one of the same number) and returns its md5. A part whose upload
 * was aborted or completed meanwhile is removed again: NoSuchUpload. `from` names the replica
 * a copied part is read from: a body that breaks is then the index's failure, not the client's.
 */
async function writePart(
  core: Core,
  uploadId: string,
  partNumber: number,
  body: ReadableStream<Uint8Array>,
  options: { sizeBytes?: number; from?: string; checksum?: ChecksumAlgorithm | null },
): Promise<{ md5: string; checksum?: { algorithm: string; base64: string } }> {
  const key = partKey(uploadId, partNumber);
  // With --protect no live value is replaced (docs/s3.md, "Overwrites"), but a part is the
  // index's own: the one it replaces is removed first.
  if (core.options.protect && (await core.store.get(key))?.state === "live") {
    await removePart(core, key);
  }
  const source = keepFailure(body);
  // The part's md5 is kept in its record (its ETag) whatever --md5sum says, and so is the
  // checksum it was checked against, which Complete builds the object's from.
  const attributes: { checksum?: { algorithm: string; base64: string } } = {};
  const algorithm = options.checksum ?? null;
  const recorded = algorithm === null ? source.body : source.body.pipeThrough(
    checksumRecorder(algorithm, (base64) => {
      attributes.checksum = { algorithm, base64 };
    }),
  );
  const result: WriteResult = await core.write(key, recorded, {
    sizeBytes: options.sizeBytes,
    attributes,
    overwrite: true,
    allowEmpty: true,
    lockWaitMs: WRITE_LOCK_WAIT_MS,
  });
  if (!result.ok && result.status === 400 && options.from !== undefined) {
    throw new S3Error(503, "ServiceUnavailable", `copy from ${options.from}: ${result.reason}`);
  }
  if (!result.ok) throw writeFailure(result, { cause: source.failure() });
  // An Abort removes the upload's entry before its parts: a part committed after that Abort
  // listed the parts is found here.
  if (!await uploadExists(core.store, uploadId)) {
    await removePart(core, key);
    throw noSuchUpload(
      uploadId,
      "The specified upload does not exist. The upload may have been aborted or completed.",
    );
  }
  return { md5: result.md5, checksum: result.record.info?.checksum };
}

/** UploadPart (`PUT /bucket/key?partNumber=N&uploadId=ID`): streamed to the part's replicas. */
export async function uploadPart(core: Core, request: MultipartRequest): Promise<Response> {
  const { uploadId, partNumber } = await partTarget(core, request);
  const sizeBytes = payloadLength(request.headers);
  if (sizeBytes !== undefined && sizeBytes > MAX_PART_BYTES) {
    throw new S3Error(
      400,
      "EntityTooLarge",
      `Your proposed upload exceeds the maximum allowed size of ${MAX_PART_BYTES} bytes`,
    );
  }
  const body = request.body ?? new Response(new Uint8Array()).body!;
  const written = await writePart(core, uploadId, partNumber, body, {
    sizeBytes,
    checksum: announcedChecksum(request.headers),
  });
  return new Response(null, {
    status: 200,
    headers: {
      etag: `"${written.md5}"`,
      ...(written.checksum && checksumHeader(written.checksum)),
    },
  });
}

/**
 * UploadPartCopy (`PUT ...?partNumber&uploadId` with `x-amz-copy-source`): the source object's
 * bytes (or `x-amz-copy-source-range` of them) streamed from one of its live replicas.
 */
export async function uploadPartCopy(core: Core, request: MultipartRequest): Promise<Response> {
  await request.body?.cancel();
  const { uploadId, partNumber } = await partTarget(core, request);
  const source = parseCopySource(request.headers.get("x-amz-copy-source") ?? "");
  // The source is read as CopyObject and GET read it: a live replica that has its file.
  const found = await locateObject(core, source.key);
  if (checkConditions(copySourceConditions(request.headers), found.record) !== null) {
    throw new S3Error(412, "PreconditionFailed", "At least one of the preconditions failed.");
  }
  const rangeHeader = request.headers.get("x-amz-copy-source-range");
  const knownBytes = found.record.info?.size;
  // With the source's size in its record, a range is asked of the volume; an older record
  // has none, and the range is cut from the whole file as it streams.
  const asked = rangeHeader !== null && knownBytes !== undefined
    ? parseCopyRange(rangeHeader, knownBytes)
    : undefined;
  if (asked instanceof S3Error) throw asked;
  const response = await core.volumes.get(found.location, found.path, { range: asked });
  const length = response.headers.get("content-length");
  const sizeBytes = knownBytes ??
    (length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined);
  let body: ReadableStream<Uint8Array> = response.body!;
  let partBytes = asked === undefined ? sizeBytes : asked.end - asked.start + 1;
  if (rangeHeader !== null && asked === undefined) {
    const range = parseCopyRange(rangeHeader, sizeBytes ?? 0);
    if (range instanceof S3Error) {
      await body.cancel();
      throw range;
    }
    body = sliced(body, range.start, range.end);
    partBytes = range.end - range.start + 1;
  }
  if (partBytes !== undefined && partBytes > MAX_PART_BYTES) {
    await body.cancel();
    throw new S3Error(
      400,
      "InvalidRequest",
      "The specified copy source is larger than the maximum allowable size for a copy " +
        `source: ${MAX_PART_BYTES}`,
    );
  }
  const { md5 } = await writePart(core, uploadId, partNumber, body, {
    sizeBytes: partBytes,
    from: found.location,
  });
  return xmlResponse("CopyPartResult", { ETag: `"${md5}"`, LastModified: isoDate(Date.now()) });
}
