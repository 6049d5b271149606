// Golden tests of lib/placement.ts: the on-disk path of a key and the volumes of its replicas,
// bit for bit minikeyvalue's (the vectors of minikeyvalue's own tests, and the subvolumes they
// imply, checked against an independent implementation of minikeyvalue's key2volume).

import assert from "node:assert/strict";
import {
  isBalanced,
  isHostPort,
  keyLocations,
  keyToPath,
  keyToVolumes,
  locationHost,
  MAX_KEY_BYTES,
  parseFilePath,
  pathToKey,
  type Placement,
  recordPath,
  toHex,
  versionPath,
} from "../../lib/placement.ts";
import { target, volumeUrl } from "../../lib/volumes/protocol.ts";

/** The volumes of minikeyvalue's own tests. */
const STOOGES: Placement = { volumes: ["larry", "moe", "curly"], replicas: 1, subvolumes: 3 };

/** A file name on a volume's filesystem is at most this many bytes. */
const MAX_FILE_NAME_BYTES = 255;

Deno.test("toHex gives two lower-case hex digits per byte", () => {
  assert.equal(toHex(new Uint8Array([0, 15, 16, 255])), "000f10ff");
  assert.equal(toHex(new Uint8Array([])), "");
});

Deno.test("keyToPath matches minikeyvalue's key2path vectors", () => {
  assert.equal(keyToPath("hello"), "/5d/41/aGVsbG8=");
  assert.equal(keyToPath("helloworld"), "/fc/5e/aGVsbG93b3JsZA==");
  assert.equal(keyToPath("/wehave"), "/60/08/L3dlaGF2ZQ==");
  // The base64 is of the key's UTF-8 bytes, and keeps its padding.
  assert.equal(keyToPath("/ü"), "/49/21/L8O8");
  assert.equal(keyToPath("/a b"), "/93/7f/L2EgYg==");
});

Deno.test("keyToVolumes matches minikeyvalue's key2volume vectors", () => {
  const volumePart = (key: string) => keyToVolumes(key, STOOGES).map(locationHost);
  assert.deepEqual(volumePart("hello"), ["larry"]);
  assert.deepEqual(volumePart("helloworld"), ["curly"]);
  assert.deepEqual(volumePart("world"), ["moe"]);
  assert.deepEqual(volumePart("blah"), ["curly"]);

  assert.deepEqual(keyToVolumes("hello", STOOGES), ["larry/sv00"]);
  assert.deepEqual(keyToVolumes("helloworld", STOOGES), ["curly/sv01"]);
  assert.deepEqual(keyToVolumes("world", STOOGES), ["moe/sv02"]);
  assert.deepEqual(keyToVolumes("blah", STOOGES), ["curly/sv01"]);
});

Deno.test("keyToVolumes ranks every volume, and the first replicas are the same", () => {
  const all = { ...STOOGES, replicas: 3 };
  assert.deepEqual(keyToVolumes("hello", all), ["larry/sv00", "curly/sv01", "moe/sv02"]);
  assert.deepEqual(keyToVolumes("helloworld", all), ["curly/sv01", "larry/sv02", "moe/sv00"]);
  assert.deepEqual(keyToVolumes("world", all), ["moe/sv02", "curly/sv00", "larry/sv02"]);
  assert.deepEqual(keyToVolumes("blah", all), ["curly/sv01", "larry/sv00", "moe/sv02"]);
  assert.deepEqual(keyToVolumes("hello", { ...all, replicas: 2 }), ["larry/sv00", "curly/sv01"]);
});

Deno.test("keyLocations: the key's place on every volume, whatever the replicas", () => {
  assert.deepEqual(keyLocations("hello", STOOGES), ["larry/sv00", "curly/sv01", "moe/sv02"]);
  assert.deepEqual(keyLocations("world", { ...STOOGES, replicas: 2 }), [
    "moe/sv02",
    "curly/sv00",
    "larry/sv02",
  ]);
  assert.deepEqual(keyLocations("hello", { ...STOOGES, subvolumes: 1 }), ["larry", "curly", "moe"]);
});

Deno.test("keyToVolumes: subvolumes 1 gives bare volumes, more give %02X directories", () => {
  assert.deepEqual(keyToVolumes("hello", { ...STOOGES, replicas: 3, subvolumes: 1 }), [
    "larry",
    "curly",
    "moe",
  ]);
  // Upper-case hex, two digits: the subvolume is the score's last four bytes modulo 256.
  assert.deepEqual(keyToVolumes("hello", { ...STOOGES, replicas: 2, subvolumes: 256 }), [
    "larry/svCD",
    "curly/svDF",
  ]);
});

Deno.test("keyToVolumes depends on the volumes' names, not on their order", () => {
  const reordered = { ...STOOGES, volumes: ["curly", "larry", "moe"], replicas: 3 };
  for (const key of ["hello", "helloworld", "world", "blah"]) {
    assert.deepEqual(keyToVolumes(key, reordered), keyToVolumes(key, { ...STOOGES, replicas: 3 }));
  }
});

Deno.test("pathToKey inverts keyToPath and refuses what is not a key's path", () => {
  for (
    const key of ["hello", "helloworld", "/wehave", "/a b", "/ü€😀", "/a?b", "/" + "x".repeat(188)]
  ) {
    assert.equal(pathToKey(keyToPath(key)), key, key);
  }
  assert.equal(pathToKey("/5d/41/aGVsbG8="), "hello");
  // The hash directories must be the key's.
  assert.equal(pathToKey("/00/41/aGVsbG8="), null);
  assert.equal(pathToKey("/5d/42/aGVsbG8="), null);
  // Not the exact base64 of the key (different padding bits), not a path, upper-case hex.
  assert.equal(pathToKey("/5d/41/aGVsbG9="), null);
  assert.equal(pathToKey("5d/41/aGVsbG8="), null);
  assert.equal(pathToKey("/5D/41/aGVsbG8="), null);
  assert.equal(pathToKey("/5d/41/"), null);
  assert.equal(pathToKey("/5d/41/aGVsbG8=/extra"), null);
  assert.equal(pathToKey("/.tmp/0000000001"), null);
});

Deno.test("versionPath and recordPath: a key's plain file, or a version's file beside it", () => {
  const path = keyToPath("hello");
  assert.equal(versionPath(path, undefined), "/5d/41/aGVsbG8=");
  assert.equal(versionPath(path, "0193a5f2c4000001"), "/5d/41/aGVsbG8=~/0193a5f2c4000001");
  assert.equal(recordPath("hello", {}), "/5d/41/aGVsbG8=");
  assert.equal(
    recordPath("hello", { version: "0193a5f2c4000001" }),
    "/5d/41/aGVsbG8=~/0193a5f2c4000001",
  );
  assert.equal(
    volumeUrl(target("localhost:3001/sv05", versionPath(keyToPath("hello"), "0193a5f2c4000001"))),
    "http://localhost:3001/sv05/5d/41/aGVsbG8=~/0193a5f2c4000001",
  );
  // The longest key's version still fits: its file name is the version, not a longer name.
  const longest = "/" + "x".repeat(MAX_KEY_BYTES - 1);
  const name = recordPath(longest, { version: "0193a5f2c4000001" }).split("/");
  assert.ok(name.every((part) => new TextEncoder().encode(part).length <= MAX_FILE_NAME_BYTES));
});

Deno.test("parseFilePath inverts versionPath and refuses what is not a key's file", () => {
  for (const key of ["hello", "/a b", "/ü€😀", "/" + "x".repeat(188)]) {
    assert.deepEqual(parseFilePath(keyToPath(key)), { key });
    const version = "0193a5f2c4000001";
    assert.deepEqual(parseFilePath(versionPath(keyToPath(key), version)), { key, version });
  }
  for (
    const path of [
      "/5d/41/aGVsbG8=~/0193a5f2c400001",
      "/5d/41/aGVsbG8=~/0193A5F2C4000001",
      "/5d/41/aGVsbG8=~0193a5f2c4000001",
      "/5d/41/aGVsbG8=.0193a5f2c4000001",
      "/5d/42/aGVsbG8=~/0193a5f2c4000001",
      "/5d/41/aGVsbG8=~/0193a5f2c4000001/x",
      "/5d/41/~/0193a5f2c4000001",
    ]
  ) {
    assert.equal(parseFilePath(path), null, path);
  }
});

Deno.test("MAX_KEY_BYTES is the longest key whose base64 fits one file name", () => {
  const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3);
  assert.ok(base64Length(MAX_KEY_BYTES) <= MAX_FILE_NAME_BYTES);
  assert.ok(base64Length(MAX_KEY_BYTES + 1) > MAX_FILE_NAME_BYTES);
  const longest = "/" + "k".repeat(MAX_KEY_BYTES - 1);
  assert.ok(keyToPath(longest).split("/").at(-1)!.length <= MAX_FILE_NAME_BYTES);
});

Deno.test("locationHost and target split and join replica locations", () => {
  assert.equal(locationHost("localhost:3001/sv05"), "localhost:3001");
  assert.equal(locationHost("localhost:3001"), "localhost:3001");
  assert.equal(
    volumeUrl(target("localhost:3001/sv05", keyToPath("hello"))),
    "http://localhost:3001/sv05/5d/41/aGVsbG8=",
  );
  assert.equal(
    volumeUrl(target("localhost:3001", keyToPath("hello"))),
    "http://localhost:3001/5d/41/aGVsbG8=",
  );
});

Deno.test("locationHost and target keep host names and bracketed IPv6 whole", () => {
  assert.equal(locationHost("[fd0a:e7:1::11]:3001/sv05"), "[fd0a:e7:1::11]:3001");
  assert.equal(locationHost("[::1]:3001"), "[::1]:3001");
  assert.equal(locationHost("vol-1.example:3001/sv05"), "vol-1.example:3001");
  assert.equal(
    volumeUrl(target("[fd0a:e7:1::11]:3001/sv05", keyToPath("hello"))),
    "http://[fd0a:e7:1::11]:3001/sv05/5d/41/aGVsbG8=",
  );
  assert.equal(
    volumeUrl(target("vol1.test:80", keyToPath("hello"))),
    "http://vol1.test:80/5d/41/aGVsbG8=",
  );
});

Deno.test("isHostPort: a name, IPv4 or bracketed IPv6, and a port", () => {
  const good = [
    "localhost:3001",
    "10.231.7.11:3001",
    "vol-1.example:80",
    "VOL1:65535",
    "[::1]:3001",
    "[fd0a:e7:7::11]:3001",
    "[::ffff:10.231.7.11]:3001",
  ];
  for (const text of good) assert.equal(isHostPort(text), true, text);
  const bad = [
    "localhost",
    "::1:3001",
    "fd0a::11:3001",
    "[::1]",
    "[::1:3001",
    "::1]:3001",
    "[localhost]:3001",
    "[]:3001",
    "-vol:3001",
    "vol-:3001",
    "vol_1:3001",
    "vol:port",
    "vol:123456",
    "http://vol:3001",
    "vol:3001/sv01",
    "",
  ];
  for (const text of bad) assert.equal(isHostPort(text), false, text);
  assert.equal(isHostPort("[::1]", { optionalPort: true }), true);
  assert.equal(isHostPort("fallback.example", { optionalPort: true }), true);
  assert.equal(isHostPort("::1", { optionalPort: true }), false);
});

Deno.test("isBalanced: exactly the placement's volumes, in its order", () => {
  const placement = { ...STOOGES, replicas: 2 };
  assert.equal(isBalanced("hello", ["larry/sv00", "curly/sv01"], placement), true);
  assert.equal(isBalanced("hello", ["curly/sv01", "larry/sv00"], placement), false);
  assert.equal(isBalanced("hello", ["larry/sv00"], placement), false);
  assert.equal(isBalanced("hello", ["larry/sv00", "curly/sv01", "moe/sv02"], placement), false);
  assert.equal(isBalanced("hello", ["larry/sv01", "curly/sv01"], placement), false);
  assert.equal(isBalanced("hello", ["larry", "curly"], placement), false);
  assert.equal(isBalanced("hello", ["larry", "curly"], { ...placement, subvolumes: 1 }), true);
  assert.equal(isBalanced("hello", [], placement), false);
});
