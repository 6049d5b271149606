// A request's target as sent (`/path?query`), split once for both fronts: the raw path (still
// percent-encoded) and the raw query without its `?`. Pure.

/** A request target's raw path, and its raw query without `?` ("" when there is none). */
export function splitTarget(target: string): { rawPath: string; rawQuery: string } {
  const q = target.indexOf("?");
  return q === -1
    ? { rawPath: target, rawQuery: "" }
    : { rawPath: target.slice(0, q), rawQuery: target.slice(q + 1) };
}
