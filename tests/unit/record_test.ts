// Golden tests of lib/core/record.ts: the text form of an index record is minikeyvalue's
// (`[DELETED][HASH<md5>]vol1,vol2`) plus `WRITING`, `DELETING`, a version (`~` and 16 hex digits),
// a kept unlinked record and a live record's overwrite, and text that is not a record is refused.

import assert from "node:assert/strict";
import {
  decodeRecord,
  encodedState,
  encodeRecord,
  type KeyRecord,
  namesFile,
  needsSettling,
  nextVersion,
} from "../../lib/core/record.ts";

const HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592";
const V1 = "0193a5f2c4000000";
const V2 = "0193a5f2c4000001";

/** Records and their text, both ways. */
const GOLDEN: [KeyRecord, string][] = [
  // minikeyvalue's own example (lib_test.go): a soft-deleted record with a hash.
  [
    { state: "unlinked", volumes: ["hello", "world"], md5: HELLO_MD5 },
    `DELETEDHASH${HELLO_MD5}hello,world`,
  ],
  [
    { state: "live", volumes: ["localhost:3001/sv05"], md5: HELLO_MD5 },
    `HASH${HELLO_MD5}localhost:3001/sv05`,
  ],
  [
    { state: "live", volumes: ["localhost:3001/sv05", "localhost:3003/sv01"], md5: "" },
    "localhost:3001/sv05,localhost:3003/sv01",
  ],
  [{ state: "unlinked", volumes: ["localhost:3002"], md5: "" }, "DELETEDlocalhost:3002"],
  [
    { state: "writing", volumes: ["localhost:3001/sv00", "localhost:3002/sv09"], md5: "" },
    "WRITINGlocalhost:3001/sv00,localhost:3002/sv09",
  ],
  [
    { state: "writing", volumes: ["localhost:3001"], md5: HELLO_MD5 },
    `WRITINGHASH${HELLO_MD5}localhost:3001`,
  ],
  [
    { state: "deleting", volumes: ["localhost:3001/sv00", "localhost:3002/sv09"], md5: "" },
    "DELETINGlocalhost:3001/sv00,localhost:3002/sv09",
  ],
  [
    {
      state: "writing",
      volumes: ["localhost:3001/sv00", "localhost:3004/sv02"],
      md5: "",
      previous: { state: "unlinked", volumes: ["localhost:3001/sv00"], md5: HELLO_MD5 },
    },
    `WRITINGlocalhost:3001/sv00,localhost:3004/sv02|DELETEDHASH${HELLO_MD5}localhost:3001/sv00`,
  ],
  [{ state: "live", volumes: [], md5: "" }, ""],
  // A value written over another names its version's file.
  [
    { state: "live", volumes: ["localhost:3001/sv05"], md5: HELLO_MD5, version: V1 },
    `HASH${HELLO_MD5}~${V1}localhost:3001/sv05`,
  ],
  [
    { state: "unlinked", volumes: ["localhost:3001"], md5: "", version: V1 },
    `DELETED~${V1}localhost:3001`,
  ],
  [
    { state: "deleting", volumes: ["localhost:3001"], md5: "", version: V1 },
    `DELETING~${V1}localhost:3001`,
  ],
  // An overwrite in progress: the live value (the plain file) and the version being written.
  [
    {
      state: "live",
      volumes: ["localhost:3001", "localhost:3002"],
      md5: HELLO_MD5,
      info: { size: 5, mtime: 1 },
      next: {
        state: "writing",
        volumes: ["localhost:3002", "localhost:3003"],
        md5: "",
        version: V2,
      },
    },
    `HASH${HELLO_MD5}localhost:3001,localhost:3002\n{"size":5,"mtime":1}` +
    `|WRITING~${V2}localhost:3002,localhost:3003`,
  ],
  // A PUT over an unlinked key: the new version, and the unlinked value kept.
  [
    {
      state: "writing",
      volumes: ["localhost:3001"],
      md5: "",
      version: V2,
      previous: { state: "unlinked", volumes: ["localhost:3001"], md5: "", version: V1 },
    },
    `WRITING~${V2}localhost:3001|DELETED~${V1}localhost:3001`,
  ],
  // The info line: size and time of every write, S3's attributes where given; a `|` in it is
  // escaped so that it never reads as the separator of a previous record.
  [
    {
      state: "live",
      volumes: ["localhost:3001"],
      md5: HELLO_MD5,
      info: { size: 5, mtime: 1764806400000 },
    },
    `HASH${HELLO_MD5}localhost:3001\n{"size":5,"mtime":1764806400000}`,
  ],
  [
    {
      state: "writing",
      volumes: ["localhost:3001"],
      md5: "",
      info: { size: 0, mtime: 1, type: "text/plain|x", meta: { a: "b\nc" }, etag: "ab-2" },
      previous: {
        state: "unlinked",
        volumes: ["localhost:3001"],
        md5: HELLO_MD5,
        info: { size: 5, mtime: 2 },
      },
    },
    `WRITINGlocalhost:3001\n{"size":0,"mtime":1,"type":"text/plain\\u007cx","meta":{"a":"b\\nc"},` +
    `"etag":"ab-2"}|DELETEDHASH${HELLO_MD5}localhost:3001\n{"size":5,"mtime":2}`,
  ],
];

Deno.test("encodeRecord writes minikeyvalue's text form", () => {
  for (const [record, text] of GOLDEN) assert.equal(encodeRecord(record), text);
});

Deno.test("decodeRecord reads minikeyvalue's text form", () => {
  for (const [record, text] of GOLDEN) assert.deepEqual(decodeRecord(text), record, text);
});

Deno.test("encodedState reads a record's state from its text as decodeRecord does", () => {
  for (const [record, text] of GOLDEN) assert.equal(encodedState(text), record.state, text);
  assert.equal(encodedState("localhost:3001/sv02"), "live");
  assert.equal(encodedState("DELETEDlocalhost:3001"), "unlinked");
});

Deno.test("decodeRecord reads a record written by minikeyvalue (no hash, one volume)", () => {
  assert.deepEqual(decodeRecord("localhost:3001/sv02"), {
    state: "live",
    volumes: ["localhost:3001/sv02"],
    md5: "",
  });
});

Deno.test("decodeRecord throws on an md5 that is not 32 lower-case hex digits", () => {
  const bad = [
    "HASH",
    "HASH5d41402abc",
    `HASH${HELLO_MD5.toUpperCase()}localhost:3001`,
    `HASH${"z".repeat(32)}localhost:3001`,
    "DELETEDHASHnothex",
  ];
  for (const text of bad) assert.throws(() => decodeRecord(text), Error, text);
});

Deno.test("decodeRecord throws on a kept record that is not an unlinked one under a write", () => {
  for (
    const text of [
      "localhost:3001|DELETEDlocalhost:3001",
      "WRITINGlocalhost:3001|localhost:3002",
      // Only a live value has an overwrite, and that always names a version.
      "localhost:3001|WRITINGlocalhost:3002",
      `DELETEDlocalhost:3001|WRITING~${V1}localhost:3002`,
      `localhost:3001|DELETING~${V1}localhost:3002`,
    ]
  ) {
    assert.throws(() => decodeRecord(text), Error, text);
  }
});

Deno.test("decodeRecord throws on a version that is not 16 lower-case hex digits", () => {
  for (const text of ["~0193localhost:3001", `~${V1.toUpperCase()}localhost:3001`, "~"]) {
    assert.throws(() => decodeRecord(text), Error, text);
  }
});

Deno.test("nextVersion: the time and a counter, always past the versions given", () => {
  assert.equal(nextVersion(1764806400000, []), "019ae6a898000000");
  assert.equal(nextVersion(1764806400000, [undefined]), "019ae6a898000000");
  // Within the same millisecond, or with the clock gone back: one past the newest given.
  assert.equal(nextVersion(1764806400000, ["019ae6a898000000"]), "019ae6a898000001");
  assert.equal(nextVersion(1, ["019ae6a89800ffff", undefined]), "019ae6a898010000");
  assert.ok(nextVersion(1764806400001, ["019ae6a898000005"]) > "019ae6a898000005");
});

Deno.test("namesFile and needsSettling: which files a record wants, and which records need settling", () => {
  const live: KeyRecord = { state: "live", volumes: ["a:1", "b:1"], md5: "", version: V1 };
  assert.ok(namesFile(live, { version: V1, location: "a:1" }));
  assert.ok(!namesFile(live, { location: "a:1" }));
  assert.ok(!namesFile(live, { version: V1, location: "c:1" }));
  assert.ok(!namesFile(null, { location: "a:1" }));
  const overwriting: KeyRecord = {
    ...live,
    next: { state: "writing", volumes: ["c:1"], md5: "", version: V2 },
  };
  assert.ok(namesFile(overwriting, { version: V2, location: "c:1" }));
  assert.ok(namesFile(overwriting, { version: V1, location: "b:1" }));
  const writing: KeyRecord = {
    state: "writing",
    volumes: ["a:1"],
    md5: "",
    version: V2,
    previous: { state: "unlinked", volumes: ["b:1"], md5: "" },
  };
  assert.ok(namesFile(writing, { location: "b:1" }));
  assert.ok(!namesFile(writing, { location: "a:1" }));
  assert.deepEqual([live, overwriting, writing].map(needsSettling), [false, true, true]);
  assert.ok(needsSettling({ state: "deleting", volumes: [], md5: "" }));
  assert.ok(!needsSettling({ state: "unlinked", volumes: [], md5: "" }));
});

Deno.test("decodeRecord throws on an empty volume name", () => {
  // The encoder never writes one: such text is damaged, and a GET would redirect to `http:///`.
  for (const text of ["localhost:3001,,localhost:3002", "localhost:3001,", ",localhost:3001"]) {
    assert.throws(() => decodeRecord(text), Error, text);
  }
});
