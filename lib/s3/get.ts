// GetObject, HeadObject and GetObjectAttributes (docs/s3.md, "Reads never pass through Deno"):
// the key located, its conditions and range (or `?partNumber=`) checked against the record, then
// the body sent by the index's nginx, which the answer redirects (`X-Accel-Redirect`) to a
// location that proxies the chosen replica (lib/nginx/proxyconf.ts). A value with user metadata,
// an asked-for checksum or a part of a multipart object is streamed by the index itself, since
// nginx passes on only headers of names it knows.

import {
  ACCEL_REDIRECT_HEADER,
  REPLICA_HEADERS as REPLICA,
  REPLICA_LOCATION,
} from "../nginx/contract.ts";
import type { KeyPath } from "../placement.ts";
import { target, VolumeError } from "../volumes/mod.ts";
import type { Core, KeyRecord } from "../core/mod.ts";
import type { VolumeAddresses } from "./address.ts";
import { needBucket } from "./buckets.ts";
import { checkConditions, parseRange, rangeApplies } from "./conditions.ts";
import { S3Error } from "./error.ts";
import {
  checksumHeader,
  checksumHeaders,
  etagOf,
  hasChecksumHeader,
  objectHeaders,
  responseOverrides,
} from "./headers.ts";
import { locateObject } from "./locate.ts";
import { listParts, parsePartNumber, partRange, partsCount as countParts } from "./parts.ts";
import type { ObjectTarget } from "./request.ts";
import { s3Error, STORAGE_CLASS, xmlResponse } from "./xml.ts";

/** The header that tells a part's reader how many parts the object has. */
const PARTS_COUNT_HEADER = "x-amz-mp-parts-count";

/** The entries of `headers` named in `names` that it has. */
function pick(headers: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(names.filter((name) => name in headers).map((n) => [n, headers[n]]));
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

/**
 * What a GET or HEAD of part `partNumber` reads: a Range of the value, the whole value (one not
 * uploaded in parts has one part), or nothing (an empty part); and the object's count of parts.
 */
function partRead(
  record: KeyRecord,
  options: { partNumber: number; headers: Headers },
): { range: string | "whole" | "empty"; partsCount?: number; checksum?: Record<string, string> } {
  if (options.headers.has("range")) {
    throw new S3Error(
      400,
      "InvalidRequest",
      "Cannot specify both Range header and partNumber query parameter",
    );
  }
  const runs = record.info?.parts;
  if (runs === undefined && record.info?.etag !== undefined) {
    throw new S3Error(
      501,
      "NotImplemented",
      "This object's part sizes were not kept (completed before mkv.ts kept them, or of more " +
        "than 2,000 runs of sizes).",
    );
  }
  const part = partRange(runs, options.partNumber);
  const partsCount = runs === undefined ? undefined : countParts(runs);
  // A part's own checksum, where the object keeps its parts' (S3 sends it unasked).
  const whole = record.info?.checksum;
  const base64 = record.info?.partChecksums?.[options.partNumber - 1];
  const checksum = whole !== undefined && base64 !== undefined
    ? checksumHeader({ algorithm: whole.algorithm, base64, type: whole.type })
    : undefined;
  if (part === "whole") return { range: "whole", partsCount, checksum };
  if (part.lengthBytes === 0) return { range: "empty", partsCount, checksum };
  const range = `bytes=${part.start}-${part.start + part.lengthBytes - 1}`;
  return { range, partsCount, checksum };
}

/** GetObject and HeadObject (`GET`/`HEAD /bucket/key`), of the value or of one part. */
export async function getObject(
  core: Core,
  request: Request,
  options: { object: ObjectTarget; query: URLSearchParams; addresses: VolumeAddresses },
): Promise<Response> {
  const { object, query, addresses } = options;
  const { record, location, path } = await locateObject(core, object.key, {
    bucket: object.bucket,
  });
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
  let asked = rangeApplies(request.headers, record) ? request.headers.get("range") : null;
  const part = query.get("partNumber");
  if (part !== null) {
    const read = partRead(record, { partNumber: parsePartNumber(part), headers: request.headers });
    if (read.partsCount !== undefined) headers[PARTS_COUNT_HEADER] = String(read.partsCount);
    Object.assign(headers, read.checksum);
    if (read.range === "empty") {
      headers["content-length"] = "0";
      return new Response(null, { headers });
    }
    asked = read.range === "whole" ? null : read.range;
  }
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
  // nginx passes on only headers of names it knows: user metadata, a checksum and a part's count
  // of parts come from here.
  if (
    Object.keys(record.info?.meta ?? {}).length > 0 || hasChecksumHeader(headers) ||
    PARTS_COUNT_HEADER in headers
  ) {
    return await streamObject(core, location, path, { headers, range, sizeBytes });
  }
  // The body comes from the replica through the index's nginx (lib/nginx/contract.ts,
  // REPLICA_LOCATION), which reads the REPLICA_HEADERS of this answer, and passes on Cache-Control,
  // Content-Disposition and Expires as they are.
  core.metrics.bodySent(range === null ? sizeBytes : range.end - range.start + 1);
  const { host, path: onVolume } = target(location, path);
  const signedPath = core.volumes.signed("GET", onVolume);
  return new Response(null, {
    headers: {
      [ACCEL_REDIRECT_HEADER]: REPLICA_LOCATION,
      [REPLICA.volume]: await addresses.resolve(host),
      [REPLICA.host]: host,
      [REPLICA.sni]: host.slice(0, host.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1"),
      [REPLICA.target]: signedPath,
      [REPLICA.etag]: headers.etag ?? "",
      [REPLICA.modified]: headers["last-modified"],
      [REPLICA.type]: headers["content-type"],
      [REPLICA.range]: range === null ? "" : `bytes=${range.start}-${range.end}`,
      [REPLICA.encoding]: headers["content-encoding"] ?? "",
      [REPLICA.language]: headers["content-language"] ?? "",
      ...pick(headers, ["cache-control", "content-disposition", "expires"]),
    },
  });
}

/** A whole number from 0 to `max` in header `name`, or `fallback` if absent. */
function wholeHeader(headers: Headers, options: { name: string; max: number; fallback: number }) {
  const text = headers.get(options.name);
  if (text === null) return options.fallback;
  if (!/^[0-9]{1,9}$/.test(text) || Number(text) > options.max) {
    throw new S3Error(400, "InvalidArgument", `${options.name} must be from 0 to ${options.max}`);
  }
  return Number(text);
}

/**
 * GetObjectAttributes' ObjectParts: the parts after `x-amz-part-number-marker`, at most
 * `x-amz-max-parts` (1,000 by default, as ListParts).
 */
function objectParts(record: KeyRecord, headers: Headers): Record<string, unknown> {
  const runs = record.info?.parts ?? [];
  const checksums = record.info?.partChecksums;
  const algorithm = record.info?.checksum?.algorithm.toUpperCase();
  const maxParts = wholeHeader(headers, { name: "x-amz-max-parts", max: 1000, fallback: 1000 });
  const marker = wholeHeader(headers, {
    name: "x-amz-part-number-marker",
    max: 10_000,
    fallback: 0,
  });
  const listed = listParts(runs, { after: marker, max: maxParts });
  const total = countParts(runs);
  const last = listed.at(-1)?.partNumber ?? marker;
  return {
    PartsCount: total,
    PartNumberMarker: marker,
    NextPartNumberMarker: last,
    MaxParts: maxParts,
    IsTruncated: last < total,
    Part: listed.map((part) => ({
      ...(algorithm !== undefined && checksums !== undefined &&
        { [`Checksum${algorithm}`]: checksums[part.partNumber - 1] }),
      PartNumber: part.partNumber,
      Size: part.sizeBytes,
    })),
  };
}

/**
 * GetObjectAttributes (`GET /bucket/key?attributes`): those of ETag, Checksum, ObjectSize,
 * StorageClass and ObjectParts that `x-amz-object-attributes` names, from the key's record alone.
 */
export async function getObjectAttributes(
  core: Core,
  request: Request,
  object: ObjectTarget,
): Promise<Response> {
  const asked = new Set(
    (request.headers.get("x-amz-object-attributes") ?? "").split(",").map((name) => name.trim()),
  );
  const record = await core.store.get(object.key);
  if (record === null || record.state !== "live") {
    await needBucket(core, object.bucket);
    throw new S3Error(404, "NoSuchKey", "The specified key does not exist.", object.key);
  }
  const checksum = record.info?.checksum;
  const headers = objectHeaders(record);
  return xmlResponse("GetObjectAttributesResponse", {
    ETag: asked.has("ETag") ? etagOf(record).replaceAll('"', "") : undefined,
    Checksum: asked.has("Checksum") && checksum !== undefined
      ? {
        [`Checksum${checksum.algorithm.toUpperCase()}`]: checksum.base64,
        ChecksumType: checksum.type,
      }
      : undefined,
    StorageClass: asked.has("StorageClass") ? STORAGE_CLASS : undefined,
    ObjectSize: asked.has("ObjectSize") ? record.info?.size ?? 0 : undefined,
    ObjectParts: asked.has("ObjectParts") && record.info?.parts !== undefined
      ? objectParts(record, request.headers)
      : undefined,
  }, { headers: { "last-modified": headers["last-modified"] } });
}

/**
 * A GET of a value with user metadata, streamed by the index itself: nginx copies only headers
 * of fixed names from an X-Accel-Redirect answer, and S3 clients read `x-amz-meta-*` from the
 * GET. The body is passed through as the replica sends it (never held); a replica that fails
 * mid-way ends the connection short of the announced length, so no client takes it for the value.
 */
async function streamObject(
  core: Core,
  location: string,
  path: KeyPath,
  options: {
    headers: Record<string, string>;
    range: { start: number; end: number } | null;
    sizeBytes: number;
  },
): Promise<Response> {
  const { headers, range, sizeBytes } = options;
  let replica: Response;
  try {
    replica = await core.volumes.get(location, path, { range: range ?? undefined });
  } catch (err) {
    if (!(err instanceof VolumeError && err.status === 404)) throw err;
    // The file went after the index found it: a DELETE that raced this GET, or a replica lost.
    // The key's other replicas are checked (lib/core/miss.ts), and one that holds it is read.
    const to = target(location, path);
    const found = await core.miss(to.path, to.host);
    if (!found.ok && found.status === 410) {
      throw new S3Error(503, "ServiceUnavailable", found.reason);
    }
    if (!found.ok) throw new S3Error(404, "NoSuchKey", "The specified key does not exist.");
    replica = await core.volumes.get(found.location, found.path, { range: range ?? undefined });
  }
  const lengthBytes = range === null ? sizeBytes : range.end - range.start + 1;
  headers["content-length"] = String(lengthBytes);
  if (range !== null) headers["content-range"] = `bytes ${range.start}-${range.end}/${sizeBytes}`;
  core.metrics.bodySent(lengthBytes);
  return new Response(replica.body, { status: range === null ? 200 : 206, headers });
}
