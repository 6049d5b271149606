// The errors of the index's requests to volumes, and the one way their messages are worded:
// `volume HOST: cannot METHOD "PATH": WHY`, a timeout called "timed out".

import { firstLine } from "../errors.ts";

/** A volume failed or refused a request. `status` is the volume's answer, null if none came. */
export class VolumeError extends Error {
  override name = "VolumeError";
  constructor(
    readonly volume: string,
    readonly status: number | null,
    message: string,
  ) {
    super(message);
  }
}

/** The client's upload ended before the value was complete. */
export class UploadError extends Error {
  override name = "UploadError";
}

/** The message of a failed request: which volume, what was asked, and why it failed. */
export function describe(volume: string, method: string, path: string, why: string): string {
  return `volume ${volume}: cannot ${method} ${JSON.stringify(path)}: ${why}`;
}

/** Why a request failed, in a few words: "timed out" for a timeout, else the error's first line. */
export function reason(err: unknown): string {
  if (err instanceof DOMException && err.name === "TimeoutError") return "timed out";
  return firstLine(err);
}
