// DeleteObject (`DELETE /bucket/key`) and DeleteObjects (`POST /bucket?delete`, docs/s3.md): the
// key's record goes at once and its files in the background; deleting an absent key is no error,
// as S3 counts it.

import type { Core } from "../core/mod.ts";
import type { Caller } from "./auth.ts";
import { readXmlBody } from "./body.ts";
import { needBucket } from "./buckets.ts";
import { S3Error } from "./error.ts";
import { type ObjectTarget, parseS3Path } from "./request.ts";
import { xmlResponse } from "./xml.ts";

/** Keys one DeleteObjects may name (S3's bound). */
const MAX_DELETE_KEYS = 1000;
/** Deletes of one DeleteObjects done at once. */
const DELETE_CONCURRENCY = 8;

/** An element's text content from parsed XML (a string, or absent). */
function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** DeleteObject: 204 whether or not the key was there. */
export async function deleteObject(core: Core, object: ObjectTarget): Promise<Response> {
  const result = await core.remove(object.key, { background: true });
  if (!result.ok) {
    if (result.status === 404) await needBucket(core, object.bucket);
    else if (result.status === 409) {
      throw new S3Error(409, "OperationAborted", result.reason, object.key);
    } else if (result.status === 403) {
      throw new S3Error(403, "AccessDenied", result.reason, object.key);
    }
  }
  return new Response(null, { status: 204 });
}

/** DeleteObjects: each key deleted, and a DeleteResult in the order the keys were named. */
export async function deleteObjects(
  core: Core,
  request: Request,
  options: { caller: Caller; bucket: string },
): Promise<Response> {
  const { caller, bucket } = options;
  const xml = await readXmlBody(request, caller);
  await needBucket(core, bucket);
  const del = xml.Delete as Record<string, unknown> | undefined;
  const objects = Array.isArray(del?.Object) ? del.Object as Record<string, unknown>[] : [];
  if (del === undefined || objects.length === 0 || objects.length > MAX_DELETE_KEYS) {
    throw new S3Error(
      400,
      "MalformedXML",
      `A DeleteObjects request names 1 to ${MAX_DELETE_KEYS} objects.`,
    );
  }
  const quiet = text(del.Quiet) === "true";
  const names = objects.map((entry) => text(entry?.Key) ?? "");
  // Answered in the order asked, as S3 does, whatever order the deletes finish in.
  const failures: (S3Error | null)[] = new Array(names.length).fill(null);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const at = next++;
      failures[at] = await deleteOne(core, bucket, names[at]);
    }
  };
  await Promise.all(Array.from({ length: DELETE_CONCURRENCY }, worker));
  const deleted = quiet ? [] : names.filter((_, at) => failures[at] === null);
  const errors = names.flatMap((name, at) => {
    const failure = failures[at];
    return failure === null ? [] : [{ Key: name, Code: failure.code, Message: failure.message }];
  });
  return xmlResponse("DeleteResult", {
    Deleted: deleted.map((name) => ({ Key: name })),
    Error: errors,
  });
}

/** One key of a DeleteObjects: null when deleted (or absent, as S3 counts it). */
async function deleteOne(core: Core, bucket: string, name: string): Promise<S3Error | null> {
  let key: string;
  try {
    const target = parseS3Path(`/${bucket}/${encodeURIComponent(name)}`);
    if (target.kind !== "object") {
      return new S3Error(400, "InvalidArgument", "An object key must not be empty.");
    }
    key = target.key;
  } catch (err) {
    if (err instanceof S3Error) return err;
    throw err;
  }
  const result = await core.remove(key, { background: true });
  if (result.ok || result.status === 404) return null;
  if (result.status === 409) return new S3Error(409, "OperationAborted", result.reason);
  return new S3Error(403, "AccessDenied", result.reason);
}
