// CopyObject (`PUT /bucket/key` with `x-amz-copy-source`, docs/s3.md): the source located and its
// conditions checked, then its bytes streamed from a live replica into the core's write of the
// target, with the source's attributes (COPY) or the request's (REPLACE).

import type { Core } from "../core/mod.ts";
import { bucketForWrite } from "./buckets.ts";
import { checkConditions, copySourceConditions } from "./conditions.ts";
import { S3Error } from "./error.ts";
import { contentTypeOf, isoDate, storedHeaders, userMetadata } from "./headers.ts";
import { locateObject } from "./locate.ts";
import { type ObjectTarget, parseCopySource } from "./request.ts";
import { s3WriteOptions, withoutUndefined, writeFailure } from "./write.ts";
import { xmlResponse } from "./xml.ts";

/** CopyObject: answers the new ETag and time in a CopyObjectResult. */
export async function copyObject(
  core: Core,
  request: Request,
  object: ObjectTarget,
): Promise<Response> {
  await request.body?.cancel();
  const headers = request.headers;
  const source = parseCopySource(headers.get("x-amz-copy-source")!);
  const directive = (headers.get("x-amz-metadata-directive") ?? "COPY").toUpperCase();
  if (directive !== "COPY" && directive !== "REPLACE") {
    throw new S3Error(400, "InvalidArgument", "Unknown metadata directive.");
  }
  if (source.key === object.key && directive === "COPY") {
    throw new S3Error(
      400,
      "InvalidRequest",
      "This copy request is illegal because it is trying to copy an object to itself without " +
        "changing the object's metadata, storage class, website redirect location or " +
        "encryption attributes.",
    );
  }
  await bucketForWrite(core, object.bucket);
  const found = await locateObject(core, source.key, { bucket: source.bucket });
  if (checkConditions(copySourceConditions(headers), found.record) !== null) {
    throw new S3Error(412, "PreconditionFailed", "At least one of the preconditions failed.");
  }
  const info = found.record.info;
  // The bytes are the source's: so is their checksum, whichever the directive.
  const attributes = directive === "COPY"
    ? { type: info?.type, meta: info?.meta, headers: info?.headers, checksum: info?.checksum }
    : {
      type: contentTypeOf(headers),
      meta: userMetadata(headers),
      headers: storedHeaders(headers),
      checksum: info?.checksum,
    };
  const response = await core.volumes.get(found.location, found.path);
  const length = response.headers.get("content-length");
  const result = await core.write(object.key, response.body, {
    sizeBytes: length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined,
    attributes: withoutUndefined(attributes),
    ...s3WriteOptions(headers),
  });
  if (!result.ok) {
    // The body here is the source replica's: its failure is the index's, not the client's.
    if (result.status === 400) {
      throw new S3Error(
        503,
        "ServiceUnavailable",
        `copy from ${found.location}: ${result.reason}`,
      );
    }
    throw writeFailure(result, { key: object.key });
  }
  return xmlResponse("CopyObjectResult", {
    LastModified: isoDate(result.record.info?.mtime ?? Date.now()),
    ETag: `"${result.md5}"`,
  });
}
