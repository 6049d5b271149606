// Who may do what at the index: the access keys of the credentials file (lib/auth/credentials.ts),
// sent by plain clients as HTTP Basic (`curl -u ACCESS_KEY:SECRET`) or `Authorization: Bearer
// ACCESS_KEY:SECRET`. `Auth.check` is pure apart from its table of keys, which `replace` swaps on
// SIGHUP; secrets are compared in constant time, by their SHA-256, and never appear in a reason.

import { createHash, timingSafeEqual } from "node:crypto";
import type { Credential, Right } from "./credentials.ts";

/** The challenge of every 401: curl and browsers answer it with Basic credentials. */
const WWW_AUTHENTICATE = 'Basic realm="mkv"';

/**
 * What a request is, as far as rights go: a key, a listing (`?list`, `?unlinked`), or one of the
 * index's own pages that need `admin` (`/-/metrics`).
 */
export type Target = "key" | "list" | "admin";

/** The right a request needs; null for a method the API does not have (any valid key may ask). */
export function requiredRight(method: string, target: Target): Right | null {
  if (target === "admin") return "admin";
  switch (method) {
    case "GET":
    case "HEAD":
      return target === "list" ? "list" : "read";
    case "PUT":
      return "write";
    case "DELETE":
    case "UNLINK":
      return "delete";
    case "REBALANCE":
      return "write";
    default:
      return null;
  }
}

/** An access key and secret presented by a client. */
export interface Presented {
  accessKey: string;
  secret: string;
}

/**
 * Reads an `Authorization` header: `Basic BASE64(ACCESS_KEY:SECRET)` or `Bearer
 * ACCESS_KEY:SECRET` (schemes in any case). Null if it is neither. Pure.
 */
export function parseAuthorization(header: string): Presented | null {
  const match = header.match(/^\s*([A-Za-z]+) +(\S+)\s*$/);
  if (match === null) return null;
  const scheme = match[1].toLowerCase();
  let pair: string;
  if (scheme === "basic") {
    try {
      pair = atob(match[2]);
    } catch {
      return null;
    }
  } else if (scheme === "bearer") {
    pair = match[2];
  } else {
    return null;
  }
  const colon = pair.indexOf(":");
  if (colon <= 0) return null;
  return { accessKey: pair.slice(0, colon), secret: pair.slice(colon + 1) };
}

/** What `check` decides: let the request through, or refuse it with a status and a reason. */
export type Verdict =
  | { ok: true; accessKey: string | null }
  | { ok: false; status: 401 | 403; reason: string; headers: Record<string, string> };

export const REASONS = {
  missing:
    "credentials needed: curl -u ACCESS_KEY:SECRET, or Authorization: Bearer ACCESS_KEY:SECRET",
  malformed:
    'Authorization must be "Basic BASE64(ACCESS_KEY:SECRET)" or "Bearer ACCESS_KEY:SECRET"',
  wrong: "unknown access key or wrong secret",
} as const;

interface Entry {
  digest: Uint8Array;
  /** Kept for S3's SigV4, which signs with the secret itself (lib/s3/sigv4.ts). */
  secret: string;
  rights: ReadonlySet<Right>;
}

function digestOf(secret: string): Uint8Array {
  return createHash("sha256").update(secret).digest();
}

/** Compared against when the access key is unknown, so that both cases take the same time. */
const NO_DIGEST = digestOf("\0no such access key");

function unauthorized(reason: string): Verdict {
  return { ok: false, status: 401, reason, headers: { "www-authenticate": WWW_AUTHENTICATE } };
}

/** The access keys the index knows, and whether GETs of keys need none. */
export class Auth {
  readonly publicRead: boolean;
  #keys = new Map<string, Entry>();

  constructor(credentials: Credential[], options: { publicRead?: boolean } = {}) {
    this.publicRead = options.publicRead ?? false;
    this.replace(credentials);
  }

  /** Swaps the whole table at once (a reload): requests see the old one or the new one. */
  replace(credentials: Credential[]): void {
    const keys = new Map<string, Entry>();
    for (const credential of credentials) {
      keys.set(credential.accessKey, {
        digest: digestOf(credential.secret),
        secret: credential.secret,
        rights: new Set(credential.rights),
      });
    }
    this.#keys = keys;
  }

  /** The secret of an access key, or null for a key not loaded (S3's SigV4 signs with it). */
  secretFor(accessKey: string): string | null {
    return this.#keys.get(accessKey)?.secret ?? null;
  }

  /** Whether a loaded access key has `right`. */
  allows(accessKey: string, right: Right): boolean {
    return this.#keys.get(accessKey)?.rights.has(right) ?? false;
  }

  /** How many access keys are loaded. */
  get size(): number {
    return this.#keys.size;
  }

  /** Decides on a request by its method, target and `Authorization` header (or null). */
  check(method: string, target: Target, authorization: string | null): Verdict {
    const right = requiredRight(method, target);
    if (authorization === null) {
      if (this.publicRead && right === "read") return { ok: true, accessKey: null };
      return unauthorized(REASONS.missing);
    }
    const presented = parseAuthorization(authorization);
    if (presented === null) return unauthorized(REASONS.malformed);
    const entry = this.#keys.get(presented.accessKey);
    const matches = timingSafeEqual(entry?.digest ?? NO_DIGEST, digestOf(presented.secret));
    if (entry === undefined || !matches) return unauthorized(REASONS.wrong);
    if (right !== null && !entry.rights.has(right)) {
      const has = entry.rights.size === 0 ? "none" : [...entry.rights].join(", ");
      return {
        ok: false,
        status: 403,
        reason: `access key ${presented.accessKey} may not ${right} (its rights: ${has})`,
        headers: {},
      };
    }
    return { ok: true, accessKey: presented.accessKey };
  }
}
