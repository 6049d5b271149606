// The bench's big value (512 MiB in a full run): made once from a random 1 MiB chunk stamped with
// each copy's index (so no chunk repeats) with its md5, PUT to each server streamed from memory
// with a Content-Length, read back through the 302 (streamed, counted), and deleted; with the
// index's peak RSS during the PUT.

import { createHash } from "node:crypto";
import http from "node:http";
import { MIB, type ServerFigures } from "./figures.ts";
import { meter, type Server } from "./meter.ts";
import { readPeakRssMib, readRssMib, resetPeakRss } from "./proc.ts";
import { expectStatus } from "./tools.ts";

/** The chunk the big value is made of; each copy is stamped with its index so none repeat. */
const BIG_CHUNK_BYTES = MIB;

/** The big value: its seed chunk and md5, made once and PUT to every server. */
export interface BigValue {
  sizeBytes: number;
  seed: Uint8Array;
  md5: string;
}

/** The chunks of the big value; the same bytes every time it is generated. */
function* bigChunks(sizeBytes: number, seed: Uint8Array): Generator<Uint8Array<ArrayBuffer>> {
  for (let offset = 0, i = 0; offset < sizeBytes; offset += seed.length, i++) {
    const chunk = seed.slice(0, Math.min(seed.length, sizeBytes - offset));
    new DataView(chunk.buffer).setUint32(0, i);
    yield chunk;
  }
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  // getRandomValues fills at most 64 KiB at a time.
  for (let i = 0; i < length; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
  return bytes;
}

/**
 * PUTs a value streamed from `chunks` with a Content-Length, as `curl -T FILE` does (fetch would
 * send it chunked); node:http writes each chunk as the socket drains, so nothing is buffered.
 */
function putStreamed(
  url: string,
  sizeBytes: number,
  chunks: Iterator<Uint8Array>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method: "PUT",
      headers: { "content-length": String(sizeBytes) },
    }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (text: string) => body += text);
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      response.on("error", reject);
    });
    request.on("error", reject);
    const write = () => {
      for (let next = chunks.next(); !next.done; next = chunks.next()) {
        if (!request.write(next.value)) {
          request.once("drain", write);
          return;
        }
      }
      request.end();
    };
    write();
  });
}

/** The big value of `sizeBytes`: a random seed chunk, and the md5 of all its chunks. */
export function makeBigValue(sizeBytes: number): BigValue {
  const seed = randomBytes(Math.min(BIG_CHUNK_BYTES, sizeBytes));
  const hash = createHash("md5");
  for (const chunk of bigChunks(sizeBytes, seed)) hash.update(chunk);
  return { sizeBytes, seed, md5: hash.digest("hex") };
}

/**
 * PUTs the big value (streamed from memory, with its length), reads it back through the 302
 * (streamed, counted), deletes it. Its md5 is checked against the server's Content-Md5; the GET
 * checks the size. Fills the big-value figures of `figures`.
 */
export async function bigValue(
  server: Server,
  big: BigValue,
  figures: ServerFigures,
): Promise<void> {
  const key = `${server.prefix}big`;
  const url = `${server.url}${key}`;
  if (server.pid > 0) {
    figures.bigRssBeforeMib = await readRssMib(server.pid);
    if (!resetPeakRss(server.pid)) {
      figures.notes.push("could not reset the index's VmHWM: its peak RSS is since its start");
    }
  }
  const stop = await meter(server);
  const put = await putStreamed(url, big.sizeBytes, bigChunks(big.sizeBytes, big.seed));
  figures.cost.bigPut = await stop(1, big.sizeBytes);
  if (put.status !== 201) throw new Error(`PUT ${url}: status ${put.status}: ${put.body.trim()}`);
  figures.bigPutSeconds = figures.cost.bigPut.wallSeconds;
  figures.bigPeakRssMib = server.pid > 0 ? await readPeakRssMib(server.pid) : null;

  const head = await expectStatus(url, { method: "HEAD" }, 302);
  const serverMd5 = head.headers.get("content-md5");
  if (serverMd5 !== null && serverMd5 !== big.md5) {
    throw new Error(`PUT ${url}: the server computed md5 ${serverMd5}, the bench sent ${big.md5}`);
  }
  if (serverMd5 === null) figures.notes.push("no Content-Md5 from the server: the md5 unchecked");

  const getStarted = performance.now();
  const response = await fetch(url);
  if (response.status !== 200 || response.body === null) {
    await response.body?.cancel();
    throw new Error(`GET ${url} through the redirect: status ${response.status}`);
  }
  let receivedBytes = 0;
  for await (const chunk of response.body) receivedBytes += chunk.length;
  figures.bigGetSeconds = (performance.now() - getStarted) / 1000;
  if (receivedBytes !== big.sizeBytes) {
    throw new Error(`GET ${url}: ${receivedBytes} bytes, expected ${big.sizeBytes}`);
  }
  await expectStatus(url, { method: "DELETE" }, 204);
}
