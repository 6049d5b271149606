// Multipart upload throughput against one PUT of the same size, side by side, through the AWS SDK
// on a local cluster (three volumes, --replicas 2): PutObject of the whole value, then
// lib-storage's Upload in parts, each run `rounds` times with the best of each printed and their
// ratio. The value is random and every upload is read back and compared once.
//
//   node_modules/.bin/deno run -A bench/multipart.ts [--size-mib 256] [--part-mib 16] [--rounds 3]

import { Buffer } from "node:buffer";
import { randomFillSync } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "npm:@aws-sdk/client-s3@3.1178.0";
import { Upload } from "npm:@aws-sdk/lib-storage@3.1178.0";
import { freePort, spawnCluster } from "../dev/cluster.ts";

const MIB = 1024 * 1024;
const BUCKET = "bench";
/** lib-storage's parts in flight at once: its default. */
const QUEUE_SIZE = 4;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "size-mib": { type: "string", default: "256" },
    "part-mib": { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
  },
});
const sizeBytes = Number(values["size-mib"]) * MIB;
const partBytes = Number(values["part-mib"]) * MIB;
const rounds = Number(values.rounds);

/** MB/s (10^6 bytes) of `bytes` moved in `ms`. */
function rate(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

const dir = await Deno.makeTempDir({ prefix: "mkv-bench-multipart-" });
// nginx's workers (their own account when we are root) must reach the volumes under it.
await Deno.chmod(dir, 0o755);
const port = freePort();
const cluster = await spawnCluster({
  dir,
  port,
  volumePorts: [freePort(), freePort(), freePort()],
  indexArgs: ["--replicas", "2"],
});
const client = new S3Client({
  endpoint: `http://localhost:${port}`,
  region: "us-east-1",
  forcePathStyle: true,
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED",
  credentials: { accessKeyId: "unused", secretAccessKey: "unused" },
  signer: { sign: (request) => Promise.resolve(request) },
});
try {
  const value = Buffer.alloc(sizeBytes);
  randomFillSync(value);
  await fetch(`http://localhost:${port}/${BUCKET}`, {
    method: "PUT",
    headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
  }).then((response) => response.body?.cancel());
  const check = async (key: string) => {
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const bytes = await got.Body!.transformToByteArray();
    if (!value.equals(bytes)) throw new Error(`${key}: read back differs`);
  };
  const single: number[] = [];
  const multipart: number[] = [];
  for (let round = 0; round < rounds; round++) {
    single.push(
      await timed(() =>
        client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `single-${round}`, Body: value }))
      ),
    );
    multipart.push(
      await timed(() =>
        new Upload({
          client,
          params: { Bucket: BUCKET, Key: `parts-${round}`, Body: value },
          partSize: partBytes,
          queueSize: QUEUE_SIZE,
        }).done()
      ),
    );
    if (round === 0) {
      await check("single-0");
      await check("parts-0");
    }
  }
  // Where a multipart upload's time goes: its parts (QUEUE_SIZE at once), then the Complete that
  // joins them into the object.
  const partsMs: number[] = [];
  const completeMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const Key = `timed-${round}`;
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key }),
    );
    const count = Math.ceil(sizeBytes / partBytes);
    const etags: string[] = new Array(count);
    let next = 0;
    partsMs.push(
      await timed(() =>
        Promise.all(Array.from({ length: QUEUE_SIZE }, async () => {
          while (next < count) {
            const at = next++;
            const Body = value.subarray(at * partBytes, Math.min(sizeBytes, (at + 1) * partBytes));
            const part = await client.send(
              new UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber: at + 1, Body }),
            );
            etags[at] = part.ETag!;
          }
        }))
      ),
    );
    const Parts = etags.map((ETag, at) => ({ ETag, PartNumber: at + 1 }));
    completeMs.push(
      await timed(() =>
        client.send(
          new CompleteMultipartUploadCommand({
            Bucket: BUCKET,
            Key,
            UploadId,
            MultipartUpload: { Parts },
          }),
        )
      ),
    );
  }
  const best = (ms: number[]) => rate(sizeBytes, Math.min(...ms));
  console.log(
    `multipart by hand: parts ${best(partsMs).toFixed(0)} MB/s ` +
      `(${(Math.min(...partsMs) / 1000).toFixed(2)} s), Complete ` +
      `${(Math.min(...completeMs) / 1000).toFixed(2)} s (${best(completeMs).toFixed(0)} MB/s)`,
  );
  console.log(
    `${sizeBytes / MIB} MiB, ${partBytes / MIB} MiB parts, best of ${rounds}: ` +
      `PutObject ${best(single).toFixed(0)} MB/s, multipart ${best(multipart).toFixed(0)} MB/s ` +
      `(${(100 * best(multipart) / best(single)).toFixed(0)} %)`,
  );
} finally {
  client.destroy();
  await cluster.stop();
  await Deno.remove(join(dir), { recursive: true });
}
