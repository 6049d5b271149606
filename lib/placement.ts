// Where a key lives: the path of its file on a volume and the volumes that hold its replicas.
// Both are minikeyvalue's, bit for bit, so that its volumes can be served and rebuilt by mkv.ts
// and back; a value written over another goes to a versioned file beside the key's (versionPath),
// never over a file a record names. Pure; the golden tests in tests/unit/placement_test.ts hold
// minikeyvalue's own vectors.

import { md5 } from "./md5.ts";

/** The keys of S3 multipart parts (lib/s3/multipart.ts), under the index's reserved `/-/`. */
export const PARTS_PREFIX = "/-/mpu/";

/** A directory of the layout named by a byte of md5(key): `HH` or `hh`, lower-case hex. */
export const HEX_DIR = /^[0-9a-f]{2}$/;
/** A subvolume's directory on a volume: `svXX`, upper-case hex. */
export const SUBVOLUME_DIR = /^sv[0-9A-F]{2}$/;

/** The longest key in bytes: its base64 must fit one file name of 255 bytes on the volume. */
export const MAX_KEY_BYTES = 189;

/** Bytes of `text` in UTF-8, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

declare const keyPathBrand: unique symbol;
/**
 * The path of a key's file on a volume, as `keyToPath` makes it: the type keeps a key from being
 * passed where its path is meant. Computed once per request and passed down, since it costs an md5.
 */
export type KeyPath = string & { readonly [keyPathBrand]: true };

/** The path of a key's file on a volume: `/HH/hh/BASE64`, e.g. `hello` → `/5d/41/aGVsbG8=`. */
export function keyToPath(key: string): KeyPath {
  const digest = md5(key);
  const b64 = encoder.encode(key).toBase64();
  return `/${toHex(digest.subarray(0, 1))}/${toHex(digest.subarray(1, 2))}/${b64}` as KeyPath;
}

/** The key whose file is at `path` (the inverse of `keyToPath`), or null if it is not one. */
export function pathToKey(path: string): string | null {
  const match = path.match(/^\/([0-9a-f]{2})\/([0-9a-f]{2})\/([A-Za-z0-9+/]+={0,2})$/);
  if (!match) return null;
  const bytes = Uint8Array.fromBase64(match[3]);
  const key = decoder.decode(bytes);
  return keyToPath(key) === path ? key : null;
}

/**
 * The file of one version of a key's value: the key's own file (`keyToPath`) for a value without
 * a version, else `<that path>~/<version>`, e.g. `/5d/41/aGVsbG8=~/0193a5f2c4000001`. A `~` is
 * outside base64, so no key's file is ever called so; and the version is a file in a directory
 * beside the key's, not a longer name, since the longest key's name already fills the 255 bytes
 * a file name may have. The one mapping from a record to its file (recordPath).
 */
export function versionPath(path: KeyPath, version: string | undefined): KeyPath {
  return version === undefined ? path : `${path}~/${version}` as KeyPath;
}

/** The file of the value a record names: its version's (see versionPath). */
export function recordPath(key: string, record: { version?: string }): KeyPath {
  return versionPath(keyToPath(key), record.version);
}

/**
 * The key and version of a file at `path` (the inverse of versionPath), or null if it is no
 * key's: version undefined for the key's plain file.
 */
export function parseFilePath(path: string): { key: string; version?: string } | null {
  const match = path.match(/^(.*)~\/([0-9a-f]{16})$/);
  if (match === null) {
    const key = pathToKey(path);
    return key === null ? null : { key };
  }
  const key = pathToKey(match[1]);
  return key === null ? null : { key, version: match[2] };
}

export interface Placement {
  /** Volumes as `host:port`, in the order given on the command line. */
  volumes: string[];
  replicas: number;
  subvolumes: number;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

/**
 * The locations of a key's replicas by rendezvous hashing: each volume scores `md5(key + volume)`,
 * the highest `replicas` scores win (stable on ties), and with subvolumes a replica goes to
 * `volume/svXX`, XX being `%02X` of bytes 12..15 of the score modulo `subvolumes`.
 */
export function keyToVolumes(key: string, placement: Placement): string[] {
  const scored = placement.volumes.map((volume) => ({ volume, score: md5(key, volume) }));
  scored.sort((a, b) => compareBytes(b.score, a.score));
  return scored.slice(0, placement.replicas).map(({ volume, score }) => {
    if (placement.subvolumes <= 1) return volume;
    const view = new DataView(score.buffer, score.byteOffset, score.byteLength);
    const sub = view.getUint32(12) % placement.subvolumes;
    return `${volume}/sv${sub.toString(16).toUpperCase().padStart(2, "0")}`;
  });
}

/**
 * Every location where a key's files may be under the placement: its place on each volume (the
 * subvolume it takes there), whatever the number of replicas. A DELETE removes the key's files at
 * all of them, so that a copy left off its record (a rebalance cut short, an old replica count) is
 * never found by a later rebuild.
 */
export function keyLocations(key: string, placement: Placement): string[] {
  return keyToVolumes(key, { ...placement, replicas: placement.volumes.length });
}

/**
 * A host: a name or IPv4 address, or an IPv6 address in brackets (`[fd00::1]`), as in a URL. A bare
 * IPv6 address is refused: its last group could not be told from the port.
 */
const HOST_NAME = String.raw`[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?`;
const HOST_IPV6 = String.raw`\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]`;
const HOST = `(?:${HOST_NAME}|${HOST_IPV6})`;
const HOST_PORT = new RegExp(`^${HOST}:\\d{1,5}$`);
const HOST_OPTIONAL_PORT = new RegExp(`^${HOST}(?::\\d{1,5})?$`);

/**
 * Whether `text` is a volume's `host:port` (a name, IPv4 or bracketed IPv6, and a port); with
 * `optionalPort`, a bare host passes too.
 */
export function isHostPort(text: string, options: { optionalPort?: boolean } = {}): boolean {
  return (options.optionalPort ? HOST_OPTIONAL_PORT : HOST_PORT).test(text);
}

/** The `host:port` of a replica location such as `localhost:3001/sv05`. */
export function locationHost(location: string): string {
  const slash = location.indexOf("/");
  return slash === -1 ? location : location.slice(0, slash);
}

/** Whether a record's volumes are exactly where the placement puts the key, in that order. */
export function isBalanced(key: string, volumes: string[], placement: Placement): boolean {
  const want = keyToVolumes(key, placement);
  return want.length === volumes.length && want.every((volume, i) => volume === volumes[i]);
}
