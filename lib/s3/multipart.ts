// S3 multipart uploads (docs/s3.md): Create, UploadPart, UploadPartCopy, Complete, Abort,
// ListParts, ListMultipartUploads, and the reaping of abandoned uploads. Nothing of an upload is
// kept in the index's memory or on its disk, so that an index restart between parts loses
// nothing:
//
// - each part is an ordinary key of the index under its reserved prefix, `/-/mpu/<upload>/<00001>`,
//   streamed to its replicas as it arrives by the one write path (`IndexServer.write`), its record
//   keeping its md5 (the part's ETag), size and time; rebuild, verify, rebalance and gc treat parts
//   as the data they are, and plain clients cannot write there;
// - the upload itself (bucket, key, time, content type, metadata) is an entry of the KV under the
//   prefix "u", by upload id (`["u", "id", id]`) and by object key for the listing
//   (`["u", "key", bucket, key, id]`); upload ids begin with their creation time, so the oldest
//   come first for the reaper;
// - Complete streams the parts, one after the other, from a live replica each, into the write of
//   the final object, checking each part's md5 and size on the way: constant memory whatever the
//   object's size. Then the upload's entries go, then its parts. A crash in between leaves parts
//   without an upload, which `reap` removes.

import { firstLine } from "../errors.ts";
import { PARTS_PREFIX, recordPath, toHex } from "../placement.ts";
import { isPending, type KeyRecord } from "../core/record.ts";
import type { Core as IndexServer, WriteResult } from "../core/mod.ts";
import { UPLOADS_PREFIX as UPLOADS } from "../core/store.ts";
import { VolumeError } from "../volumes/mod.ts";
import { Md5 } from "../md5.ts";
import {
  checkConditions,
  contentTypeOf,
  isoDate,
  keepFailure,
  MAX_LIST_KEYS,
  parseCopySource,
  s3WriteOptions,
  storedHeaders,
  urlEncodeKey,
  userMetadata,
  WRITE_LOCK_WAIT_MS,
  writeConditionFailure,
  writeFailure,
} from "./objects.ts";
import { parseChecksumAlgorithm } from "./checksum.ts";
import { S3Error } from "./error.ts";
import {
  malformedXml,
  MAX_XML_BODY_BYTES,
  parseXml,
  renderError,
  renderXml,
  requestId,
  s3Error,
  XML_DECLARATION,
  xmlResponse,
} from "./xml.ts";

/** S3's smallest part but the last; a constructor option lowers it for tests. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** S3's largest part. */
export const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
/** S3's part numbers run from 1 to this. */
export const MAX_PART_NUMBER = 10_000;
/** Bytes of each read of a part's replica, for a reader of the joined parts without a buffer. */
const JOIN_CHUNK_BYTES = 256 * 1024;
/** How often CompleteMultipartUpload sends a space while it joins the parts. */
const KEEP_ALIVE_INTERVAL_MS = 1_000;
/** How long a completed upload's result is kept to answer a repeated Complete with. */
const COMPLETED_TTL_MS = 3_600_000;
/** Entries read from the KV per round trip of a listing (the KV allows 1000). */
const LIST_BATCH = 500;
/** Digits of a part number in its key, so that keys sort in part order. */
const PART_DIGITS = 5;
/** Hex digits of the creation time (milliseconds) that begin an upload id. */
const ID_TIME_DIGITS = 12;
/** Random hex digits that end an upload id. */
const ID_RANDOM_DIGITS = 20;
const UPLOAD_ID = new RegExp(`^[0-9a-f]{${ID_TIME_DIGITS + ID_RANDOM_DIGITS}}$`);
/** Who owns and started every upload: the store has one owner. */
const OWNER = { ID: "mkv", DisplayName: "mkv" };

/** What a repeated CompleteMultipartUpload is answered from. */
interface CompletedUpload {
  bucket: string;
  key: string;
  etag: string;
}
const STORAGE_CLASS = "STANDARD";

/** One multipart request, as the S3 API (lib/s3/api.ts) hands it over, its body decoded
 * (aws-chunked) and checked (sha256, checksums). */
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

export interface MultipartOptions {
  /** Uploads older than this are aborted by `reap`. */
  maxAgeMs: number;
  /** The smallest part but the last, checked at Complete; MIN_PART_BYTES if absent. */
  minPartBytes?: number;
}

/** An upload's entry in the KV. */
export interface UploadState {
  bucket: string;
  key: string;
  /** When it was created, in milliseconds since the epoch. */
  initiated: number;
  /** `Content-Type` given at Create, for the final object. */
  type?: string;
  /** `x-amz-meta-*` given at Create (names lower-case, without the prefix). */
  meta?: Record<string, string>;
  /** The standard headers given at Create (lib/s3/objects.ts, STORED_HEADERS). */
  headers?: Record<string, string>;
}

/** A part as its record tells it. */
export interface StoredPart {
  partNumber: number;
  /** Lower-case hex md5 of the part: its ETag, unquoted. */
  md5: string;
  sizeBytes: number;
  mtime: number;
  volumes: string[];
  /** The version of its file (a part uploaded again has a new one), if any. */
  version?: string;
}

/** A part named by CompleteMultipartUpload's body. */
export interface RequestedPart {
  partNumber: number;
  /** Unquoted, lower-case. */
  etag: string;
}

// ---- pure ----

/** A new upload id: the time in hex (so ids sort by age), then random hex. */
export function newUploadId(nowMs: number, random: Uint8Array): string {
  const time = Math.floor(nowMs).toString(16).padStart(ID_TIME_DIGITS, "0");
  return time + toHex(random).slice(0, ID_RANDOM_DIGITS).padEnd(ID_RANDOM_DIGITS, "0");
}

/** Whether `text` could be an upload id of ours: anything else is NoSuchUpload. */
export function isUploadId(text: string): boolean {
  return UPLOAD_ID.test(text);
}

/** The index key of a part. Ends in digits, so its base64 file name never ends in `/`. */
export function partKey(uploadId: string, partNumber: number): string {
  return `${PARTS_PREFIX}${uploadId}/${String(partNumber).padStart(PART_DIGITS, "0")}`;
}

/** The upload id and part number of a part's key, or null if it is not one. */
export function parsePartKey(key: string): { uploadId: string; partNumber: number } | null {
  const match = key.match(/^\/-\/mpu\/([0-9a-f]+)\/(\d{5})$/);
  if (match === null || !isUploadId(match[1])) return null;
  return { uploadId: match[1], partNumber: Number(match[2]) };
}

/** S3's ETag of a multipart object: the md5 of the parts' binary md5s, then `-N`. */
export function multipartEtag(partMd5s: string[]): string {
  const hash = new Md5();
  for (const md5 of partMd5s) hash.update(Uint8Array.fromHex(md5));
  return `${hash.hex()}-${partMd5s.length}`;
}

/** A part number of a request (`partNumber=`), or an S3Error. */
export function parsePartNumber(text: string | null | undefined): number | S3Error {
  if (text === null || text === undefined || !/^\d{1,5}$/.test(text)) {
    return new S3Error(
      400,
      "InvalidArgument",
      `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    );
  }
  const number = Number(text);
  if (number < 1 || number > MAX_PART_NUMBER) {
    return new S3Error(
      400,
      "InvalidArgument",
      `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    );
  }
  return number;
}

/** A count or marker of a listing's query: a whole number up to `max`, `fallback` if absent. */
export function parseCount(
  query: URLSearchParams,
  name: string,
  options: { fallback: number; max: number },
): number | S3Error {
  const text = query.get(name);
  if (text === null) return options.fallback;
  if (!/^\d{1,9}$/.test(text)) {
    return new S3Error(400, "InvalidArgument", `${name} must be a whole number`);
  }
  return Math.min(Number(text), options.max);
}

/** CompleteMultipartUpload's result document's fields. */
function completeResult(request: MultipartRequest, etag: string): Record<string, unknown> {
  return {
    Location: objectUrl(request),
    Bucket: request.bucket,
    Key: request.key,
    ETag: `"${etag}"`,
  };
}

/**
 * A 200 whose body is `document` once it is ready: the XML declaration at once, a space every
 * `intervalMs` until then (so that neither a client's read timeout nor a proxy's ends the wait),
 * then the document, or the S3 error document of its failure. A client that goes away does not
 * stop the work.
 */
export function keptAlive(document: Promise<string>, options: { intervalMs: number }): Response {
  const encoder = new TextEncoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  const ending = document.then(
    (text) => text.replace(XML_DECLARATION, ""),
    (err) => {
      const failure = err instanceof S3Error
        ? err
        : new S3Error(500, "InternalError", `cannot complete the upload: ${firstLine(err)}`);
      if (!(err instanceof S3Error)) console.error(`index: ${failure.message}`);
      return renderError(failure, requestId()).replace(XML_DECLARATION, "");
    },
  );
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(XML_DECLARATION));
      timer = setInterval(() => controller.enqueue(encoder.encode(" ")), options.intervalMs);
      ending.then((text) => {
        clearInterval(timer);
        controller.enqueue(encoder.encode(text));
        controller.close();
      }).catch(() => {});
    },
    cancel() {
      clearInterval(timer);
    },
  });
  // X-Accel-Buffering: the index's nginx passes each space on as it comes.
  return new Response(body, {
    headers: { "content-type": "application/xml", "x-accel-buffering": "no" },
  });
}

/** An ETag as clients quote it (`"abc"`), unquoted and lower-case. */
function unquote(etag: string): string {
  return etag.trim().replace(/^"(.*)"$/, "$1").toLowerCase();
}

/**
 * The object's URL, as S3 gives it in CompleteMultipartUpload's result: absolute, with the scheme
 * and host the client used (the index's nginx passes its Host header and sets X-Forwarded-Proto).
 */
export function objectUrl(request: MultipartRequest): string {
  const path = `/${request.bucket}/${urlEncodeKey(request.key)}`;
  const host = request.headers.get("host");
  const scheme = request.headers.get("x-forwarded-proto") === "https" ? "https" : "http";
  return host === null ? path : `${scheme}://${host}${path}`;
}

/** The parts CompleteMultipartUpload names, in the order given; throws S3Error (MalformedXML). */
export function parseCompleteBody(xml: string): RequestedPart[] {
  const root = parseXml(xml).CompleteMultipartUpload;
  if (typeof root !== "object" || root === null) throw malformedXml();
  const parts = (root as Record<string, unknown>).Part;
  if (!Array.isArray(parts) || parts.length === 0) throw malformedXml();
  if (parts.length > MAX_PART_NUMBER) throw malformedXml();
  return parts.map((part) => {
    if (typeof part !== "object" || part === null) throw malformedXml();
    const { PartNumber, ETag } = part as Record<string, unknown>;
    if (typeof PartNumber !== "string" || typeof ETag !== "string") throw malformedXml();
    const number = parsePartNumber(PartNumber);
    if (number instanceof S3Error) throw number;
    return { partNumber: number, etag: unquote(ETag) };
  });
}

/**
 * Checks Complete's list against the stored parts as S3 does: ascending order (InvalidPartOrder),
 * each part present with its ETag (InvalidPart), each but the last at least `minPartBytes`
 * (EntityTooSmall). Returns the parts to join, in order.
 */
export function checkCompleteParts(
  requested: RequestedPart[],
  stored: Map<number, StoredPart>,
  minPartBytes: number,
): StoredPart[] | S3Error {
  for (let i = 1; i < requested.length; i++) {
    if (requested[i].partNumber <= requested[i - 1].partNumber) {
      return new S3Error(
        400,
        "InvalidPartOrder",
        "The list of parts was not in ascending order. The parts list must be specified in " +
          "order of the part number.",
      );
    }
  }
  const parts: StoredPart[] = [];
  for (const { partNumber, etag } of requested) {
    const part = stored.get(partNumber);
    if (part === undefined || part.md5 !== etag) {
      return new S3Error(
        400,
        "InvalidPart",
        `One or more of the specified parts could not be found or its entity tag did not ` +
          `match: part ${partNumber}`,
      );
    }
    parts.push(part);
  }
  for (const part of parts.slice(0, -1)) {
    if (part.sizeBytes < minPartBytes) {
      return new S3Error(
        400,
        "EntityTooSmall",
        `Your proposed upload is smaller than the minimum allowed size: part ` +
          `${part.partNumber} has ${part.sizeBytes} bytes, parts but the last need ` +
          `${minPartBytes}`,
      );
    }
  }
  return parts;
}

/** `x-amz-copy-source-range: bytes=first-last` within a source of `sizeBytes`, or an S3Error. */
export function parseCopyRange(
  header: string,
  sizeBytes: number,
): { start: number; end: number } | S3Error {
  const match = header.match(/^bytes=(\d{1,15})-(\d{1,15})$/);
  if (match === null) {
    return new S3Error(
      400,
      "InvalidArgument",
      "The x-amz-copy-source-range value must be of the form bytes=first-last where first " +
        "and last are the zero-based offsets of the first and last bytes to copy",
    );
  }
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (start > end) {
    return new S3Error(
      400,
      "InvalidArgument",
      `Range specified is not valid for source object of size: ${sizeBytes}`,
    );
  }
  if (end >= sizeBytes) {
    return new S3Error(416, "InvalidRange", "The requested range is not satisfiable");
  }
  return { start, end };
}

/**
 * The length of the decoded payload, where the request says it: `x-amz-decoded-content-length`
 * for aws-chunked bodies, else `Content-Length` (which for aws-chunked counts the framing).
 */
export function payloadLength(headers: Headers): number | undefined {
  const whole = (text: string | null) =>
    text !== null && /^\d{1,15}$/.test(text) ? Number(text) : undefined;
  const decoded = headers.get("x-amz-decoded-content-length");
  if (decoded !== null) return whole(decoded);
  const chunked = (headers.get("content-encoding") ?? "").includes("aws-chunked") ||
    (headers.get("x-amz-content-sha256") ?? "").startsWith("STREAMING-");
  return chunked ? undefined : whole(headers.get("content-length"));
}

/** The smallest string after every string that begins with `prefix` (UTF-8 byte order). */
export function afterPrefix(prefix: string): string {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    // Skips the surrogate range, which UTF-8 strings never hold.
    const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
    if (next <= 0x10ffff) return points.join("") + String.fromCodePoint(next);
  }
  return "\u{10ffff}".repeat(prefix.length + 1);
}

/** A part from its key's record, or null if it is not a readable part. */
function storedPart(key: string, record: KeyRecord): StoredPart | null {
  const parsed = parsePartKey(key);
  if (parsed === null || record.state !== "live" || record.info === undefined) return null;
  return {
    partNumber: parsed.partNumber,
    md5: record.md5,
    sizeBytes: record.info.size,
    mtime: record.info.mtime,
    volumes: record.volumes,
    ...(record.version !== undefined && { version: record.version }),
  };
}

// ---- I/O ----

/** Reads a request body up to `maxBytes` as text; S3Error if longer. */
async function readText(
  body: ReadableStream<Uint8Array> | undefined,
  maxBytes: number,
): Promise<string> {
  if (body === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      throw new S3Error(
        400,
        "MaxMessageLengthExceeded",
        `Your request was too big: more than ${maxBytes} bytes`,
      );
    }
    chunks.push(chunk);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

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

/** The multipart uploads of the S3 API, kept in the index's KV and on its volumes. */
export class Multipart {
  readonly server: IndexServer;
  readonly maxAgeMs: number;
  readonly minPartBytes: number;
  /** The time in the last upload id made, so that the next one sorts after it. */
  #lastIdMs = 0;

  constructor(server: IndexServer, options: MultipartOptions) {
    this.server = server;
    this.maxAgeMs = options.maxAgeMs;
    this.minPartBytes = options.minPartBytes ?? MIN_PART_BYTES;
  }

  /** CreateMultipartUpload (`POST /bucket/key?uploads`). */
  async create(request: MultipartRequest): Promise<Response> {
    return await this.#answer(request, async () => {
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
      this.#lastIdMs = Math.max(initiated, this.#lastIdMs + 1);
      const uploadId = newUploadId(this.#lastIdMs, crypto.getRandomValues(new Uint8Array(16)));
      const state: UploadState = {
        bucket: request.bucket,
        key: request.key,
        initiated,
        type,
        meta,
        headers,
      };
      const committed = await this.server.store.kv.atomic()
        .set([UPLOADS, "id", uploadId], JSON.stringify(state))
        .set([UPLOADS, "key", request.bucket, request.key, uploadId], initiated)
        .commit();
      if (!committed.ok) throw new S3Error(500, "InternalError", "cannot record the upload");
      return xmlResponse("InitiateMultipartUploadResult", {
        Bucket: request.bucket,
        Key: request.key,
        UploadId: uploadId,
        ChecksumAlgorithm: algorithm?.toUpperCase(),
      }, {
        headers: algorithm === null ? {} : { "x-amz-checksum-algorithm": algorithm.toUpperCase() },
      });
    });
  }

  /** UploadPart (`PUT /bucket/key?partNumber=N&uploadId=ID`): streamed to the part's replicas. */
  async uploadPart(request: MultipartRequest): Promise<Response> {
    return await this.#answer(request, async () => {
      const { uploadId, partNumber } = await this.#partTarget(request);
      const sizeBytes = payloadLength(request.headers);
      if (sizeBytes !== undefined && sizeBytes > MAX_PART_BYTES) {
        throw new S3Error(
          400,
          "EntityTooLarge",
          `Your proposed upload exceeds the maximum allowed size of ${MAX_PART_BYTES} bytes`,
        );
      }
      const body = request.body ?? new Response(new Uint8Array()).body!;
      const md5 = await this.#writePart(uploadId, partNumber, body, { sizeBytes });
      return new Response(null, { status: 200, headers: { etag: `"${md5}"` } });
    });
  }

  /**
   * UploadPartCopy (`PUT ...?partNumber&uploadId` with `x-amz-copy-source`): the source object's
   * bytes (or `x-amz-copy-source-range` of them) streamed from one of its live replicas.
   */
  async uploadPartCopy(request: MultipartRequest): Promise<Response> {
    return await this.#answer(request, async () => {
      await request.body?.cancel();
      const { uploadId, partNumber } = await this.#partTarget(request);
      const source = parseCopySource(request.headers.get("x-amz-copy-source") ?? "");
      // The source is read as CopyObject and GET read it: a live replica that has its file.
      const found = await this.server.locate(source.key);
      if (!found.ok) {
        if (found.status === 410) throw new S3Error(503, "ServiceUnavailable", found.reason);
        throw new S3Error(404, "NoSuchKey", "The specified key does not exist.", source.key);
      }
      const conditions = new Headers();
      for (
        const name of ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]
      ) {
        const value = request.headers.get(`x-amz-copy-source-${name}`);
        if (value !== null) conditions.set(name, value);
      }
      if (checkConditions(conditions, found.record) !== null) {
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
      const response = await this.server.volumes.get(found.location, found.path, { range: asked });
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
      const md5 = await this.#writePart(uploadId, partNumber, body, {
        sizeBytes: partBytes,
        from: found.location,
      });
      return xmlResponse("CopyPartResult", { ETag: `"${md5}"`, LastModified: isoDate(Date.now()) });
    });
  }

  /**
   * CompleteMultipartUpload (`POST /bucket/key?uploadId=ID`): checks the list, then answers 200
   * at once and, while it streams the parts into the final object (replacing a live one), keeps
   * the connection alive with whitespace; then sends the result, or the S3 error document, in
   * that 200, as S3 does (#keptAlive). The upload and its parts go once the object is committed.
   * Completing it again within COMPLETED_TTL_MS, as a client that lost the answer does, answers
   * the same result.
   */
  async complete(request: MultipartRequest): Promise<Response> {
    return await this.#answer(request, async () => {
      const uploadId = request.uploadId ?? "";
      const done = await this.server.store.kv.get<string>([UPLOADS, "done", uploadId]);
      const earlier = done.value === null ? null : JSON.parse(done.value) as CompletedUpload;
      if (earlier?.bucket === request.bucket && earlier.key === request.key) {
        await request.body?.cancel();
        return xmlResponse("CompleteMultipartUploadResult", completeResult(request, earlier.etag));
      }
      await this.#upload(request);
      const requested = parseCompleteBody(await readText(request.body, MAX_XML_BODY_BYTES));
      const lock = this.#lock(uploadId);
      let joining: Promise<string>;
      try {
        // Another Complete or an Abort may have finished while this one waited for its body.
        const state = await this.#upload(request);
        const stored = new Map<number, StoredPart>();
        for await (const part of this.#parts(uploadId, 0)) stored.set(part.partNumber, part);
        const parts = checkCompleteParts(requested, stored, this.minPartBytes);
        if (parts instanceof S3Error) throw parts;
        // If-Match and If-None-Match are checked before the 200, to answer them with their own
        // status, and again under the key's lock as the object is written (a write may come
        // between): one that fails there is an error document in the 200.
        const current = await this.server.store.get(request.indexKey);
        const unmet = writeConditionFailure(
          request.headers,
          current?.state === "live" ? current : null,
        );
        if (unmet !== null) throw writeFailure(unmet, { key: request.indexKey });
        joining = this.#join(request, state, parts);
      } catch (err) {
        lock[Symbol.dispose]();
        throw err;
      }
      return keptAlive(joining.finally(() => lock[Symbol.dispose]()), {
        intervalMs: KEEP_ALIVE_INTERVAL_MS,
      });
    });
  }

  /** Writes the parts as the object, removes the upload; the result document. */
  async #join(request: MultipartRequest, state: UploadState, parts: StoredPart[]): Promise<string> {
    const uploadId = request.uploadId ?? "";
    const etag = multipartEtag(parts.map((part) => part.md5));
    const joined = this.#joined(uploadId, parts);
    const result = await this.server.write(request.indexKey, joined.stream, {
      sizeBytes: parts.reduce((sum, part) => sum + part.sizeBytes, 0),
      attributes: { type: state.type, meta: state.meta, headers: state.headers, etag },
      ...s3WriteOptions(request.headers),
    });
    if (!result.ok) throw writeFailure(result, { cause: joined.cause() });
    const completed: CompletedUpload = { bucket: request.bucket, key: request.key, etag };
    await this.server.store.kv.set([UPLOADS, "done", uploadId], JSON.stringify(completed), {
      expireIn: COMPLETED_TTL_MS,
    });
    await this.#forget(uploadId, state);
    await this.#removeParts(uploadId);
    return renderXml("CompleteMultipartUploadResult", completeResult(request, etag));
  }

  /** AbortMultipartUpload (`DELETE /bucket/key?uploadId=ID`): the upload and its parts go. */
  async abort(request: MultipartRequest): Promise<Response> {
    return await this.#answer(request, async () => {
      await request.body?.cancel();
      const uploadId = request.uploadId ?? "";
      using _lock = this.#lock(uploadId);
      const state = await this.#upload(request);
      await this.#forget(uploadId, state);
      await this.#removeParts(uploadId);
      return new Response(null, { status: 204 });
    });
  }

  /** ListParts (`GET /bucket/key?uploadId=ID`), `max-parts` and `part-number-marker`. */
  async listParts(request: MultipartRequest): Promise<Response> {
    return await this.#answer(request, async () => {
      await request.body?.cancel();
      const uploadId = request.uploadId ?? "";
      await this.#upload(request);
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
      for await (const part of this.#parts(uploadId, marker + 1)) {
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
    });
  }

  /**
   * ListMultipartUploads (`GET /bucket?uploads`): `prefix`, `delimiter` (CommonPrefixes),
   * `key-marker`, `upload-id-marker`, `max-uploads`, `encoding-type=url`. Uploads of a key come
   * in the order they were created.
   */
  async listUploads(request: MultipartRequest): Promise<Response> {
    return await this.#answer(request, async () => {
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
      const encoding = query.get("encoding-type");
      if (encoding !== null && encoding !== "url") {
        throw new S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request");
      }
      const encode = (text: string) => encoding === "url" ? urlEncodeKey(text) : text;
      const uploads: { Key: string; UploadId: string; initiated: number }[] = [];
      const prefixes: string[] = [];
      const count = () => uploads.length + prefixes.length;
      // Where the listing starts: the first key of the prefix, or after the markers. A marker
      // that is a common prefix skips its keys, as a listing resumed after it must.
      let start: Deno.KvKey = [UPLOADS, "key", request.bucket, prefix];
      if (keyMarker !== "" && keyMarker >= prefix) {
        const rolledUp = delimiter !== "" && keyMarker.endsWith(delimiter) &&
          keyMarker.slice(prefix.length).indexOf(delimiter) ===
            keyMarker.length - prefix.length - delimiter.length;
        start = idMarker !== ""
          ? [UPLOADS, "key", request.bucket, keyMarker, idMarker + "\0"]
          : rolledUp
          ? [UPLOADS, "key", request.bucket, afterPrefix(keyMarker)]
          : [UPLOADS, "key", request.bucket, keyMarker + "\0"];
      }
      let truncated = false;
      let restart = true;
      while (restart && !truncated) {
        restart = false;
        const entries = this.server.store.kv.list<number>(
          { prefix: [UPLOADS, "key", request.bucket], start },
          { batchSize: Math.min(maxUploads + 1, LIST_BATCH) },
        );
        for await (const entry of entries) {
          const key = entry.key[3] as string;
          const uploadId = entry.key[4] as string;
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
            start = [UPLOADS, "key", request.bucket, afterPrefix(common)];
            restart = true;
            break;
          }
          uploads.push({ Key: key, UploadId: uploadId, initiated: entry.value });
        }
      }
      const last = uploads.at(-1);
      const lastPrefix = prefixes.at(-1) ?? "";
      const nextKey = last !== undefined && last.Key >= lastPrefix ? last.Key : lastPrefix;
      return xmlResponse("ListMultipartUploadsResult", {
        Bucket: request.bucket,
        KeyMarker: encode(keyMarker),
        UploadIdMarker: idMarker,
        NextKeyMarker: truncated ? encode(nextKey) : undefined,
        NextUploadIdMarker: truncated && nextKey === last?.Key ? last.UploadId : undefined,
        Delimiter: delimiter === "" ? undefined : encode(delimiter),
        Prefix: encode(prefix),
        MaxUploads: maxUploads,
        IsTruncated: truncated,
        EncodingType: encoding ?? undefined,
        Upload: uploads.map((upload) => ({
          Key: encode(upload.Key),
          UploadId: upload.UploadId,
          Initiator: OWNER,
          Owner: OWNER,
          StorageClass: STORAGE_CLASS,
          Initiated: isoDate(upload.initiated),
        })),
        CommonPrefixes: prefixes.map((common) => ({ Prefix: encode(common) })),
      });
    });
  }

  /**
   * Aborts the uploads older than `maxAgeMs`, and removes parts whose upload is gone (a crash
   * between a Complete's or an Abort's removal of the upload and of its parts, or an index
   * rebuilt from the volumes). Returns how many uploads it removed, of either kind. The index
   * calls it periodically; an upload in a Complete or Abort is left for the next time.
   */
  async reap(): Promise<number> {
    const cutoff = Date.now() - this.maxAgeMs;
    let reaped = 0;
    // Upload ids begin with their creation time: the oldest come first.
    for await (const entry of this.server.store.kv.list<string>({ prefix: [UPLOADS, "id"] })) {
      const uploadId = entry.key[2] as string;
      const state = JSON.parse(entry.value) as UploadState;
      if (state.initiated > cutoff) break;
      using lock = this.server.store.lock(partKey(uploadId, 0));
      if (lock === null) continue;
      await this.#forget(uploadId, state);
      await this.#removeParts(uploadId);
      reaped++;
    }
    let current = "";
    let orphaned = false;
    for await (
      const [key, record] of this.server.store.list({ prefix: PARTS_PREFIX, state: "all" })
    ) {
      const parsed = parsePartKey(key);
      if (parsed === null || isPending(record)) continue;
      if (parsed.uploadId !== current) {
        current = parsed.uploadId;
        orphaned = (await this.server.store.kv.get([UPLOADS, "id", current])).value === null;
        if (orphaned) reaped++;
      }
      if (orphaned) await this.#removePart(key);
    }
    return reaped;
  }

  /** Runs a request's handler; an S3Error thrown becomes its answer. */
  async #answer(request: MultipartRequest, handler: () => Promise<Response>): Promise<Response> {
    try {
      return await handler();
    } catch (err) {
      if (!(err instanceof S3Error)) throw err;
      await request.body?.cancel().catch(() => {});
      return s3Error(err);
    }
  }

  /**
   * The upload's lock, held by Complete, Abort and the reaper, so that one at a time removes it.
   * The key it locks, part 0, is never a part.
   */
  #lock(uploadId: string): Disposable {
    const lock = this.server.store.lock(partKey(uploadId, 0));
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
  async #upload(request: MultipartRequest): Promise<UploadState> {
    const uploadId = request.uploadId ?? "";
    const noSuch = new S3Error(
      404,
      "NoSuchUpload",
      "The specified upload does not exist. The upload ID may be invalid, or the upload may " +
        "have been aborted or completed.",
      uploadId,
    );
    if (!isUploadId(uploadId)) throw noSuch;
    const entry = await this.server.store.kv.get<string>([UPLOADS, "id", uploadId]);
    if (entry.value === null) throw noSuch;
    const state = JSON.parse(entry.value) as UploadState;
    if (state.bucket !== request.bucket || state.key !== request.key) throw noSuch;
    return state;
  }

  /** The upload and part number of an UploadPart(Copy), checked. */
  async #partTarget(
    request: MultipartRequest,
  ): Promise<{ uploadId: string; partNumber: number }> {
    const partNumber = parsePartNumber(
      request.partNumber === undefined ? null : String(request.partNumber),
    );
    if (partNumber instanceof S3Error) throw partNumber;
    await this.#upload(request);
    return { uploadId: request.uploadId!, partNumber };
  }

  /**
   * Writes a part (replacing one of the same number) and returns its md5. A part whose upload
   * was aborted or completed meanwhile is removed again: NoSuchUpload. `from` names the replica
   * a copied part is read from: a body that breaks is then the index's failure, not the client's.
   */
  async #writePart(
    uploadId: string,
    partNumber: number,
    body: ReadableStream<Uint8Array>,
    options: { sizeBytes?: number; from?: string },
  ): Promise<string> {
    const key = partKey(uploadId, partNumber);
    // With --protect no live value is replaced (docs/s3.md, "Overwrites"), but a part is the
    // index's own: the one it replaces is removed first.
    if (this.server.options.protect && (await this.server.store.get(key))?.state === "live") {
      await this.#removePart(key);
    }
    const source = keepFailure(body);
    // Empty attributes keep the part's md5 in its record (its ETag), whatever --md5sum says.
    const result: WriteResult = await this.server.write(key, source.body, {
      sizeBytes: options.sizeBytes,
      attributes: {},
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
    const entry = await this.server.store.kv.get([UPLOADS, "id", uploadId]);
    if (entry.value === null) {
      await this.#removePart(key);
      throw new S3Error(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload may have been aborted or completed.",
        uploadId,
      );
    }
    return result.md5;
  }

  /** The upload's live parts from part `first` on, in order, lazily. */
  async *#parts(uploadId: string, first: number): AsyncGenerator<StoredPart> {
    const prefix = `${PARTS_PREFIX}${uploadId}/`;
    const start = partKey(uploadId, Math.max(first, 1));
    for await (const [key, record] of this.server.store.list({ prefix, start, state: "live" })) {
      const part = storedPart(key, record);
      if (part !== null) yield part;
    }
  }

  /** Removes the upload's entries (its parts stay, for `#removeParts`). */
  async #forget(uploadId: string, state: UploadState): Promise<void> {
    const committed = await this.server.store.kv.atomic()
      .delete([UPLOADS, "id", uploadId])
      .delete([UPLOADS, "key", state.bucket, state.key, uploadId])
      .commit();
    if (!committed.ok) throw new S3Error(500, "InternalError", "cannot remove the upload");
  }

  /** Removes every part of an upload; one that cannot be now is left to `reap`. */
  async #removeParts(uploadId: string): Promise<void> {
    const prefix = `${PARTS_PREFIX}${uploadId}/`;
    for await (const [key] of this.server.store.list({ prefix, state: "all" })) {
      await this.#removePart(key);
    }
  }

  async #removePart(key: string): Promise<void> {
    const removed = await this.server.remove(key, { force: true });
    // 404: removed by another (a racing Complete, Abort or reaper); 409: its write is in
    // progress, and removes the part itself when it finds the upload gone.
    if (!removed.ok && removed.status !== 404 && removed.status !== 409) {
      console.error(
        `index: multipart part ${key}: not removed, left for the reaper: ${removed.reason}`,
      );
    }
  }

  /**
   * The part's file (the one its record names) from the first of its live replicas (best first)
   * that opens; S3Error if none does.
   */
  async #openReplica(key: string, part: StoredPart): Promise<Response> {
    const path = recordPath(key, part);
    const locations = part.volumes;
    const reasons: string[] = [];
    for (const location of locations.filter((l) => this.server.volumes.isAlive(l))) {
      try {
        return await this.server.volumes.get(location, path);
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
  #joined(
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
          const response = await this.#openReplica(key, parts[index]);
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
}
