// The requests to volumes whose answers are read through at once off the keep-alive pool
// (lib/volumes/http1.ts): a directory's listing as nginx gives it (autoindex, JSON), bounded in
// size, and a file read for its md5 and size. The walks of the volumes (rebuild, gc) make one
// listing per directory, and rebuild and verify --md5 read every file: through `fetch` each cost
// several times what the pool's socket does.

import { Md5 } from "../md5.ts";
import { type KeyPath, locationHost } from "../placement.ts";
import { describe, reason, VolumeError } from "./errors.ts";
import type { PutResult } from "./fanout.ts";
import type { BodySink } from "./http1.ts";

/** A directory listing may take longer than a single file's answer (to start, or to go on). */
const LIST_TIMEOUT_MS = 10_000;
/** A listing longer than this is refused: a directory of the layout holds a few keys' files. */
export const MAX_LISTING_BYTES = 64 * 1024 * 1024;

export interface VolumeEntry {
  name: string;
  type: "file" | "directory" | "other";
  /** Bytes, for files. */
  size?: number;
}

/**
 * A request to a volume on the pool (Volumes' own): its status if in `accept`, else VolumeError
 * (`volume HOST: cannot METHOD "PATH": WHY`); the answer's body goes to `sink`.
 */
export type Ask = (
  location: string,
  method: string,
  path: string,
  options: { accept: number[]; timeoutMs?: number; sink?: BodySink },
) => Promise<number>;

/** The body of a listing, collected piece by piece; throws past MAX_LISTING_BYTES. */
class ListingBody {
  #pieces: Uint8Array[] = [];
  #bytes = 0;

  readonly sink = (piece: Uint8Array): void => {
    this.#bytes += piece.length;
    if (this.#bytes > MAX_LISTING_BYTES) {
      throw new Error(`listing longer than ${MAX_LISTING_BYTES / 1024 / 1024} MiB`);
    }
    this.#pieces.push(piece.slice());
  };

  /** The listing as text. */
  text(): string {
    const decoder = new TextDecoder();
    if (this.#pieces.length === 1) return decoder.decode(this.#pieces[0]);
    const whole = new Uint8Array(this.#bytes);
    let at = 0;
    for (const piece of this.#pieces) {
      whole.set(piece, at);
      at += piece.length;
    }
    return decoder.decode(whole);
  }
}

/**
 * The JSON listing of directory `dir` at `location` (nginx autoindex); [] if it does not exist.
 * `timeoutMs` (at least LIST_TIMEOUT_MS) bounds the wait for its start and for each piece.
 */
export async function listDirectory(
  ask: Ask,
  location: string,
  dir: string,
  timeoutMs: number,
): Promise<VolumeEntry[]> {
  const path = dir.endsWith("/") ? dir : `${dir}/`;
  const body = new ListingBody();
  const status = await ask(location, "GET", path, {
    accept: [200, 404],
    timeoutMs: Math.max(timeoutMs, LIST_TIMEOUT_MS),
    sink: body.sink,
  });
  if (status === 404) return [];
  try {
    return JSON.parse(body.text()) as VolumeEntry[];
  } catch (err) {
    throw new VolumeError(
      locationHost(location),
      200,
      describe(location, "GET", path, `not a JSON listing: ${reason(err)}`),
    );
  }
}

/** Reads the key's file at `location` through; its md5 and size, or a VolumeError. */
export async function hashFile(ask: Ask, location: string, path: KeyPath): Promise<PutResult> {
  const hash = new Md5();
  let sizeBytes = 0;
  await ask(location, "GET", path, {
    accept: [200],
    sink: (piece) => {
      hash.update(piece);
      sizeBytes += piece.length;
    },
  });
  return { md5: hash.hex(), sizeBytes };
}
