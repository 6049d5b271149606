// CreateMultipartUpload (`POST /bucket/key?uploads`, docs/s3.md, "Multipart uploads"): a new
// upload id, and the upload's entry (bucket, key, time, content type, metadata) in the KV
// (lib/core/uploads.ts).

import { recordUpload, type UploadState } from "../core/mod.ts";
import type { Core } from "../core/mod.ts";
import { S3Error } from "./error.ts";
import { uploadChecksum } from "./uploadchecksum.ts";
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
  // The checksum the client asks for: each part is checked against its own and kept with it,
  // and the object gets one of the asked type at Complete (lib/s3/uploadchecksum.ts).
  const checksum = uploadChecksum(request.headers);
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
    ...(checksum === null ? {} : { checksum }),
  };
  if (!await recordUpload(core.store, uploadId, state)) {
    throw new S3Error(500, "InternalError", "cannot record the upload");
  }
  return xmlResponse("InitiateMultipartUploadResult", {
    Bucket: request.bucket,
    Key: request.key,
    UploadId: uploadId,
    ChecksumAlgorithm: checksum?.algorithm.toUpperCase(),
    ChecksumType: checksum?.type,
  }, {
    headers: checksum === null ? {} : {
      "x-amz-checksum-algorithm": checksum.algorithm.toUpperCase(),
      "x-amz-checksum-type": checksum.type,
    },
  });
}
