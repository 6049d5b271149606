// S3's additional checksums (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`, `-sha1`,
// `-sha256`), computed incrementally over a body as it streams, so that a PUT can be checked
// against the value a client sent in a header or an aws-chunked trailer without holding the body.
// The CRCs are table-driven, eight bytes a step (slice-by-8), since they run over every byte of
// values up to a gigabyte; the SHAs are node:crypto's. Digests are big-endian bytes in base64, as
// S3 sends them. Pure; golden-tested in tests/unit/s3_chunked_test.ts.

import { createHash, type Hash } from "node:crypto";
import { S3Error } from "./error.ts";

export const CHECKSUM_ALGORITHMS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"] as const;
export type ChecksumAlgorithm = typeof CHECKSUM_ALGORITHMS[number];

/** What every checksum header and trailer name starts with. */
export const CHECKSUM_HEADER_PREFIX = "x-amz-checksum-";

/** The length of each algorithm's digest in bytes. */
const CHECKSUM_DIGEST_BYTES: Readonly<Record<ChecksumAlgorithm, number>> = {
  crc32: 4,
  crc32c: 4,
  crc64nvme: 8,
  sha1: 20,
  sha256: 32,
};

/** The reflected polynomials: CRC-32 (ISO-HDLC), CRC-32C (Castagnoli), CRC-64/NVME. */
const CRC32_POLY = 0xedb88320;
const CRC32C_POLY = 0x82f63b78;
const CRC64NVME_POLY_HI = 0x9a6c9329;
const CRC64NVME_POLY_LO = 0xac4bc9b5;

/** An incremental checksum: `update()` with each piece of the body, then `digestBase64()` once. */
export interface Checksum {
  readonly algorithm: ChecksumAlgorithm;
  update(chunk: Uint8Array): void;
  /** The digest as S3 shows it: the big-endian bytes in padded base64. */
  digestBase64(): string;
}

/** A checksum a request says its body has, from a header or a trailer. */
export interface ExpectedChecksum {
  algorithm: ChecksumAlgorithm;
  base64: string;
}

/** Eight 256-entry tables for a reflected 32-bit CRC: table k advances a byte k+1 places. */
function crc32Tables(poly: number): Int32Array {
  const tables = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    tables[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n];
    for (let t = 1; t < 8; t++) {
      c = tables[c & 0xff] ^ (c >>> 8);
      tables[t * 256 + n] = c;
    }
  }
  return tables;
}

/** The same for the 64-bit CRC, kept as two 32-bit halves (high, low) since JS has no fast u64. */
function crc64Tables(polyHi: number, polyLo: number): { hi: Int32Array; lo: Int32Array } {
  const hi = new Int32Array(8 * 256);
  const lo = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let h = 0;
    let l = n;
    for (let k = 0; k < 8; k++) {
      const odd = l & 1;
      l = (l >>> 1) | (h << 31);
      h = h >>> 1;
      if (odd) {
        h ^= polyHi;
        l ^= polyLo;
      }
    }
    hi[n] = h;
    lo[n] = l;
  }
  for (let n = 0; n < 256; n++) {
    let h = hi[n];
    let l = lo[n];
    for (let t = 1; t < 8; t++) {
      const i = l & 0xff;
      l = ((l >>> 8) | (h << 24)) ^ lo[i];
      h = (h >>> 8) ^ hi[i];
      hi[t * 256 + n] = h;
      lo[t * 256 + n] = l;
    }
  }
  return { hi, lo };
}

const CRC32_TABLES = crc32Tables(CRC32_POLY);
const CRC32C_TABLES = crc32Tables(CRC32C_POLY);
const CRC64NVME_TABLES = crc64Tables(CRC64NVME_POLY_HI, CRC64NVME_POLY_LO);

/** Advances a reflected 32-bit CRC register (already inverted) over `bytes`. */
function crc32Update(tables: Int32Array, register: number, bytes: Uint8Array): number {
  let c = register;
  const n = bytes.length;
  const whole = n - (n % 8);
  let i = 0;
  for (; i < whole; i += 8) {
    c ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    c = tables[1792 + (c & 0xff)] ^ tables[1536 + ((c >>> 8) & 0xff)] ^
      tables[1280 + ((c >>> 16) & 0xff)] ^ tables[1024 + (c >>> 24)] ^
      tables[768 + bytes[i + 4]] ^ tables[512 + bytes[i + 5]] ^ tables[256 + bytes[i + 6]] ^
      tables[bytes[i + 7]];
  }
  for (; i < n; i++) c = tables[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c;
}

class Crc32 implements Checksum {
  readonly algorithm: ChecksumAlgorithm;
  #tables: Int32Array;
  #register = -1;

  constructor(algorithm: "crc32" | "crc32c") {
    this.algorithm = algorithm;
    this.#tables = algorithm === "crc32" ? CRC32_TABLES : CRC32C_TABLES;
  }

  update(chunk: Uint8Array): void {
    this.#register = crc32Update(this.#tables, this.#register, chunk);
  }

  digestBase64(): string {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, ~this.#register >>> 0);
    return toBase64(out);
  }
}

class Crc64Nvme implements Checksum {
  readonly algorithm = "crc64nvme" as const;
  #hi = -1;
  #lo = -1;

  update(bytes: Uint8Array): void {
    const { hi: H, lo: L } = CRC64NVME_TABLES;
    let h = this.#hi;
    let l = this.#lo;
    const n = bytes.length;
    const whole = n - (n % 8);
    let i = 0;
    for (; i < whole; i += 8) {
      l ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
      h ^= bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24);
      const a = 1792 + (l & 0xff);
      const b = 1536 + ((l >>> 8) & 0xff);
      const c = 1280 + ((l >>> 16) & 0xff);
      const d = 1024 + (l >>> 24);
      const e = 768 + (h & 0xff);
      const f = 512 + ((h >>> 8) & 0xff);
      const g = 256 + ((h >>> 16) & 0xff);
      const k = h >>> 24;
      l = L[a] ^ L[b] ^ L[c] ^ L[d] ^ L[e] ^ L[f] ^ L[g] ^ L[k];
      h = H[a] ^ H[b] ^ H[c] ^ H[d] ^ H[e] ^ H[f] ^ H[g] ^ H[k];
    }
    for (; i < n; i++) {
      const x = (l ^ bytes[i]) & 0xff;
      l = ((l >>> 8) | (h << 24)) ^ L[x];
      h = (h >>> 8) ^ H[x];
    }
    this.#hi = h;
    this.#lo = l;
  }

  digestBase64(): string {
    const out = new Uint8Array(8);
    const view = new DataView(out.buffer);
    view.setUint32(0, ~this.#hi >>> 0);
    view.setUint32(4, ~this.#lo >>> 0);
    return toBase64(out);
  }
}

class Sha implements Checksum {
  readonly algorithm: ChecksumAlgorithm;
  #hash: Hash;

  constructor(algorithm: "sha1" | "sha256") {
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }

  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
  }

  digestBase64(): string {
    return this.#hash.digest("base64");
  }
}

/** Padded standard base64 of a few bytes (digests only, so a string build is fine). */
function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** A fresh incremental checksum of `algorithm`. */
export function newChecksum(algorithm: ChecksumAlgorithm): Checksum {
  switch (algorithm) {
    case "crc32":
    case "crc32c":
      return new Crc32(algorithm);
    case "crc64nvme":
      return new Crc64Nvme();
    case "sha1":
    case "sha256":
      return new Sha(algorithm);
  }
}

/** The checksum one value of `x-amz-checksum-algorithm` (`CRC32`, `SHA256`, ...) names. */
export function parseChecksumAlgorithm(name: string): ChecksumAlgorithm | null {
  const lower = name.trim().toLowerCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(lower)
    ? lower as ChecksumAlgorithm
    : null;
}

/**
 * The algorithm a header or trailer name carries a checksum of (`x-amz-checksum-crc32` → crc32),
 * or null. Names are matched without regard to case; `x-amz-checksum-algorithm`, `-type` and
 * `-mode` share the prefix but carry no checksum, so they are null.
 */
export function checksumHeaderAlgorithm(headerName: string): ChecksumAlgorithm | null {
  const lower = headerName.trim().toLowerCase();
  if (!lower.startsWith(CHECKSUM_HEADER_PREFIX)) return null;
  const rest = lower.slice(CHECKSUM_HEADER_PREFIX.length);
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(rest)
    ? rest as ChecksumAlgorithm
    : null;
}

/** Whether `base64` is a well-formed digest of `algorithm` (padded base64 of the right length). */
export function validChecksumValue(algorithm: ChecksumAlgorithm, base64: string): boolean {
  const bytes = CHECKSUM_DIGEST_BYTES[algorithm];
  const chars = Math.ceil(bytes / 3) * 4;
  return base64.length === chars && /^[A-Za-z0-9+/]+={0,2}$/.test(base64) &&
    atob(base64).length === bytes;
}

/**
 * The checksums a request's headers say its body has. S3 takes one `x-amz-checksum-*` header at
 * most; two, or a value that is not a digest of its algorithm, is an InvalidRequest.
 */
export function expectedChecksums(headers: Headers): ExpectedChecksum[] {
  const found: ExpectedChecksum[] = [];
  for (const [name, value] of headers) {
    const algorithm = checksumHeaderAlgorithm(name);
    if (algorithm === null) continue;
    const base64 = value.trim();
    if (!validChecksumValue(algorithm, base64)) {
      throw new S3Error(400, "InvalidRequest", `Value for ${name} header is invalid.`);
    }
    found.push({ algorithm, base64 });
  }
  if (found.length > 1) {
    throw new S3Error(
      400,
      "InvalidRequest",
      "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
    );
  }
  return found;
}

/** The error for a body whose `algorithm` digest is not the one the request gave. */
export function badDigest(algorithm: ChecksumAlgorithm): S3Error {
  return new S3Error(
    400,
    "BadDigest",
    `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`,
  );
}

/**
 * A pass-through stream that checks the body against the `x-amz-checksum-*` header of `headers`,
 * and errors with BadDigest (400) before it closes if they differ, so a consumer never sees a clean
 * end of a body that does not match; null when the request gives no checksum. Throws an
 * S3Error (InvalidRequest) for a bad header, as `expectedChecksums` does.
 */
export function checksumVerifier(headers: Headers): TransformStream<Uint8Array, Uint8Array> | null {
  const expected = expectedChecksums(headers);
  if (expected.length === 0) return null;
  const checksums = expected.map((e) => newChecksum(e.algorithm));
  return new TransformStream({
    transform(chunk, controller) {
      for (const checksum of checksums) checksum.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      for (let i = 0; i < expected.length; i++) {
        if (checksums[i].digestBase64() !== expected[i].base64) {
          throw badDigest(expected[i].algorithm);
        }
      }
    },
  });
}

/**
 * The one checksum a write announces: an `x-amz-checksum-*` header, or a checksum trailer that
 * `x-amz-trailer` names (checked as the body ends); null when it announces none.
 */
export function announcedChecksum(headers: Headers): ChecksumAlgorithm | null {
  const given = expectedChecksums(headers)[0];
  if (given !== undefined) return given.algorithm;
  for (const name of (headers.get("x-amz-trailer") ?? "").split(",")) {
    const algorithm = checksumHeaderAlgorithm(name);
    if (algorithm !== null) return algorithm;
  }
  return null;
}

/**
 * A pass-through stream that computes `algorithm` over the body and hands its base64 digest to
 * `done` once the body has ended whole: what is stored as the value's checksum, equal to the one
 * the client sent, which the body was checked against before it ended.
 */
export function checksumRecorder(
  algorithm: ChecksumAlgorithm,
  done: (base64: string) => void,
): TransformStream<Uint8Array, Uint8Array> {
  const checksum = newChecksum(algorithm);
  return new TransformStream({
    transform(chunk, controller) {
      checksum.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      done(checksum.digestBase64());
    },
  });
}
