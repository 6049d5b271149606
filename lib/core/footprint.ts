// What the index's caches hold per key, estimated in bytes of the JavaScript heap: the weights of
// their entries (lib/core/lru.ts), so that each cache is bounded in bytes whatever its keys and
// records (docs/operations.md, "Memory"). The figures are V8's layout on 64 bits, rounded up and
// checked against the heap measured (bench/NOTES.md, "Memory at many keys"): an estimate may be
// high, never far below what an entry takes. Pure.

import { utf8Length } from "../placement.ts";
import type { KeyRecord, ObjectInfo } from "./record.ts";

/** A string's header (map, hash, length) and the parent a sliced string keeps alive. */
const STRING_BYTES = 48;
/**
 * A key's string: a slice of the request's URL, which it keeps alive (its scheme, host and port
 * before the path).
 */
const KEY_STRING_BYTES = 80;
/** A string built whole (a path, volumes joined): its header, rounded to whole words. */
const BUILT_STRING_BYTES = 24;
/** An object's header and a few fields: a record, its info, a redirect's parts. */
const OBJECT_BYTES = 64;
/** A number outside the small integers (an info's mtime): a boxed double. */
const NUMBER_BYTES = 16;
/** An array's header and backing store's, without its elements (8 bytes each). */
const ARRAY_BYTES = 48;
/** A Map's entry (its table's slack included) and the Lru's `{ value, weight }` beside it. */
const LRU_ENTRY_BYTES = 80;
/** A WeakMap's entry (its table's slack included): the redirect parts kept with a record. */
const WEAK_ENTRY_BYTES = 48;
/** A version in a file's path: `~/` and 16 hex digits. */
const VERSION_PATH_CHARS = 18;

/** A string on the heap: one byte a character if all are Latin-1, else two (V8's two forms). */
export function stringBytes(text: string, headerBytes = STRING_BYTES): number {
  // deno-lint-ignore no-control-regex
  const chars = /[^\x00-\xff]/.test(text) ? 2 * text.length : text.length;
  return headerBytes + Math.ceil(chars / 8) * 8;
}

/** A key's string, with the URL it was sliced from. */
function keyBytes(key: string): number {
  return stringBytes(key, KEY_STRING_BYTES);
}

function mapBytes(fields: Record<string, string> | undefined): number {
  if (fields === undefined) return 0;
  let bytes = OBJECT_BYTES;
  for (const [name, value] of Object.entries(fields)) {
    bytes += 8 + stringBytes(name) + stringBytes(value);
  }
  return bytes;
}

function infoBytes(info: ObjectInfo | undefined): number {
  if (info === undefined) return 0;
  let bytes = OBJECT_BYTES + NUMBER_BYTES + mapBytes(info.meta) + mapBytes(info.headers);
  for (const text of [info.type, info.etag]) if (text !== undefined) bytes += stringBytes(text);
  if (info.checksum !== undefined) {
    bytes += OBJECT_BYTES + stringBytes(info.checksum.algorithm) +
      stringBytes(info.checksum.base64);
  }
  return bytes;
}

/** A record decoded or built: its object, volumes, hash, version, info and kept records. */
export function recordBytes(record: KeyRecord): number {
  let bytes = OBJECT_BYTES + ARRAY_BYTES + stringBytes(record.md5) + infoBytes(record.info);
  for (const volume of record.volumes) bytes += 8 + stringBytes(volume);
  if (record.version !== undefined) bytes += stringBytes(record.version);
  if (record.previous !== undefined) bytes += recordBytes(record.previous);
  if (record.next !== undefined) bytes += recordBytes(record.next);
  return bytes;
}

/**
 * What a redirect to the record needs (lib/core/locate.ts, redirectParts), which the core keeps
 * beside the record for as long as it lives: the file's path (two hex directories and the key's
 * UTF-8 in base64) and the volumes joined.
 */
function redirectBytes(key: string, record: KeyRecord): number {
  const pathChars = 7 + 4 * Math.ceil(utf8Length(key) / 3) +
    (record.version === undefined ? 0 : VERSION_PATH_CHARS);
  let joinedChars = 0;
  for (const volume of record.volumes) joinedChars += volume.length + 1;
  return WEAK_ENTRY_BYTES + OBJECT_BYTES + 2 * BUILT_STRING_BYTES + pathChars + joinedChars;
}

/**
 * An entry of the store's cache of records: the key, and its record with what a redirect to it
 * needs, or null (an absent key).
 */
export function cachedRecordBytes(key: string, record: KeyRecord | null): number {
  const base = LRU_ENTRY_BYTES + keyBytes(key);
  return record === null ? base : base + recordBytes(record) + redirectBytes(key, record);
}

/** An entry of the core's replicas seen present: the key, the time, the locations. */
export function verifiedBytes(key: string, seen: { locations: string[] }): number {
  let bytes = LRU_ENTRY_BYTES + keyBytes(key) + OBJECT_BYTES + ARRAY_BYTES;
  for (const location of seen.locations) bytes += 8 + stringBytes(location);
  return bytes;
}

/** A key in a Set (a removal watch, lib/core/store.ts). */
export function setKeyBytes(key: string): number {
  return LRU_ENTRY_BYTES + keyBytes(key);
}

/** A key page in the store's cache of pages (lib/core/keypages.ts): its bound, value and end. */
export function cachedPageBytes(bound: string, page: { text: string; end: string | null }): number {
  return LRU_ENTRY_BYTES + stringBytes(bound) + OBJECT_BYTES + stringBytes(page.text) +
    (page.end === null ? 0 : stringBytes(page.end));
}
