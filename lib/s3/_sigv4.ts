// What golden tests of SigV4 need besides the program's interface: AWS's UriEncode of a text,
// as a signer applies it to a key or a query name or value (tests/unit/s3_sigv4_test.ts).

import { uriEncodeBytes } from "./sigv4canonical.ts";

/** AWS's UriEncode of a text, as a signer applies it to a key or a query name or value. */
export function uriEncode(text: string, keepSlash = false): string {
  return uriEncodeBytes(new TextEncoder().encode(text), keepSlash);
}
