// AWS Signature Version 4 as S3 checks it, for the requests that reach the index's S3 API (behind
// its nginx, which passes the client's Host header through). A request is signed either by an
// `Authorization: AWS4-HMAC-SHA256 ...` header or by presigned query parameters (`X-Amz-*`); both
// sign a canonical form of the request (method, path, query, chosen headers, payload hash) with a
// key derived from the secret and the credential scope (lib/s3/sigv4canonical.ts); the signature
// is parsed by lib/s3/sigv4parse.ts. Verification rebuilds that form the way S3 does and compares
// signatures in constant time. The payload itself is checked later, as it
// streams: `sha256Verifier` for a body whose sha256 was signed, lib/s3/chunked.ts for aws-chunked
// bodies, whose chunk signatures chain from the seed signature this module verifies. Pure, but for
// the streams; golden-tested in tests/unit/s3_sigv4_test.ts against AWS's examples and its signer.

import { createHash } from "node:crypto";
import { S3Error } from "./error.ts";
import {
  canonicalRequest,
  sign,
  signaturesEqual,
  signingKey,
  type SigV4Input,
  stringToSign,
} from "./sigv4canonical.ts";
import {
  type ParsedSigV4,
  parseSigV4,
  type SigV4Failure,
  sigV4Failure,
  STREAMING_PAYLOAD,
  STREAMING_PAYLOAD_TRAILER,
} from "./sigv4parse.ts";

/** What chunk signatures of an aws-chunked body are checked with (lib/s3/chunked.ts). */
export interface ChunkSigning {
  signingKey: Uint8Array;
  /** The request's X-Amz-Date, `20130524T000000Z`. */
  amzDate: string;
  /** `20130524/us-east-1/s3/aws4_request`. */
  scope: string;
  /** The request's own signature, which the first chunk's signature chains from. */
  seedSignature: string;
}

export interface SigV4Success {
  ok: true;
  accessKey: string;
  /** The payload hash that was signed: a hex sha256 to check the body against, or a marker. */
  payloadHash: string;
  presigned: boolean;
  /** Set for STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) bodies, whose chunks are signed. */
  streaming?: ChunkSigning;
}

export type SigV4Verdict = SigV4Success | SigV4Failure;

export interface VerifyOptions {
  /** The secret of an access key, or null for a key the index does not know. */
  secretFor(accessKey: string): string | null;
  nowMs: number;
  /** How far a request's date may be from nowMs (S3 allows 15 minutes). */
  maxSkewMs: number;
}

/**
 * `x-amz-*` headers that came with the request but are not signed. S3 refuses them, since they
 * change what a request does (x-amz-copy-source, x-amz-meta-*, checksums) and anyone on the path
 * could add them. A presigned URL's holder may add x-amz-content-sha256: for a presigned URL the
 * payload hash comes from the query, never from that header.
 */
function unsignedAmzHeaders(input: SigV4Input, parsed: ParsedSigV4): string[] {
  const unsigned: string[] = [];
  for (const [name] of input.headers) {
    if (!name.startsWith("x-amz-") || parsed.signedHeaders.includes(name)) continue;
    if (parsed.kind === "query" && name === "x-amz-content-sha256") continue;
    unsigned.push(name);
  }
  return unsigned;
}

/**
 * Checks a request's SigV4 signature: who signed it (InvalidAccessKeyId), when
 * (RequestTimeTooSkewed for a header, AccessDenied for an expired or not yet valid URL), which
 * headers (AccessDenied for unsigned x-amz-* headers), and the signature (SignatureDoesNotMatch).
 * A request that is not SigV4-signed at all is an AccessDenied here; call `parseSigV4` first to
 * tell it apart.
 */
export function verifySigV4(input: SigV4Input, options: VerifyOptions): SigV4Verdict {
  const parsed = parseSigV4(input);
  if (parsed === null) return sigV4Failure(403, "AccessDenied", "Access Denied");
  if ("ok" in parsed) return parsed;
  const secret = options.secretFor(parsed.accessKey);
  if (secret === null) {
    return sigV4Failure(
      403,
      "InvalidAccessKeyId",
      "The AWS Access Key Id you provided does not exist in our records.",
    );
  }
  if (parsed.kind === "header") {
    if (Math.abs(options.nowMs - parsed.dateMs) > options.maxSkewMs) {
      return sigV4Failure(
        403,
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
      );
    }
  } else {
    if (parsed.dateMs - options.nowMs > options.maxSkewMs) {
      return sigV4Failure(403, "AccessDenied", "Request is not valid yet");
    }
    if (options.nowMs > parsed.dateMs + (parsed.expiresSeconds ?? 0) * 1000) {
      return sigV4Failure(403, "AccessDenied", "Request has expired");
    }
  }
  const unsigned = unsignedAmzHeaders(input, parsed);
  if (unsigned.length > 0) {
    return sigV4Failure(
      403,
      "AccessDenied",
      `There were headers present in the request which were not signed: ${unsigned.join(", ")}`,
    );
  }
  const [date, region] = parsed.scope.split("/");
  const key = signingKey(secret, date, region);
  const canonical = canonicalRequest(input, parsed);
  const toSign = stringToSign(parsed.amzDate, parsed.scope, canonical);
  if (!signaturesEqual(sign(key, toSign), parsed.signature)) {
    return {
      ...sigV4Failure(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. " +
          "Check your key and signing method.",
      ),
      canonicalRequest: canonical,
      stringToSign: toSign,
    };
  }
  const verdict: SigV4Success = {
    ok: true,
    accessKey: parsed.accessKey,
    payloadHash: parsed.payloadHash,
    presigned: parsed.kind === "query",
  };
  if (
    parsed.payloadHash === STREAMING_PAYLOAD || parsed.payloadHash === STREAMING_PAYLOAD_TRAILER
  ) {
    verdict.streaming = {
      signingKey: key,
      amzDate: parsed.amzDate,
      scope: parsed.scope,
      seedSignature: parsed.signature,
    };
  }
  return verdict;
}

/**
 * A pass-through stream that hashes the body and, if its sha256 is not `expectedHex`, errors with
 * XAmzContentSHA256Mismatch (400) before it closes, so that a consumer never sees a clean end of a
 * body that is not the one signed.
 */
export function sha256Verifier(expectedHex: string): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("sha256");
  const expected = expectedHex.toLowerCase();
  return new TransformStream({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      if (hash.digest("hex") !== expected) {
        throw new S3Error(
          400,
          "XAmzContentSHA256Mismatch",
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
      }
    },
  });
}
