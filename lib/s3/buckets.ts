// S3's buckets (docs/s3.md, "Buckets"): ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
// GetBucketLocation and GetBucketVersioning, and the rules every handler asks: a bucket exists
// once created (a marker, lib/core/buckets.ts) and also while it holds keys (written by the plain
// API); a write needs one, or on an open cluster makes one.

import { hasBucketMarker, markBucket, markedBuckets, unmarkBucket } from "../core/mod.ts";
import type { KeyRecord } from "../core/mod.ts";
import type { Core } from "../core/mod.ts";
import type { Caller } from "./auth.ts";
import { readXmlBody } from "./body.ts";
import { S3Error } from "./error.ts";
import { isoDate } from "./headers.ts";
import { decodeToken, encodeToken } from "./listparams.ts";
import { bucketNameProblem } from "./request.ts";
import { OWNER, xmlResponse } from "./xml.ts";

/** The most buckets ListBuckets shows. */
const MAX_BUCKETS = 10_000;
/** Store reads one ListBuckets may spend finding the buckets that hold keys. */
const MAX_BUCKET_SCAN_READS = 20_000;

/** The region a CreateBucketConfiguration body asks for, "" when it names none. */
function locationConstraint(body: Record<string, unknown>): string {
  const config = body.CreateBucketConfiguration;
  if (typeof config !== "object" || config === null) return "";
  const region = (config as Record<string, unknown>).LocationConstraint;
  return typeof region === "string" ? region.trim() : "";
}

function noSuchBucket(bucket: string): S3Error {
  return new S3Error(404, "NoSuchBucket", "The specified bucket does not exist", bucket);
}

/**
 * Whether the bucket holds keys: live ones, or with "all" any but those being deleted (gone for
 * readers already; their files go in the background).
 */
async function bucketHasKeys(core: Core, bucket: string, state: "live" | "all"): Promise<boolean> {
  for await (const [, record] of core.store.list({ prefix: `/${bucket}/`, state })) {
    if (record.state !== "deleting") return true;
  }
  return false;
}

/** A bucket exists once created, and also while it holds keys (written by the plain API). */
async function bucketExists(core: Core, bucket: string): Promise<boolean> {
  return await hasBucketMarker(core.store, bucket) || await bucketHasKeys(core, bucket, "live");
}

/** Throws NoSuchBucket unless the bucket exists. */
export async function needBucket(core: Core, bucket: string): Promise<void> {
  if (!await bucketExists(core, bucket)) throw noSuchBucket(bucket);
}

/**
 * The bucket rule for writes (docs/s3.md, "Buckets"). With --credentials a write needs a bucket
 * that exists, as S3's do. Without, as minikeyvalue's S3 users expect, writing into a bucket
 * creates it: it is then listed and kept until DeleteBucket, as if CreateBucket had been called.
 */
export async function bucketForWrite(core: Core, bucket: string): Promise<void> {
  if (await bucketExists(core, bucket)) return;
  if (core.options.auth) throw noSuchBucket(bucket);
  await markBucket(core.store, bucket, Date.now());
}

/**
 * The first path segments of live keys that are bucket names: one store read per segment
 * (and per key outside any bucket, such as `/wehave`), at most MAX_BUCKET_SCAN_READS in all.
 */
async function bucketsHoldingKeys(core: Core): Promise<Map<string, number>> {
  const names = new Map<string, number>();
  let start = "/";
  for (let reads = 0; reads < MAX_BUCKET_SCAN_READS && names.size < MAX_BUCKETS; reads++) {
    let first: [string, KeyRecord] | undefined;
    for await (const found of core.store.list({ prefix: "/", start, state: "live" })) {
      first = found;
      break;
    }
    if (first === undefined) break;
    const [key, record] = first;
    const slash = key.indexOf("/", 1);
    if (slash === -1) {
      // A key outside any bucket: the next key after it.
      start = `${key}\0`;
      continue;
    }
    const name = key.slice(1, slash);
    // Its creation date is unknown: the time of its first key stands for it.
    if (bucketNameProblem(name) === null) names.set(name, record.info?.mtime ?? 0);
    // "0" is the character after "/": the first key past every key of this segment.
    start = `/${name}0`;
  }
  return names;
}

/** What a ListBuckets asks: `max-buckets`, `continuation-token` and `prefix`. */
export interface ListBucketsParams {
  /** The most buckets in one answer, 1 to MAX_BUCKETS. */
  maxBuckets: number;
  /** Only buckets after this name (from a continuation token). */
  after: string;
  /** Only buckets whose names start with this. */
  prefix: string;
}

/** The ListBuckets parameters of a query; throws InvalidArgument on a bad one. Pure. */
export function parseListBucketsParams(query: URLSearchParams): ListBucketsParams {
  let maxBuckets = MAX_BUCKETS;
  const max = query.get("max-buckets");
  if (max !== null) {
    if (!/^[0-9]{1,5}$/.test(max) || Number(max) < 1 || Number(max) > MAX_BUCKETS) {
      throw new S3Error(400, "InvalidArgument", `max-buckets must be from 1 to ${MAX_BUCKETS}`);
    }
    maxBuckets = Number(max);
  }
  const token = query.get("continuation-token");
  return {
    maxBuckets,
    after: token === null ? "" : decodeToken(token),
    prefix: query.get("prefix") ?? "",
  };
}

/**
 * ListBuckets: those made by CreateBucket (or by a write on an open cluster), and those that
 * hold keys written by the plain API, in name order, `max-buckets` at a time with a continuation
 * token after the last. The second are found by skipping from one first path segment to the
 * next, one read each, never by reading every key.
 */
export async function listBuckets(core: Core, params: ListBucketsParams): Promise<Response> {
  const created = new Map<string, number>();
  for await (const [name, createdMs] of markedBuckets(core.store)) {
    if (created.size === MAX_BUCKETS) break;
    created.set(name, createdMs);
  }
  const holding = await bucketsHoldingKeys(core);
  const names = [...new Set([...created.keys(), ...holding.keys()])].sort()
    .filter((name) => name > params.after && name.startsWith(params.prefix));
  const shown = names.slice(0, params.maxBuckets);
  const truncated = names.length > shown.length;
  return xmlResponse("ListAllMyBucketsResult", {
    Owner: OWNER,
    Buckets: {
      Bucket: shown.map((name) => ({
        Name: name,
        CreationDate: isoDate(created.get(name) ?? holding.get(name) ?? 0),
      })),
    },
    ContinuationToken: truncated ? encodeToken(shown[shown.length - 1]) : undefined,
    Prefix: params.prefix === "" ? undefined : params.prefix,
  });
}

/** CreateBucket (`PUT /bucket`). */
export async function createBucket(
  core: Core,
  request: Request,
  options: { bucket: string; caller: Caller },
): Promise<Response> {
  const { bucket, caller } = options;
  // The body is a CreateBucketConfiguration naming a region; the cluster answers as us-east-1.
  const region = request.body === null
    ? ""
    : locationConstraint(await readXmlBody(request, caller, { optional: true }));
  // S3's legacy rule: creating a bucket you own again succeeds in us-east-1 (changing
  // nothing) and is BucketAlreadyOwnedByYou when another region is asked.
  if (await hasBucketMarker(core.store, bucket)) {
    if (region === "" || region === "us-east-1") {
      return new Response(null, { headers: { location: `/${bucket}` } });
    }
    throw new S3Error(
      409,
      "BucketAlreadyOwnedByYou",
      "Your previous request to create the named bucket succeeded and you already own it.",
      bucket,
    );
  }
  await markBucket(core.store, bucket, Date.now());
  return new Response(null, { headers: { location: `/${bucket}` } });
}

/** DeleteBucket (`DELETE /bucket`): only an empty bucket, and only one that was created. */
export async function deleteBucket(core: Core, bucket: string): Promise<Response> {
  const marked = await hasBucketMarker(core.store, bucket);
  if (await bucketHasKeys(core, bucket, "all")) {
    throw new S3Error(
      409,
      "BucketNotEmpty",
      "The bucket you tried to delete is not empty",
      bucket,
    );
  }
  if (!marked) throw noSuchBucket(bucket);
  await unmarkBucket(core.store, bucket);
  return new Response(null, { status: 204 });
}

/** HeadBucket (`HEAD /bucket`). */
export async function headBucket(core: Core, bucket: string): Promise<Response> {
  await needBucket(core, bucket);
  return new Response(null, { headers: { "x-amz-bucket-region": "us-east-1" } });
}

/** GetBucketLocation (`GET /bucket?location`): the cluster answers as us-east-1. */
export async function getBucketLocation(core: Core, bucket: string): Promise<Response> {
  await needBucket(core, bucket);
  return xmlResponse("LocationConstraint", {});
}

/** GetBucketVersioning (`GET /bucket?versioning`): never enabled. */
export async function getBucketVersioning(core: Core, bucket: string): Promise<Response> {
  await needBucket(core, bucket);
  return xmlResponse("VersioningConfiguration", {});
}
