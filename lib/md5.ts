// MD5 (RFC 1321), incremental. minikeyvalue's layout and Content-Md5 are built on md5, which Web
// Crypto lacks; node:crypto has it, but loading Deno's Node layer costs the index about 10 MiB of
// memory, and the index must stay small while it streams gigabyte values. Pure; tested against
// the RFC's vectors in tests/unit/md5_test.ts.

/** Unaligned input is hashed through an aligned buffer of this size. */
const SCRATCH_BYTES = 16 * 1024;

// Words are read straight from the input as Int32Array, which is little-endian only here.
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error("md5.ts needs a little-endian machine");
}

const encoder = new TextEncoder();
/** md5's state before any input (RFC 1321, 3.3). */
const INITIAL_STATE = [0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476];
/** The most bytes of input that fit one block with md5's padding and length. */
const ONE_BLOCK_BYTES = 55;
// One block, reused by every one-block hash: hashing is synchronous.
const ONE_BLOCK = new Uint8Array(64);
const ONE_BLOCK_WORDS = new Int32Array(ONE_BLOCK.buffer);
// Shared by every hash: hashing is synchronous, so one buffer serves them all in turn.
const SCRATCH = new Uint8Array(SCRATCH_BYTES);
const SCRATCH_WORDS = new Int32Array(SCRATCH.buffer);

// The 64 steps unrolled (generated from the RFC's table): three times faster than a loop.
function compress(state: Int32Array, w: Int32Array, o: number): void {
  const x0 = w[o + 0];
  const x1 = w[o + 1];
  const x2 = w[o + 2];
  const x3 = w[o + 3];
  const x4 = w[o + 4];
  const x5 = w[o + 5];
  const x6 = w[o + 6];
  const x7 = w[o + 7];
  const x8 = w[o + 8];
  const x9 = w[o + 9];
  const x10 = w[o + 10];
  const x11 = w[o + 11];
  const x12 = w[o + 12];
  const x13 = w[o + 13];
  const x14 = w[o + 14];
  const x15 = w[o + 15];
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let t: number;
  t = (a + ((b & c) | (~b & d)) + -680876936 + x0) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + -389564586 + x1) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + 606105819 + x2) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + -1044525330 + x3) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + -176418897 + x4) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + 1200080426 + x5) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + -1473231341 + x6) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + -45705983 + x7) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + 1770035416 + x8) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + -1958414417 + x9) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + -42063 + x10) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + -1990404162 + x11) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + 1804603682 + x12) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + -40341101 + x13) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + -1502002290 + x14) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + 1236535329 + x15) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((d & b) | (~d & c)) + -165796510 + x1) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + -1069501632 + x6) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + 643717713 + x11) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + -373897302 + x0) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + -701558691 + x5) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + 38016083 + x10) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + -660478335 + x15) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + -405537848 + x4) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + 568446438 + x9) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + -1019803690 + x14) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + -187363961 + x3) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + 1163531501 + x8) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + -1444681467 + x13) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + -51403784 + x2) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + 1735328473 + x7) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + -1926607734 + x12) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + (b ^ c ^ d) + -378558 + x5) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + -2022574463 + x8) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + 1839030562 + x11) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + -35309556 + x14) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + -1530992060 + x1) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + 1272893353 + x4) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + -155497632 + x7) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + -1094730640 + x10) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + 681279174 + x13) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + -358537222 + x0) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + -722521979 + x3) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + 76029189 + x6) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + -640364487 + x9) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + -421815835 + x12) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + 530742520 + x15) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + -995338651 + x2) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (c ^ (b | ~d)) + -198630844 + x0) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + 1126891415 + x7) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + -1416354905 + x14) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + -57434055 + x5) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + 1700485571 + x12) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + -1894986606 + x3) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + -1051523 + x10) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + -2054922799 + x1) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + 1873313359 + x8) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + -30611744 + x15) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + -1560198380 + x6) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + 1309151649 + x13) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + -145523070 + x4) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + -1120210379 + x11) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + 718787259 + x2) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + -343485551 + x9) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
}

/** An incremental md5: `update()` any number of times, then `digest()` once. */
export class Md5 {
  #state = new Int32Array(INITIAL_STATE);
  #block = new Uint8Array(64);
  #blockWords = new Int32Array(this.#block.buffer);
  #blockLength = 0;
  #totalBytes = 0;

  update(data: Uint8Array | string): this {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    this.#totalBytes += bytes.length;
    if (this.#blockLength > 0) {
      const take = Math.min(64 - this.#blockLength, bytes.length);
      this.#block.set(bytes.subarray(0, take), this.#blockLength);
      this.#blockLength += take;
      bytes = bytes.subarray(take);
      if (this.#blockLength < 64) return this;
      compress(this.#state, this.#blockWords, 0);
      this.#blockLength = 0;
    }
    const whole = bytes.length - (bytes.length % 64);
    if (whole > 0) {
      if (bytes.byteOffset % 4 === 0) {
        this.#compressAll(new Int32Array(bytes.buffer, bytes.byteOffset, whole / 4));
      } else {
        // Int32Array views need 4-byte alignment: copy through an aligned scratch buffer.
        for (let start = 0; start < whole; start += SCRATCH_BYTES) {
          const end = Math.min(start + SCRATCH_BYTES, whole);
          SCRATCH.set(bytes.subarray(start, end));
          this.#compressAll(SCRATCH_WORDS.subarray(0, (end - start) / 4));
        }
      }
    }
    if (whole < bytes.length) {
      this.#block.set(bytes.subarray(whole), 0);
      this.#blockLength = bytes.length - whole;
    }
    return this;
  }

  #compressAll(words: Int32Array): void {
    for (let o = 0; o < words.length; o += 16) compress(this.#state, words, o);
  }

  /** The 16-byte digest; the hash cannot be updated after. */
  digest(): Uint8Array {
    const bits = this.#totalBytes * 8;
    const padding = new Uint8Array(((this.#blockLength < 56 ? 56 : 120) - this.#blockLength) + 8);
    padding[0] = 0x80;
    const view = new DataView(padding.buffer);
    view.setUint32(padding.length - 8, bits >>> 0, true);
    view.setUint32(padding.length - 4, Math.floor(bits / 2 ** 32), true);
    this.update(padding);
    const out = new Uint8Array(16);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 4; i++) outView.setInt32(i * 4, this.#state[i], true);
    return out;
  }

  /** The digest in lower-case hex. */
  hex(): string {
    let out = "";
    for (const byte of this.digest()) out += byte.toString(16).padStart(2, "0");
    return out;
  }
}

/**
 * md5 of the UTF-8 bytes of the strings, concatenated. Input of one block (55 bytes at most, as
 * most keys and `key + volume` of the placement are) is hashed in place, without an Md5 and its
 * buffers: the index hashes a key four times per GET of a record not in its cache.
 */
export function md5(...parts: string[]): Uint8Array {
  const short = oneBlockMd5(parts);
  if (short !== null) return short;
  const hash = new Md5();
  for (const part of parts) hash.update(part);
  return hash.digest();
}

/** md5 of the strings if their bytes fit one block with its padding (55 bytes); else null. */
function oneBlockMd5(parts: string[]): Uint8Array | null {
  let length = 0;
  for (const part of parts) {
    // A UTF-16 unit takes at most 3 bytes of UTF-8: parts that cannot fit are not encoded.
    if (part.length > ONE_BLOCK_BYTES - length) return null;
    const { read, written } = encoder.encodeInto(part, ONE_BLOCK.subarray(length, ONE_BLOCK_BYTES));
    if (read < part.length) return null;
    length += written;
  }
  ONE_BLOCK[length] = 0x80;
  ONE_BLOCK.fill(0, length + 1, 56);
  ONE_BLOCK_WORDS[14] = length * 8;
  ONE_BLOCK_WORDS[15] = 0;
  const state = new Int32Array(INITIAL_STATE);
  compress(state, ONE_BLOCK_WORDS, 0);
  return new Uint8Array(state.buffer);
}
