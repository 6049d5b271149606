// CreateMultipartUpload (`POST /bucket/key?uploads`, docs/s3.md, "Multipart uploads"): a new
// upload id, and the upload's entry (bucket, key, time, content type, metadata) in the KV
// (lib/core/uploads.ts).

import { recordUpload, type UploadState } from "../core/mod.ts";
import type { Core } from "../core/mod.ts";
import { parseChecksumAlgorithm } from "./checksum.ts";
import { S3Error } from "./error.ts";
import { contentTypeOf, storedHeaders, userMetadata } from "./headers.ts";
import { newUploadId } from "./uploadparse.ts";
import type { MultipartRequest } from "./uploadstate.ts";
import { xmlResponse } from "./xml.ts";

/** The upload ids one index makes: each sorts after the one before, also within a millisecond. */
export class UploadIds {
  /** The time in the last upload id made, so that the next one sorts after it. */
  #lastIdMs = 0;

  /** A new upload id for an upload created at `nowMs`. */
  next(nowMs: number): string {
    this.#lastIdMs = Math.max(nowMs, this.#lastIdMs + 1);
    return newUploadId(this.#lastIdMs, crypto.getRandomValues(new Uint8Array(16)));
  }
}

/** CreateMultipartUpload: answers the new upload id. */
export async function createUpload(
  core: Core,
  request: MultipartRequest,
  ids: UploadIds,
): Promise<Response> {
  await request.body?.cancel();
  // The algorithm the client will checksum its parts with is echoed, as S3 does; the parts'
  // checksums are checked as they come, and the object keeps none of its own.
  const asked = request.headers.get("x-amz-checksum-algorithm");
  const algorithm = asked === null ? null : parseChecksumAlgorithm(asked);
  if (asked !== null && algorithm === null) {
    throw new S3Error(400, "InvalidRequest", "Checksum algorithm provided is unsupported.");
  }
  const meta = userMetadata(request.headers);
  const type = contentTypeOf(request.headers);
  const headers = storedHeaders(request.headers);
  const initiated = Date.now();
  // Ids of one key's uploads list in the order they were made, also within a millisecond.
  const uploadId = ids.next(initiated);
  const state: UploadState = {
    bucket: request.bucket,
    key: request.key,
    initiated,
    type,
    meta,
    headers,
  };
  if (!await recordUpload(core.store, uploadId, state)) {
    throw new S3Error(500, "InternalError", "cannot record the upload");
  }
  return xmlResponse("InitiateMultipartUploadResult", {
    Bucket: request.bucket,
    Key: request.key,
    UploadId: uploadId,
    ChecksumAlgorithm: algorithm?.toUpperCase(),
  }, {
    headers: algorithm === null ? {} : { "x-amz-checksum-algorithm": algorithm.toUpperCase() },
  });
}
