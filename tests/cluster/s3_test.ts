// The S3 API against real clusters, driven by the AWS SDK for JavaScript v3 as data teams use it:
// buckets, objects (overwrite, Range, conditionals, metadata), listings with their pagination,
// copies, deletes, SigV4 (header, presigned, wrong secret, unknown key, rights), aws-chunked
// uploads with checksum trailers, a 64 MiB value streamed both ways, what S3 writes read by
// `curl -L` and back, --s3-port, and REBALANCE /key.
//
//   node_modules/.bin/deno test -A tests/cluster/s3_test.ts

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "npm:@aws-sdk/client-s3@3.1178.0";
import { getSignedUrl } from "npm:@aws-sdk/s3-request-presigner@3.1178.0";
import { spawnIndex } from "../../dev/cluster.ts";
import { keyToPath } from "../../lib/placement.ts";
import {
  curl,
  fileOnDisk,
  freePort,
  md5Hex,
  request,
  s3Failure,
  tempDir,
  testCluster,
} from "../helpers.ts";

const ADMIN = { accessKeyId: "admin", secretAccessKey: "admin-secret-0123" };
const READER = { accessKeyId: "reader", secretAccessKey: "reader-secret-0123" };
const BIG_BYTES = 64 * 1024 * 1024;

/** An SDK client for `endpoint`, path-style; `checksums: "default"` keeps the SDK's defaults. */
function client(
  endpoint: string,
  credentials: S3ClientConfig["credentials"],
  options: { checksums?: "default" } = {},
): S3Client {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
    ...(options.checksums === "default" ? {} : {
      requestChecksumCalculation: "WHEN_REQUIRED" as const,
      responseChecksumValidation: "WHEN_REQUIRED" as const,
    }),
  });
}

async function bodyText(response: { Body?: unknown }): Promise<string> {
  return await (response.Body as { transformToString(): Promise<string> }).transformToString();
}

async function writeCredentials(path: string): Promise<void> {
  const lines = [
    `${ADMIN.accessKeyId} ${ADMIN.secretAccessKey} all`,
    `${READER.accessKeyId} ${READER.secretAccessKey} read,list`,
  ];
  await Deno.writeTextFile(path, lines.join("\n") + "\n", { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}

Deno.test("S3 with the AWS SDK: buckets, objects, listings, copies, deletes, SigV4", async (t) => {
  const s3Port = freePort();
  await using dir = await tempDir();
  const file = join(dir.path, "credentials");
  await writeCredentials(file);
  await using cluster = await testCluster({
    indexArgs: ["--replicas", "2", "--s3-port", String(s3Port), "--credentials", file],
  });
  const admin = client(cluster.url, ADMIN);
  const reader = client(cluster.url, READER);
  try {
    await t.step("buckets: create, again, bad name, head, list", async () => {
      await admin.send(new CreateBucketCommand({ Bucket: "photos" }));
      // S3's legacy us-east-1 rule: creating it again succeeds; asking another region does not.
      await admin.send(new CreateBucketCommand({ Bucket: "photos" }));
      assert.deepEqual(
        await s3Failure(admin.send(
          new CreateBucketCommand({
            Bucket: "photos",
            CreateBucketConfiguration: { LocationConstraint: "eu-west-1" },
          }),
        )),
        { name: "BucketAlreadyOwnedByYou", status: 409 },
      );
      assert.deepEqual(
        await s3Failure(admin.send(new CreateBucketCommand({ Bucket: "Bad_Name" }))),
        { name: "InvalidBucketName", status: 400 },
      );
      await admin.send(new HeadBucketCommand({ Bucket: "photos" }));
      assert.equal(
        (await s3Failure(admin.send(new HeadBucketCommand({ Bucket: "absent" })))).status,
        404,
      );
      const listed = await admin.send(new ListBucketsCommand({}));
      assert.deepEqual(listed.Buckets?.map((bucket) => bucket.Name), ["photos"]);
      // Pages of MaxBuckets, each but the last with a token for the next.
      await admin.send(new CreateBucketCommand({ Bucket: "photos-b" }));
      const first = await admin.send(new ListBucketsCommand({ MaxBuckets: 1 }));
      assert.deepEqual(first.Buckets?.map((bucket) => bucket.Name), ["photos"]);
      assert.ok(first.ContinuationToken);
      const second = await admin.send(
        new ListBucketsCommand({ MaxBuckets: 1, ContinuationToken: first.ContinuationToken }),
      );
      assert.deepEqual(second.Buckets?.map((bucket) => bucket.Name), ["photos-b"]);
      assert.equal(second.ContinuationToken, undefined);
      const prefixed = await admin.send(new ListBucketsCommand({ Prefix: "photos-" }));
      assert.deepEqual(prefixed.Buckets?.map((bucket) => bucket.Name), ["photos-b"]);
      await admin.send(new DeleteBucketCommand({ Bucket: "photos-b" }));
    });

    await t.step(
      "PutObject, HeadObject, GetObject with type, metadata, Range, conditions",
      async () => {
        const put = await admin.send(
          new PutObjectCommand({
            Bucket: "photos",
            Key: "a/1.txt",
            Body: "hello world",
            ContentType: "text/plain",
            Metadata: { color: "blue" },
          }),
        );
        assert.equal(put.ETag, `"${md5Hex("hello world")}"`);
        const head = await admin.send(new HeadObjectCommand({ Bucket: "photos", Key: "a/1.txt" }));
        assert.equal(head.ContentLength, 11);
        assert.equal(head.ContentType, "text/plain");
        assert.equal(head.ETag, put.ETag);
        assert.deepEqual(head.Metadata, { color: "blue" });
        assert.ok(Math.abs(head.LastModified!.getTime() - Date.now()) < 60_000);
        const got = await admin.send(new GetObjectCommand({ Bucket: "photos", Key: "a/1.txt" }));
        assert.equal(got.ContentType, "text/plain");
        assert.equal(got.ETag, put.ETag);
        assert.equal(got.ContentLength, 11);
        assert.equal(got.LastModified?.getTime(), head.LastModified?.getTime());
        // A value with user metadata: its GET carries it, as S3's does.
        assert.deepEqual(got.Metadata, { color: "blue" });
        assert.equal(await bodyText(got), "hello world");
        const range = await admin.send(
          new GetObjectCommand({ Bucket: "photos", Key: "a/1.txt", Range: "bytes=6-" }),
        );
        assert.equal(range.ContentRange, "bytes 6-10/11");
        assert.deepEqual(range.Metadata, { color: "blue" });
        assert.equal(await bodyText(range), "world");
        assert.deepEqual(
          await s3Failure(
            admin.send(
              new GetObjectCommand({ Bucket: "photos", Key: "a/1.txt", Range: "bytes=11-" }),
            ),
          ),
          { name: "InvalidRange", status: 416 },
        );
        assert.equal(
          (await s3Failure(
            admin.send(
              new GetObjectCommand({ Bucket: "photos", Key: "a/1.txt", IfNoneMatch: put.ETag }),
            ),
          )).status,
          304,
        );
        assert.deepEqual(
          await s3Failure(
            admin.send(new GetObjectCommand({ Bucket: "photos", Key: "a/1.txt", IfMatch: '"0"' })),
          ),
          { name: "PreconditionFailed", status: 412 },
        );
        assert.deepEqual(
          await s3Failure(admin.send(new GetObjectCommand({ Bucket: "photos", Key: "absent" }))),
          { name: "NoSuchKey", status: 404 },
        );
        assert.deepEqual(
          await s3Failure(admin.send(new GetObjectCommand({ Bucket: "nobucket", Key: "x" }))),
          { name: "NoSuchBucket", status: 404 },
        );
        // With credentials a write needs its bucket, as on S3.
        assert.deepEqual(
          await s3Failure(
            admin.send(new PutObjectCommand({ Bucket: "nobucket", Key: "x", Body: "x" })),
          ),
          { name: "NoSuchBucket", status: 404 },
        );
      },
    );

    await t.step(
      "overwrite, empty objects, long keys, metadata bound, a bad checksum",
      async () => {
        await admin.send(
          new PutObjectCommand({ Bucket: "photos", Key: "a/1.txt", Body: "second" }),
        );
        const got = await admin.send(new GetObjectCommand({ Bucket: "photos", Key: "a/1.txt" }));
        assert.equal(await bodyText(got), "second");
        await admin.send(
          new PutObjectCommand({ Bucket: "photos", Key: "empty/", Body: new Uint8Array(0) }),
        );
        const empty = await admin.send(new HeadObjectCommand({ Bucket: "photos", Key: "empty/" }));
        assert.equal(empty.ContentLength, 0);
        assert.deepEqual(
          await s3Failure(
            admin.send(new PutObjectCommand({ Bucket: "photos", Key: "k".repeat(200), Body: "x" })),
          ),
          { name: "KeyTooLongError", status: 400 },
        );
        assert.deepEqual(
          await s3Failure(
            admin.send(
              new PutObjectCommand({
                Bucket: "photos",
                Key: "meta",
                Body: "x",
                Metadata: { big: "m".repeat(3000) },
              }),
            ),
          ),
          { name: "MetadataTooLarge", status: 400 },
        );
        assert.deepEqual(
          await s3Failure(
            admin.send(
              new PutObjectCommand({
                Bucket: "photos",
                Key: "a/1.txt",
                Body: "third",
                ChecksumCRC32: "AAAAAA==",
              }),
            ),
          ),
          { name: "BadDigest", status: 400 },
        );
        const after = await admin.send(new GetObjectCommand({ Bucket: "photos", Key: "a/1.txt" }));
        assert.equal(await bodyText(after), "second");
      },
    );

    await t.step("standard headers kept from the PUT; every response-* override", async () => {
      const stored = {
        CacheControl: "max-age=3600",
        ContentDisposition: 'attachment; filename="app.js"',
        ContentEncoding: "gzip",
        ContentLanguage: "en-GB",
        Expires: new Date("2030-01-01T00:00:00Z"),
      };
      // Without metadata the body comes through nginx; with it, the index streams it.
      for (
        const [Key, Metadata] of [["web/app.js", undefined], ["web/meta.js", { m: "1" }]] as const
      ) {
        await admin.send(
          new PutObjectCommand({ Bucket: "photos", Key, Body: "gzipped", ...stored, Metadata }),
        );
        const head = await admin.send(new HeadObjectCommand({ Bucket: "photos", Key }));
        const got = await admin.send(new GetObjectCommand({ Bucket: "photos", Key }));
        for (const answer of [head, got]) {
          assert.deepEqual(
            [answer.CacheControl, answer.ContentDisposition, answer.ContentEncoding],
            [stored.CacheControl, stored.ContentDisposition, stored.ContentEncoding],
            Key,
          );
          assert.equal(answer.ContentLanguage, stored.ContentLanguage, Key);
          assert.equal(answer.Expires?.getTime(), stored.Expires.getTime(), Key);
        }
        assert.equal(await bodyText(got), "gzipped");
        const overridden = await admin.send(
          new GetObjectCommand({
            Bucket: "photos",
            Key,
            ResponseCacheControl: "no-store",
            ResponseContentDisposition: "inline",
            ResponseContentEncoding: "identity",
            ResponseContentLanguage: "fr",
            ResponseContentType: "text/javascript",
            ResponseExpires: new Date("2031-01-01T00:00:00Z"),
          }),
        );
        assert.deepEqual(
          [
            overridden.CacheControl,
            overridden.ContentDisposition,
            overridden.ContentEncoding,
            overridden.ContentLanguage,
            overridden.ContentType,
            overridden.Expires?.toISOString(),
          ],
          ["no-store", "inline", "identity", "fr", "text/javascript", "2031-01-01T00:00:00.000Z"],
          Key,
        );
        await overridden.Body?.transformToByteArray();
      }
      // A copy keeps them; a copy that replaces the metadata takes the new ones.
      await admin.send(
        new CopyObjectCommand({
          Bucket: "photos",
          Key: "web/copy.js",
          CopySource: "photos/web/app.js",
        }),
      );
      const copied = await admin.send(
        new HeadObjectCommand({ Bucket: "photos", Key: "web/copy.js" }),
      );
      assert.equal(copied.ContentEncoding, "gzip");
      await admin.send(
        new CopyObjectCommand({
          Bucket: "photos",
          Key: "web/copy.js",
          CopySource: "photos/web/app.js",
          MetadataDirective: "REPLACE",
          CacheControl: "no-cache",
        }),
      );
      const replaced = await admin.send(
        new HeadObjectCommand({ Bucket: "photos", Key: "web/copy.js" }),
      );
      assert.deepEqual([replaced.CacheControl, replaced.ContentEncoding], ["no-cache", undefined]);
      for (const Key of ["web/app.js", "web/meta.js", "web/copy.js"]) {
        await admin.send(new DeleteObjectCommand({ Bucket: "photos", Key }));
      }
    });

    await t.step("the SDK's defaults: aws-chunked with a checksum trailer", async () => {
      const defaults = client(cluster.url, ADMIN, { checksums: "default" });
      try {
        const value = "chunked ".repeat(10_000);
        await defaults.send(
          new PutObjectCommand({ Bucket: "photos", Key: "chunked.txt", Body: value }),
        );
        const got = await defaults.send(
          new GetObjectCommand({ Bucket: "photos", Key: "chunked.txt" }),
        );
        assert.equal(await bodyText(got), value);
      } finally {
        defaults.destroy();
      }
    });

    await t.step("S3 writes, curl -L reads; curl writes, S3 reads", async () => {
      const read = await curl([
        "-L",
        "-u",
        "admin:admin-secret-0123",
        `${cluster.url}/photos/a/1.txt`,
      ]);
      assert.equal(read.stdout, "second");
      const written = await curl([
        "-L",
        "-u",
        "admin:admin-secret-0123",
        "-X",
        "PUT",
        "--data-binary",
        "from curl",
        `${cluster.url}/photos/plain.txt`,
      ]);
      assert.equal(written.code, 0);
      const got = await admin.send(new GetObjectCommand({ Bucket: "photos", Key: "plain.txt" }));
      assert.equal(await bodyText(got), "from curl");
      assert.equal(got.ETag, `"${md5Hex("from curl")}"`);
    });

    await t.step("ListObjectsV2 and ListObjects: prefix, delimiter, pages", async () => {
      for (const key of ["b/1", "b/2", "b/3", "c/x/1", "c/y/1", "d"]) {
        await admin.send(new PutObjectCommand({ Bucket: "photos", Key: key, Body: key }));
      }
      const all = await admin.send(new ListObjectsV2Command({ Bucket: "photos" }));
      assert.deepEqual(all.Contents?.map((entry) => entry.Key), [
        "a/1.txt",
        "b/1",
        "b/2",
        "b/3",
        "c/x/1",
        "c/y/1",
        "chunked.txt",
        "d",
        "empty/",
        "plain.txt",
      ]);
      assert.equal(all.Contents?.[1].Size, 3);
      assert.equal(all.Contents?.[1].Owner, undefined);
      const owned = await admin.send(
        new ListObjectsV2Command({ Bucket: "photos", FetchOwner: true }),
      );
      assert.equal(owned.Contents?.[1].Owner?.ID, "mkv");
      assert.equal(all.Contents?.[1].ETag, `"${md5Hex("b/1")}"`);
      assert.equal(all.IsTruncated, false);
      const top = await admin.send(new ListObjectsV2Command({ Bucket: "photos", Delimiter: "/" }));
      assert.deepEqual(top.CommonPrefixes?.map((p) => p.Prefix), ["a/", "b/", "c/", "empty/"]);
      assert.deepEqual(top.Contents?.map((entry) => entry.Key), ["chunked.txt", "d", "plain.txt"]);
      const nested = await admin.send(
        new ListObjectsV2Command({ Bucket: "photos", Prefix: "c/", Delimiter: "/" }),
      );
      assert.deepEqual(nested.CommonPrefixes?.map((p) => p.Prefix), ["c/x/", "c/y/"]);
      const pages: string[][] = [];
      let token: string | undefined;
      do {
        const page = await admin.send(
          new ListObjectsV2Command({
            Bucket: "photos",
            Delimiter: "/",
            MaxKeys: 2,
            ContinuationToken: token,
          }),
        );
        pages.push([
          ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!),
          ...(page.Contents ?? []).map((c) => c.Key!),
        ].sort());
        token = page.NextContinuationToken;
        assert.equal(page.IsTruncated, token !== undefined);
      } while (token !== undefined);
      assert.deepEqual(pages, [["a/", "b/"], ["c/", "chunked.txt"], ["d", "empty/"], [
        "plain.txt",
      ]]);
      const after = await admin.send(
        new ListObjectsV2Command({ Bucket: "photos", StartAfter: "c/y/1", MaxKeys: 1 }),
      );
      assert.deepEqual(after.Contents?.map((c) => c.Key), ["chunked.txt"]);
      const v1 = await admin.send(
        new ListObjectsCommand({ Bucket: "photos", Prefix: "b/", Marker: "b/1", MaxKeys: 1 }),
      );
      assert.deepEqual(v1.Contents?.map((c) => c.Key), ["b/2"]);
      assert.equal(v1.IsTruncated, true);
      // max-keys=0: an empty page, not truncated, as S3 answers.
      const none = await admin.send(new ListObjectsV2Command({ Bucket: "photos", MaxKeys: 0 }));
      assert.deepEqual([none.KeyCount, none.IsTruncated, none.Contents], [0, false, undefined]);
      // ListObjectVersions: each object is its one version, "null", paged by key-marker.
      const versions: string[] = [];
      let keyMarker: string | undefined;
      do {
        const page = await admin.send(
          new ListObjectVersionsCommand({
            Bucket: "photos",
            Prefix: "b/",
            MaxKeys: 1,
            KeyMarker: keyMarker,
          }),
        );
        for (const version of page.Versions ?? []) {
          assert.deepEqual([version.VersionId, version.IsLatest], ["null", true]);
          assert.ok(version.ETag !== undefined && version.Size !== undefined);
          versions.push(version.Key!);
        }
        keyMarker = page.NextKeyMarker;
        assert.equal(page.IsTruncated, keyMarker !== undefined);
      } while (keyMarker !== undefined);
      const bKeys = await admin.send(new ListObjectsV2Command({ Bucket: "photos", Prefix: "b/" }));
      assert.deepEqual(versions, bKeys.Contents?.map((c) => c.Key));
      // A common prefix of many keys is skipped by a new read past it.
      await Promise.all(
        Array.from(
          { length: 70 },
          (_, i) =>
            admin.send(new PutObjectCommand({ Bucket: "photos", Key: `many/${i}`, Body: "m" })),
        ),
      );
      const skipped = await admin.send(
        new ListObjectsV2Command({ Bucket: "photos", Delimiter: "/" }),
      );
      assert.deepEqual(skipped.CommonPrefixes?.map((p) => p.Prefix), [
        "a/",
        "b/",
        "c/",
        "empty/",
        "many/",
      ]);
      assert.deepEqual(skipped.Contents?.map((c) => c.Key), ["chunked.txt", "d", "plain.txt"]);
      const plain = await request(`${cluster.url}/?list`, {
        headers: { authorization: `Basic ${btoa("admin:admin-secret-0123")}` },
      });
      assert.equal(plain.status, 200);
      assert.ok(JSON.parse(plain.body).keys.includes("/photos/d"));
    });

    await t.step("CopyObject, DeleteObject, DeleteObjects, DeleteBucket", async () => {
      await admin.send(
        new PutObjectCommand({
          Bucket: "photos",
          Key: "src",
          Body: "copy me",
          ContentType: "text/x-src",
          Metadata: { k: "v" },
        }),
      );
      const copied = await admin.send(
        new CopyObjectCommand({ Bucket: "photos", Key: "dst", CopySource: "photos/src" }),
      );
      assert.equal(copied.CopyObjectResult?.ETag, `"${md5Hex("copy me")}"`);
      const dst = await admin.send(new HeadObjectCommand({ Bucket: "photos", Key: "dst" }));
      assert.equal(dst.ContentType, "text/x-src");
      assert.deepEqual(dst.Metadata, { k: "v" });
      await admin.send(
        new CopyObjectCommand({
          Bucket: "photos",
          Key: "src",
          CopySource: "photos/src",
          MetadataDirective: "REPLACE",
          ContentType: "text/y",
        }),
      );
      const src = await admin.send(new GetObjectCommand({ Bucket: "photos", Key: "src" }));
      assert.equal(src.ContentType, "text/y");
      assert.equal(await bodyText(src), "copy me");
      await admin.send(new DeleteObjectCommand({ Bucket: "photos", Key: "dst" }));
      await admin.send(new DeleteObjectCommand({ Bucket: "photos", Key: "dst" }));
      assert.equal(
        (await s3Failure(admin.send(new GetObjectCommand({ Bucket: "photos", Key: "dst" }))))
          .name,
        "NoSuchKey",
      );
      assert.deepEqual(
        await s3Failure(admin.send(new DeleteBucketCommand({ Bucket: "photos" }))),
        { name: "BucketNotEmpty", status: 409 },
      );
      let listed = await admin.send(new ListObjectsV2Command({ Bucket: "photos" }));
      const keys = [...(listed.Contents ?? []).map((c) => c.Key!), "never-there"];
      const deleted = await admin.send(
        new DeleteObjectsCommand({
          Bucket: "photos",
          Delete: { Objects: keys.map((Key) => ({ Key })) },
        }),
      );
      assert.deepEqual(deleted.Deleted?.map((d) => d.Key).sort(), keys.sort());
      listed = await admin.send(new ListObjectsV2Command({ Bucket: "photos" }));
      assert.equal(listed.KeyCount, 0);
      await admin.send(new DeleteBucketCommand({ Bucket: "photos" }));
      assert.deepEqual((await admin.send(new ListBucketsCommand({}))).Buckets ?? [], []);
    });

    await t.step("SigV4: presigned GET, wrong secret, unknown key, rights, --s3-port", async () => {
      await admin.send(new CreateBucketCommand({ Bucket: "signed" }));
      await admin.send(new PutObjectCommand({ Bucket: "signed", Key: "v", Body: "presigned" }));
      const url = await getSignedUrl(admin, new GetObjectCommand({ Bucket: "signed", Key: "v" }), {
        expiresIn: 60,
      });
      const fetched = await request(url);
      assert.equal(fetched.status, 200);
      assert.equal(fetched.body, "presigned");
      const wrong = client(cluster.url, { accessKeyId: "admin", secretAccessKey: "wrong-secret" });
      const unknown = client(cluster.url, { accessKeyId: "nobody", secretAccessKey: "whatever1" });
      try {
        assert.deepEqual(
          await s3Failure(wrong.send(new GetObjectCommand({ Bucket: "signed", Key: "v" }))),
          { name: "SignatureDoesNotMatch", status: 403 },
        );
        assert.deepEqual(
          await s3Failure(unknown.send(new ListBucketsCommand({}))),
          { name: "InvalidAccessKeyId", status: 403 },
        );
      } finally {
        wrong.destroy();
        unknown.destroy();
      }
      assert.equal(
        await bodyText(await reader.send(new GetObjectCommand({ Bucket: "signed", Key: "v" }))),
        "presigned",
      );
      assert.deepEqual(
        await s3Failure(
          reader.send(new PutObjectCommand({ Bucket: "signed", Key: "w", Body: "x" })),
        ),
        { name: "AccessDenied", status: 403 },
      );
      // An unsigned request is S3's on --s3-port (an XML AccessDenied), plain on the main port.
      const onS3Port = await request(`http://localhost:${s3Port}/signed/v`);
      assert.equal(onS3Port.status, 403);
      assert.match(onS3Port.body, /<Code>AccessDenied<\/Code>/);
      const onMain = await request(`${cluster.url}/signed/v`, { headers: { "x-mkv-s3": "1" } });
      assert.equal(onMain.status, 401);
      const viaS3Port = client(`http://localhost:${s3Port}`, ADMIN);
      try {
        const got = await viaS3Port.send(new GetObjectCommand({ Bucket: "signed", Key: "v" }));
        assert.equal(await bodyText(got), "presigned");
      } finally {
        viaS3Port.destroy();
      }
    });

    await t.step("a 64 MiB value streamed in and out", async () => {
      const value = new Uint8Array(BIG_BYTES);
      for (let i = 0; i < value.length; i += 4096) value[i] = (i / 4096) & 0xff;
      await admin.send(new PutObjectCommand({ Bucket: "signed", Key: "big", Body: value }));
      const got = await admin.send(new GetObjectCommand({ Bucket: "signed", Key: "big" }));
      assert.equal(got.ContentLength, BIG_BYTES);
      const hash = createHash("md5");
      let total = 0;
      for await (const chunk of got.Body as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        total += chunk.length;
      }
      assert.equal(total, BIG_BYTES);
      assert.equal(hash.digest("hex"), md5Hex(value));
    });
  } finally {
    admin.destroy();
    reader.destroy();
  }
});

Deno.test("S3 without credentials: unsigned clients, failed overwrites keep the old value, REBALANCE", async (t) => {
  const s3Port = freePort();
  await using cluster = await testCluster({
    indexArgs: ["--replicas", "1", "--s3-port", String(s3Port)],
  });
  const unsigned = { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" };
  const anonymous = new S3Client({
    endpoint: cluster.url,
    region: "us-east-1",
    forcePathStyle: true,
    maxAttempts: 1,
    requestChecksumCalculation: "WHEN_REQUIRED",
    // As `aws --no-sign-request` does: no Authorization at all.
    credentials: { accessKeyId: "unused", secretAccessKey: "unused" },
    signer: { sign: (request) => Promise.resolve(request) },
  });
  try {
    await t.step("an unsigned SDK and plain HTTP on --s3-port", async () => {
      await anonymous.send(new CreateBucketCommand({ Bucket: "open" }));
      await anonymous.send(new PutObjectCommand({ Bucket: "open", Key: "k", Body: "old value" }));
      const listed = await request(`http://localhost:${s3Port}/`);
      assert.equal(listed.status, 200);
      assert.match(listed.body, /<Name>open<\/Name>/);
      const got = await request(`http://localhost:${s3Port}/open/k`);
      assert.equal(got.status, 200);
      assert.equal(got.body, "old value");
      // The same request on the main port is minikeyvalue's: a redirect.
      assert.equal((await request(`${cluster.url}/open/k`)).status, 302);
    });

    await t.step(
      "open cluster: a write makes its bucket; plain keys' buckets are listed",
      async () => {
        // As minikeyvalue's own S3 test does: a bucket never created.
        await anonymous.send(
          new PutObjectCommand({ Bucket: "boto", Key: "swag-1", Body: "hello1" }),
        );
        const listed = await anonymous.send(new ListObjectsV2Command({ Bucket: "boto" }));
        assert.deepEqual(listed.Contents?.map((c) => c.Key), ["swag-1"]);
        for (
          const key of ["/plainbucket/a/b", "/plainbucket/c", "/wehave", "/zz-top/x", "/Bad_Name/x"]
        ) {
          assert.equal(
            (await request(`${cluster.url}${key}`, { method: "PUT", body: "v" })).status,
            201,
          );
        }
        const buckets = await anonymous.send(new ListBucketsCommand({}));
        assert.deepEqual(buckets.Buckets?.map((b) => b.Name), [
          "boto",
          "open",
          "plainbucket",
          "zz-top",
        ]);
        // A made bucket stays once emptied, as S3's do; one that only held plain keys goes with
        // them.
        await anonymous.send(new DeleteObjectCommand({ Bucket: "boto", Key: "swag-1" }));
        assert.equal((await request(`${cluster.url}/zz-top/x`, { method: "DELETE" })).status, 204);
        const after = await anonymous.send(new ListBucketsCommand({}));
        assert.deepEqual(after.Buckets?.map((b) => b.Name), ["boto", "open", "plainbucket"]);
      },
    );

    await t.step("a failed overwrite keeps the old value", async () => {
      const mismatch = await request(`${cluster.url}/open/k`, {
        method: "PUT",
        headers: { "x-amz-content-sha256": "0".repeat(64) },
        body: "new value",
      });
      assert.equal(mismatch.status, 400);
      assert.match(mismatch.body, /<Code>XAmzContentSHA256Mismatch<\/Code>/);
      const cut = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new Uint8Array(1024 * 1024).fill(7));
        },
        pull(controller) {
          controller.error(new Error("the client went away"));
        },
      });
      await fetch(`${cluster.url}/open/k`, { method: "PUT", headers: unsigned, body: cut })
        .then((response) => response.body?.cancel(), () => {});
      const got = await anonymous.send(new GetObjectCommand({ Bucket: "open", Key: "k" }));
      assert.equal(await bodyText(got), "old value");
      assert.equal(got.ETag, `"${md5Hex("old value")}"`);
    });

    await t.step(
      "DeleteObjects: keys as Go's encoding/xml escapes them, answered in order",
      async () => {
        const names = ["z", "it's", "a", 'say "hi"', "b&c"];
        for (const Key of names) {
          await anonymous.send(new PutObjectCommand({ Bucket: "open", Key, Body: Key }));
        }
        // As rclone and restic send it: quotes and apostrophes as numeric references.
        const escaped = (name: string) =>
          name.replaceAll("&", "&amp;").replaceAll("'", "&#39;").replaceAll('"', "&#34;");
        const asked = [...names, "never-there"];
        const body = `<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
          asked.map((name) => `<Object><Key>${escaped(name)}</Key></Object>`).join("") +
          `</Delete>`;
        const answer = await request(`${cluster.url}/open?delete`, {
          method: "POST",
          headers: unsigned,
          body,
        });
        assert.equal(answer.status, 200, answer.body);
        const keys = [...answer.body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((match) =>
          match[1].replaceAll("&quot;", '"').replaceAll("&apos;", "'").replaceAll("&amp;", "&")
        );
        assert.deepEqual(keys, asked);
        for (const Key of names) {
          assert.equal(
            (await s3Failure(anonymous.send(new HeadObjectCommand({ Bucket: "open", Key }))))
              .status,
            404,
            Key,
          );
        }
      },
    );

    await t.step("signed aws-chunked bodies are taken without a secret to check them", async () => {
      const signature = `;chunk-signature=${"a".repeat(64)}\r\n`;
      const body = `5${signature}hello\r\n0${signature}\r\n`;
      const put = await request(`${cluster.url}/open/chunked`, {
        method: "PUT",
        headers: {
          "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
          "content-encoding": "aws-chunked",
          "x-amz-decoded-content-length": "5",
        },
        body,
      });
      assert.equal(put.status, 200, put.body);
      const got = await anonymous.send(new GetObjectCommand({ Bucket: "open", Key: "chunked" }));
      assert.equal(await bodyText(got), "hello");
    });

    await t.step("REBALANCE /key; a replica that dies mid-body cuts the connection", async () => {
      await cluster.index.stop();
      await using index = await spawnIndex({
        port: cluster.index.port,
        db: join(cluster.dir, "index"),
        volumes: cluster.volumes.map((volume) => `localhost:${volume.port}`),
        args: ["--replicas", "2"],
      });
      const before = await request(`${index.url}/open/k`);
      assert.equal(before.headers.get("key-balance"), "unbalanced");
      assert.equal((await request(`${index.url}/open/k`, { method: "REBALANCE" })).status, 204);
      const after = await request(`${index.url}/open/k`);
      assert.equal(after.headers.get("key-balance"), "balanced");
      assert.equal(after.headers.get("key-volumes")?.split(",").length, 2);
      assert.equal(
        (await request(`${index.url}/open/absent`, { method: "REBALANCE" })).status,
        404,
      );
      const read = await curl(["-L", `${index.url}/open/k`]);
      assert.equal(read.stdout, "old value");
      // A replica that dies in the middle of a body ends the connection: never a short body.
      const big = new Uint8Array(48 * 1024 * 1024).fill(1);
      const stored = await request(`${index.url}/open/big`, {
        method: "PUT",
        headers: unsigned,
        body: big,
      });
      assert.equal(stored.status, 200);
      const response = await fetch(`${index.url}/open/big`, { headers: unsigned });
      assert.equal(response.headers.get("content-length"), String(big.length));
      const reader = response.body!.getReader();
      let received = (await reader.read()).value?.length ?? 0;
      await Promise.all(cluster.volumes.map((volume) => volume.stop()));
      const ended = await (async () => {
        while (true) {
          const { done, value } = await reader.read();
          if (done) return "clean end";
          received += value.length;
        }
      })().catch(() => "error");
      assert.equal(ended, "error");
      assert.ok(received < big.length, `${received}`);
    });
  } finally {
    anonymous.destroy();
  }
});

Deno.test("an S3 GET whose replica fails behind the index's back answers S3's XML, never nginx's HTML", async () => {
  const s3Port = freePort();
  await using cluster = await testCluster({
    indexArgs: ["--replicas", "1", "--s3-port", String(s3Port)],
  });
  const s3 = `http://localhost:${s3Port}`;
  assert.equal((await request(`${s3}/racy`, { method: "PUT" })).status, 200);
  for (const key of ["gone", "down"]) {
    assert.equal((await request(`${s3}/racy/${key}`, { method: "PUT", body: key })).status, 200);
  }
  const assertXml = (answer: { status: number; headers: Headers; body: string }, code: string) => {
    assert.match(answer.headers.get("content-type") ?? "", /^application\/xml/, answer.body);
    assert.match(answer.body, new RegExp(`^<\\?xml .*<Error><Code>${code}</Code>`, "s"));
    assert.doesNotMatch(answer.body, /<html/i);
  };
  // Just written, the replica is trusted for VERIFIED_TTL_MS: an S3 GET within that window is sent
  // to it unchecked, as when a DELETE removes the file just after the check. The plain API's HEAD
  // names the replica.
  const locate = async (key: string) => {
    const head = await request(`${cluster.url}/racy/${key}`, { method: "HEAD" });
    assert.equal(head.status, 302);
    return head.headers.get("key-volumes")!;
  };
  // A value with metadata is streamed by the index itself, not through the redirect: the same.
  const meta = await request(`${s3}/racy/meta`, {
    method: "PUT",
    headers: { "x-amz-meta-colour": "blue" },
    body: "meta",
  });
  assert.equal(meta.status, 200);
  // Through the redirect the replica's 404 is NoSuchKey. Streamed by the index, a 404 has the index
  // check the key's replicas again (lib/core/miss.ts): with its record live and no replica holding
  // the file, the key is lost, ServiceUnavailable as for any GET of a lost key.
  for (
    const [key, status, code] of [["gone", 404, "NoSuchKey"], [
      "meta",
      503,
      "ServiceUnavailable",
    ]] as const
  ) {
    const at = await locate(key);
    await Deno.remove(fileOnDisk(cluster, at, keyToPath(`/racy/${key}`)));
    const gone = await request(`${s3}/racy/${key}`);
    assert.equal(gone.status, status, gone.body);
    assertXml(gone, code);
  }

  // Its volume stopped before the index's probe notices: nginx cannot reach it.
  const downAt = await locate("down");
  const volume = cluster.volumes.find((v) => downAt.startsWith(`localhost:${v.port}`))!;
  await volume.stop();
  const down = await request(`${s3}/racy/down`);
  assert.equal(down.status, 503, down.body);
  assertXml(down, "ServiceUnavailable");

  // The plain API keeps its plain answers.
  const plain = await request(`${cluster.url}/racy/never`);
  assert.equal(plain.status, 404);
  assert.doesNotMatch(plain.body, /<\?xml|<html/i);
});
