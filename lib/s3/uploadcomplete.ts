// CompleteMultipartUpload (`POST /bucket/key?uploadId=ID`, docs/s3.md, "Multipart uploads"):
// the list of parts checked against the stored parts, then the parts joined into the final object
// (lib/s3/uploadjoin.ts) while the answer, a 200 sent at once, keeps the connection alive. Then
// the upload's entries go, then its parts; a crash in between leaves parts without an upload,
// which the reaper removes.

import { ACCEL_BUFFERING_HEADER, FORWARDED_PROTO_HEADER } from "../nginx/contract.ts";
import { firstLine } from "../errors.ts";
import { completedUpload, recordCompleted, type UploadState } from "../core/mod.ts";
import type { Core, ObjectInfo } from "../core/mod.ts";
import { readText } from "./body.ts";
import {
  badDigest,
  CHECKSUM_HEADER_PREFIX,
  type ChecksumAlgorithm,
  newChecksum,
} from "./checksum.ts";
import { writeConditionFailure } from "./conditions.ts";
import { packPartSizes } from "./parts.ts";
import { S3Error } from "./error.ts";
import { compositeChecksum, keptPartChecksums } from "./uploadchecksum.ts";
import { urlEncodeKey } from "./listparams.ts";
import { joinParts } from "./uploadjoin.ts";
import {
  checkCompleteParts,
  multipartEtag,
  parseCompleteBody,
  type StoredPart,
} from "./uploadparse.ts";
import {
  findUpload,
  forget,
  lockUpload,
  type MultipartRequest,
  removeParts,
  storedParts,
} from "./uploadstate.ts";
import { type ObjectInfoFields, s3WriteOptions, writeFailure } from "./write.ts";
import {
  MAX_XML_BODY_BYTES,
  renderError,
  renderXml,
  requestId,
  XML_DECLARATION,
  xmlResponse,
} from "./xml.ts";

/** An object's checksum as its record keeps it. */
type ObjectChecksum = NonNullable<ObjectInfo["checksum"]>;
/**
 * What Complete knows of the object's checksum before the join: none, a COMPOSITE one, or the
 * algorithm of a FULL_OBJECT one and the value the request expects, if it gives one.
 */
type PlannedChecksum =
  | ObjectChecksum
  | { algorithm: ChecksumAlgorithm; type: "FULL_OBJECT"; expected?: string }
  | null;

/** How often CompleteMultipartUpload sends a space while it joins the parts. */
const KEEP_ALIVE_INTERVAL_MS = 1_000;
/** How long a completed upload's result is kept to answer a repeated Complete with. */
const COMPLETED_TTL_MS = 3_600_000;

/**
 * The object's URL, as S3 gives it in CompleteMultipartUpload's result: absolute, with the scheme
 * and host the client used (the index's nginx passes its Host header and sets X-Forwarded-Proto).
 */
function objectUrl(request: MultipartRequest): string {
  const path = `/${request.bucket}/${urlEncodeKey(request.key)}`;
  const host = request.headers.get("host");
  const scheme = request.headers.get(FORWARDED_PROTO_HEADER) === "https" ? "https" : "http";
  return host === null ? path : `${scheme}://${host}${path}`;
}

/** CompleteMultipartUpload's result document's fields. */
function completeResult(
  request: MultipartRequest,
  completed: { etag: string; checksum?: ObjectChecksum },
): Record<string, unknown> {
  const { etag, checksum } = completed;
  return {
    Location: objectUrl(request),
    Bucket: request.bucket,
    Key: request.key,
    ETag: `"${etag}"`,
    ...(checksum && {
      [`Checksum${checksum.algorithm.toUpperCase()}`]: checksum.base64,
      ChecksumType: checksum.type,
    }),
  };
}

/**
 * The object's checksum as far as it is known before the join (docs/s3.md, "Checksums"): none if
 * the upload asked for none; a COMPOSITE one from its parts' checksums, checked against the one
 * the request gives (BadDigest); for FULL_OBJECT, the algorithm, computed as the parts stream.
 * Throws InvalidRequest for a part stored without the upload's checksum.
 */
function plannedChecksum(
  state: UploadState,
  options: { parts: StoredPart[]; headers: Headers },
): PlannedChecksum {
  if (state.checksum === undefined) return null;
  const algorithm = state.checksum.algorithm as ChecksumAlgorithm;
  const partBase64s = options.parts.map((part) => {
    if (part.checksum?.algorithm !== algorithm) {
      throw new S3Error(
        400,
        "InvalidRequest",
        `The upload was created using a ${algorithm.toUpperCase()} checksum: part ` +
          `${part.partNumber} was uploaded without one.`,
      );
    }
    return part.checksum.base64;
  });
  const expected = options.headers.get(CHECKSUM_HEADER_PREFIX + algorithm)?.trim();
  if (state.checksum.type === "FULL_OBJECT") return { algorithm, type: "FULL_OBJECT", expected };
  const base64 = compositeChecksum(algorithm, partBase64s);
  if (expected !== undefined && expected !== base64) throw badDigest(algorithm);
  return { algorithm, base64, type: "COMPOSITE" };
}

/**
 * A 200 whose body is `document` once it is ready: the XML declaration at once, a space every
 * `intervalMs` until then (so that neither a client's read timeout nor a proxy's ends the wait),
 * then the document, or the S3 error document of its failure. A client that goes away does not
 * stop the work.
 */
function keptAlive(document: Promise<string>, options: { intervalMs: number }): Response {
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
    headers: { "content-type": "application/xml", [ACCEL_BUFFERING_HEADER]: "no" },
  });
}

/** Writes the parts as the object, removes the upload; the result document. */
async function join(
  core: Core,
  request: MultipartRequest,
  options: { state: UploadState; parts: StoredPart[]; planned: PlannedChecksum },
): Promise<string> {
  const { state, parts, planned } = options;
  const uploadId = request.uploadId ?? "";
  const etag = multipartEtag(parts.map((part) => part.md5));
  const joined = joinParts(core, uploadId, parts);
  // The record's attributes are read when it is committed, after the stream has ended: a
  // FULL_OBJECT checksum, computed as the parts stream, is set by then (as PutObject's is).
  const attributes: ObjectInfoFields = {
    type: state.type,
    meta: state.meta,
    headers: state.headers,
    etag,
    parts: packPartSizes(parts.map((part) => part.sizeBytes)),
  };
  const keepChecksum = (checksum: ObjectChecksum) => {
    attributes.checksum = checksum;
    const partChecksums = keptPartChecksums(parts.map((part) => part.checksum!.base64));
    if (partChecksums !== undefined) attributes.partChecksums = partChecksums;
  };
  let stream = joined.stream;
  let digestFailure: S3Error | undefined;
  if (planned !== null && "base64" in planned) keepChecksum(planned);
  else if (planned !== null) {
    // A mismatch with the checksum asked for fails the write before it is committed.
    const { algorithm, expected } = planned;
    const digest = newChecksum(algorithm);
    stream = stream.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          digest.update(chunk);
          controller.enqueue(chunk);
        },
        flush(controller) {
          const base64 = digest.digestBase64();
          if (expected !== undefined && expected !== base64) {
            digestFailure = badDigest(algorithm);
            controller.error(digestFailure);
          } else keepChecksum({ algorithm, base64, type: "FULL_OBJECT" });
        },
      }),
    );
  }
  const result = await core.write(request.indexKey, stream, {
    sizeBytes: parts.reduce((sum, part) => sum + part.sizeBytes, 0),
    attributes,
    ...s3WriteOptions(request.headers),
  });
  if (!result.ok) throw writeFailure(result, { cause: digestFailure ?? joined.cause() });
  const completed = {
    bucket: request.bucket,
    key: request.key,
    etag,
    checksum: attributes.checksum,
  };
  await recordCompleted(core.store, uploadId, completed, { ttlMs: COMPLETED_TTL_MS });
  await forget(core, uploadId, state);
  await removeParts(core, uploadId);
  return renderXml("CompleteMultipartUploadResult", completeResult(request, completed));
}

/**
 * CompleteMultipartUpload (`POST /bucket/key?uploadId=ID`): checks the list, then answers 200
 * at once and, while it streams the parts into the final object (replacing a live one), keeps
 * the connection alive with whitespace; then sends the result, or the S3 error document, in
 * that 200, as S3 does (keptAlive). The upload and its parts go once the object is committed.
 * Completing it again within COMPLETED_TTL_MS, as a client that lost the answer does, answers
 * the same result.
 */
export async function completeUpload(
  core: Core,
  request: MultipartRequest,
  options: { minPartBytes: number },
): Promise<Response> {
  const uploadId = request.uploadId ?? "";
  const earlier = await completedUpload(core.store, uploadId);
  if (earlier?.bucket === request.bucket && earlier.key === request.key) {
    await request.body?.cancel();
    return xmlResponse("CompleteMultipartUploadResult", completeResult(request, earlier));
  }
  await findUpload(core, request);
  const requested = parseCompleteBody(await readText(request.body, MAX_XML_BODY_BYTES));
  const lock = lockUpload(core, uploadId);
  let joining: Promise<string>;
  try {
    // Another Complete or an Abort may have finished while this one waited for its body.
    const state = await findUpload(core, request);
    const stored = new Map<number, StoredPart>();
    for await (const part of storedParts(core, uploadId, 0)) stored.set(part.partNumber, part);
    const parts = checkCompleteParts(requested, stored, options.minPartBytes);
    if (parts instanceof S3Error) throw parts;
    // If-Match and If-None-Match are checked before the 200, to answer them with their own
    // status, and again under the key's lock as the object is written (a write may come
    // between): one that fails there is an error document in the 200.
    const current = await core.store.get(request.indexKey);
    const unmet = writeConditionFailure(
      request.headers,
      current?.state === "live" ? current : null,
    );
    if (unmet !== null) throw writeFailure(unmet, { key: request.indexKey });
    const planned = plannedChecksum(state, { parts, headers: request.headers });
    joining = join(core, request, { state, parts, planned });
  } catch (err) {
    lock[Symbol.dispose]();
    throw err;
  }
  return keptAlive(joining.finally(() => lock[Symbol.dispose]()), {
    intervalMs: KEEP_ALIVE_INTERVAL_MS,
  });
}
