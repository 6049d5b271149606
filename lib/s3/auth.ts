// Who an S3 request is (docs/security.md): its SigV2 or SigV4 signature checked against the
// credentials, then the rights its operation needs. With --credentials a request must be signed
// by a known key with every right (reads may be anonymous with --public-read); without, every
// request is let through, and a signature is not checked (there is no secret to check it with).
// What the signature says of the payload (its sha256, signed chunks) is kept for the body.

import type { Auth } from "../auth/auth.ts";
import type { Right } from "../auth/credentials.ts";
import { S3Error } from "./error.ts";
import { parseSigV2, verifySigV2 } from "./sigv2.ts";
import { type ChunkSigning, verifySigV4 } from "./sigv4.ts";
import type { SigV4Input } from "./sigv4canonical.ts";
import { parseSigV4 } from "./sigv4parse.ts";

/** How far a signed request's date may be from the index's clock (S3's 15 minutes). */
const MAX_CLOCK_SKEW_MS = 15 * 60_000;

/** Who a request is, once its signature is checked, and how its body is to be read. */
export interface Caller {
  accessKey: string | null;
  /** The payload hash the request signed (or, unsigned, gave in x-amz-content-sha256). */
  payloadHash: string | null;
  /** Set when the chunks of an aws-chunked body are signed and the secret is known. */
  signing?: ChunkSigning;
}

/** Throws AccessDenied unless the access key has every right in `rights`. */
function needRights(auth: Auth, accessKey: string, rights: Right[]): void {
  for (const right of rights) {
    if (!auth.allows(accessKey, right)) {
      throw new S3Error(
        403,
        "AccessDenied",
        `Access Denied: access key ${accessKey} may not ${right}.`,
      );
    }
  }
}

/**
 * Checks the request's signature and the caller's rights (`auth` null: an open cluster, where
 * nothing is checked). Throws S3Error: AccessDenied, or the signature's own failure.
 */
export function authorize(auth: Auth | null, input: SigV4Input, rights: Right[]): Caller {
  const headers = input.headers;
  const unsignedHash = headers.get("x-amz-content-sha256");
  const v2 = parseSigV2(input);
  if (v2 !== null) {
    if (auth === null) return { accessKey: null, payloadHash: unsignedHash };
    const verdict = verifySigV2(input, {
      secretFor: (accessKey) => auth.secretFor(accessKey),
      nowMs: Date.now(),
      maxSkewMs: MAX_CLOCK_SKEW_MS,
    });
    if (!verdict.ok) throw new S3Error(verdict.status, verdict.code, verdict.message);
    needRights(auth, verdict.accessKey, rights);
    return { accessKey: verdict.accessKey, payloadHash: verdict.payloadHash };
  }
  const parsed = parseSigV4(input);
  if (parsed !== null && "ok" in parsed) {
    throw new S3Error(parsed.status, parsed.code, parsed.message);
  }
  if (auth === null) {
    return {
      accessKey: parsed?.accessKey ?? null,
      payloadHash: parsed?.kind === "header" ? parsed.payloadHash : unsignedHash,
    };
  }
  if (parsed === null) {
    if (auth.publicRead && rights.every((right) => right === "read")) {
      return { accessKey: null, payloadHash: unsignedHash };
    }
    throw new S3Error(403, "AccessDenied", "Access Denied: requests must be signed.");
  }
  const verdict = verifySigV4(input, {
    secretFor: (accessKey) => auth.secretFor(accessKey),
    nowMs: Date.now(),
    maxSkewMs: MAX_CLOCK_SKEW_MS,
  });
  if (!verdict.ok) throw new S3Error(verdict.status, verdict.code, verdict.message);
  needRights(auth, verdict.accessKey, rights);
  return {
    accessKey: verdict.accessKey,
    payloadHash: verdict.payloadHash,
    signing: verdict.streaming,
  };
}
