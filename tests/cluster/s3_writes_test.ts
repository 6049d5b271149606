// S3 writes that meet other writes, against a real cluster: conditional writes (If-None-Match: *
// and If-Match on PutObject, CopyObject and CompleteMultipartUpload: 412 PreconditionFailed,
// nothing changed), a race of "create only if absent" PUTs of one key (exactly one wins), and
// concurrent S3 PUTs of one key (the last writer wins; minikeyvalue's PUT keeps its 409), and a
// CompleteMultipartUpload that answers 200 at once and keeps the connection alive; checksums a
// write gives, kept and answered.
//
//   node_modules/.bin/deno test -A tests/cluster/s3_writes_test.ts

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "npm:@aws-sdk/client-s3@3.1178.0";
import { newChecksum } from "../../lib/s3/checksum.ts";
import { freePort, md5Hex, request, s3Failure, testCluster } from "../helpers.ts";

const BUCKET = "race";

/** An unsigned SDK client, as on an open cluster. */
function anonymousClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    maxAttempts: 1,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    credentials: { accessKeyId: "unused", secretAccessKey: "unused" },
    signer: { sign: (request) => Promise.resolve(request) },
  });
}

/** A request body the test writes to and ends when it says (a slow client's upload). */
function heldBody(): {
  stream: ReadableStream<Uint8Array>;
  write(text: string): void;
  end(): void;
} {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  return {
    stream,
    write: (text) => controller.enqueue(new TextEncoder().encode(text)),
    end: () => controller.close(),
  };
}

/** A raw S3 request on `base`; the answer's status, S3 error code (if any) and body. */
async function s3Request(
  base: string,
  path: string,
  init: RequestInit & { headers?: Record<string, string> },
): Promise<{ status: number; code: string | null; body: string }> {
  const answer = await request(`${base}${path}`, {
    ...init,
    headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD", ...init.headers },
  });
  const code = answer.body.match(/<Code>([^<]*)<\/Code>/)?.[1] ?? null;
  return { status: answer.status, code, body: answer.body };
}

async function read(client: S3Client, key: string): Promise<string> {
  const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return await got.Body!.transformToString();
}

function etagOf(text: string): string {
  return `"${md5Hex(text)}"`;
}

Deno.test("S3 conditional writes and concurrent writes of one key", async (t) => {
  const s3Port = freePort();
  await using cluster = await testCluster({
    indexArgs: ["--replicas", "2", "--s3-port", String(s3Port)],
  });
  const s3 = `http://localhost:${s3Port}`;
  const client = anonymousClient(s3);
  try {
    await s3Request(s3, `/${BUCKET}`, { method: "PUT" });

    await t.step("PutObject: If-None-Match: * and If-Match with the SDK", async () => {
      await client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: "once", Body: "first", IfNoneMatch: "*" }),
      );
      assert.deepEqual(
        await s3Failure(client.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: "once", Body: "second", IfNoneMatch: "*" }),
        )),
        { name: "PreconditionFailed", status: 412 },
      );
      assert.deepEqual(
        await s3Failure(client.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: "once", Body: "third", IfMatch: '"bad"' }),
        )),
        { name: "PreconditionFailed", status: 412 },
      );
      assert.equal(await read(client, "once"), "first");
      const replaced = await client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: "once",
          Body: "fourth",
          IfMatch: etagOf("first"),
        }),
      );
      assert.equal(replaced.ETag, etagOf("fourth"));
      assert.equal(await read(client, "once"), "fourth");
      // If-Match needs a value to match: none is S3's NoSuchKey, and nothing is written.
      assert.deepEqual(
        await s3Failure(client.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: "absent", Body: "x", IfMatch: "*" }),
        )),
        { name: "NoSuchKey", status: 404 },
      );
      assert.equal((await s3Request(s3, `/${BUCKET}/absent`, { method: "HEAD" })).status, 404);
      // If-None-Match naming another ETag lets the write through.
      await client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: "once", Body: "fifth", IfNoneMatch: '"x"' }),
      );
      assert.equal(await read(client, "once"), "fifth");
    });

    await t.step("CopyObject and CompleteMultipartUpload: If-None-Match: *, If-Match", async () => {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "source", Body: "copied" }));
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "dest", Body: "kept" }));
      const copy = (headers: Record<string, string>) =>
        s3Request(s3, `/${BUCKET}/dest`, {
          method: "PUT",
          headers: { "x-amz-copy-source": `/${BUCKET}/source`, ...headers },
        });
      assert.equal((await copy({ "if-none-match": "*" })).code, "PreconditionFailed");
      assert.equal((await copy({ "if-match": '"bad"' })).code, "PreconditionFailed");
      assert.equal(await read(client, "dest"), "kept");
      assert.equal((await copy({ "if-match": etagOf("kept") })).status, 200);
      assert.equal(await read(client, "dest"), "copied");

      const { UploadId } = await client.send(
        new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "dest" }),
      );
      const part = await client.send(
        new UploadPartCommand({
          Bucket: BUCKET,
          Key: "dest",
          UploadId,
          PartNumber: 1,
          Body: "joined",
        }),
      );
      const complete = (conditions: { IfNoneMatch?: string; IfMatch?: string }) =>
        client.send(
          new CompleteMultipartUploadCommand({
            Bucket: BUCKET,
            Key: "dest",
            UploadId,
            MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
            ...conditions,
          }),
        );
      assert.deepEqual(await s3Failure(complete({ IfNoneMatch: "*" })), {
        name: "PreconditionFailed",
        status: 412,
      });
      assert.equal(await read(client, "dest"), "copied");
      // The upload is still there to complete once the condition holds.
      await complete({ IfMatch: etagOf("copied") });
      assert.equal(await read(client, "dest"), "joined");
    });

    await t.step("a race of If-None-Match: * PUTs of one new key: exactly one 200", async () => {
      // The first holds the key's lock while its body is still coming; the others wait for it.
      const first = heldBody();
      const firstPut = s3Request(s3, `/${BUCKET}/claimed`, {
        method: "PUT",
        headers: { "if-none-match": "*" },
        body: first.stream,
      });
      first.write("writer 0");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const others = Array.from({ length: 6 }, (_, at) =>
        s3Request(s3, `/${BUCKET}/claimed`, {
          method: "PUT",
          headers: { "if-none-match": "*" },
          body: `writer ${at + 1}`,
        }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      first.end();
      const answers = await Promise.all([firstPut, ...others]);
      assert.deepEqual(answers.map((answer) => answer.status), [200, 412, 412, 412, 412, 412, 412]);
      assert.ok(answers.slice(1).every((answer) => answer.code === "PreconditionFailed"));
      assert.equal(await read(client, "claimed"), "writer 0");

      // Without any PUT held open, still exactly one of them wins.
      const racing = await Promise.all(
        Array.from({ length: 8 }, (_, at) =>
          s3Request(s3, `/${BUCKET}/claimed-too`, {
            method: "PUT",
            headers: { "if-none-match": "*" },
            body: `racer ${at}`,
          })),
      );
      const winners = racing.flatMap((answer, at) => (answer.status === 200 ? [at] : []));
      assert.equal(winners.length, 1, JSON.stringify(racing.map((answer) => answer.status)));
      assert.ok(racing.every((answer) => answer.status === 200 || answer.status === 412));
      assert.equal(await read(client, "claimed-too"), `racer ${winners[0]}`);
    });

    await t.step("concurrent S3 PUTs of one key: the last writer wins", async () => {
      const first = heldBody();
      const firstPut = s3Request(s3, `/${BUCKET}/contended`, {
        method: "PUT",
        body: first.stream,
      });
      first.write("the first ");
      await new Promise((resolve) => setTimeout(resolve, 200));
      // minikeyvalue's PUT of the same key is refused at once, as it always was.
      const plain = await request(`${cluster.url}/${BUCKET}/contended`, {
        method: "PUT",
        body: "plain",
      });
      assert.equal(plain.status, 409);
      const secondPut = s3Request(s3, `/${BUCKET}/contended`, { method: "PUT", body: "second" });
      await new Promise((resolve) => setTimeout(resolve, 200));
      first.write("value");
      first.end();
      const [one, two] = await Promise.all([firstPut, secondPut]);
      assert.deepEqual([one.status, two.status], [200, 200]);
      assert.equal(await read(client, "contended"), "second");
    });

    await t.step(
      "a write still in progress past the wait (WRITE_LOCK_WAIT_MS): 503 SlowDown, nothing changed",
      async () => {
        const first = heldBody();
        const firstPut = s3Request(s3, `/${BUCKET}/slow`, { method: "PUT", body: first.stream });
        first.write("slow ");
        await new Promise((resolve) => setTimeout(resolve, 200));
        const waited = await s3Request(s3, `/${BUCKET}/slow`, { method: "PUT", body: "impatient" });
        assert.deepEqual([waited.status, waited.code], [503, "SlowDown"]);
        first.write("value");
        first.end();
        assert.equal((await firstPut).status, 200);
        assert.equal(await read(client, "slow"), "slow value");
      },
    );

    await t.step(
      "CompleteMultipartUpload: 200 at once, spaces while it waits, then the result; again: the same",
      async () => {
        const { UploadId } = await client.send(
          new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "joined" }),
        );
        const part = await client.send(
          new UploadPartCommand({
            Bucket: BUCKET,
            Key: "joined",
            UploadId,
            PartNumber: 1,
            Body: "all of it",
          }),
        );
        const body = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>` +
          `<ETag>${part.ETag}</ETag></Part></CompleteMultipartUpload>`;
        // A PUT of the key held open keeps the Complete waiting for the key's lock.
        const held = heldBody();
        const put = s3Request(s3, `/${BUCKET}/joined`, { method: "PUT", body: held.stream });
        held.write("in the way");
        await new Promise((resolve) => setTimeout(resolve, 200));
        const response = await fetch(`${s3}/${BUCKET}/joined?uploadId=${UploadId}`, {
          method: "POST",
          headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
          body,
        });
        assert.equal(response.status, 200);
        const reader = response.body!.getReader();
        let text = "";
        while (!/<\?xml[^>]*>\s* {2}/.test(text)) {
          const { value } = await reader.read();
          text += new TextDecoder().decode(value);
        }
        held.end();
        assert.equal((await put).status, 200);
        for (let read = await reader.read(); !read.done; read = await reader.read()) {
          text += new TextDecoder().decode(read.value);
        }
        assert.match(text, /^<\?xml[^>]*>\n +<CompleteMultipartUploadResult/);
        const etag = text.match(/<ETag>([^<]*)<\/ETag>/)?.[1];
        assert.equal(await read(client, "joined"), "all of it");
        // Completing it again, as a client that lost the answer does, answers the same.
        const again = await client.send(
          new CompleteMultipartUploadCommand({
            Bucket: BUCKET,
            Key: "joined",
            UploadId,
            MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
          }),
        );
        assert.equal(again.ETag, etag?.replaceAll("&quot;", '"'));
        assert.equal(await read(client, "joined"), "all of it");
      },
    );

    await t.step(
      "x-amz-checksum-*: kept, answered on PUT, HEAD/GET that ask, GetObjectAttributes",
      async () => {
        const checked = new S3Client({
          endpoint: s3,
          region: "us-east-1",
          forcePathStyle: true,
          maxAttempts: 1,
          credentials: { accessKeyId: "unused", secretAccessKey: "unused" },
          signer: { sign: (request) => Promise.resolve(request) },
        });
        try {
          const value = "checked value";
          const sha256 = createHash("sha256").update(value).digest("base64");
          const put = await checked.send(
            new PutObjectCommand({
              Bucket: BUCKET,
              Key: "summed",
              Body: value,
              ChecksumAlgorithm: "SHA256",
            }),
          );
          assert.equal(put.ChecksumSHA256, sha256);
          const head = await checked.send(
            new HeadObjectCommand({ Bucket: BUCKET, Key: "summed", ChecksumMode: "ENABLED" }),
          );
          assert.equal(head.ChecksumSHA256, sha256);
          const got = await checked.send(
            new GetObjectCommand({ Bucket: BUCKET, Key: "summed", ChecksumMode: "ENABLED" }),
          );
          assert.equal(got.ChecksumSHA256, sha256);
          assert.equal(await got.Body!.transformToString(), value);
          const plain = await checked.send(
            new HeadObjectCommand({ Bucket: BUCKET, Key: "summed" }),
          );
          assert.equal(plain.ChecksumSHA256, undefined);
          // A copy has the same bytes, so the same checksum.
          await checked.send(
            new CopyObjectCommand({
              Bucket: BUCKET,
              Key: "summed-copy",
              CopySource: `${BUCKET}/summed`,
            }),
          );
          const copied = await checked.send(
            new HeadObjectCommand({ Bucket: BUCKET, Key: "summed-copy", ChecksumMode: "ENABLED" }),
          );
          assert.equal(copied.ChecksumSHA256, sha256);

          const attributes = await checked.send(
            new GetObjectAttributesCommand({
              Bucket: BUCKET,
              Key: "summed",
              ObjectAttributes: ["ETag", "Checksum", "ObjectSize", "StorageClass"],
            }),
          );
          assert.deepEqual(
            [attributes.ETag, attributes.Checksum?.ChecksumSHA256, attributes.ObjectSize],
            [etagOf(value).replaceAll('"', ""), sha256, value.length],
          );
          assert.equal(attributes.StorageClass, "STANDARD");

          // A raw PUT with the header form; a multipart upload echoes its algorithm.
          const crc32 = newChecksum("crc32");
          crc32.update(new TextEncoder().encode(value));
          const raw = await s3Request(s3, `/${BUCKET}/crc`, {
            method: "PUT",
            headers: { "x-amz-checksum-crc32": crc32.digestBase64() },
            body: value,
          });
          assert.equal(raw.status, 200);
          const rawHead = await fetch(`${s3}/${BUCKET}/crc`, {
            method: "HEAD",
            headers: { "x-amz-checksum-mode": "ENABLED" },
          });
          assert.equal(rawHead.headers.get("x-amz-checksum-crc32"), crc32.digestBase64());
          const created = await checked.send(
            new CreateMultipartUploadCommand({
              Bucket: BUCKET,
              Key: "parted",
              ChecksumAlgorithm: "CRC32C",
            }),
          );
          assert.equal(created.ChecksumAlgorithm, "CRC32C");
        } finally {
          checked.destroy();
        }
      },
    );
  } finally {
    client.destroy();
  }
});
