// The access log's redaction (nginx.ts redactSecrets), golden: signatures and credentials of a
// URL or log line are replaced. The log itself, on real clusters, is in
// tests/cluster/accesslog_test.ts.

import assert from "node:assert/strict";
import { redactSecrets } from "../../nginx.ts";

Deno.test("redactSecrets: signatures and credentials of a URL or log line (golden)", () => {
  assert.equal(
    redactSecrets(
      `"GET /b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&x=1 HTTP/1.1", ` +
        `request: "PUT /5d/41/aGVsbG8=?md5=SIG_-x&expires=17 HTTP/1.1" ?Signature=s&AWSAccessKeyId=a`,
    ),
    `"GET /b/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&x=1 HTTP/1.1", ` +
      `request: "PUT /5d/41/aGVsbG8=?md5=REDACTED&expires=17 HTTP/1.1" ` +
      `?Signature=REDACTED&AWSAccessKeyId=REDACTED`,
  );
  assert.equal(redactSecrets("/k?list&limit=10"), "/k?list&limit=10");
});
