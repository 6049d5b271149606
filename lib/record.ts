// The index's record of a key, and its encoding as stored in Deno KV. The text form is
// minikeyvalue's (`[DELETED][HASH<md5>]vol1,vol2`) plus a `WRITING` state for a PUT in progress,
// so a record read by hand with `deno kv` or in SQLite says plainly what it is. Pure.

/** `live`: readable. `unlinked`: hidden, data kept until DELETE. `writing`: a PUT in progress. */
export type RecordState = "live" | "unlinked" | "writing";

export interface KeyRecord {
  state: RecordState;
  /** Replica locations such as `localhost:3001/sv05`, best first. */
  volumes: string[];
  /** Lower-case hex md5 of the value, or "" when not computed. */
  md5: string;
}

const STATE_PREFIX: Record<RecordState, string> = {
  live: "",
  unlinked: "DELETED",
  writing: "WRITING",
};

/** Encodes a record as text, e.g. `HASH5d41402abc4b2a76b9719d911017c592localhost:3001`. */
export function encodeRecord(record: KeyRecord): string {
  const hash = record.md5 === "" ? "" : `HASH${record.md5}`;
  return STATE_PREFIX[record.state] + hash + record.volumes.join(",");
}

/** Decodes the text form; throws on text that is not a record, rather than guessing. */
export function decodeRecord(text: string): KeyRecord {
  let rest = text;
  let state: RecordState = "live";
  if (rest.startsWith("DELETED")) {
    state = "unlinked";
    rest = rest.slice(7);
  } else if (rest.startsWith("WRITING")) {
    state = "writing";
    rest = rest.slice(7);
  }
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
