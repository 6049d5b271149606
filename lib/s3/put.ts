// PutObject (`PUT /bucket/key`, docs/s3.md, "Overwrites"): the body decoded and checked as it
// streams into the core's write, with the object's content type, user metadata, standard headers
// and the checksum it was checked against kept in its record.

import type { Core } from "../core/mod.ts";
import type { Caller } from "./auth.ts";
import { decodeBody } from "./body.ts";
import { bucketForWrite } from "./buckets.ts";
import { announcedChecksum, checksumRecorder } from "./checksum.ts";
import { checksumHeader, contentTypeOf, storedHeaders, userMetadata } from "./headers.ts";
import type { ObjectTarget } from "./request.ts";
import { type ObjectInfoFields, s3WriteOptions, withoutUndefined, writeFailure } from "./write.ts";

/** PutObject: streamed to the key's replicas; answers the ETag and the checksum kept. */
export async function putObject(
  core: Core,
  request: Request,
  options: { caller: Caller; object: ObjectTarget },
): Promise<Response> {
  const { caller, object } = options;
  const attributes = {
    type: contentTypeOf(request.headers),
    meta: userMetadata(request.headers),
    headers: storedHeaders(request.headers),
  };
  await bucketForWrite(core, object.bucket);
  const algorithm = announcedChecksum(request.headers);
  const decoded = decodeBody(request, caller);
  const stored: ObjectInfoFields = withoutUndefined(attributes);
  // The checksum the body was checked against is kept with the value, and answered.
  const body = algorithm === null ? decoded.body : decoded.body.pipeThrough(
    checksumRecorder(algorithm, (base64) => {
      stored.checksum = { algorithm, base64 };
    }),
  );
  const result = await core.write(object.key, body, {
    sizeBytes: decoded.sizeBytes,
    attributes: stored,
    ...s3WriteOptions(request.headers),
  });
  if (!result.ok) throw writeFailure(result, { key: object.key, cause: decoded.failure() });
  const checksum = result.record.info?.checksum;
  return new Response(null, {
    headers: {
      etag: `"${result.md5}"`,
      ...(checksum && checksumHeader(checksum)),
    },
  });
}
