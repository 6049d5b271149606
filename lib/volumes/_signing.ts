// The signature of a signed volume URL (lib/volumes/signing.ts): the unpadded base64url md5 of
// `${expires}${method}${path} ${secret}`, as nginx's secure_link module computes it. Pure;
// golden-tested in tests/unit/signing_test.ts against openssl's vectors.

import { md5 } from "../md5.ts";

export interface SignOptions {
  /** The request's method; HEAD is signed as GET. */
  method: string;
  /** The path as the volume decodes it (`/sv05/5d/41/aGVsbG8=`), without a query. */
  path: string;
  /** Unix time in seconds after which the volume refuses the URL. */
  expiresAt: number;
  secret: string;
}

/** The method a signature names: HEAD reads what GET reads. */
function signedMethod(method: string): string {
  return method === "HEAD" ? "GET" : method;
}

/** Unpadded base64url, as nginx's secure_link compares it. */
function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** The signature alone: unpadded base64url of md5(`${expires}${method}${path} ${secret}`). */
export function volumeSignature(options: SignOptions): string {
  const text = `${options.expiresAt}${
    signedMethod(options.method)
  }${options.path} ${options.secret}`;
  return base64url(md5(text));
}
