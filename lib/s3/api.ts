// The S3 API of the index (docs/s3.md): path-style requests on the index's port (or
// --s3-port), object `K` of bucket `B` being the key `/B/K`, so that what S3 writes `curl -L`
// reads and back. Buckets are markers in the KV (and any bucket that holds keys exists). Bodies of
// GET do not pass through Deno: the index answers its nginx with `X-Accel-Redirect` to a location
// that proxies the chosen replica (nginx.ts, renderProxyLocations); only a value with user
// metadata is streamed by the index, to carry its `x-amz-meta-*`. Uploads are decoded
// (aws-chunked), checked (sha256, checksums, Content-MD5) and streamed into IndexServer.write;
// multipart requests go to lib/s3/multipart.ts. Errors are S3's XML.

import { lookup } from "node:dns/promises";
import { DEFAULT_MULTIPART_MAX_AGE_MS } from "../config.ts";
import type { Auth } from "../auth/auth.ts";
import type { Right } from "../auth/credentials.ts";
import { Md5 } from "../md5.ts";
import { isHostPort, type KeyPath, locationHost } from "../placement.ts";
import type { KeyRecord, ObjectInfo } from "../core/record.ts";
import type { Core as IndexServer } from "../core/mod.ts";
import { BUCKETS_PREFIX as BUCKETS, StoreError } from "../core/store.ts";
import { VolumeError } from "../volumes/mod.ts";
import { decodeAwsChunked, parseTrailerNames, TRAILER_SIGNATURE } from "./chunked.ts";
import {
  announcedChecksum,
  checksumRecorder,
  checksumVerifier,
  expectedChecksums,
} from "./checksum.ts";
import { REPLICA_LOCATION } from "./detect.ts";
import { Multipart, type MultipartRequest } from "./multipart.ts";
import {
  bucketNameProblem,
  checkConditions,
  checksumHeaders,
  contentTypeOf,
  encodeToken,
  etagOf,
  isoDate,
  keepFailure,
  type ListParams,
  locationConstraint,
  objectHeaders,
  parseCopySource,
  parseListParams,
  parseRange,
  parseS3Path,
  rangeApplies,
  responseOverrides,
  type S3Target,
  s3WriteOptions,
  storedHeaders,
  urlEncodeKey,
  userMetadata,
  writeFailure,
} from "./objects.ts";
import { S3Error } from "./error.ts";
import {
  type ChunkSigning,
  isSha256Payload,
  parseSigV4,
  sha256Verifier,
  STREAMING_PAYLOAD,
  STREAMING_PAYLOAD_TRAILER,
  STREAMING_UNSIGNED_PAYLOAD_TRAILER,
  verifySigV4,
} from "./sigv4.ts";
import { parseSigV2, verifySigV2 } from "./sigv2.ts";
import { MAX_XML_BODY_BYTES, parseXml, s3Error, xmlResponse } from "./xml.ts";

/** How far a signed request's date may be from the index's clock (S3's 15 minutes). */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000;
/** Buckets are markers under this KV prefix, beside the records. */
/** The most buckets ListBuckets shows. */
const MAX_BUCKETS = 10_000;
/** Store reads one ListBuckets may spend finding the buckets that hold keys. */
const MAX_BUCKET_SCAN_READS = 20_000;
/** Keys one DeleteObjects may name (S3's bound). */
const MAX_DELETE_KEYS = 1000;
/** Deletes of one DeleteObjects done at once. */
const DELETE_CONCURRENCY = 8;
/** A volume host's resolved address is used this long before it is looked up again. */
const ADDRESS_TTL_MS = 10_000;
/** The highest code point: a key starting with P sorts before P + this (skips a common prefix). */
const LAST_CHAR = "\u{10FFFF}";
/** Keys of one common prefix a listing reads through before it skips the rest with a new read. */
const SKIPS_BEFORE_JUMP = 64;
/** The owner every listing names: there are no users beyond access keys. */
const OWNER = { ID: "mkv", DisplayName: "mkv" };

/** The S3 operations the API knows, and the rights (lib/auth/credentials.ts) each needs. */
export type Operation =
  | "ListBuckets"
  | "CreateBucket"
  | "HeadBucket"
  | "DeleteBucket"
  | "GetBucketLocation"
  | "GetBucketVersioning"
  | "ListObjects"
  | "ListObjectVersions"
  | "DeleteObjects"
  | "GetObject"
  | "GetObjectAttributes"
  | "HeadObject"
  | "PutObject"
  | "CopyObject"
  | "DeleteObject"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "UploadPartCopy"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "ListParts"
  | "ListMultipartUploads";

export const OPERATION_RIGHTS: Record<Operation, Right[]> = {
  ListBuckets: ["list"],
  CreateBucket: ["write"],
  HeadBucket: ["list"],
  DeleteBucket: ["delete"],
  GetBucketLocation: ["list"],
  GetBucketVersioning: ["list"],
  ListObjects: ["list"],
  ListObjectVersions: ["list"],
  DeleteObjects: ["delete"],
  GetObject: ["read"],
  GetObjectAttributes: ["read"],
  HeadObject: ["read"],
  PutObject: ["write"],
  CopyObject: ["read", "write"],
  DeleteObject: ["delete"],
  CreateMultipartUpload: ["write"],
  UploadPart: ["write"],
  UploadPartCopy: ["read", "write"],
  CompleteMultipartUpload: ["write"],
  AbortMultipartUpload: ["delete"],
  ListParts: ["list"],
  ListMultipartUploads: ["list"],
};

/** The methods of S3's REST API; any other is 405 MethodNotAllowed. */
const S3_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"];

/** Sub-resources of buckets and objects that the API does not have: 501 NotImplemented. */
export const UNSUPPORTED = [
  "accelerate",
  "acl",
  "analytics",
  "cors",
  "encryption",
  "lifecycle",
  "logging",
  "notification",
  "object-lock",
  "policy",
  "replication",
  "tagging",
  "website",
  "restore",
  "select",
  "torrent",
  "retention",
  "legal-hold",
  "intelligent-tiering",
  "inventory",
  "metrics",
  "ownershipControls",
  "publicAccessBlock",
  "requestPayment",
];

/**
 * The operation of a request, by its method, target and query (pure). Throws S3Error:
 * MethodNotAllowed, or NotImplemented for a sub-resource the API does not have.
 */
export function s3Operation(
  method: string,
  target: S3Target,
  query: URLSearchParams,
  headers: Headers,
): Operation {
  const notAllowed = () =>
    new S3Error(405, "MethodNotAllowed", `The ${method} method is not allowed here.`);
  // A method S3 does not have is the client's mistake (405), whatever it asks for; a feature S3
  // has and this API does not is S3's own answer, 501 NotImplemented.
  if (!S3_METHODS.includes(method)) throw notAllowed();
  const unsupported = UNSUPPORTED.find((name) => query.has(name));
  if (unsupported !== undefined) {
    throw new S3Error(501, "NotImplemented", `The ?${unsupported} sub-resource is not supported.`);
  }
  if (target.kind === "service") {
    if (method === "GET" || method === "HEAD") return "ListBuckets";
    throw notAllowed();
  }
  if (target.kind === "bucket") {
    switch (method) {
      case "GET":
        if (query.has("uploads")) return "ListMultipartUploads";
        if (query.has("location")) return "GetBucketLocation";
        if (query.has("versioning")) return "GetBucketVersioning";
        if (query.has("versions")) return "ListObjectVersions";
        return "ListObjects";
      case "HEAD":
        return "HeadBucket";
      case "PUT":
        // Versioning cannot be turned on: a PUT of it is no CreateBucket.
        if (query.has("versioning")) {
          throw new S3Error(501, "NotImplemented", "Versioning cannot be enabled here.");
        }
        return "CreateBucket";
      case "DELETE":
        return "DeleteBucket";
      case "POST":
        if (query.has("delete")) return "DeleteObjects";
        throw notAllowed();
      default:
        throw notAllowed();
    }
  }
  switch (method) {
    case "GET":
      if (query.has("uploadId")) return "ListParts";
      if (query.has("attributes")) return "GetObjectAttributes";
      return "GetObject";
    case "HEAD":
      return "HeadObject";
    case "PUT":
      if (query.has("uploadId") || query.has("partNumber")) {
        return headers.has("x-amz-copy-source") ? "UploadPartCopy" : "UploadPart";
      }
      return headers.has("x-amz-copy-source") ? "CopyObject" : "PutObject";
    case "POST":
      if (query.has("uploads")) return "CreateMultipartUpload";
      if (query.has("uploadId")) return "CompleteMultipartUpload";
      throw notAllowed();
    case "DELETE":
      return query.has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
    default:
      throw notAllowed();
  }
}

/** Who a request is, once its signature is checked, and how its body is to be read. */
interface Caller {
  accessKey: string | null;
  /** The payload hash the request signed (or, unsigned, gave in x-amz-content-sha256). */
  payloadHash: string | null;
  /** Set when the chunks of an aws-chunked body are signed and the secret is known. */
  signing?: ChunkSigning;
}

/** A pass-through stream that errors with BadDigest if the body's md5 is not Content-MD5's. */
function md5Verifier(contentMd5: string): TransformStream<Uint8Array, Uint8Array> {
  let expected: string;
  try {
    const bytes = Uint8Array.fromBase64(contentMd5.trim());
    if (bytes.length !== 16) throw new Error("not 16 bytes");
    expected = bytes.toHex();
  } catch {
    throw new S3Error(400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
  }
  const hash = new Md5();
  return new TransformStream({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      if (hash.hex() !== expected) {
        throw new S3Error(
          400,
          "BadDigest",
          "The Content-MD5 you specified did not match what we received.",
        );
      }
    },
  });
}

/** The entries of `headers` named in `names` that it has. */
function pick(headers: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(names.filter((name) => name in headers).map((n) => [n, headers[n]]));
}

/** Throws AccessDenied unless the access key has every right in `rights`. */
function needRights(auth: Auth, accessKey: string, rights: Right[]): void {
  for (const right of rights) {
    if (!auth.allows(accessKey, right)) {
      throw new S3Error(
        403,
        "AccessDenied",
        `Access Denied: access key ${accessKey} may not ${right}.`,
      );
    }
  }
}

/** An element's text content from parsed XML (a string, or absent). */
function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** The S3 API of one IndexServer; `handle` answers every request that lib/s3/detect.ts calls S3. */
export class S3Api {
  readonly server: IndexServer;
  readonly multipart: Multipart;
  #addresses = new Map<string, { address: string; atMs: number }>();

  constructor(server: IndexServer) {
    this.server = server;
    this.multipart = new Multipart(server, {
      maxAgeMs: server.options.multipartMaxAgeMs ?? DEFAULT_MULTIPART_MAX_AGE_MS,
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
        return s3Error(new S3Error(503, "ServiceUnavailable", err.message), { method });
      }
      if (err instanceof StoreError) {
        return s3Error(new S3Error(500, "InternalError", err.message), { method });
      }
      throw err;
    }
  }

  async #dispatch(request: Request, target: string): Promise<Response> {
    const q = target.indexOf("?");
    const rawPath = q === -1 ? target : target.slice(0, q);
    const rawQuery = q === -1 ? "" : target.slice(q + 1);
    const s3 = parseS3Path(rawPath);
    const query = new URLSearchParams(rawQuery);
    const operation = s3Operation(request.method, s3, query, request.headers);
    const caller = this.#authorize(request, rawPath, rawQuery, OPERATION_RIGHTS[operation]);
    const bucket = s3.kind === "service" ? "" : s3.bucket;
    const object = s3.kind === "object" ? s3 : null;
    switch (operation) {
      case "ListBuckets":
        return await this.#listBuckets();
      case "CreateBucket":
        return await this.#createBucket(request, bucket, caller);
      case "HeadBucket":
        await this.#needBucket(bucket);
        return new Response(null, { headers: { "x-amz-bucket-region": "us-east-1" } });
      case "DeleteBucket":
        return await this.#deleteBucket(bucket);
      case "GetBucketLocation":
        await this.#needBucket(bucket);
        return xmlResponse("LocationConstraint", {});
      case "GetBucketVersioning":
        await this.#needBucket(bucket);
        return xmlResponse("VersioningConfiguration", {});
      case "ListObjects":
      case "ListObjectVersions":
        await this.#needBucket(bucket);
        return await this.#listObjects(bucket, parseListParams(query));
      case "DeleteObjects":
        return await this.#deleteObjects(request, caller, bucket);
      case "GetObject":
      case "HeadObject":
        return await this.#getObject(request, object!, query);
      case "GetObjectAttributes":
        return await this.#getObjectAttributes(request, object!);
      case "PutObject":
        return await this.#putObject(request, caller, object!);
      case "CopyObject":
        return await this.#copyObject(request, object!);
      case "DeleteObject":
        return await this.#deleteObject(object!);
      default:
        return await this.#toMultipart(operation, request, caller, object, bucket, query);
    }
  }

  /**
   * Checks the request's signature and the caller's rights. With --credentials, a request must be
   * signed by a known key with every right in `rights` (reads may be anonymous with
   * --public-read); without, every request is let through, and a signature is not checked (the
   * index has no secret to check it with).
   */
  #authorize(request: Request, rawPath: string, rawQuery: string, rights: Right[]): Caller {
    const headers = request.headers;
    const auth = this.server.options.auth ?? null;
    const input = { method: request.method, rawPath, rawQuery, headers };
    const unsignedHash = headers.get("x-amz-content-sha256");
    const v2 = parseSigV2(input);
    if (v2 !== null) {
      if (auth === null) return { accessKey: null, payloadHash: unsignedHash };
      const verdict = verifySigV2(input, {
        secretFor: (accessKey) => auth.secretFor(accessKey),
        nowMs: Date.now(),
        maxSkewMs: MAX_CLOCK_SKEW_MS,
      });
      if (!verdict.ok) throw new S3Error(verdict.status, verdict.code, verdict.message);
      needRights(auth, verdict.accessKey, rights);
      return { accessKey: verdict.accessKey, payloadHash: verdict.payloadHash };
    }
    const parsed = parseSigV4(input);
    if (parsed !== null && "ok" in parsed) {
      throw new S3Error(parsed.status, parsed.code, parsed.message);
    }
    if (auth === null) {
      return {
        accessKey: parsed?.accessKey ?? null,
        payloadHash: parsed?.kind === "header" ? parsed.payloadHash : unsignedHash,
      };
    }
    if (parsed === null) {
      if (auth.publicRead && rights.every((right) => right === "read")) {
        return { accessKey: null, payloadHash: unsignedHash };
      }
      throw new S3Error(403, "AccessDenied", "Access Denied: requests must be signed.");
    }
    const verdict = verifySigV4(input, {
      secretFor: (accessKey) => auth.secretFor(accessKey),
      nowMs: Date.now(),
      maxSkewMs: MAX_CLOCK_SKEW_MS,
    });
    if (!verdict.ok) throw new S3Error(verdict.status, verdict.code, verdict.message);
    needRights(auth, verdict.accessKey, rights);
    return {
      accessKey: verdict.accessKey,
      payloadHash: verdict.payloadHash,
      signing: verdict.streaming,
    };
  }

  /**
   * The payload of a request's body, decoded and checked on the way (aws-chunked framing and
   * chunk signatures, the signed sha256, x-amz-checksum-*, Content-MD5): the stream errors
   * before it ends when a check fails. Its length if known, and the kept failure.
   */
  #decodeBody(
    request: Request,
    caller: Caller,
  ): {
    body: ReadableStream<Uint8Array>;
    sizeBytes?: number;
    failure: () => S3Error | null;
  } {
    const headers = request.headers;
    let body: ReadableStream<Uint8Array> = request.body ?? new Blob([]).stream();
    const length = headers.get("content-length");
    let sizeBytes = length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
    const hash = caller.payloadHash ?? "";
    if (hash.startsWith("STREAMING-")) {
      const decoded = headers.get("x-amz-decoded-content-length");
      sizeBytes = decoded !== null && /^\d{1,15}$/.test(decoded) ? Number(decoded) : undefined;
      let form = hash;
      const trailerNames = parseTrailerNames(headers.get("x-amz-trailer"));
      // Without credentials there is no secret to check chunk signatures with: the body is
      // read as the unsigned form, which takes the same framing.
      if (
        caller.signing === undefined &&
        (hash === STREAMING_PAYLOAD || hash === STREAMING_PAYLOAD_TRAILER)
      ) {
        form = STREAMING_UNSIGNED_PAYLOAD_TRAILER;
        if (hash === STREAMING_PAYLOAD_TRAILER) trailerNames.push(TRAILER_SIGNATURE);
      }
      body = decodeAwsChunked(body, {
        contentSha256: form,
        signing: caller.signing,
        decodedLengthBytes: sizeBytes,
        trailerNames,
        expected: expectedChecksums(headers),
      });
    } else {
      if (isSha256Payload(hash)) body = body.pipeThrough(sha256Verifier(hash));
      const checksum = checksumVerifier(headers);
      if (checksum !== null) body = body.pipeThrough(checksum);
    }
    const contentMd5 = headers.get("content-md5");
    if (contentMd5 !== null) body = body.pipeThrough(md5Verifier(contentMd5));
    return { ...keepFailure(body), sizeBytes };
  }

  /**
   * Reads a small XML body whole (bounded), decoded and checked; an empty body is `{}` where
   * `optional`, else MalformedXML.
   */
  async #readXmlBody(
    request: Request,
    caller: Caller,
    options: { optional?: boolean } = {},
  ): Promise<Record<string, unknown>> {
    const { body, failure } = this.#decodeBody(request, caller);
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for await (const chunk of body) {
        total += chunk.length;
        if (total > MAX_XML_BODY_BYTES) {
          await body.cancel().catch(() => {});
          throw new S3Error(400, "MalformedXML", "The XML body is too large.");
        }
        chunks.push(chunk);
      }
    } catch (err) {
      throw failure() ?? err;
    }
    if (total === 0 && options.optional) return {};
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    return parseXml(new TextDecoder().decode(bytes));
  }

  // Buckets.

  async #bucketMarker(bucket: string): Promise<boolean> {
    return (await this.server.store.kv.get([BUCKETS, bucket])).value !== null;
  }

  /**
   * Whether the bucket holds keys: live ones, or with "all" any but those being deleted (gone for
   * readers already; their files go in the background).
   */
  async #bucketHasKeys(bucket: string, state: "live" | "all"): Promise<boolean> {
    for await (const [, record] of this.server.store.list({ prefix: `/${bucket}/`, state })) {
      if (record.state !== "deleting") return true;
    }
    return false;
  }

  /** A bucket exists once created, and also while it holds keys (written by the plain API). */
  async #bucketExists(bucket: string): Promise<boolean> {
    return await this.#bucketMarker(bucket) || await this.#bucketHasKeys(bucket, "live");
  }

  async #needBucket(bucket: string): Promise<void> {
    if (!await this.#bucketExists(bucket)) {
      throw new S3Error(404, "NoSuchBucket", "The specified bucket does not exist", bucket);
    }
  }

  /**
   * The bucket rule for writes (docs/s3.md, "Buckets"). With --credentials a write needs a bucket
   * that exists, as S3's do. Without, as minikeyvalue's S3 users expect, writing into a bucket
   * creates it: it is then listed and kept until DeleteBucket, as if CreateBucket had been called.
   */
  async #bucketForWrite(bucket: string): Promise<void> {
    if (await this.#bucketExists(bucket)) return;
    if (this.server.options.auth) {
      throw new S3Error(404, "NoSuchBucket", "The specified bucket does not exist", bucket);
    }
    await this.server.store.kv.set([BUCKETS, bucket], Date.now());
  }

  /**
   * ListBuckets: those made by CreateBucket (or by a write on an open cluster), and those that
   * hold keys written by the plain API, in name order. The second are found by skipping from one
   * first path segment to the next, one read each, never by reading every key.
   */
  async #listBuckets(): Promise<Response> {
    const created = new Map<string, number>();
    for await (const entry of this.server.store.kv.list<number>({ prefix: [BUCKETS] })) {
      if (created.size === MAX_BUCKETS) break;
      created.set(entry.key[1] as string, entry.value);
    }
    const holding = await this.#bucketsHoldingKeys();
    const names = new Set([...created.keys(), ...holding.keys()]);
    const buckets = [...names].sort().slice(0, MAX_BUCKETS).map((name) => ({
      Name: name,
      CreationDate: isoDate(created.get(name) ?? holding.get(name) ?? 0),
    }));
    return xmlResponse("ListAllMyBucketsResult", {
      Owner: OWNER,
      Buckets: { Bucket: buckets },
    });
  }

  async #createBucket(request: Request, bucket: string, caller: Caller): Promise<Response> {
    // The body is a CreateBucketConfiguration naming a region; the cluster answers as us-east-1.
    const region = request.body === null
      ? ""
      : locationConstraint(await this.#readXmlBody(request, caller, { optional: true }));
    // S3's legacy rule: creating a bucket you own again succeeds in us-east-1 (changing
    // nothing) and is BucketAlreadyOwnedByYou when another region is asked.
    if (await this.#bucketMarker(bucket)) {
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
    await this.server.store.kv.set([BUCKETS, bucket], Date.now());
    return new Response(null, { headers: { location: `/${bucket}` } });
  }

  /**
   * The first path segments of live keys that are bucket names: one store read per segment
   * (and per key outside any bucket, such as `/wehave`), at most MAX_BUCKET_SCAN_READS in all.
   */
  async #bucketsHoldingKeys(): Promise<Map<string, number>> {
    const names = new Map<string, number>();
    let start = "/";
    for (let reads = 0; reads < MAX_BUCKET_SCAN_READS && names.size < MAX_BUCKETS; reads++) {
      let first: [string, KeyRecord] | undefined;
      for await (const found of this.server.store.list({ prefix: "/", start, state: "live" })) {
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

  async #deleteBucket(bucket: string): Promise<Response> {
    const marked = await this.#bucketMarker(bucket);
    if (await this.#bucketHasKeys(bucket, "all")) {
      throw new S3Error(
        409,
        "BucketNotEmpty",
        "The bucket you tried to delete is not empty",
        bucket,
      );
    }
    if (!marked) {
      throw new S3Error(404, "NoSuchBucket", "The specified bucket does not exist", bucket);
    }
    await this.server.store.kv.delete([BUCKETS, bucket]);
    return new Response(null, { status: 204 });
  }

  // Listings.

  /**
   * ListObjects (v1) and ListObjectsV2: live keys under `/BUCKET/PREFIX` in byte order, after the
   * marker, start-after or continuation token; with a delimiter, the keys that hold it after the
   * prefix are rolled into CommonPrefixes (each counted once toward max-keys), and the many keys
   * of a common prefix are skipped by starting a new read past them.
   */
  async #listObjects(bucket: string, params: ListParams): Promise<Response> {
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
      const records = this.server.store.list({
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
        contents.push(this.#listEntry(name, record, encode));
        last = name;
      }
      break;
    }
    const common = prefixes.map((prefix) => ({ Prefix: encode(prefix) }));
    const shared = {
      Name: bucket,
      Prefix: encode(params.prefix),
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

  #listEntry(
    name: string,
    record: KeyRecord,
    encode: (value: string) => string,
  ): Record<string, unknown> {
    return {
      Key: encode(name),
      LastModified: isoDate(record.info?.mtime ?? 0),
      ETag: etagOf(record) || undefined,
      Size: record.info?.size ?? 0,
      StorageClass: "STANDARD",
    };
  }

  // Objects.

  async #getObject(
    request: Request,
    object: { bucket: string; key: string },
    query: URLSearchParams,
  ): Promise<Response> {
    const found = await this.server.locate(object.key);
    if (!found.ok) {
      if (found.status === 410) throw new S3Error(503, "ServiceUnavailable", found.reason);
      await this.#needBucket(object.bucket);
      throw new S3Error(404, "NoSuchKey", "The specified key does not exist.", object.key);
    }
    const { record, location, path } = found;
    const headers = { ...objectHeaders(record), ...responseOverrides(query) };
    const condition = checkConditions(request.headers, record);
    if (condition === 304) {
      return new Response(null, {
        status: 304,
        headers: { etag: headers.etag ?? "", "last-modified": headers["last-modified"] },
      });
    }
    if (condition === 412) {
      throw new S3Error(412, "PreconditionFailed", "At least one of the preconditions failed.");
    }
    const sizeBytes = record.info?.size ?? 0;
    const asked = rangeApplies(request.headers, record) ? request.headers.get("range") : null;
    const range = parseRange(asked, sizeBytes);
    if (range === "invalid") {
      return s3ErrorWith(
        new S3Error(416, "InvalidRange", "The requested range is not satisfiable", object.key),
        { method: request.method, headers: { "content-range": `bytes */${sizeBytes}` } },
      );
    }
    Object.assign(headers, checksumHeaders(request.headers, record, { ranged: range !== null }));
    if (request.method === "HEAD") {
      if (range !== null) {
        headers["content-range"] = `bytes ${range.start}-${range.end}/${sizeBytes}`;
        headers["content-length"] = String(range.end - range.start + 1);
      } else headers["content-length"] = String(sizeBytes);
      return new Response(null, { status: range === null ? 200 : 206, headers });
    }
    // nginx passes on only headers of names it knows: user metadata and a checksum come from here.
    if (Object.keys(record.info?.meta ?? {}).length > 0 || hasChecksumHeader(headers)) {
      return await this.#streamObject(location, path, headers, { range, sizeBytes });
    }
    // The body comes from the replica through the index's nginx (nginx.ts, REPLICA_LOCATION),
    // which answers with the x-mkv-* headers it reads here, and passes on Cache-Control,
    // Content-Disposition and Expires as they are.
    this.server.metrics.bodySent(range === null ? sizeBytes : range.end - range.start + 1);
    const host = locationHost(location);
    const target = this.server.volumes.signed("GET", location.slice(host.length) + path);
    return new Response(null, {
      headers: {
        "x-accel-redirect": REPLICA_LOCATION,
        "x-mkv-volume": await this.#address(host),
        "x-mkv-host": host,
        "x-mkv-sni": host.slice(0, host.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1"),
        "x-mkv-target": target,
        "x-mkv-etag": headers.etag ?? "",
        "x-mkv-modified": headers["last-modified"],
        "x-mkv-type": headers["content-type"],
        "x-mkv-range": range === null ? "" : `bytes=${range.start}-${range.end}`,
        "x-mkv-encoding": headers["content-encoding"] ?? "",
        "x-mkv-language": headers["content-language"] ?? "",
        ...pick(headers, ["cache-control", "content-disposition", "expires"]),
      },
    });
  }

  /**
   * GetObjectAttributes (`GET /bucket/key?attributes`): those of ETag, Checksum, ObjectSize and
   * StorageClass that `x-amz-object-attributes` names, from the key's record alone.
   */
  async #getObjectAttributes(
    request: Request,
    object: { bucket: string; key: string },
  ): Promise<Response> {
    const asked = new Set(
      (request.headers.get("x-amz-object-attributes") ?? "").split(",").map((name) => name.trim()),
    );
    const record = await this.server.store.get(object.key);
    if (record === null || record.state !== "live") {
      await this.#needBucket(object.bucket);
      throw new S3Error(404, "NoSuchKey", "The specified key does not exist.", object.key);
    }
    const checksum = record.info?.checksum;
    const headers = objectHeaders(record);
    return xmlResponse("GetObjectAttributesResponse", {
      ETag: asked.has("ETag") ? etagOf(record).replaceAll('"', "") : undefined,
      Checksum: asked.has("Checksum") && checksum !== undefined
        ? { [`Checksum${checksum.algorithm.toUpperCase()}`]: checksum.base64 }
        : undefined,
      StorageClass: asked.has("StorageClass") ? "STANDARD" : undefined,
      ObjectSize: asked.has("ObjectSize") ? record.info?.size ?? 0 : undefined,
    }, { headers: { "last-modified": headers["last-modified"] } });
  }

  /**
   * A GET of a value with user metadata, streamed by the index itself: nginx copies only headers
   * of fixed names from an X-Accel-Redirect answer, and S3 clients read `x-amz-meta-*` from the
   * GET. The body is passed through as the replica sends it (never held); a replica that fails
   * mid-way ends the connection short of the announced length, so no client takes it for the value.
   */
  async #streamObject(
    location: string,
    path: KeyPath,
    headers: Record<string, string>,
    options: { range: { start: number; end: number } | null; sizeBytes: number },
  ): Promise<Response> {
    const { range, sizeBytes } = options;
    let replica: Response;
    try {
      replica = await this.server.volumes.get(location, path, { range: range ?? undefined });
    } catch (err) {
      // The file went after the index found it: a DELETE that raced this GET.
      if (!(err instanceof VolumeError && err.status === 404)) throw err;
      throw new S3Error(404, "NoSuchKey", "The specified key does not exist.");
    }
    const lengthBytes = range === null ? sizeBytes : range.end - range.start + 1;
    headers["content-length"] = String(lengthBytes);
    if (range !== null) headers["content-range"] = `bytes ${range.start}-${range.end}/${sizeBytes}`;
    this.server.metrics.bodySent(lengthBytes);
    return new Response(replica.body, { status: range === null ? 200 : 206, headers });
  }

  /**
   * The address nginx proxies a volume at: an IP address and port, since nginx resolves names in
   * proxy_pass only at start (or with a resolver); looked up again every ADDRESS_TTL_MS.
   */
  async #address(host: string): Promise<string> {
    const colon = host.lastIndexOf(":");
    const name = host.slice(0, colon);
    if (name.startsWith("[") || /^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return host;
    const cached = this.#addresses.get(host);
    if (cached !== undefined && Date.now() - cached.atMs < ADDRESS_TTL_MS) return cached.address;
    let address: string;
    try {
      const found = await lookup(name);
      address = found.family === 6
        ? `[${found.address}]${host.slice(colon)}`
        : `${found.address}${host.slice(colon)}`;
    } catch (err) {
      throw new S3Error(
        503,
        "ServiceUnavailable",
        `volume ${host}: cannot resolve ${name}: ${(err as Error).message}`,
      );
    }
    if (!isHostPort(address)) {
      throw new S3Error(503, "ServiceUnavailable", `volume ${host}: bad address ${address}`);
    }
    this.#addresses.set(host, { address, atMs: Date.now() });
    return address;
  }

  async #putObject(
    request: Request,
    caller: Caller,
    object: { bucket: string; key: string },
  ): Promise<Response> {
    const attributes = {
      type: contentTypeOf(request.headers),
      meta: userMetadata(request.headers),
      headers: storedHeaders(request.headers),
    };
    await this.#bucketForWrite(object.bucket);
    const algorithm = announcedChecksum(request.headers);
    const decoded = this.#decodeBody(request, caller);
    const stored: ObjectInfoFields = withoutUndefined(attributes);
    // The checksum the body was checked against is kept with the value, and answered.
    const body = algorithm === null ? decoded.body : decoded.body.pipeThrough(
      checksumRecorder(algorithm, (base64) => {
        stored.checksum = { algorithm, base64 };
      }),
    );
    const result = await this.server.write(object.key, body, {
      sizeBytes: decoded.sizeBytes,
      attributes: stored,
      ...s3WriteOptions(request.headers),
    });
    if (!result.ok) throw writeFailure(result, { key: object.key, cause: decoded.failure() });
    const checksum = result.record.info?.checksum;
    return new Response(null, {
      headers: {
        etag: `"${result.md5}"`,
        ...(checksum && { [`x-amz-checksum-${checksum.algorithm}`]: checksum.base64 }),
      },
    });
  }

  async #copyObject(
    request: Request,
    object: { bucket: string; key: string },
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
    await this.#bucketForWrite(object.bucket);
    const found = await this.server.locate(source.key);
    if (!found.ok) {
      if (found.status === 410) throw new S3Error(503, "ServiceUnavailable", found.reason);
      await this.#needBucket(source.bucket);
      throw new S3Error(404, "NoSuchKey", "The specified key does not exist.", source.key);
    }
    const conditions = new Headers();
    for (const name of ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]) {
      const value = headers.get(`x-amz-copy-source-${name}`);
      if (value !== null) conditions.set(name, value);
    }
    if (checkConditions(conditions, found.record) !== null) {
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
    const response = await this.server.volumes.get(found.location, found.path);
    const length = response.headers.get("content-length");
    const result = await this.server.write(object.key, response.body, {
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

  async #deleteObject(object: { bucket: string; key: string }): Promise<Response> {
    const result = await this.server.remove(object.key, { background: true });
    if (!result.ok) {
      if (result.status === 404) await this.#needBucket(object.bucket);
      else if (result.status === 409) {
        throw new S3Error(409, "OperationAborted", result.reason, object.key);
      } else if (result.status === 403) {
        throw new S3Error(403, "AccessDenied", result.reason, object.key);
      }
    }
    return new Response(null, { status: 204 });
  }

  async #deleteObjects(request: Request, caller: Caller, bucket: string): Promise<Response> {
    const xml = await this.#readXmlBody(request, caller);
    await this.#needBucket(bucket);
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
        failures[at] = await this.#deleteOne(bucket, names[at]);
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
  async #deleteOne(bucket: string, name: string): Promise<S3Error | null> {
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
    const result = await this.server.remove(key, { background: true });
    if (result.ok || result.status === 404) return null;
    if (result.status === 409) return new S3Error(409, "OperationAborted", result.reason);
    return new S3Error(403, "AccessDenied", result.reason);
  }

  // Multipart uploads.

  async #toMultipart(
    operation: Operation,
    request: Request,
    caller: Caller,
    object: { bucket: string; objectKey: string; key: string } | null,
    bucket: string,
    query: URLSearchParams,
  ): Promise<Response> {
    const multipart = this.multipart;
    if (operation === "CreateMultipartUpload") await this.#bucketForWrite(bucket);
    else await this.#needBucket(bucket);
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
        const { body, failure } = this.#decodeBody(request, caller);
        return await withBodyFailure(() => multipart.uploadPart({ ...base, body }), failure);
      }
      case "UploadPartCopy":
        await request.body?.cancel();
        return await multipart.uploadPartCopy(base);
      case "CompleteMultipartUpload": {
        const { body, failure } = this.#decodeBody(request, caller);
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

/**
 * Runs a multipart operation on a checked body: if the body failed a check (a bad digest, a bad
 * chunk signature), that is the answer, whatever the operation made of the broken upload.
 */
async function withBodyFailure(
  operation: () => Promise<Response>,
  failure: () => S3Error | null,
): Promise<Response> {
  let response: Response;
  try {
    response = await operation();
  } catch (err) {
    throw failure() ?? err;
  }
  const failed = failure();
  if (failed === null || response.status < 400) return response;
  await response.body?.cancel();
  throw failed;
}

/** `s3Error` with more headers (Content-Range of an InvalidRange). */
function s3ErrorWith(
  failure: S3Error,
  options: { method: string; headers: Record<string, string> },
): Response {
  const response = s3Error(failure, { method: options.method });
  for (const [name, value] of Object.entries(options.headers)) response.headers.set(name, value);
  return response;
}

/** The attributes an S3 write keeps with a value (lib/http/server.ts WriteOptions). */
type ObjectInfoFields = Omit<ObjectInfo, "size" | "mtime">;

/** Whether answer headers carry an `x-amz-checksum-*`. */
function hasChecksumHeader(headers: Record<string, string>): boolean {
  return Object.keys(headers).some((name) => name.startsWith("x-amz-checksum-"));
}

function withoutUndefined<T extends Record<string, unknown>>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) if (field !== undefined) out[name] = field;
  return out as T;
}
