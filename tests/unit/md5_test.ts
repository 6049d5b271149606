// Golden tests of lib/md5.ts: the RFC 1321 test suite, and the same digest whatever the way a
// value is cut into updates (aligned or not, across block boundaries), checked against node:crypto.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Md5, md5 } from "../../lib/md5.ts";
import { toHex } from "../../lib/placement.ts";

const RFC_1321: [string, string][] = [
  ["", "d41d8cd98f00b204e9800998ecf8427e"],
  ["a", "0cc175b9c0f1b6a831c399e269772661"],
  ["abc", "900150983cd24fb0d6963f7d28e17f72"],
  ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
  ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
  [
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "d174ab98d277d9f5a5611c2c9f419d9f",
  ],
  [
    "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
    "57edf4a22be3c955ac49da2e2107b67a",
  ],
];

Deno.test("md5: the RFC 1321 test suite", () => {
  for (const [input, digest] of RFC_1321) {
    assert.equal(new Md5().update(input).hex(), digest, JSON.stringify(input));
    assert.equal(toHex(md5(input)), digest, JSON.stringify(input));
  }
});

Deno.test("md5: parts are hashed as their concatenation", () => {
  assert.equal(toHex(md5("hello", "larry")), toHex(md5("hellolarry")));
  assert.equal(toHex(md5("é")), new Md5().update(new Uint8Array([0xc3, 0xa9])).hex());
});

Deno.test("md5: the digest does not depend on how the value is cut, aligned or not", () => {
  const value = new Uint8Array(100_003);
  for (let i = 0; i < value.length; i++) value[i] = (i * 7919 + (i >> 8)) & 0xff;
  const whole = new Md5().update(value).hex();
  for (const piece of [1, 3, 63, 64, 65, 4096, 16_385, 65_536]) {
    const hash = new Md5();
    for (let offset = 0; offset < value.length; offset += piece) {
      hash.update(value.subarray(offset, offset + piece));
    }
    assert.equal(hash.hex(), whole, `pieces of ${piece}`);
  }
  // An unaligned view over a larger buffer goes through the scratch buffer.
  const shifted = new Uint8Array(value.length + 1);
  shifted.set(value, 1);
  assert.equal(new Md5().update(shifted.subarray(1)).hex(), whole);
  assert.equal(whole, createHash("md5").update(value).digest("hex"));
});

Deno.test("md5: strings of one block and past it, in parts, as node:crypto hashes them", () => {
  // Around 55 bytes, the most that one block takes with md5's padding, and with characters of
  // two, three and four bytes that may or may not fit the block's end.
  for (const unit of ["a", "é", "€", "😀"]) {
    for (let count = 0; count <= 70; count++) {
      const text = "k".repeat(count % 7) + unit.repeat(Math.ceil(count / 2));
      const want = createHash("md5").update(text).digest("hex");
      assert.equal(toHex(md5(text)), want, `${count} × ${unit}`);
      // Cut between characters, never inside a surrogate pair.
      const chars = Array.from(text);
      const cut = Math.floor(chars.length / 2);
      const [head, tail] = [chars.slice(0, cut).join(""), chars.slice(cut).join("")];
      assert.equal(toHex(md5(head, tail)), want, `${count} × ${unit} cut`);
    }
  }
});
