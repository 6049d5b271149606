// AbortMultipartUpload (`DELETE /bucket/key?uploadId=ID`, docs/s3.md, "Multipart uploads"):
// under the upload's lock, its entries go, then its parts.

import type { Core } from "../core/mod.ts";
import {
  findUpload,
  forget,
  lockUpload,
  type MultipartRequest,
  removeParts,
} from "./uploadstate.ts";

/** AbortMultipartUpload (`DELETE /bucket/key?uploadId=ID`): the upload and its parts go. */
export async function abortUpload(core: Core, request: MultipartRequest): Promise<Response> {
  await request.body?.cancel();
  const uploadId = request.uploadId ?? "";
  using _lock = lockUpload(core, uploadId);
  const state = await findUpload(core, request);
  await forget(core, uploadId, state);
  await removeParts(core, uploadId);
  return new Response(null, { status: 204 });
}
