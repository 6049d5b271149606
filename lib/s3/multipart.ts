// S3 multipart uploads (docs/s3.md, "Multipart uploads"): Create, UploadPart, UploadPartCopy,
// Complete, Abort, ListParts, ListMultipartUploads, and the reaping of abandoned uploads, one
// module each (lib/s3/upload*.ts). Nothing of an upload is kept in the index's memory or on its
// disk, so that an index restart between parts loses nothing:
//
// - each part is an ordinary key of the index under its reserved prefix, `/-/mpu/<upload>/<00001>`,
//   streamed to its replicas as it arrives by the core's one write path (lib/s3/uploadpart.ts);
// - the upload itself (bucket, key, time, content type, metadata) is an entry of the KV
//   (lib/core/uploads.ts), by upload id and by object key for the listing;
// - Complete streams the parts, one after the other, from a live replica each, into the write of
//   the final object, checking each part's md5 and size on the way (lib/s3/uploadjoin.ts): constant
//   memory whatever the object's size. Then the upload's entries go, then its parts. A crash in
//   between leaves parts without an upload, which `reap` removes.
//
// This class holds what the operations share (the core, the limits, the upload ids it made) and
// answers an S3Error thrown by any of them with S3's XML.

import type { Core } from "../core/mod.ts";
import { S3Error } from "./error.ts";
import { abortUpload } from "./uploadabort.ts";
import { completeUpload } from "./uploadcomplete.ts";
import { createUpload, UploadIds } from "./uploadcreate.ts";
import { listUploads } from "./uploadlist.ts";
import { MIN_PART_BYTES } from "./uploadparse.ts";
import { uploadPart, uploadPartCopy } from "./uploadpart.ts";
import { listParts } from "./uploadparts.ts";
import { reapUploads } from "./uploadreap.ts";
import type { MultipartRequest } from "./uploadstate.ts";
import { s3Error } from "./xml.ts";

export interface MultipartOptions {
  /** Uploads older than this are aborted by `reap`. */
  maxAgeMs: number;
  /** The smallest part but the last, checked at Complete; MIN_PART_BYTES if absent. */
  minPartBytes?: number;
}

/** Runs a request's handler; an S3Error thrown becomes its answer. */
async function answer(
  request: MultipartRequest,
  handler: () => Promise<Response>,
): Promise<Response> {
  try {
    return await handler();
  } catch (err) {
    if (!(err instanceof S3Error)) throw err;
    await request.body?.cancel().catch(() => {});
    return s3Error(err);
  }
}

/** The multipart uploads of the S3 API, kept in the index's KV and on its volumes. */
export class Multipart {
  readonly core: Core;
  readonly maxAgeMs: number;
  readonly minPartBytes: number;
  #ids = new UploadIds();

  constructor(core: Core, options: MultipartOptions) {
    this.core = core;
    this.maxAgeMs = options.maxAgeMs;
    this.minPartBytes = options.minPartBytes ?? MIN_PART_BYTES;
  }

  /** CreateMultipartUpload (`POST /bucket/key?uploads`). */
  async create(request: MultipartRequest): Promise<Response> {
    return await answer(request, () => createUpload(this.core, request, this.#ids));
  }

  /** UploadPart (`PUT /bucket/key?partNumber=N&uploadId=ID`). */
  async uploadPart(request: MultipartRequest): Promise<Response> {
    return await answer(request, () => uploadPart(this.core, request));
  }

  /** UploadPartCopy (`PUT ...?partNumber&uploadId` with `x-amz-copy-source`). */
  async uploadPartCopy(request: MultipartRequest): Promise<Response> {
    return await answer(request, () => uploadPartCopy(this.core, request));
  }

  /** CompleteMultipartUpload (`POST /bucket/key?uploadId=ID`). */
  async complete(request: MultipartRequest): Promise<Response> {
    const options = { minPartBytes: this.minPartBytes };
    return await answer(request, () => completeUpload(this.core, request, options));
  }

  /** AbortMultipartUpload (`DELETE /bucket/key?uploadId=ID`). */
  async abort(request: MultipartRequest): Promise<Response> {
    return await answer(request, () => abortUpload(this.core, request));
  }

  /** ListParts (`GET /bucket/key?uploadId=ID`). */
  async listParts(request: MultipartRequest): Promise<Response> {
    return await answer(request, () => listParts(this.core, request));
  }

  /** ListMultipartUploads (`GET /bucket?uploads`). */
  async listUploads(request: MultipartRequest): Promise<Response> {
    return await answer(request, () => listUploads(this.core, request));
  }

  /**
   * Aborts the uploads older than `maxAgeMs` and removes parts left without an upload; how many
   * uploads it removed (lib/s3/uploadreap.ts).
   */
  async reap(): Promise<number> {
    return await reapUploads(this.core, { maxAgeMs: this.maxAgeMs });
  }
}
