// S3's object listings (docs/s3.md): ListObjects (v1), ListObjectsV2 and ListObjectVersions of
// one bucket, read from the core's records in key order, with the common prefixes of a
// delimiter skipped by starting a new read past them.

import type { KeyRecord } from "../core/mod.ts";
import type { Core } from "../core/mod.ts";
import { needBucket } from "./buckets.ts";
import { etagOf, isoDate } from "./headers.ts";
import { encodeToken, parseListParams, urlEncodeKey } from "./listparams.ts";
import { OWNER, STORAGE_CLASS, xmlResponse } from "./xml.ts";

/** The highest code point: a key starting with P sorts before P + this (skips a common prefix). */
const LAST_CHAR = "\u{10FFFF}";
/** Keys of one common prefix a listing reads through before it skips the rest with a new read. */
const SKIPS_BEFORE_JUMP = 64;

function listEntry(
  name: string,
  record: KeyRecord,
  encode: (value: string) => string,
): Record<string, unknown> {
  return {
    Key: encode(name),
    LastModified: isoDate(record.info?.mtime ?? 0),
    ETag: etagOf(record) || undefined,
    Size: record.info?.size ?? 0,
    StorageClass: STORAGE_CLASS,
  };
}

/**
 * ListObjects (v1) and ListObjectsV2: live keys under `/BUCKET/PREFIX` in byte order, after the
 * marker, start-after or continuation token; with a delimiter, the keys that hold it after the
 * prefix are rolled into CommonPrefixes (each counted once toward max-keys), and the many keys
 * of a common prefix are skipped by starting a new read past them.
 */
export async function listObjects(
  core: Core,
  bucket: string,
  query: URLSearchParams,
): Promise<Response> {
  await needBucket(core, bucket);
  const params = parseListParams(query);
  const base = `/${bucket}/`;
  const contents: Record<string, unknown>[] = [];
  const prefixes: string[] = [];
  let truncated = false;
  let last = "";
  // A page that ended on a common prefix resumes after it: its keys are not listed again.
  let lastPrefix = params.delimiter !== "" ? params.after : "";
  let start = params.after === "" ? undefined : base + params.after;
  const encode = (value: string) => params.encodingType === "url" ? urlEncodeKey(value) : value;
  // max-keys=0 asks for no key: an empty page that is not truncated, as S3 answers it.
  scan: while (params.maxKeys > 0) {
    const records = core.store.list({
      prefix: base + params.prefix,
      start,
      state: "live",
    });
    let skipped = 0;
    for await (const [key, record] of records) {
      const name = key.slice(base.length);
      if (name === params.after) continue;
      if (lastPrefix !== "" && name.startsWith(lastPrefix)) {
        // Past a few keys of a common prefix, a new read starting after them all is cheaper.
        if (++skipped < SKIPS_BEFORE_JUMP) continue;
        start = base + lastPrefix + LAST_CHAR;
        continue scan;
      }
      skipped = 0;
      let commonPrefix: string | null = null;
      if (params.delimiter !== "") {
        const at = name.indexOf(params.delimiter, params.prefix.length);
        if (at !== -1) commonPrefix = name.slice(0, at + params.delimiter.length);
      }
      if (contents.length + prefixes.length >= params.maxKeys) {
        truncated = true;
        break scan;
      }
      if (commonPrefix !== null) {
        prefixes.push(commonPrefix);
        lastPrefix = commonPrefix;
        last = commonPrefix;
        continue;
      }
      contents.push(listEntry(name, record, encode));
      last = name;
    }
    break;
  }
  const common = prefixes.map((prefix) => ({ Prefix: encode(prefix) }));
  const shared = {
    Name: bucket,
    // ListObjects (v1) sends its Prefix as asked, encoded or not, as S3 does (botocore decodes
    // v1's Prefix for no one); v2 and ListObjectVersions encode it with the keys.
    Prefix: params.version === 1 ? params.prefix : encode(params.prefix),
    Delimiter: params.delimiter === "" ? undefined : encode(params.delimiter),
    MaxKeys: params.maxKeys,
    EncodingType: params.encodingType,
    IsTruncated: truncated,
  };
  if (params.version === "versions") {
    // An unversioned store: every object is its one version, "null", the latest.
    return xmlResponse("ListVersionsResult", {
      ...shared,
      KeyMarker: encode(params.marker ?? ""),
      VersionIdMarker: params.marker === undefined ? undefined : "null",
      NextKeyMarker: truncated ? encode(last) : undefined,
      NextVersionIdMarker: truncated ? "null" : undefined,
      Version: contents.map((entry) => ({
        Key: entry.Key,
        VersionId: "null",
        IsLatest: true,
        LastModified: entry.LastModified,
        ETag: entry.ETag,
        Size: entry.Size,
        StorageClass: entry.StorageClass,
        Owner: OWNER,
      })),
      CommonPrefixes: common,
    });
  }
  if (params.version === 2) {
    return xmlResponse("ListBucketResult", {
      ...shared,
      KeyCount: contents.length + prefixes.length,
      ContinuationToken: params.continuationToken,
      NextContinuationToken: truncated ? encodeToken(last) : undefined,
      StartAfter: params.startAfter === undefined ? undefined : encode(params.startAfter),
      Contents: params.fetchOwner
        ? contents.map((entry) => ({ ...entry, Owner: OWNER }))
        : contents,
      CommonPrefixes: common,
    });
  }
  return xmlResponse("ListBucketResult", {
    ...shared,
    Marker: encode(params.marker ?? ""),
    NextMarker: truncated && params.delimiter !== "" ? encode(last) : undefined,
    // ListObjects (v1) names every object's owner, as S3's does.
    Contents: contents.map((entry) => ({ ...entry, Owner: OWNER })),
    CommonPrefixes: common,
  });
}
