// The index's credentials file (`--credentials FILE`): one access key per line,
//
//   # comment
//   ACCESS_KEY SECRET RIGHTS        RIGHTS: a comma list of read, write, delete, list, admin, or all
//
// parsed into `{ accessKey, secret, rights }` (the same form S3's SigV4 needs: an access key id and
// its secret). The parser is pure and golden-tested (tests/unit/auth_test.ts); a refusal is one
// line that names the line number and never echoes a field of the file, so that no secret reaches a
// log.

import { firstLine } from "../errors.ts";

/** What an access key may do; `delete` covers DELETE and UNLINK. */
export const RIGHTS = ["read", "write", "delete", "list", "admin"] as const;
export type Right = typeof RIGHTS[number];

/** One line of the credentials file. */
export interface Credential {
  accessKey: string;
  secret: string;
  /** Distinct, in the order of RIGHTS. */
  rights: Right[];
}

/** A credentials file that cannot be used; the message is one line and holds no secret. */
export class CredentialsError extends Error {
  override name = "CredentialsError";
}

/** Access keys: letters, digits and `._~-`, as S3 access key ids and Basic user names allow. */
const ACCESS_KEY = /^[A-Za-z0-9._~-]{1,128}$/;
/** Secrets: printable ASCII without spaces (a space separates the fields). */
const SECRET = /^[\x21-\x7e]+$/;
const MIN_SECRET_CHARS = 8;
const MAX_SECRET_CHARS = 256;

function parseRights(text: string, where: string): Right[] {
  const items = text.split(",");
  const given = new Set<string>();
  for (const [i, item] of items.entries()) {
    if (item === "all") RIGHTS.forEach((right) => given.add(right));
    else if ((RIGHTS as readonly string[]).includes(item)) given.add(item);
    else {
      // The item is not echoed: a line with its fields swapped would print its secret.
      throw new CredentialsError(
        `${where}: right ${i + 1} of ${items.length} is not one of ${RIGHTS.join(", ")}, all`,
      );
    }
  }
  return RIGHTS.filter((right) => given.has(right));
}

/**
 * Parses the text of a credentials file. Blank lines and lines starting with `#` are skipped; a
 * `#` later in a line is part of its field (a secret may hold one). Throws CredentialsError with
 * a one-line reason that names the line.
 */
export function parseCredentials(text: string): Credential[] {
  const credentials: Credential[] = [];
  const lineOf = new Map<string, number>();
  for (const [i, raw] of text.split("\n").entries()) {
    const where = `line ${i + 1}`;
    const line = raw.replace(/\r$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/[ \t]+/);
    if (fields.length !== 3) {
      throw new CredentialsError(
        `${where}: ${fields.length} fields, expected 3: ACCESS_KEY SECRET RIGHTS`,
      );
    }
    const [accessKey, secret, rights] = fields;
    if (!ACCESS_KEY.test(accessKey)) {
      throw new CredentialsError(
        `${where}: the access key must be 1 to 128 letters, digits or . _ ~ -`,
      );
    }
    if (!SECRET.test(secret)) {
      throw new CredentialsError(`${where}: the secret must be printable ASCII`);
    }
    if (secret.length < MIN_SECRET_CHARS || secret.length > MAX_SECRET_CHARS) {
      throw new CredentialsError(
        `${where}: the secret must be ${MIN_SECRET_CHARS} to ${MAX_SECRET_CHARS} characters`,
      );
    }
    const first = lineOf.get(accessKey);
    if (first !== undefined) {
      throw new CredentialsError(`${where}: the access key is already on line ${first}`);
    }
    lineOf.set(accessKey, i + 1);
    credentials.push({ accessKey, secret, rights: parseRights(rights, where) });
  }
  if (credentials.length === 0) {
    throw new CredentialsError("no access keys (a line is ACCESS_KEY SECRET RIGHTS)");
  }
  return credentials;
}

/**
 * Why a file with this mode must not hold secrets, or null if it may: group and others must have
 * no access at all. Pure.
 */
export function modeProblem(path: string, mode: number | null): string | null {
  if (mode === null || (mode & 0o077) === 0) return null;
  const who = (mode & 0o007) !== 0 ? "others" : "its group";
  return `${path} is accessible to ${who} (mode ${
    (mode & 0o777).toString(8).padStart(3, "0")
  }); run: chmod 600 ${path}`;
}

/**
 * Reads and parses the credentials file at `path`; throws CredentialsError with a one-line reason
 * that starts with the path (a missing file, a mode open to others, a bad line).
 */
export async function loadCredentials(path: string): Promise<Credential[]> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new CredentialsError(`credentials ${path}: not a file`);
    const problem = modeProblem(path, info.mode);
    if (problem !== null) throw new CredentialsError(`credentials ${problem}`);
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof CredentialsError) throw err;
    if (err instanceof Deno.errors.NotFound) {
      throw new CredentialsError(`credentials ${path}: no such file`);
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new CredentialsError(`credentials ${path}: permission denied`);
    }
    throw new CredentialsError(`credentials ${path}: ${firstLine(err)}`);
  }
  try {
    return parseCredentials(text);
  } catch (err) {
    if (err instanceof CredentialsError) {
      throw new CredentialsError(`credentials ${path}: ${err.message}`);
    }
    throw err;
  }
}
