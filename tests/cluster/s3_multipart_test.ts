// Tests of S3 multipart uploads (lib/s3/multipart.ts and lib/s3/upload*.ts): the operations on an
// index run in this process against real nginx volumes (Create, UploadPart, UploadPartCopy,
// Complete, Abort, ListParts, ListMultipartUploads, reaping, --protect); then a real cluster driven
// by the AWS SDK (a 100 MiB lib-storage upload within a memory bound, Complete joining 100 MiB in
// constant memory, an index restart and a gc between parts, the SDK's view of the listings and
// refusals). The pure parts are in tests/unit/s3_multipart_test.ts.
//
//   node_modules/.bin/deno test -A tests/cluster/s3_multipart_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "npm:@aws-sdk/client-s3@3.1178.0";
import { Upload } from "npm:@aws-sdk/lib-storage@3.1178.0";
import { readPeakRssMib, readRssMib, resetPeakRss } from "../../bench/proc.ts";
import { type ClusterProcess, spawnIndex, spawnVolume } from "../../dev/cluster.ts";
import { Md5 } from "../../lib/md5.ts";
import { keyToPath } from "../../lib/placement.ts";
import { Core } from "../../lib/core/mod.ts";
import { Store } from "../../lib/core/store.ts";
import { Volumes } from "../../lib/volumes/mod.ts";
import { Multipart } from "../../lib/s3/multipart.ts";
import { isUploadId, multipartEtag, newUploadId, partKey } from "../../lib/s3/uploadparse.ts";
import type { MultipartRequest } from "../../lib/s3/uploadstate.ts";
import { PARTS_PREFIX } from "../../lib/placement.ts";
import { parseXml } from "../../lib/s3/xml.ts";
import { newChecksum } from "../../lib/s3/checksum.ts";
import {
  eventually,
  freePorts,
  generated,
  md5Hex,
  POLL_TIMEOUT_MS,
  runScript,
  tempDir,
  testCluster,
} from "../helpers.ts";

const KIB = 1024;
const MIB = 1024 * KIB;
const BUCKET = "photos";

// ---- an index in this process, real volumes ----

/** An index server in this process on real nginx volumes, with its Multipart. */
interface LocalIndex extends AsyncDisposable {
  server: Core;
  multipart: Multipart;
  volumes: ClusterProcess[];
  dir: string;
}

async function localIndex(
  options: { maxAgeMs?: number; minPartBytes?: number; protect?: boolean } = {},
): Promise<LocalIndex> {
  const dir = await tempDir();
  const ports = freePorts(3);
  const volumes: ClusterProcess[] = [];
  let store: Store | null = null;
  let client: Volumes | null = null;
  let server: Core | null = null;
  const dispose = async () => {
    // Removals of replaced parts' files wait out their grace: done now.
    await server?.stopSweeps();
    client?.close();
    store?.close();
    await Promise.all(volumes.map((volume) => volume.stop()));
    await dir[Symbol.asyncDispose]();
  };
  try {
    for (const [i, port] of ports.entries()) {
      volumes.push(await spawnVolume({ port, dir: join(dir.path, `volume${i + 1}`) }));
    }
    store = await Store.open(join(dir.path, "index"));
    const hosts = ports.map((port) => `localhost:${port}`);
    client = new Volumes({ hosts, timeoutMs: 5_000, log: () => {} });
    await client.probeAll();
    server = new Core(store, client, {
      placement: { volumes: hosts, replicas: 2, subvolumes: 1 },
      protect: options.protect ?? false,
      md5sum: false,
      fallback: "",
      verbose: false,
    });
    const multipart = new Multipart(server, {
      maxAgeMs: options.maxAgeMs ?? 3_600_000,
      minPartBytes: options.minPartBytes ?? 1,
    });
    return { server, multipart, volumes, dir: dir.path, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** A request to `multipart`, for key `key` of BUCKET. */
function ask(
  key: string,
  options: {
    uploadId?: string;
    partNumber?: number;
    query?: Record<string, string>;
    headers?: Record<string, string>;
    body?: Uint8Array<ArrayBuffer> | string;
  } = {},
): MultipartRequest {
  const body = options.body === undefined
    ? undefined
    : new Response(options.body).body ?? undefined;
  return {
    bucket: BUCKET,
    key,
    indexKey: `/${BUCKET}/${key}`,
    uploadId: options.uploadId,
    partNumber: options.partNumber,
    query: new URLSearchParams(options.query ?? {}),
    headers: new Headers({
      ...(typeof options.body === "string"
        ? {}
        : options.body && { "content-length": String(options.body.byteLength) }),
      ...options.headers,
    }),
    body,
  };
}

/** The answer's XML, parsed, after checking its status. */
async function xmlOf(response: Response, status = 200): Promise<Record<string, unknown>> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  return parseXml(text);
}

/** The S3 error code of an answer, after checking its status. */
async function errorOf(response: Response, status: number): Promise<string> {
  const xml = await xmlOf(response, status);
  return String((xml.Error as Record<string, unknown>).Code);
}

/** `sizeBytes` of bytes that differ by `seed`. */
function bytesOf(sizeBytes: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

async function create(local: LocalIndex, key: string, headers = {}): Promise<string> {
  const xml = await xmlOf(await local.multipart.create(ask(key, { headers })));
  const result = xml.InitiateMultipartUploadResult as Record<string, string>;
  assert.equal(result.Bucket, BUCKET);
  assert.equal(result.Key, key);
  assert.ok(isUploadId(result.UploadId), result.UploadId);
  return result.UploadId;
}

async function uploadPart(
  local: LocalIndex,
  key: string,
  uploadId: string,
  partNumber: number,
  body: Uint8Array<ArrayBuffer>,
): Promise<string> {
  const response = await local.multipart.uploadPart(ask(key, { uploadId, partNumber, body }));
  const text = await response.text();
  assert.equal(response.status, 200, text);
  const etag = response.headers.get("etag")!;
  assert.equal(etag, `"${md5Hex(body)}"`);
  return etag;
}

function completeBody(parts: { partNumber: number; etag: string }[]): string {
  return "<CompleteMultipartUpload>" +
    parts.map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${p.etag}</ETag></Part>`)
      .join("") +
    "</CompleteMultipartUpload>";
}

/** Sends parts 1 to `count` of an upload of `key` in BUCKET, part N's body `bodyOf(N)`. */
async function sendParts(
  client: S3Client,
  options: {
    key: string;
    UploadId: string | undefined;
    count: number;
    bodyOf: (partNumber: number) => Uint8Array;
    /** The checksum the SDK sends with each part, which the list then names. */
    ChecksumAlgorithm?: "SHA256" | "CRC32";
  },
): Promise<
  { PartNumber: number; ETag: string; ChecksumSHA256?: string; ChecksumCRC32?: string }[]
> {
  const Parts = [];
  for (let PartNumber = 1; PartNumber <= options.count; PartNumber++) {
    const part = await client.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: options.key,
        UploadId: options.UploadId,
        PartNumber,
        Body: options.bodyOf(PartNumber),
        ChecksumAlgorithm: options.ChecksumAlgorithm,
      }),
    );
    Parts.push({
      PartNumber,
      ETag: part.ETag!,
      ...(part.ChecksumSHA256 && { ChecksumSHA256: part.ChecksumSHA256 }),
      ...(part.ChecksumCRC32 && { ChecksumCRC32: part.ChecksumCRC32 }),
    });
  }
  return Parts;
}

/** The value of an index key, read from one of its replicas. */
async function valueOf(local: LocalIndex, key: string): Promise<Uint8Array> {
  const record = await local.server.store.get(key);
  assert.ok(record !== null && record.state === "live", `${key} is not live`);
  const response = await local.server.volumes.get(record.volumes[0], keyToPath(key));
  return new Uint8Array(await response.arrayBuffer());
}

/** Index keys of the upload's parts (any state). */
async function partKeysOf(local: LocalIndex, uploadId: string): Promise<string[]> {
  const keys: string[] = [];
  for await (
    const [key] of local.server.store.list({
      prefix: `${PARTS_PREFIX}${uploadId}/`,
      state: "all",
    })
  ) keys.push(key);
  return keys;
}

/** How many files the volumes hold on disk (parts and values alike). */
async function filesOnDisk(local: LocalIndex): Promise<number> {
  let count = 0;
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      // The volume's own `.mkv` (spool, disk figures) and the write probe hold no values.
      if (entry.name.startsWith(".")) continue;
      if (entry.isDirectory) await walk(join(dir, entry.name));
      else if (entry.isFile) count++;
    }
  };
  for (let i = 1; i <= local.volumes.length; i++) {
    await walk(join(local.dir, `volume${i}`)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
  return count;
}

Deno.test("an upload in three parts completes into one object with S3's -N ETag", async () => {
  await using local = await localIndex({ minPartBytes: 300 * KIB });
  const key = "2026/holiday.jpg";
  const uploadId = await create(local, key, {
    "content-type": "image/jpeg",
    "x-amz-meta-camera": "Leica",
  });
  // Parts 1 and 2 stream (larger than the small-value path), part 3 is the small last one.
  const bodies = [bytesOf(512 * KIB + 3, 1), bytesOf(300 * KIB, 2), bytesOf(1000, 3)];
  const etags: string[] = [];
  for (const [i, body] of bodies.entries()) {
    etags.push(await uploadPart(local, key, uploadId, i + 1, body));
  }
  const request = ask(key, {
    uploadId,
    body: completeBody(etags.map((etag, i) => ({ partNumber: i + 1, etag }))),
  });
  const xml = await xmlOf(await local.multipart.complete(request));
  const result = xml.CompleteMultipartUploadResult as Record<string, string>;
  const expected = multipartEtag(bodies.map(md5Hex));
  assert.equal(result.ETag, `"${expected}"`);
  assert.equal(result.Bucket, BUCKET);
  assert.equal(result.Key, key);

  const record = await local.server.store.get(`/${BUCKET}/${key}`);
  assert.equal(record?.state, "live");
  assert.equal(record?.info?.etag, expected);
  assert.equal(record?.info?.type, "image/jpeg");
  assert.deepEqual(record?.info?.meta, { camera: "Leica" });
  const total = bodies.reduce((sum, body) => sum + body.byteLength, 0);
  assert.equal(record?.info?.size, total);
  const value = await valueOf(local, `/${BUCKET}/${key}`);
  const whole = new Uint8Array(total);
  let at = 0;
  for (const body of bodies) {
    whole.set(body, at);
    at += body.byteLength;
  }
  assert.equal(md5Hex(value), md5Hex(whole), "the object is the parts joined");
  assert.equal(record?.md5, md5Hex(whole));

  // The upload and its parts are gone: its id is unknown now, on disk only the object remains.
  assert.deepEqual(await partKeysOf(local, uploadId), []);
  assert.equal(await filesOnDisk(local), 2, "two replicas of the object, no part left");
  assert.equal(
    await errorOf(await local.multipart.listParts(ask(key, { uploadId })), 404),
    "NoSuchUpload",
  );
});

Deno.test("Complete refuses what S3 refuses, and the upload stays usable", async () => {
  await using local = await localIndex({ minPartBytes: 100 * KIB });
  const key = "refused";
  const uploadId = await create(local, key);
  const small = await uploadPart(local, key, uploadId, 1, bytesOf(10 * KIB, 1));
  const big = await uploadPart(local, key, uploadId, 2, bytesOf(100 * KIB, 2));
  const last = await uploadPart(local, key, uploadId, 3, bytesOf(10, 3));
  const complete = (parts: { partNumber: number; etag: string }[]) =>
    local.multipart.complete(ask(key, { uploadId, body: completeBody(parts) }));

  // A part but the last under the minimum.
  assert.equal(
    await errorOf(
      await complete([{ partNumber: 1, etag: small }, { partNumber: 2, etag: big }]),
      400,
    ),
    "EntityTooSmall",
  );
  // A wrong ETag, a missing part, a wrong order.
  assert.equal(
    await errorOf(await complete([{ partNumber: 2, etag: small }]), 400),
    "InvalidPart",
  );
  assert.equal(
    await errorOf(await complete([{ partNumber: 4, etag: small }]), 400),
    "InvalidPart",
  );
  assert.equal(
    await errorOf(
      await complete([{ partNumber: 3, etag: last }, { partNumber: 2, etag: big }]),
      400,
    ),
    "InvalidPartOrder",
  );
  assert.equal(
    await errorOf(await local.multipart.complete(ask(key, { uploadId, body: "<x" })), 400),
    "MalformedXML",
  );
  // Another key, or an id never given: NoSuchUpload.
  assert.equal(
    await errorOf(
      await local.multipart.complete(
        ask("other", { uploadId, body: completeBody([{ partNumber: 2, etag: big }]) }),
      ),
      404,
    ),
    "NoSuchUpload",
  );
  assert.equal(
    await errorOf(
      await local.multipart.uploadPart(
        ask(key, { uploadId: "0".repeat(32), partNumber: 1, body: bytesOf(10, 1) }),
      ),
      404,
    ),
    "NoSuchUpload",
  );
  assert.equal(
    await errorOf(
      await local.multipart.uploadPart(ask(key, { uploadId, partNumber: 10_001, body: "x" })),
      400,
    ),
    "InvalidArgument",
  );
  // Nothing was written; the right list still completes, a part left out is removed.
  assert.equal(await local.server.store.get(`/${BUCKET}/${key}`), null);
  const xml = await xmlOf(
    await complete([{ partNumber: 2, etag: big }, { partNumber: 3, etag: last }]),
  );
  const result = xml.CompleteMultipartUploadResult as Record<string, string>;
  assert.equal(result.ETag, `"${multipartEtag([big, last].map((e) => e.slice(1, -1)))}"`);
  assert.deepEqual(await partKeysOf(local, uploadId), []);
});

Deno.test("Abort removes the upload and its parts, records and files", async () => {
  await using local = await localIndex();
  const key = "aborted";
  const uploadId = await create(local, key);
  await uploadPart(local, key, uploadId, 1, bytesOf(400 * KIB, 1));
  await uploadPart(local, key, uploadId, 2, bytesOf(20, 2));
  assert.equal((await partKeysOf(local, uploadId)).length, 2);
  assert.equal(await filesOnDisk(local), 4, "two parts, two replicas each");

  const aborted = await local.multipart.abort(ask(key, { uploadId }));
  assert.equal(aborted.status, 204);
  await aborted.body?.cancel();
  assert.deepEqual(await partKeysOf(local, uploadId), []);
  assert.equal(await filesOnDisk(local), 0);
  for (
    const response of [
      await local.multipart.abort(ask(key, { uploadId })),
      await local.multipart.listParts(ask(key, { uploadId })),
      await local.multipart.uploadPart(ask(key, { uploadId, partNumber: 1, body: "late" })),
    ]
  ) {
    assert.equal(await errorOf(response, 404), "NoSuchUpload");
  }
});

Deno.test("ListParts pages with max-parts and part-number-marker", async () => {
  await using local = await localIndex();
  const key = "listed";
  const uploadId = await create(local, key);
  const etags = new Map<number, string>();
  for (const n of [1, 2, 5, 9, 10]) {
    etags.set(n, await uploadPart(local, key, uploadId, n, bytesOf(100 + n, n)));
  }
  const page = async (query: Record<string, string>) => {
    const xml = await xmlOf(await local.multipart.listParts(ask(key, { uploadId, query })));
    return xml.ListPartsResult as Record<string, unknown>;
  };
  const first = await page({ "max-parts": "2" });
  assert.equal(first.IsTruncated, "true");
  assert.equal(first.NextPartNumberMarker, "2");
  assert.equal(first.UploadId, uploadId);
  const parts = first.Part as Record<string, string>[];
  assert.deepEqual(parts.map((p) => [p.PartNumber, p.ETag, p.Size]), [
    ["1", etags.get(1), "101"],
    ["2", etags.get(2), "102"],
  ]);
  assert.ok(!Number.isNaN(Date.parse(parts[0].LastModified)));
  const second = await page({ "max-parts": "2", "part-number-marker": "2" });
  assert.deepEqual((second.Part as Record<string, string>[]).map((p) => p.PartNumber), ["5", "9"]);
  const last = await page({ "max-parts": "2", "part-number-marker": "9" });
  assert.equal(last.IsTruncated, "false");
  assert.deepEqual((last.Part as Record<string, string>[]).map((p) => p.PartNumber), ["10"]);
  const all = await page({});
  assert.equal((all.Part as unknown[]).length, 5);
  assert.equal(all.MaxParts, "1000");
  assert.equal(
    await errorOf(
      await local.multipart.listParts(ask(key, { uploadId, query: { "max-parts": "x" } })),
      400,
    ),
    "InvalidArgument",
  );
});

Deno.test("re-uploading a part number replaces the part; an empty last part is kept", async () => {
  await using local = await localIndex({ minPartBytes: 1000 });
  const key = "replaced";
  const uploadId = await create(local, key);
  await uploadPart(local, key, uploadId, 1, bytesOf(2000, 1));
  const second = bytesOf(3000, 2);
  const etag = await uploadPart(local, key, uploadId, 1, second);
  const empty = await uploadPart(local, key, uploadId, 2, new Uint8Array());
  assert.equal(empty, `"${md5Hex(new Uint8Array())}"`);
  const xml = await xmlOf(await local.multipart.listParts(ask(key, { uploadId })));
  const parts = (xml.ListPartsResult as Record<string, unknown>).Part as Record<string, string>[];
  assert.deepEqual(parts.map((p) => [p.PartNumber, p.ETag, p.Size]), [
    ["1", etag, "3000"],
    ["2", empty, "0"],
  ]);
  // The replaced part's files go once a read sent to them has had its grace.
  assert.ok(await eventually(async () => await filesOnDisk(local) === 4, POLL_TIMEOUT_MS));
  const done = await local.multipart.complete(ask(key, {
    uploadId,
    body: completeBody([{ partNumber: 1, etag }, { partNumber: 2, etag: empty }]),
  }));
  assert.ok((await xmlOf(done)).CompleteMultipartUploadResult);
  assert.equal(md5Hex(await valueOf(local, `/${BUCKET}/${key}`)), md5Hex(second));
});

Deno.test("with --protect a part is replaced, but no live object is", async () => {
  await using local = await localIndex({ protect: true });
  const key = "protected";
  const uploadId = await create(local, key);
  await uploadPart(local, key, uploadId, 1, bytesOf(100, 1));
  const etag = await uploadPart(local, key, uploadId, 1, bytesOf(200, 2));
  const complete = () =>
    local.multipart.complete(ask(key, { uploadId, body: completeBody([{ partNumber: 1, etag }]) }));
  assert.ok((await xmlOf(await complete())).CompleteMultipartUploadResult);
  assert.equal((await valueOf(local, `/${BUCKET}/${key}`)).byteLength, 200);

  const again = await create(local, key);
  await uploadPart(local, key, again, 1, bytesOf(200, 2));
  const refused = await local.multipart.complete(
    ask(key, { uploadId: again, body: completeBody([{ partNumber: 1, etag }]) }),
  );
  // Found as the parts are joined, after the 200 went out: an error document in that 200.
  assert.equal(await errorOf(refused, 200), "AccessDenied");
});

Deno.test("ListMultipartUploads: key order, prefix, delimiter and both markers", async () => {
  await using local = await localIndex();
  const ids = new Map<string, string[]>();
  for (const key of ["a/1", "a/2", "b", "b", "c/x/1", "d"]) {
    ids.set(key, [...(ids.get(key) ?? []), await create(local, key)]);
  }
  const list = async (query: Record<string, string>) => {
    const request = { ...ask(""), query: new URLSearchParams(query) };
    const xml = await xmlOf(await local.multipart.listUploads(request));
    const result = xml.ListMultipartUploadsResult as Record<string, unknown>;
    const uploads = (result.Upload ?? []) as Record<string, string>[];
    const uploadList = Array.isArray(uploads) ? uploads : [uploads];
    const prefixes = result.CommonPrefixes ?? [];
    const prefixList = (Array.isArray(prefixes) ? prefixes : [prefixes]) as { Prefix: string }[];
    return {
      result,
      uploads: uploadList.map((u) => `${u.Key} ${u.UploadId}`),
      prefixes: prefixList.map((p) => p.Prefix),
    };
  };
  const everything = await list({});
  assert.deepEqual(everything.uploads, [
    `a/1 ${ids.get("a/1")![0]}`,
    `a/2 ${ids.get("a/2")![0]}`,
    `b ${ids.get("b")![0]}`,
    `b ${ids.get("b")![1]}`,
    `c/x/1 ${ids.get("c/x/1")![0]}`,
    `d ${ids.get("d")![0]}`,
  ]);
  assert.equal(everything.result.IsTruncated, "false");

  // Pages of two, resumed with both markers, give the same list.
  const seen: string[] = [];
  let markers: Record<string, string> = {};
  for (let pages = 0; pages < 10; pages++) {
    const page = await list({ "max-uploads": "2", ...markers });
    seen.push(...page.uploads);
    if (page.result.IsTruncated !== "true") break;
    markers = {
      "key-marker": String(page.result.NextKeyMarker),
      "upload-id-marker": String(page.result.NextUploadIdMarker),
    };
  }
  assert.deepEqual(seen, everything.uploads);

  // A key marker alone skips every upload of that key.
  assert.deepEqual((await list({ "key-marker": "b" })).uploads.map((u) => u.split(" ")[0]), [
    "c/x/1",
    "d",
  ]);
  assert.deepEqual((await list({ prefix: "a/" })).uploads.map((u) => u.split(" ")[0]), [
    "a/1",
    "a/2",
  ]);
  const rolled = await list({ delimiter: "/" });
  assert.deepEqual(rolled.prefixes, ["a/", "c/"]);
  assert.deepEqual(rolled.uploads.map((u) => u.split(" ")[0]), ["b", "b", "d"]);
  const nested = await list({ delimiter: "/", prefix: "c/" });
  assert.deepEqual(nested.prefixes, ["c/x/"]);
  // A page that ends on a common prefix resumes after all of its keys.
  const firstPage = await list({ delimiter: "/", "max-uploads": "1" });
  assert.deepEqual(firstPage.prefixes, ["a/"]);
  assert.equal(firstPage.result.NextKeyMarker, "a/");
  const next = await list({ delimiter: "/", "max-uploads": "1", "key-marker": "a/" });
  assert.deepEqual(next.uploads.map((u) => u.split(" ")[0]), ["b"]);
});

Deno.test("UploadPartCopy copies a source object or a range of it", async () => {
  await using local = await localIndex();
  const source = bytesOf(600 * KIB, 9);
  const written = await local.server.write(`/${BUCKET}/source`, new Response(source).body, {
    sizeBytes: source.byteLength,
    attributes: {},
  });
  assert.ok(written.ok);
  const key = "copied";
  const uploadId = await create(local, key);
  const copy = async (headers: Record<string, string>, partNumber: number) => {
    const xml = await xmlOf(
      await local.multipart.uploadPartCopy(ask(key, { uploadId, partNumber, headers })),
    );
    return (xml.CopyPartResult as Record<string, string>).ETag;
  };
  const whole = await copy({ "x-amz-copy-source": `/${BUCKET}/source` }, 1);
  assert.equal(whole, `"${md5Hex(source)}"`);
  const range = await copy({
    "x-amz-copy-source": `${BUCKET}/source`,
    "x-amz-copy-source-range": "bytes=300000-400000",
  }, 2);
  assert.equal(range, `"${md5Hex(source.subarray(300_000, 400_001))}"`);
  assert.equal(
    await errorOf(
      await local.multipart.uploadPartCopy(
        ask(key, { uploadId, partNumber: 3, headers: { "x-amz-copy-source": `/${BUCKET}/none` } }),
      ),
      404,
    ),
    "NoSuchKey",
  );
  assert.equal(
    await errorOf(
      await local.multipart.uploadPartCopy(ask(key, {
        uploadId,
        partNumber: 3,
        headers: {
          "x-amz-copy-source": `/${BUCKET}/source`,
          "x-amz-copy-source-range": `bytes=0-${source.byteLength}`,
        },
      })),
      416,
    ),
    "InvalidRange",
  );
  const xml = await xmlOf(
    await local.multipart.complete(ask(key, {
      uploadId,
      body: completeBody([{ partNumber: 1, etag: whole }, { partNumber: 2, etag: range }]),
    })),
  );
  assert.ok(xml.CompleteMultipartUploadResult);
  const value = await valueOf(local, `/${BUCKET}/${key}`);
  assert.equal(value.byteLength, source.byteLength + 100_001);
  assert.equal(md5Hex(value.subarray(source.byteLength)), range.slice(1, -1));
});

Deno.test("reap aborts uploads older than the age and removes parts left without one", async () => {
  await using local = await localIndex({ maxAgeMs: 1000 });
  const old = await create(local, "old");
  await uploadPart(local, "old", old, 1, bytesOf(1000, 1));
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const young = await create(local, "young");
  await uploadPart(local, "young", young, 1, bytesOf(1000, 2));
  // A part whose upload entry is gone, as a crash between the two removals leaves it.
  const lost = newUploadId(Date.now(), crypto.getRandomValues(new Uint8Array(16)));
  const orphan = await local.server.write(partKey(lost, 1), new Response("orphan").body, {
    attributes: {},
  });
  assert.ok(orphan.ok);

  assert.equal(await local.multipart.reap(), 2);
  assert.deepEqual(await partKeysOf(local, old), []);
  assert.deepEqual(await partKeysOf(local, lost), []);
  assert.equal((await partKeysOf(local, young)).length, 1);
  assert.equal(
    await errorOf(await local.multipart.listParts(ask("old", { uploadId: old })), 404),
    "NoSuchUpload",
  );
  const listed = await xmlOf(await local.multipart.listParts(ask("young", { uploadId: young })));
  assert.ok(listed.ListPartsResult);
  assert.equal(await local.multipart.reap(), 0);
});

// ---- through HTTP: a real cluster and the AWS SDK ----

/**
 * The index may not hold an upload in memory: a 100 MiB multipart upload through lib-storage
 * (four 5 MiB parts in flight, then Complete joining the parts into the final object) adds at
 * most this to its peak RSS over what it held before, whatever the object's size. Complete reads
 * the parts into one reused buffer (about 2 MiB more); the parts come through the S3 body
 * decoding (aws-chunked, checksums), whose fresh buffer per chunk V8 collects only once some
 * 64 MiB of them are outstanding: measured 38-40 MiB for 100 MiB, 60 MiB for 750 MiB.
 */
const MULTIPART_RSS_BYTES = 64 * MIB;
/** The index's live keys, from its stored-keys figure (parts included, which no listing shows). */
async function liveKeys(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/-/metrics`)).text();
  const line = metrics.match(/^mkv_keys\{state="live"\} (\d+)$/m);
  assert.ok(line, "no mkv_keys in /-/metrics");
  return Number(line[1]);
}

/**
 * Complete joins the parts in constant memory: joining 100 MiB of parts adds at most this to the
 * index's resident set (measured: 0.5-2 MiB).
 */
const COMPLETE_RSS_BYTES = 16 * MIB;

function s3Client(url: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "mkv", secretAccessKey: "mkv-secret" },
  });
}

/** The md5 and length of an object read back through S3's GetObject. */
async function readBack(
  client: S3Client,
  key: string,
): Promise<{ md5: string; sizeBytes: number; etag?: string }> {
  const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const hash = new Md5();
  let sizeBytes = 0;
  for await (const chunk of got.Body!.transformToWebStream()) {
    hash.update(chunk);
    sizeBytes += chunk.byteLength;
  }
  return { md5: hash.hex(), sizeBytes, etag: got.ETag };
}

Deno.test("a 100 MiB lib-storage upload: parts streamed, the index's memory bounded", async () => {
  await using cluster = await testCluster();
  const client = s3Client(cluster.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const idle = await readPeakRssMib(cluster.index.pid) * MIB;
    const value = generated(100 * MIB);
    const upload = new Upload({
      client,
      params: {
        Bucket: BUCKET,
        Key: "big/value.bin",
        Body: value.stream,
        ContentType: "application/x-test",
      },
      partSize: 5 * MIB,
      queueSize: 4,
    });
    const done = await upload.done();
    assert.match(done.ETag ?? "", /^"[0-9a-f]{32}-20"$/);
    const peak = await readPeakRssMib(cluster.index.pid) * MIB;
    assert.ok(
      peak - idle < MULTIPART_RSS_BYTES,
      `the index's peak RSS was ${(peak / MIB).toFixed(1)} MiB for a 100 MiB multipart upload ` +
        `(limit: ${MULTIPART_RSS_BYTES / MIB} MiB over the ${
          (idle / MIB).toFixed(1)
        } MiB before it)`,
    );
    const back = await readBack(client, "big/value.bin");
    assert.equal(back.sizeBytes, 100 * MIB);
    assert.equal(back.md5, value.md5(), "the object read back differs");
    assert.equal(back.etag, done.ETag);
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "big/value.bin" }));
    assert.equal(head.ContentType, "application/x-test");
    assert.equal(head.ContentLength, 100 * MIB);
  } finally {
    client.destroy();
  }
});

Deno.test("Complete joins 100 MiB of parts in constant memory", async () => {
  await using cluster = await testCluster();
  const client = s3Client(cluster.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const key = "joined.bin";
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }),
    );
    const hashes: string[] = [];
    const Parts = await sendParts(client, {
      key,
      UploadId,
      count: 20,
      bodyOf: (partNumber) => {
        const body = bytesOf(5 * MIB, partNumber);
        hashes.push(md5Hex(body));
        return body;
      },
    });
    const pid = cluster.index.pid;
    assert.ok(resetPeakRss(pid), `cannot reset the peak RSS of ${pid} (/proc/${pid}/clear_refs)`);
    const before = (await readRssMib(pid))! * MIB;
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: { Parts },
      }),
    );
    const peak = await readPeakRssMib(pid) * MIB;
    assert.equal(done.ETag, `"${multipartEtag(hashes)}"`);
    assert.ok(
      peak - before < COMPLETE_RSS_BYTES,
      `the index's peak RSS rose ${((peak - before) / MIB).toFixed(1)} MiB while it joined ` +
        `100 MiB of parts (limit: ${COMPLETE_RSS_BYTES / MIB} MiB)`,
    );
    assert.equal((await readBack(client, key)).sizeBytes, 100 * MIB);
  } finally {
    client.destroy();
  }
});

Deno.test("an upload survives a restart of the index between its parts", async () => {
  await using cluster = await testCluster();
  const client = s3Client(cluster.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const key = "restarted.bin";
    const created = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, Metadata: { kept: "yes" } }),
    );
    const UploadId = created.UploadId!;
    const first = bytesOf(5 * MIB, 1);
    const second = bytesOf(123_457, 2);
    const one = await client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: first }),
    );

    await cluster.index.stop();
    await using index = await spawnIndex({
      port: cluster.index.port,
      db: join(cluster.dir, "index"),
      volumes: cluster.volumes.map((volume) => `localhost:${volume.port}`),
    });
    assert.ok(index.pid !== cluster.index.pid);

    const two = await client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 2, Body: second }),
    );
    // gc keeps the parts: they have records, as every value does.
    const gc = await runScript([
      "index.ts",
      "gc",
      "--db",
      join(cluster.dir, "index"),
      "--volumes",
      cluster.volumes.map((volume) => `localhost:${volume.port}`).join(","),
    ]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /^gc: kept 6 in /m, "two parts, three replicas each, none removed");
    const parts = await client.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId }));
    assert.deepEqual(parts.Parts?.map((p) => [p.PartNumber, p.ETag, p.Size]), [
      [1, one.ETag, first.byteLength],
      [2, two.ETag, second.byteLength],
    ]);
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: {
          Parts: [{ PartNumber: 1, ETag: one.ETag }, { PartNumber: 2, ETag: two.ETag }],
        },
      }),
    );
    assert.equal(done.ETag, `"${multipartEtag([md5Hex(first), md5Hex(second)])}"`);
    // S3's Location is absolute: the scheme and host the client used.
    assert.equal(done.Location, `${cluster.url}/${BUCKET}/${key}`);
    const back = await readBack(client, key);
    const whole = new Uint8Array(first.byteLength + second.byteLength);
    whole.set(first);
    whole.set(second, first.byteLength);
    assert.equal(back.md5, md5Hex(whole));
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.deepEqual(head.Metadata, { kept: "yes" });
  } finally {
    client.destroy();
  }
});

Deno.test("an index started with --multipart-max-age reaps an older upload at start", async () => {
  await using cluster = await testCluster();
  const client = s3Client(cluster.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const key = "abandoned.bin";
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }),
    );
    await client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: "part" }),
    );
    assert.equal(await liveKeys(cluster.url), 1, "the part is a key of the index");
    await cluster.index.stop();
    // Older than the age by the time the index is up again: the reaper at start removes it.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await using _index = await spawnIndex({
      port: cluster.index.port,
      db: join(cluster.dir, "index"),
      volumes: cluster.volumes.map((volume) => `localhost:${volume.port}`),
      args: ["--multipart-max-age", "1s"],
    });
    // The reaper forgets the upload first, then removes its parts.
    const gone = async () => {
      const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
      return (listed.Uploads ?? []).length === 0 && await liveKeys(cluster.url) === 0;
    };
    assert.ok(
      await eventually(gone, POLL_TIMEOUT_MS),
      "the abandoned upload or its part is still there",
    );
  } finally {
    client.destroy();
  }
});

Deno.test("the SDK's Abort, ListParts, ListMultipartUploads and Complete's refusals", async () => {
  await using cluster = await testCluster();
  const client = s3Client(cluster.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const key = "docs/report.pdf";
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }),
    );
    const other = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "other" }),
    );
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    assert.deepEqual(listed.Uploads?.map((u) => [u.Key, u.UploadId]), [
      [key, UploadId],
      ["other", other.UploadId],
    ]);
    const rolled = await client.send(
      new ListMultipartUploadsCommand({ Bucket: BUCKET, Delimiter: "/" }),
    );
    assert.deepEqual(rolled.CommonPrefixes?.map((p) => p.Prefix), ["docs/"]);

    // Parts of 1 MiB are under S3's 5 MiB minimum for all but the last.
    const etags = (await sendParts(client, {
      key,
      UploadId,
      count: 2,
      bodyOf: (partNumber) => bytesOf(MIB, partNumber),
    })).map((part) => part.ETag);
    const parts = await client.send(
      new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId, MaxParts: 1 }),
    );
    assert.equal(parts.IsTruncated, true);
    assert.deepEqual(parts.Parts?.map((p) => p.PartNumber), [1]);
    const complete = (Parts: { PartNumber: number; ETag: string }[]) =>
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId,
          MultipartUpload: { Parts },
        }),
      );
    await assert.rejects(
      complete([{ PartNumber: 1, ETag: etags[0] }, { PartNumber: 2, ETag: etags[1] }]),
      (err: Error) => err.name === "EntityTooSmall",
    );
    await assert.rejects(
      complete([{ PartNumber: 1, ETag: etags[1] }]),
      (err: Error) => err.name === "InvalidPart",
    );

    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId }));
    await assert.rejects(
      client.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId })),
      (err: Error) => err.name === "NoSuchUpload",
    );
    const after = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    assert.deepEqual(after.Uploads?.map((u) => u.Key), ["other"]);
    // No part is left in the index (parts are keys, though no listing shows them).
    assert.equal(await liveKeys(cluster.url), 0);
  } finally {
    client.destroy();
  }
});

Deno.test("GET and HEAD of ?partNumber= and GetObjectAttributes' ObjectParts", async () => {
  await using cluster = await testCluster();
  const client = s3Client(cluster.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const key = "parts/video.mp4";
    const bodies = [bytesOf(5 * MIB, 1), bytesOf(5 * MIB, 2), bytesOf(1000, 3)];
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }),
    );
    const Parts = await sendParts(client, {
      key,
      UploadId,
      count: bodies.length,
      bodyOf: (partNumber) => bodies[partNumber - 1],
    });
    await assert.rejects(
      client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: 1 })),
      (err: Error) => err.name === "NoSuchKey",
      "no part is read before the upload completes",
    );
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: { Parts },
      }),
    );
    for (const [i, body] of bodies.entries()) {
      const got = await client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: i + 1 }),
      );
      assert.equal(got.PartsCount, 3);
      assert.equal(got.ETag, done.ETag, "a part's GET names the object's ETag");
      assert.equal(got.ContentLength, body.byteLength);
      assert.equal(md5Hex(await got.Body!.transformToByteArray()), md5Hex(body));
      const head = await client.send(
        new HeadObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: i + 1 }),
      );
      assert.equal(head.PartsCount, 3);
      assert.equal(head.ContentLength, body.byteLength);
    }
    await assert.rejects(
      client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: 4 })),
      (err: Error) => err.name === "InvalidPart",
    );
    await assert.rejects(
      client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: 1, Range: "bytes=0-1" }),
      ),
      (err: Error) => err.name === "InvalidRequest",
    );

    const attributes = await client.send(
      new GetObjectAttributesCommand({
        Bucket: BUCKET,
        Key: key,
        ObjectAttributes: ["ObjectParts", "ObjectSize"],
        MaxParts: 1,
        PartNumberMarker: "1",
      }),
    );
    assert.equal(attributes.ObjectSize, 10 * MIB + 1000);
    assert.equal(attributes.ObjectParts?.TotalPartsCount, 3);
    assert.equal(attributes.ObjectParts?.IsTruncated, true);
    assert.equal(attributes.ObjectParts?.NextPartNumberMarker, "2");
    assert.deepEqual(attributes.ObjectParts?.Parts?.map((p) => [p.PartNumber, p.Size]), [
      [2, 5 * MIB],
    ]);

    // A value written whole has one part: the value.
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "whole", Body: "body" }));
    const whole = await client.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: "whole", PartNumber: 1 }),
    );
    assert.equal(await whole.Body!.transformToString(), "body");
    await assert.rejects(
      client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "whole", PartNumber: 2 })),
      (err: Error) => err.name === "InvalidPart",
    );
  } finally {
    client.destroy();
  }
});

Deno.test("multipart checksums: COMPOSITE sha256 and FULL_OBJECT crc32 kept, answered, checked", async () => {
  await using cluster = await testCluster();
  const client = s3Client(cluster.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const bodies = [bytesOf(5 * MIB, 1), bytesOf(1000, 2)];
    const digest = async (body: Uint8Array<ArrayBuffer>) =>
      new Uint8Array(await crypto.subtle.digest("SHA-256", body)).toBase64();
    const partSums = await Promise.all(bodies.map(digest));
    const composite = `${await digest(
      new Uint8Array(partSums.flatMap((sum) => [...Uint8Array.fromBase64(sum)])),
    )}-2`;
    const upload = async (key: string, ChecksumAlgorithm: "SHA256" | "CRC32") => {
      const { UploadId } = await client.send(
        new CreateMultipartUploadCommand({
          Bucket: BUCKET,
          Key: key,
          ChecksumAlgorithm,
          ChecksumType: ChecksumAlgorithm === "CRC32" ? "FULL_OBJECT" : undefined,
        }),
      );
      const Parts = await sendParts(client, {
        key,
        UploadId,
        count: 2,
        bodyOf: (partNumber) => bodies[partNumber - 1],
        ChecksumAlgorithm,
      });
      return { UploadId, Parts };
    };

    const sha = await upload("composite", "SHA256");
    assert.deepEqual(sha.Parts.map((part) => part.ChecksumSHA256), partSums);
    await assert.rejects(
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: "composite",
          UploadId: sha.UploadId,
          MultipartUpload: { Parts: sha.Parts },
          ChecksumSHA256: `${partSums[0]}-2`,
        }),
      ),
      (err: Error) => err.name === "BadDigest",
    );
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: "composite",
        UploadId: sha.UploadId,
        MultipartUpload: { Parts: sha.Parts },
      }),
    );
    assert.equal(done.ChecksumSHA256, composite);
    assert.equal(done.ChecksumType, "COMPOSITE");
    const head = await client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: "composite", ChecksumMode: "ENABLED" }),
    );
    assert.equal(head.ChecksumSHA256, composite);
    const part = await client.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: "composite", PartNumber: 2 }),
    );
    assert.equal(part.ChecksumSHA256, partSums[1], "a part's GET answers the part's checksum");
    await part.Body!.transformToByteArray();
    const attributes = await client.send(
      new GetObjectAttributesCommand({
        Bucket: BUCKET,
        Key: "composite",
        ObjectAttributes: ["Checksum", "ObjectParts"],
      }),
    );
    assert.equal(attributes.Checksum?.ChecksumSHA256, composite);
    assert.deepEqual(attributes.ObjectParts?.Parts?.map((p) => p.ChecksumSHA256), partSums);

    // FULL_OBJECT: the crc32 of the whole value, computed as the parts are joined.
    const crc = await upload("full", "CRC32");
    const full = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: "full",
        UploadId: crc.UploadId,
        MultipartUpload: { Parts: crc.Parts },
      }),
    );
    assert.equal(full.ChecksumType, "FULL_OBJECT");
    // lib/s3/checksum.ts's crc32 is checked against the catalogued values in the unit tests.
    const crc32 = newChecksum("crc32");
    for (const body of bodies) crc32.update(body);
    assert.equal(full.ChecksumCRC32, crc32.digestBase64());
  } finally {
    client.destroy();
  }
});
