// What every multipart handler shares (docs/s3.md, "Multipart uploads"): the request as the
// router hands it over, the upload's lock and its entry (lib/core/uploads.ts), its parts as their
// records tell them, and the removal of an upload and its parts. Nothing of an upload is kept in
// the index's memory, so that an index restart between parts loses nothing.

import { PARTS_PREFIX } from "../placement.ts";
import { forgetUpload, type UploadState, uploadState } from "../core/mod.ts";
import type { Core } from "../core/mod.ts";
import { S3Error } from "./error.ts";
import {
  isUploadId,
  parsePartNumber,
  partKey,
  type StoredPart,
  storedPart,
} from "./uploadparse.ts";

/**
 * One multipart request, as the S3 API (lib/s3/api.ts) hands it over, its body decoded
 * (aws-chunked) and checked (sha256, checksums).
 */
export interface MultipartRequest {
  bucket: string;
  /** The object key within the bucket (S3's Key). */
  key: string;
  /** The index key of the object, `/BUCKET/KEY`. */
  indexKey: string;
  uploadId?: string;
  partNumber?: number;
  query: URLSearchParams;
  headers: Headers;
  /** The decoded body of UploadPart and CompleteMultipartUpload; absent for the others. */
  body?: ReadableStream<Uint8Array>;
}

/** S3's answer to an upload that is not (or no longer) there. */
export function noSuchUpload(uploadId: string, message: string): S3Error {
  return new S3Error(404, "NoSuchUpload", message, uploadId);
}

/**
 * The upload's lock, held by Complete, Abort and the reaper, so that one at a time removes it
 * (null if another holds it). The key it locks, part 0, is never a part.
 */
export function tryLockUpload(core: Core, uploadId: string): Disposable | null {
  return core.store.lock(partKey(uploadId, 0));
}

/** The upload's lock; OperationAborted if another holds it. */
export function lockUpload(core: Core, uploadId: string): Disposable {
  const lock = tryLockUpload(core, uploadId);
  if (lock === null) {
    throw new S3Error(
      409,
      "OperationAborted",
      "A conflicting operation is currently in progress against this upload. Please try again.",
    );
  }
  return lock;
}

/** The upload's entry, if it is this bucket and key's; else NoSuchUpload. */
export async function findUpload(core: Core, request: MultipartRequest): Promise<UploadState> {
  const uploadId = request.uploadId ?? "";
  const noSuch = noSuchUpload(
    uploadId,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may " +
      "have been aborted or completed.",
  );
  if (!isUploadId(uploadId)) throw noSuch;
  const state = await uploadState(core.store, uploadId);
  if (state === null) throw noSuch;
  if (state.bucket !== request.bucket || state.key !== request.key) throw noSuch;
  return state;
}

/** The upload and part number of an UploadPart(Copy), checked. */
export async function partTarget(
  core: Core,
  request: MultipartRequest,
): Promise<{ uploadId: string; partNumber: number }> {
  const partNumber = parsePartNumber(
    request.partNumber === undefined ? null : String(request.partNumber),
  );
  if (partNumber instanceof S3Error) throw partNumber;
  await findUpload(core, request);
  return { uploadId: request.uploadId!, partNumber };
}

/** The upload's live parts from part `first` on, in order, lazily. */
export async function* storedParts(
  core: Core,
  uploadId: string,
  first: number,
): AsyncGenerator<StoredPart> {
  const prefix = `${PARTS_PREFIX}${uploadId}/`;
  const start = partKey(uploadId, Math.max(first, 1));
  for await (const [key, record] of core.store.list({ prefix, start, state: "live" })) {
    const part = storedPart(key, record);
    if (part !== null) yield part;
  }
}

/** Removes the upload's entries (its parts stay, for `removeParts`). */
export async function forget(core: Core, uploadId: string, state: UploadState): Promise<void> {
  if (!await forgetUpload(core.store, uploadId, state)) {
    throw new S3Error(500, "InternalError", "cannot remove the upload");
  }
}

/** Removes a part; one that cannot be now is left to the reaper. */
export async function removePart(core: Core, key: string): Promise<void> {
  const removed = await core.remove(key, { force: true });
  // 404: removed by another (a racing Complete, Abort or reaper); 409: its write is in
  // progress, and removes the part itself when it finds the upload gone.
  if (!removed.ok && removed.status !== 404 && removed.status !== 409) {
    console.error(
      `index: multipart part ${key}: not removed, left for the reaper: ${removed.reason}`,
    );
  }
}

/** Removes every part of an upload; one that cannot be now is left to the reaper. */
export async function removeParts(core: Core, uploadId: string): Promise<void> {
  const prefix = `${PARTS_PREFIX}${uploadId}/`;
  for await (const [key] of core.store.list({ prefix, state: "all" })) {
    await removePart(core, key);
  }
}
