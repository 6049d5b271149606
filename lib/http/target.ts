// What a request of the plain API asks for, read from the path and query of its URL: a key, or a
// listing (`?list`, `?unlinked`) with its start and limit; or why the request is refused.

import { splitTarget } from "../rawtarget.ts";
import { MAX_KEY_BYTES, utf8Length } from "../placement.ts";

/** The most keys one listing returns; `limit` may ask for fewer. */
export const MAX_LIST_LIMIT = 10_000;

/** What a request asks for, once its URL has been checked. */
export type Parsed =
  | { kind: "key"; key: string; rawPath: string }
  | { kind: "list"; key: string; state: "live" | "unlinked"; start?: string; limit: number }
  | { kind: "bad"; status: number; reason: string };

/**
 * Parses the path and query of a request URL (`/a%20b?list&limit=10`) into what it asks for.
 * Pure; every refusal carries its status and a short reason.
 */
export function parseTarget(pathAndQuery: string): Parsed {
  const { rawPath, rawQuery } = splitTarget(pathAndQuery);
  let key: string;
  try {
    key = decodeURIComponent(rawPath);
  } catch {
    return { kind: "bad", status: 400, reason: "key is not valid percent-encoded UTF-8" };
  }
  if (!key.startsWith("/")) return { kind: "bad", status: 400, reason: "key must start with /" };
  if (utf8Length(key) > MAX_KEY_BYTES) {
    return { kind: "bad", status: 414, reason: `key longer than ${MAX_KEY_BYTES} bytes` };
  }
  // A bare "?" is no query at all, as minikeyvalue reads it.
  if (rawQuery === "") return { kind: "key", key, rawPath };
  const params = new URLSearchParams(rawQuery);
  let state: "live" | "unlinked" | null = null;
  let start: string | undefined;
  let limit = MAX_LIST_LIMIT;
  let sawLimit = false;
  for (const [name, value] of params) {
    if ((name === "list" || name === "unlinked") && value === "" && state === null) {
      state = name === "list" ? "live" : "unlinked";
    } else if (name === "start" && start === undefined) {
      if (utf8Length(value) > MAX_KEY_BYTES) {
        return { kind: "bad", status: 414, reason: `start longer than ${MAX_KEY_BYTES} bytes` };
      }
      start = value;
    } else if (name === "limit" && !sawLimit) {
      sawLimit = true;
      if (!/^\d{1,9}$/.test(value) || Number(value) < 1 || Number(value) > MAX_LIST_LIMIT) {
        return {
          kind: "bad",
          status: 400,
          reason: `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}`,
        };
      }
      limit = Number(value);
    } else {
      return { kind: "bad", status: 400, reason: `unknown query ${JSON.stringify(name)}` };
    }
  }
  if (state === null) {
    return { kind: "bad", status: 400, reason: "query must be ?list or ?unlinked" };
  }
  return { kind: "list", key, state, start, limit };
}
