// The parts of an object made by a multipart upload, as its record keeps them (docs/s3.md,
// "Multipart uploads"): the sizes of its parts in order, run-length encoded, so that a GET or HEAD
// with `?partNumber=N` reads that part's bytes and GetObjectAttributes lists the parts. Clients
// upload parts of one size and a smaller last one, which is two runs whatever the count. Pure.

import { S3Error } from "./error.ts";

/**
 * The most runs of equal part sizes a record keeps (about 30 KB of its JSON at worst, within
 * KV's 64 KiB per record). An upload of more runs, parts of ever-changing sizes, keeps none: its
 * part GETs answer InvalidPart.
 */
export const MAX_PART_RUNS = 2_000;
/** The highest part number S3 allows. */
const MAX_PART_NUMBER = 10_000;

/** Runs of equal part sizes: `[sizeBytes, count]`, in part order. */
export type PartRuns = [sizeBytes: number, count: number][];

/** The part sizes, in part order, as runs; undefined past MAX_PART_RUNS runs. */
export function packPartSizes(sizes: number[]): PartRuns | undefined {
  const runs: PartRuns = [];
  for (const size of sizes) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[0] === size) last[1]++;
    else runs.push([size, 1]);
  }
  return runs.length > MAX_PART_RUNS ? undefined : runs;
}

/** How many parts the runs hold. */
export function partsCount(runs: PartRuns): number {
  return runs.reduce((sum, [, count]) => sum + count, 0);
}

/** The number of a `partNumber` query (1 to 10,000); throws InvalidArgument on another. */
export function parsePartNumber(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > MAX_PART_NUMBER) {
    throw new S3Error(
      400,
      "InvalidArgument",
      `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    );
  }
  return Number(text);
}

function invalidPart(partNumber: number): S3Error {
  return new S3Error(400, "InvalidPart", `The object has no part ${partNumber}.`);
}

/**
 * Where part `partNumber` lies in an object whose parts are `runs` (its first byte and length,
 * which may be 0), or "whole" for an object not uploaded in parts (`runs` undefined), whose one
 * part is the value; throws InvalidPart for a part it does not have.
 */
export function partRange(
  runs: PartRuns | undefined,
  partNumber: number,
): { start: number; lengthBytes: number } | "whole" {
  if (runs === undefined) {
    if (partNumber !== 1) throw invalidPart(partNumber);
    return "whole";
  }
  let start = 0;
  let first = 1;
  for (const [size, count] of runs) {
    if (partNumber < first + count) {
      return { start: start + (partNumber - first) * size, lengthBytes: size };
    }
    start += size * count;
    first += count;
  }
  throw invalidPart(partNumber);
}

/** Parts `after + 1` on, at most `max` of them: number and size of each. */
export function listParts(
  runs: PartRuns,
  options: { after: number; max: number },
): { partNumber: number; sizeBytes: number }[] {
  const out: { partNumber: number; sizeBytes: number }[] = [];
  let first = 1;
  for (const [size, count] of runs) {
    for (let n = Math.max(first, options.after + 1); n < first + count; n++) {
      if (out.length === options.max) return out;
      out.push({ partNumber: n, sizeBytes: size });
    }
    first += count;
  }
  return out;
}
