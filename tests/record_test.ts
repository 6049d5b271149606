// Golden tests of lib/record.ts: the text form of an index record is minikeyvalue's
// (`[DELETED][HASH<md5>]vol1,vol2`) plus `WRITING`, `DELETING` and a kept unlinked record, and text that is not a record is refused.

import assert from "node:assert/strict";
import { decodeRecord, encodeRecord, type KeyRecord } from "../lib/record.ts";

const HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592";

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
    const text of ["localhost:3001|DELETEDlocalhost:3001", "WRITINGlocalhost:3001|localhost:3002"]
  ) {
    assert.throws(() => decodeRecord(text), Error, text);
  }
});

Deno.test("decodeRecord throws on an empty volume name", () => {
  // The encoder never writes one: such text is damaged, and a GET would redirect to `http:///`.
  for (const text of ["localhost:3001,,localhost:3002", "localhost:3001,", ",localhost:3001"]) {
    assert.throws(() => decodeRecord(text), Error, text);
  }
});
