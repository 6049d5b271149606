// The index's record of a key, and its encoding as stored in Deno KV. The text form is
// minikeyvalue's (`[DELETED][HASH<md5>]vol1,vol2`) plus two states whose files no reader sees:
// `WRITING` for a PUT in progress (or one that failed and awaits cleanup) and `DELETING` for a
// DELETE whose files are being removed. A PUT over an unlinked key keeps the unlinked record after
// a `|`, so that a failed or interrupted write gives it back. What minikeyvalue does not keep (the
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
}

export interface KeyRecord {
  state: RecordState;
  /** Replica locations such as `localhost:3001/sv05`, best first. */
  volumes: string[];
  /** Lower-case hex md5 of the value, or "" when not computed. */
  md5: string;
  /** For `writing` over an unlinked key: that unlinked record, given back if the write fails. */
  previous?: KeyRecord;
  /** Size, time and S3 attributes of the value, where known. */
  info?: ObjectInfo;
}

const STATE_PREFIX: Record<RecordState, string> = {
  live: "",
  unlinked: "DELETED",
  writing: "WRITING",
  deleting: "DELETING",
};

/** Separates a `writing` record from the unlinked record it would replace. */
const PREVIOUS_SEPARATOR = "|";
/** Separates a record's minikeyvalue form from its info (JSON, which never holds a raw newline). */
const INFO_SEPARATOR = "\n";

/** Whether no reader sees the key and its files await removal (or a write in progress). */
export function isPending(record: KeyRecord): boolean {
  return record.state === "writing" || record.state === "deleting";
}

/** Encodes a record as text, e.g. `HASH5d41402abc4b2a76b9719d911017c592localhost:3001`. */
export function encodeRecord(record: KeyRecord): string {
  const hash = record.md5 === "" ? "" : `HASH${record.md5}`;
  // A `|` inside the JSON (a content type, metadata) is escaped so that it never reads as the
  // separator of a previous record.
  const info = record.info === undefined
    ? ""
    : INFO_SEPARATOR + JSON.stringify(record.info).replaceAll("|", "\\u007c");
  const previous = record.previous === undefined
    ? ""
    : PREVIOUS_SEPARATOR + encodeRecord(record.previous);
  return STATE_PREFIX[record.state] + hash + record.volumes.join(",") + info + previous;
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

/** Decodes the text form; throws on text that is not a record, rather than guessing. */
export function decodeRecord(text: string): KeyRecord {
  const separator = text.indexOf(PREVIOUS_SEPARATOR);
  if (separator !== -1) {
    const record = decodeRecord(text.slice(0, separator));
    const previous = decodeRecord(text.slice(separator + 1));
    if (record.state !== "writing" || previous.state !== "unlinked") {
      throw new Error(`bad record ${JSON.stringify(text)}: only a write keeps an unlinked record`);
    }
    return { ...record, previous };
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
  const volumes = rest === "" ? [] : rest.split(",");
  if (volumes.includes("")) throw new Error(`bad record ${JSON.stringify(text)}: empty volume`);
  return { state, volumes, md5 };
}
