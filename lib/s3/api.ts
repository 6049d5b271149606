// The S3 API of the index (docs/s3.md): path-style requests on the index's port (or
// --s3-port), object `K` of bucket `B` being the key `/B/K`, so that what S3 writes `curl -L`
// reads and back. This module routes: it splits the target, tells the operation
// (lib/s3/operation.ts), checks who asks (lib/s3/auth.ts), and hands the request to the
// operation's handler, which takes the core and never the HTTP server: buckets, list, get, put,
// copy, delete, and the multipart uploads (lib/s3/multipart.ts). Errors are S3's XML.

import { DEFAULT_MULTIPART_MAX_AGE_MS } from "../config.ts";
import { StoreError } from "../core/mod.ts";
import { firstLine } from "../errors.ts";
import { VolumeError } from "../volumes/mod.ts";
import type { Core } from "../core/mod.ts";
import { VolumeAddresses } from "./address.ts";
import { authorize, type Caller } from "./auth.ts";
import { decodeBody, withBodyFailure } from "./body.ts";
import {
  bucketForWrite,
  createBucket,
  deleteBucket,
  getBucketLocation,
  getBucketVersioning,
  headBucket,
  listBuckets,
  needBucket,
  parseListBucketsParams,
} from "./buckets.ts";
import { copyObject } from "./copy.ts";
import { deleteObject, deleteObjects } from "./delete.ts";
import { S3Error } from "./error.ts";
import { getObject, getObjectAttributes } from "./get.ts";
import { listObjects } from "./list.ts";
import { Multipart } from "./multipart.ts";
import { type Operation, OPERATION_RIGHTS, s3Operation } from "./operation.ts";
import { putObject } from "./put.ts";
import { splitTarget } from "../rawtarget.ts";
import { parseS3Path } from "./request.ts";
import type { MultipartRequest } from "./uploadstate.ts";
import { s3Error } from "./xml.ts";

/** What a handler of a multipart operation is given besides the request. */
interface MultipartTarget {
  caller: Caller;
  object: { bucket: string; objectKey: string; key: string } | null;
  bucket: string;
  query: URLSearchParams;
}

/** The S3 API on one core; `handle` answers every request that lib/s3/detect.ts calls S3. */
export class S3Api {
  readonly core: Core;
  readonly multipart: Multipart;
  #addresses = new VolumeAddresses();

  constructor(core: Core) {
    this.core = core;
    this.multipart = new Multipart(core, {
      maxAgeMs: core.options.multipartMaxAgeMs ?? DEFAULT_MULTIPART_MAX_AGE_MS,
    });
  }

  /** Answers an S3 request; `target` is its path and query as sent. */
  async handle(request: Request, target: string): Promise<Response> {
    const method = request.method;
    try {
      return await this.#dispatch(request, target);
    } catch (err) {
      await request.body?.cancel().catch(() => {});
      if (err instanceof S3Error) return s3Error(err, { method });
      if (err instanceof VolumeError) {
        return s3Error(new S3Error(503, "ServiceUnavailable", firstLine(err)), { method });
      }
      if (err instanceof StoreError) {
        return s3Error(new S3Error(500, "InternalError", firstLine(err)), { method });
      }
      throw err;
    }
  }

  async #dispatch(request: Request, target: string): Promise<Response> {
    const core = this.core;
    const { rawPath, rawQuery } = splitTarget(target);
    const s3 = parseS3Path(rawPath);
    const query = new URLSearchParams(rawQuery);
    const operation = s3Operation(request.method, s3, query, request.headers);
    const caller = authorize(
      core.options.auth ?? null,
      { method: request.method, rawPath, rawQuery, headers: request.headers },
      OPERATION_RIGHTS[operation],
    );
    const bucket = s3.kind === "service" ? "" : s3.bucket;
    const object = s3.kind === "object" ? s3 : null;
    switch (operation) {
      case "ListBuckets":
        return await listBuckets(core, parseListBucketsParams(query));
      case "CreateBucket":
        return await createBucket(core, request, { bucket, caller });
      case "HeadBucket":
        return await headBucket(core, bucket);
      case "DeleteBucket":
        return await deleteBucket(core, bucket);
      case "GetBucketLocation":
        return await getBucketLocation(core, bucket);
      case "GetBucketVersioning":
        return await getBucketVersioning(core, bucket);
      case "ListObjects":
      case "ListObjectVersions":
        return await listObjects(core, bucket, query);
      case "DeleteObjects":
        return await deleteObjects(core, request, { caller, bucket });
      case "GetObject":
      case "HeadObject":
        return await getObject(core, request, {
          object: object!,
          query,
          addresses: this.#addresses,
        });
      case "GetObjectAttributes":
        return await getObjectAttributes(core, request, object!);
      case "PutObject":
        return await putObject(core, request, { caller, object: object! });
      case "CopyObject":
        return await copyObject(core, request, object!);
      case "DeleteObject":
        return await deleteObject(core, object!);
      default:
        return await this.#toMultipart(operation, request, { caller, object, bucket, query });
    }
  }

  /** A multipart operation, handed to lib/s3/multipart.ts with its body decoded and checked. */
  async #toMultipart(
    operation: Operation,
    request: Request,
    target: MultipartTarget,
  ): Promise<Response> {
    const { caller, object, bucket, query } = target;
    const multipart = this.multipart;
    if (operation === "CreateMultipartUpload") await bucketForWrite(this.core, bucket);
    else await needBucket(this.core, bucket);
    const partNumber = query.get("partNumber");
    const base: MultipartRequest = {
      bucket,
      key: object?.objectKey ?? "",
      indexKey: object?.key ?? "",
      uploadId: query.get("uploadId") ?? undefined,
      partNumber: partNumber !== null && /^\d{1,5}$/.test(partNumber)
        ? Number(partNumber)
        : undefined,
      query,
      headers: request.headers,
    };
    switch (operation) {
      case "CreateMultipartUpload":
        await request.body?.cancel();
        return await multipart.create(base);
      case "UploadPart": {
        const { body, failure } = decodeBody(request, caller);
        return await withBodyFailure(() => multipart.uploadPart({ ...base, body }), failure);
      }
      case "UploadPartCopy":
        await request.body?.cancel();
        return await multipart.uploadPartCopy(base);
      case "CompleteMultipartUpload": {
        const { body, failure } = decodeBody(request, caller, { bodyChecksums: false });
        return await withBodyFailure(() => multipart.complete({ ...base, body }), failure);
      }
      case "AbortMultipartUpload":
        await request.body?.cancel();
        return await multipart.abort(base);
      case "ListParts":
        return await multipart.listParts(base);
      default:
        return await multipart.listUploads(base);
    }
  }
}
