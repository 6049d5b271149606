// ListMultipartUploads (`GET /bucket?uploads`, docs/s3.md, "Multipart uploads"): the bucket's
// uploads in progress by object key (lib/core/uploads.ts), with S3's prefix, delimiter and
// markers; the uploads of a common prefix are skipped by starting a new read past them.

import { type ListedUpload, uploadsByKey } from "../core/mod.ts";
import type { Core } from "../core/mod.ts";
import { S3Error } from "./error.ts";
import { isoDate } from "./headers.ts";
import { MAX_LIST_KEYS, parseEncodingType, urlEncodeKey } from "./listparams.ts";
import { afterPrefix, parseCount } from "./uploadparse.ts";
import type { MultipartRequest } from "./uploadstate.ts";
import { OWNER, STORAGE_CLASS, xmlResponse } from "./xml.ts";

/** Entries read from the KV per round trip of a listing (the KV allows 1000). */
const LIST_BATCH = 500;

/**
 * ListMultipartUploads (`GET /bucket?uploads`): `prefix`, `delimiter` (CommonPrefixes),
 * `key-marker`, `upload-id-marker`, `max-uploads`, `encoding-type=url`. Uploads of a key come
 * in the order they were created.
 */
export async function listUploads(core: Core, request: MultipartRequest): Promise<Response> {
  await request.body?.cancel();
  const query = request.query;
  const maxUploads = parseCount(query, "max-uploads", {
    fallback: MAX_LIST_KEYS,
    max: MAX_LIST_KEYS,
  });
  if (maxUploads instanceof S3Error) throw maxUploads;
  const prefix = query.get("prefix") ?? "";
  const delimiter = query.get("delimiter") ?? "";
  const keyMarker = query.get("key-marker") ?? "";
  const idMarker = keyMarker === "" ? "" : query.get("upload-id-marker") ?? "";
  const encoding = parseEncodingType(query);
  const encode = (text: string) => encoding === "url" ? urlEncodeKey(text) : text;
  const uploads: ListedUpload[] = [];
  const prefixes: string[] = [];
  const count = () => uploads.length + prefixes.length;
  // Where the listing starts: the first key of the prefix, or after the markers. A marker
  // that is a common prefix skips its keys, as a listing resumed after it must.
  let start: { key: string; uploadId?: string } = { key: prefix };
  if (keyMarker !== "" && keyMarker >= prefix) {
    const rolledUp = delimiter !== "" && keyMarker.endsWith(delimiter) &&
      keyMarker.slice(prefix.length).indexOf(delimiter) ===
        keyMarker.length - prefix.length - delimiter.length;
    start = idMarker !== ""
      ? { key: keyMarker, uploadId: idMarker + "\0" }
      : rolledUp
      ? { key: afterPrefix(keyMarker) }
      : { key: keyMarker + "\0" };
  }
  let truncated = false;
  let restart = true;
  while (restart && !truncated) {
    restart = false;
    const entries = uploadsByKey(core.store, request.bucket, start, {
      batchSize: Math.min(maxUploads + 1, LIST_BATCH),
    });
    for await (const entry of entries) {
      const key = entry.key;
      if (!key.startsWith(prefix)) break;
      if (count() === maxUploads) {
        truncated = true;
        break;
      }
      const cut = delimiter === "" ? -1 : key.indexOf(delimiter, prefix.length);
      if (cut !== -1) {
        // Every key under this common prefix is skipped by starting the list again after it.
        const common = key.slice(0, cut + delimiter.length);
        prefixes.push(common);
        start = { key: afterPrefix(common) };
        restart = true;
        break;
      }
      uploads.push(entry);
    }
  }
  const last = uploads.at(-1);
  const lastPrefix = prefixes.at(-1) ?? "";
  const nextKey = last !== undefined && last.key >= lastPrefix ? last.key : lastPrefix;
  return xmlResponse("ListMultipartUploadsResult", {
    Bucket: request.bucket,
    KeyMarker: encode(keyMarker),
    UploadIdMarker: idMarker,
    NextKeyMarker: truncated ? encode(nextKey) : undefined,
    NextUploadIdMarker: truncated && nextKey === last?.key ? last.uploadId : undefined,
    Delimiter: delimiter === "" ? undefined : encode(delimiter),
    Prefix: encode(prefix),
    MaxUploads: maxUploads,
    IsTruncated: truncated,
    EncodingType: encoding,
    Upload: uploads.map((upload) => ({
      Key: encode(upload.key),
      UploadId: upload.uploadId,
      Initiator: OWNER,
      Owner: OWNER,
      StorageClass: STORAGE_CLASS,
      Initiated: isoDate(upload.initiated),
    })),
    CommonPrefixes: prefixes.map((common) => ({ Prefix: encode(common) })),
  });
}
