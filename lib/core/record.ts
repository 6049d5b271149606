// The index's record of a key, and its encoding as stored in Deno KV. The text form is
// minikeyvalue's (`[DELETED][HASH<md5>]vol1,vol2`) plus two states whose files no reader sees:
// `WRITING` for a PUT in progress (or one that failed and awaits cleanup) and `DELETING` for a
// DELETE whose files are being removed. A value written over another has its own file, named by a
// version (`~` and 16 hex digits after the hash; see versionPath in lib/placement.ts); a record
// without one means the key's plain file, as in minikeyvalue. A PUT over an unlinked key keeps the
// unlinked record after a `|`, so that a failed or interrupted write gives it back; an overwrite
// of a live value names its new file the same way (`<live>|WRITING~<version>vols`) while the old
// value stays live, so that a crash leaves either one whole. What minikeyvalue does not keep (the
// size, the time of the write, and for S3 the content type, user metadata and a multipart ETag)
// follows on a second line as JSON. A record read by hand with `deno kv` or in SQLite says plainly
// what it is. Pure.

/**
 * `live`: readable. `unlinked`: hidden, data kept until DELETE. `writing`: a PUT in progress, or
 * an interrupted one whose files are to be removed. `deleting`: a DELETE was accepted; its files
 * are being removed.
 */
export type RecordState = "live" | "unlinked" | "writing" | "deleting";

/** What a record knows of its value beyond minikeyvalue's fields; absent in older records. */
export interface ObjectInfo {
  /** The value's length in bytes. */
  size: number;
  /** When the value was written, in milliseconds since the epoch. */
  mtime: number;
  /** The `Content-Type` given when it was written over S3. */
  type?: string;
  /** S3 user metadata (`x-amz-meta-NAME: value`), names lower-case without the prefix. */
  meta?: Record<string, string>;
  /** S3's ETag where it is not the md5 of the value: a multipart upload's `md5-of-md5s-N`. */
  etag?: string;
  /**
   * The standard headers given when it was written over S3 and answered on every GET and HEAD
   * (`cache-control`, `content-disposition`, `content-encoding`, `content-language`, `expires`),
   * names lower-case.
   */
  headers?: Record<string, string>;
  /**
   * S3's additional checksum of the value, given and checked when it was written
   * (`x-amz-checksum-crc32` and the like): the algorithm, lower-case, and its base64 digest.
   */
  checksum?: {
    algorithm: string;
    base64: string;
    /** A multipart object's: COMPOSITE (base64 ends in `-N`) or FULL_OBJECT. */
    type?: "COMPOSITE" | "FULL_OBJECT";
  };
  /**
   * For a value joined from a multipart upload: its parts' sizes in order, as runs of
   * `[sizeBytes, count]` (lib/s3/parts.ts), for S3's `?partNumber=` reads.
   */
  parts?: [sizeBytes: number, count: number][];
  /** Its parts' checksums (base64, in part order, the algorithm `checksum`'s), where they fit. */
  partChecksums?: string[];
}

export interface KeyRecord {
  state: RecordState;
  /** Replica locations such as `localhost:3001/sv05`, best first. */
  volumes: string[];
  /** Lower-case hex md5 of the value, or "" when not computed. */
  md5: string;
  /**
   * The version of the value's file on its volumes (16 hex digits, ordered by time of writing);
   * absent for the key's plain file, minikeyvalue's.
   */
  version?: string;
  /** For `writing` over an unlinked key: that unlinked record, given back if the write fails. */
  previous?: KeyRecord;
  /**
   * For a `live` record: an overwrite in progress, or interrupted (then its files are removed and
   * the live value stays): a `writing` record naming the new version and where it is written.
   */
  next?: KeyRecord;
  /** Size, time and S3 attributes of the value, where known. */
  info?: ObjectInfo;
}

const STATE_PREFIX: Record<RecordState, string> = {
  live: "",
  unlinked: "DELETED",
  writing: "WRITING",
  deleting: "DELETING",
};

/**
 * Separates a `writing` record from the unlinked record it would replace, and a live record from
 * the `writing` record of its overwrite.
 */
const PREVIOUS_SEPARATOR = "|";
/** Starts a record's version, after its hash: a character no volume name starts with. */
const VERSION_PREFIX = "~";
/** A version: 16 lower-case hex digits (see nextVersion). */
const VERSION = /^[0-9a-f]{16}$/;
/** Separates a record's minikeyvalue form from its info (JSON, which never holds a raw newline). */
const INFO_SEPARATOR = "\n";

/** Whether no reader sees the key and its files await removal (or a write in progress). */
export function isPending(record: KeyRecord): boolean {
  return record.state === "writing" || record.state === "deleting";
}

/**
 * Whether the record has files to remove before it is settled: a pending record, or a live one
 * with an overwrite in progress or interrupted. The start-up sweep and gc find these.
 */
export function needsSettling(record: KeyRecord): boolean {
  return isPending(record) || record.next !== undefined;
}

/**
 * Whether a record names the file of `version` (undefined: the key's plain file) at `location`:
 * as its value's, its overwrite's, or the kept unlinked value's. Such a file is never removed.
 */
export function namesFile(
  record: KeyRecord | null,
  file: { version?: string; location: string },
): boolean {
  if (record === null) return false;
  return [record, record.next, record.previous].some((named) =>
    named !== undefined && named.version === file.version && named.volumes.includes(file.location)
  );
}

/**
 * A new version for a value written over one of `after` (versions, or undefined for a plain
 * file): the time in milliseconds (12 hex digits) and a counter (4), and always past every one of
 * `after`, so that a key's versions order newest-last even if the clock goes back.
 */
export function nextVersion(nowMs: number, after: (string | undefined)[]): string {
  let next = BigInt(Math.max(0, Math.floor(nowMs))) << 16n;
  for (const version of after) {
    if (version === undefined) continue;
    const past = BigInt(`0x${version}`) + 1n;
    if (past > next) next = past;
  }
  return next.toString(16).padStart(16, "0");
}

/** Encodes a record as text, e.g. `HASH5d41402abc4b2a76b9719d911017c592localhost:3001`. */
export function encodeRecord(record: KeyRecord): string {
  const hash = record.md5 === "" ? "" : `HASH${record.md5}`;
  // A `|` inside the JSON (a content type, metadata) is escaped so that it never reads as the
  // separator of a previous record.
  const info = record.info === undefined
    ? ""
    : INFO_SEPARATOR + JSON.stringify(record.info).replaceAll("|", "\\u007c");
  const kept = record.previous ?? record.next;
  const previous = kept === undefined ? "" : PREVIOUS_SEPARATOR + encodeRecord(kept);
  const version = record.version === undefined ? "" : VERSION_PREFIX + record.version;
  return STATE_PREFIX[record.state] + hash + version + record.volumes.join(",") + info + previous;
}

function decodeInfo(text: string, json: string): ObjectInfo {
  let info: unknown;
  try {
    info = JSON.parse(json);
  } catch {
    throw new Error(`bad record ${JSON.stringify(text)}: info is not JSON`);
  }
  const fields = info as Partial<ObjectInfo> | null;
  if (
    typeof fields !== "object" || fields === null || !Number.isSafeInteger(fields.size) ||
    !Number.isSafeInteger(fields.mtime)
  ) {
    throw new Error(`bad record ${JSON.stringify(text)}: info needs a size and an mtime`);
  }
  return fields as ObjectInfo;
}

/**
 * The state of an encoded record, read from its first characters alone: what a listing needs of
 * each record, at a fraction of decodeRecord's cost (which parses the info's JSON). A record that
 * keeps another after `|` has the state of its first part, and so does this.
 */
export function encodedState(text: string): RecordState {
  if (!text.startsWith("D") && !text.startsWith("W")) return "live";
  // DELETING before DELETED: the longer prefix first.
  if (text.startsWith(STATE_PREFIX.deleting)) return "deleting";
  if (text.startsWith(STATE_PREFIX.unlinked)) return "unlinked";
  if (text.startsWith(STATE_PREFIX.writing)) return "writing";
  return "live";
}

/** Decodes the text form; throws on text that is not a record, rather than guessing. */
export function decodeRecord(text: string): KeyRecord {
  const separator = text.indexOf(PREVIOUS_SEPARATOR);
  if (separator !== -1) {
    const record = decodeRecord(text.slice(0, separator));
    const kept = decodeRecord(text.slice(separator + 1));
    if (record.state === "writing" && kept.state === "unlinked") {
      return { ...record, previous: kept };
    }
    if (record.state === "live" && kept.state === "writing" && kept.version !== undefined) {
      return { ...record, next: kept };
    }
    throw new Error(
      `bad record ${JSON.stringify(text)}: only a write keeps an unlinked record, ` +
        "and only a live one a versioned write",
    );
  }
  const newline = text.indexOf(INFO_SEPARATOR);
  if (newline !== -1) {
    const record = decodeRecord(text.slice(0, newline));
    return { ...record, info: decodeInfo(text, text.slice(newline + 1)) };
  }
  // DELETING before DELETED: the longer prefix first.
  const state =
    (["deleting", "unlinked", "writing"] as const).find((name) =>
      text.startsWith(STATE_PREFIX[name])
    ) ?? "live";
  let rest = text.slice(STATE_PREFIX[state].length);
  let md5 = "";
  if (rest.startsWith("HASH")) {
    md5 = rest.slice(4, 36);
    if (!/^[0-9a-f]{32}$/.test(md5)) throw new Error(`bad record ${JSON.stringify(text)}: md5`);
    rest = rest.slice(36);
  }
  let version: string | undefined;
  if (rest.startsWith(VERSION_PREFIX)) {
    version = rest.slice(1, 17);
    if (!VERSION.test(version)) throw new Error(`bad record ${JSON.stringify(text)}: version`);
    rest = rest.slice(17);
  }
  const volumes = rest === "" ? [] : rest.split(",");
  if (volumes.includes("")) throw new Error(`bad record ${JSON.stringify(text)}: empty volume`);
  return version === undefined ? { state, volumes, md5 } : { state, volumes, md5, version };
}
