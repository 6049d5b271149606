// The parts of a multipart object as its record keeps them (lib/s3/parts.ts): golden runs and
// the bytes of each part.

import assert from "node:assert/strict";
import {
  listParts,
  MAX_PART_RUNS,
  packPartSizes,
  parsePartNumber,
  partRange,
  partsCount,
} from "../../lib/s3/parts.ts";

Deno.test("packPartSizes: runs of equal sizes; none past MAX_PART_RUNS", () => {
  assert.deepEqual(packPartSizes([5, 5, 5, 2]), [[5, 3], [2, 1]]);
  assert.deepEqual(packPartSizes([4, 6, 6, 0]), [[4, 1], [6, 2], [0, 1]]);
  assert.deepEqual(packPartSizes([]), []);
  const changing = Array.from({ length: MAX_PART_RUNS + 1 }, (_, i) => 100 + i);
  assert.equal(packPartSizes(changing), undefined);
  assert.equal(packPartSizes(changing.slice(1))?.length, MAX_PART_RUNS);
});

Deno.test("partRange: each part's first byte and length; InvalidPart past the last", () => {
  const runs = packPartSizes([5, 5, 5, 2, 0])!;
  assert.equal(partsCount(runs), 5);
  assert.deepEqual(partRange(runs, 1), { start: 0, lengthBytes: 5 });
  assert.deepEqual(partRange(runs, 3), { start: 10, lengthBytes: 5 });
  assert.deepEqual(partRange(runs, 4), { start: 15, lengthBytes: 2 });
  assert.deepEqual(partRange(runs, 5), { start: 17, lengthBytes: 0 });
  assert.throws(() => partRange(runs, 6), { code: "InvalidPart" });
  // A value written whole has one part, itself.
  assert.equal(partRange(undefined, 1), "whole");
  assert.throws(() => partRange(undefined, 2), { code: "InvalidPart" });
});

Deno.test("listParts: after a marker, at most max", () => {
  const runs = packPartSizes([5, 5, 5, 2])!;
  assert.deepEqual(listParts(runs, { after: 0, max: 2 }), [
    { partNumber: 1, sizeBytes: 5 },
    { partNumber: 2, sizeBytes: 5 },
  ]);
  assert.deepEqual(listParts(runs, { after: 2, max: 10 }), [
    { partNumber: 3, sizeBytes: 5 },
    { partNumber: 4, sizeBytes: 2 },
  ]);
  assert.deepEqual(listParts(runs, { after: 4, max: 10 }), []);
  assert.deepEqual(listParts(runs, { after: 0, max: 0 }), []);
});

Deno.test("parsePartNumber: 1 to 10,000", () => {
  assert.equal(parsePartNumber("1"), 1);
  assert.equal(parsePartNumber("10000"), 10_000);
  for (const bad of ["0", "10001", "-1", "1.5", "", "x", "123456"]) {
    assert.throws(() => parsePartNumber(bad), { code: "InvalidArgument" }, bad);
  }
});
