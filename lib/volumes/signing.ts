// Signed volume URLs: with a volume secret, a volume's nginx (its secure_link module) takes a
// PUT or DELETE, and with private reads a GET or HEAD, only when the URL carries
// `?md5=SIG&expires=UNIX`, where SIG is the unpadded base64url md5 of
// `${expires}${method}${path} ${secret}` (HEAD signs as GET: a read is a read). The signature
// covers what is done (method), where (the decoded path, `/svXX` included) and until when (unix
// seconds, inclusive), so a captured URL can neither be re-targeted nor kept. The secret comes
// from a file only (never the command line, where `ps` would show it). Pure but for
// readSecretFile; the signature itself is lib/volumes/_signing.ts, golden-tested in
// tests/unit/signing_test.ts against what nginx computes.

import { firstLine } from "../errors.ts";
import { type SignOptions, volumeSignature } from "./_signing.ts";

/** What a secret may hold: base64 (`openssl rand -base64 32`) and URL-safe characters. */
const SECRET_PATTERN = /^[A-Za-z0-9+/=_.~-]{16,256}$/;

/** A secret file that cannot be used; the message is one line and never holds the secret. */
export class SecretError extends Error {
  override name = "SecretError";
}

/** `path?md5=SIG&expires=UNIX`: the path and query of a signed request to a volume. */
export function signVolumeUrl(options: SignOptions): string {
  if (!Number.isInteger(options.expiresAt) || options.expiresAt <= 0) {
    throw new RangeError(`expiresAt must be a positive whole number of seconds`);
  }
  return `${options.path}?md5=${volumeSignature(options)}&expires=${options.expiresAt}`;
}

/** Unix seconds `ttlMs` from `nowMs`, rounded up: a URL is never shorter-lived than asked. */
export function expiresIn(ttlMs: number, nowMs = Date.now()): number {
  return Math.ceil((nowMs + ttlMs) / 1000);
}

/** Whether `secret` may be used (and put in nginx's config without quoting trouble). */
export function validSecret(secret: string): boolean {
  return SECRET_PATTERN.test(secret);
}

/**
 * Reads the volume secret from `path`: a regular file that only its owner can read (mode 0600 or
 * 0400), holding one line of 16 to 256 characters of `A-Za-z0-9+/=_.~-`. Throws SecretError with
 * the fix otherwise.
 */
export async function readSecretFile(path: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new SecretError(`cannot read the volume secret file ${path}: ${firstLine(err)}`);
  }
  if (!info.isFile) throw new SecretError(`volume secret file ${path} is not a regular file`);
  if (((info.mode ?? 0) & 0o077) !== 0) {
    throw new SecretError(
      `volume secret file ${path} is readable or writable by others; run: chmod 600 ${path}`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new SecretError(`cannot read the volume secret file ${path}: ${firstLine(err)}`);
  }
  const secret = text.trim();
  if (!validSecret(secret)) {
    throw new SecretError(
      `volume secret file ${path} must hold one line of 16 to 256 characters of ` +
        `A-Z a-z 0-9 + / = _ . ~ - (make one with: openssl rand -base64 32 > ${path})`,
    );
  }
  return secret;
}
