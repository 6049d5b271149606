// ListParts (`GET /bucket/key?uploadId=ID`, docs/s3.md, "Multipart uploads"): the upload's
// parts as their records tell them, in part order, paged by `max-parts` and
// `part-number-marker`.

import type { Core } from "../core/mod.ts";
import { S3Error } from "./error.ts";
import { isoDate } from "./headers.ts";
import { MAX_LIST_KEYS } from "./listparams.ts";
import { MAX_PART_NUMBER, parseCount, type StoredPart } from "./uploadparse.ts";
import { findUpload, type MultipartRequest, storedParts } from "./uploadstate.ts";
import { OWNER, STORAGE_CLASS, xmlResponse } from "./xml.ts";

/** ListParts (`GET /bucket/key?uploadId=ID`), `max-parts` and `part-number-marker`. */
export async function listParts(core: Core, request: MultipartRequest): Promise<Response> {
  await request.body?.cancel();
  const uploadId = request.uploadId ?? "";
  await findUpload(core, request);
  const maxParts = parseCount(request.query, "max-parts", {
    fallback: MAX_LIST_KEYS,
    max: MAX_LIST_KEYS,
  });
  if (maxParts instanceof S3Error) throw maxParts;
  const marker = parseCount(request.query, "part-number-marker", {
    fallback: 0,
    max: MAX_PART_NUMBER,
  });
  if (marker instanceof S3Error) throw marker;
  const parts: StoredPart[] = [];
  let truncated = false;
  for await (const part of storedParts(core, uploadId, marker + 1)) {
    if (parts.length === maxParts) {
      truncated = true;
      break;
    }
    parts.push(part);
  }
  return xmlResponse("ListPartsResult", {
    Bucket: request.bucket,
    Key: request.key,
    UploadId: uploadId,
    Initiator: OWNER,
    Owner: OWNER,
    StorageClass: STORAGE_CLASS,
    PartNumberMarker: marker,
    NextPartNumberMarker: parts.length > 0 ? parts[parts.length - 1].partNumber : marker,
    MaxParts: maxParts,
    IsTruncated: truncated,
    Part: parts.map((part) => ({
      PartNumber: part.partNumber,
      LastModified: isoDate(part.mtime),
      ETag: `"${part.md5}"`,
      Size: part.sizeBytes,
    })),
  });
}
