// AWS's published SigV4 examples (the S3 documentation's "examplebucket" requests of 2013-05-24),
// shared by the SigV4 and aws-chunked tests: the credentials, and the chunked upload's request
// whose seed signature the chunk signatures chain from.

import type { SigV4Input } from "../lib/s3/sigv4canonical.ts";
import { STREAMING_PAYLOAD } from "../lib/s3/sigv4parse.ts";

export const EXAMPLE_KEY = "AKIAIOSFODNN7EXAMPLE";
export const EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/** The examples' time, 2013-05-24T00:00:00Z. */
export const EXAMPLE_MS = Date.UTC(2013, 4, 24);
/** S3's clock skew limit, as the tests check it. */
export const SKEW_MS = 15 * 60_000;
/** The seed signature of the chunked upload example. */
export const CHUNKED_SEED_SIGNATURE =
  "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

const secrets = new Map([[EXAMPLE_KEY, EXAMPLE_SECRET]]);

/** verifySigV4's options at the examples' time (or `nowMs`), knowing the example's secret. */
export function exampleOptions(nowMs = EXAMPLE_MS) {
  return { secretFor: (key: string) => secrets.get(key) ?? null, nowMs, maxSkewMs: SKEW_MS };
}

/** An Authorization header of the examples' access key and scope. */
export function exampleAuthorization(signedHeaders: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=${EXAMPLE_KEY}/20130524/us-east-1/s3/aws4_request,` +
    `SignedHeaders=${signedHeaders},Signature=${signature}`;
}

/** The chunked upload example's request: PUT of 66,560 bytes in 64 KiB and 1 KiB chunks. */
export function chunkedExampleInput(): SigV4Input {
  return {
    method: "PUT",
    rawPath: "/examplebucket/chunkObject.txt",
    rawQuery: "",
    headers: new Headers({
      host: "s3.amazonaws.com",
      "x-amz-date": "20130524T000000Z",
      "x-amz-storage-class": "REDUCED_REDUNDANCY",
      "x-amz-content-sha256": STREAMING_PAYLOAD,
      "content-encoding": "aws-chunked",
      "x-amz-decoded-content-length": "66560",
      "content-length": "66824",
      authorization: exampleAuthorization(
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;" +
          "x-amz-decoded-content-length;x-amz-storage-class",
        CHUNKED_SEED_SIGNATURE,
      ),
    }),
  };
}
