// Golden tests of SigV2 (lib/s3/sigv2.ts) against the examples AWS published for it: the requests,
// their strings to sign and their signatures, with AWS's example key. The examples name the bucket
// in the Host header; the index takes path-style requests only, so the bucket is in the path here,
// which gives the same string to sign.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  canonicalResource,
  parseSigV2,
  signV2,
  stringsToSignV2,
  verifySigV2,
} from "../../lib/s3/sigv2.ts";

const ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

interface Example {
  name: string;
  method: string;
  target: string;
  headers: [string, string][];
  stringToSign: string;
  signature: string;
}

const EXAMPLES: Example[] = [
  {
    name: "object GET",
    method: "GET",
    target: "/johnsmith/photos/puppy.jpg",
    headers: [["Date", "Tue, 27 Mar 2007 19:36:42 +0000"]],
    stringToSign: "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg",
    signature: "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
  },
  {
    name: "object PUT",
    method: "PUT",
    target: "/johnsmith/photos/puppy.jpg",
    headers: [
      ["Content-Type", "image/jpeg"],
      ["Content-Length", "94328"],
      ["Date", "Tue, 27 Mar 2007 21:15:45 +0000"],
    ],
    stringToSign: "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/johnsmith/photos/puppy.jpg",
    signature: "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
  },
  {
    name: "list: the query is not signed",
    method: "GET",
    target: "/johnsmith/?prefix=photos&max-keys=50&marker=puppy",
    headers: [["User-Agent", "Mozilla/5.0"], ["Date", "Tue, 27 Mar 2007 19:42:41 +0000"]],
    stringToSign: "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/johnsmith/",
    signature: "htDYFYduRNen8P9ZfE/s9SuKy0U=",
  },
  {
    name: "a sub-resource is signed",
    method: "GET",
    target: "/johnsmith/?acl",
    headers: [["Date", "Tue, 27 Mar 2007 19:44:46 +0000"]],
    stringToSign: "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/johnsmith/?acl",
    signature: "c2WLPFtWHVgbEmeEG93a4cG37dM=",
  },
  {
    name: "DELETE with x-amz-date on the date line, as AWS's example signs it",
    method: "DELETE",
    target: "/johnsmith/photos/puppy.jpg",
    headers: [
      ["User-Agent", "dotnet"],
      ["Date", "Tue, 27 Mar 2007 21:20:27 +0000"],
      ["x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"],
    ],
    // The first form, x-amz-date among the headers, is S3's text and s3cmd's.
    stringToSign:
      "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/johnsmith/photos/puppy.jpg",
    signature: "lx3byBScXR6KzyMaifNkardMwNk=",
  },
  {
    name: "upload with x-amz-* headers",
    method: "PUT",
    target: "/static.johnsmith.net/db-backup.dat.gz",
    headers: [
      ["User-Agent", "curl/7.15.5"],
      ["Date", "Tue, 27 Mar 2007 21:06:08 +0000"],
      ["x-amz-acl", "public-read"],
      ["content-type", "application/x-download"],
      ["Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="],
      // Sent twice in AWS's example; one header with both values signs the same.
      ["X-Amz-Meta-ReviewedBy", "joe@johnsmith.net,jane@johnsmith.net"],
      ["X-Amz-Meta-FileChecksum", "0x02661779"],
      ["X-Amz-Meta-ChecksumAlgorithm", "crc32"],
      ["Content-Disposition", "attachment; filename=database.dat"],
      ["Content-Encoding", "gzip"],
      ["Content-Length", "5913339"],
    ],
    stringToSign: "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\n" +
      "Tue, 27 Mar 2007 21:06:08 +0000\nx-amz-acl:public-read\n" +
      "x-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n" +
      "x-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n" +
      "/static.johnsmith.net/db-backup.dat.gz",
    signature: "ilyl83RwaSoYIEdixDQcA4OnAnc=",
  },
  {
    name: "list all buckets",
    method: "GET",
    target: "/",
    headers: [["Date", "Wed, 28 Mar 2007 01:29:59 +0000"]],
    stringToSign: "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
    signature: "qGdzdERIC03wnaRNKh6OqZehG9s=",
  },
  {
    name: "unicode keys: the path signed as sent",
    method: "GET",
    target: "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
    headers: [["Date", "Wed, 28 Mar 2007 01:49:49 +0000"]],
    stringToSign:
      "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
    signature: "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
  },
];

function inputOf(method: string, target: string, pairs: [string, string][]) {
  const headers = new Headers();
  for (const [name, value] of pairs) headers.append(name, value);
  const q = target.indexOf("?");
  return {
    method,
    rawPath: q === -1 ? target : target.slice(0, q),
    rawQuery: q === -1 ? "" : target.slice(q + 1),
    headers,
  };
}

function signed(example: Example) {
  return inputOf(example.method, example.target, [
    ...example.headers,
    ["Authorization", `AWS ${ACCESS_KEY}:${example.signature}`],
  ]);
}

const OPTIONS = {
  secretFor: (key: string) => (key === ACCESS_KEY ? SECRET : null),
  maxSkewMs: 15 * 60_000,
};

Deno.test("SigV2: AWS's published examples, string to sign and signature", () => {
  for (const example of EXAMPLES) {
    const input = signed(example);
    const parsed = parseSigV2(input);
    assert.ok(parsed !== null && !("ok" in parsed), example.name);
    const texts = stringsToSignV2(input, parsed);
    assert.equal(texts[0], example.stringToSign, example.name);
    assert.ok(texts.some((text) => signV2(SECRET, text) === example.signature), example.name);
    const verdict = verifySigV2(input, { ...OPTIONS, nowMs: parsed.timeMs });
    assert.deepEqual(verdict, {
      ok: true,
      accessKey: ACCESS_KEY,
      payloadHash: "UNSIGNED-PAYLOAD",
      presigned: false,
    }, example.name);
  }
});

Deno.test("SigV2: AWS's presigned URL example; expiry, key and signature checked", () => {
  const target = `/johnsmith/photos/puppy.jpg?AWSAccessKeyId=${ACCESS_KEY}` +
    "&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620";
  const input = inputOf("GET", target, []);
  const parsed = parseSigV2(input);
  assert.ok(parsed !== null && !("ok" in parsed));
  assert.deepEqual(stringsToSignV2(input, parsed), [
    "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg",
  ]);
  const before = 1175139620_000 - 1;
  assert.equal(verifySigV2(input, { ...OPTIONS, nowMs: before }).ok, true);
  const expired = verifySigV2(input, { ...OPTIONS, nowMs: 1175139620_000 + 1 });
  assert.deepEqual([expired.ok, !expired.ok && expired.code], [false, "AccessDenied"]);
  const other = inputOf("GET", target.replace("puppy", "kitten"), []);
  const mismatch = verifySigV2(other, { ...OPTIONS, nowMs: before });
  assert.equal(!mismatch.ok && mismatch.code, "SignatureDoesNotMatch");
  const unknown = inputOf("GET", target.replace(ACCESS_KEY, "AKIDNOBODY"), []);
  assert.equal(
    (({ ok, ...rest }) => !ok && "code" in rest && rest.code)(
      verifySigV2(unknown, { ...OPTIONS, nowMs: before }),
    ),
    "InvalidAccessKeyId",
  );
});

Deno.test("SigV2: a header dated too far from now is RequestTimeTooSkewed", () => {
  const input = signed(EXAMPLES[0]);
  const verdict = verifySigV2(input, { ...OPTIONS, nowMs: Date.now() });
  assert.equal(!verdict.ok && verdict.code, "RequestTimeTooSkewed");
});

Deno.test("SigV2: malformed claims are refused before any secret is asked", () => {
  for (
    const [target, headers, code] of [
      ["/b/k", [["Authorization", "AWS onlykey"]], "InvalidArgument"],
      ["/b/k", [["Authorization", `AWS ${ACCESS_KEY}:abc`]], "InvalidArgument"],
      ["/b/k", [["Authorization", `AWS ${ACCESS_KEY}:${EXAMPLES[0].signature}`]], "AccessDenied"],
      [
        `/b/k?AWSAccessKeyId=${ACCESS_KEY}&Expires=soon&Signature=x`,
        [],
        "AuthorizationQueryParametersError",
      ],
      [`/b/k?AWSAccessKeyId=${ACCESS_KEY}&Expires=1`, [], "AuthorizationQueryParametersError"],
    ] as [string, [string, string][], string][]
  ) {
    const parsed = parseSigV2(inputOf("GET", target, headers));
    assert.ok(parsed !== null && "ok" in parsed, target);
    assert.equal(parsed.code, code, `${target} ${JSON.stringify(headers)}`);
  }
  assert.equal(parseSigV2(inputOf("GET", "/b/k?list", [])), null);
});

Deno.test("SigV2: sub-resources and response overrides are signed, sorted, values decoded", () => {
  assert.equal(
    canonicalResource(
      "/b/k",
      "uploadId=abc&partNumber=2&response-content-type=text%2Fplain&max-keys=5&Signature=x",
    ),
    "/b/k?partNumber=2&response-content-type=text/plain&uploadId=abc",
  );
  assert.equal(canonicalResource("/b/", "delete"), "/b/?delete");
  assert.equal(canonicalResource("/b/", "list-type=2&prefix=a"), "/b/");
});

/** A text as the index sees it in a header: each UTF-8 byte as one latin-1 character. */
function asHeaderBytes(text: string): string {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

/** A request signed over `stringToSign` as its UTF-8 bytes, as botocore and s3cmd sign. */
function signedOver(method: string, target: string, headers: [string, string][], text: string) {
  const signature = createHmac("sha1", SECRET).update(text, "utf8").digest("base64");
  return inputOf(method, target, [...headers, ["Authorization", `AWS ${ACCESS_KEY}:${signature}`]]);
}

Deno.test("SigV2: a bucket's path verifies signed as /bucket/ too (botocore's resource)", () => {
  const date = new Date().toUTCString();
  for (const resource of ["/johnsmith", "/johnsmith/"]) {
    const input = signedOver(
      "PUT",
      "/johnsmith",
      [["Date", date]],
      `PUT\n\n\n${date}\n${resource}`,
    );
    assert.equal(verifySigV2(input, { ...OPTIONS, nowMs: Date.now() }).ok, true, resource);
  }
  const object = signedOver(
    "PUT",
    "/johnsmith/k",
    [["Date", date]],
    `PUT\n\n\n${date}\n/johnsmith/k/`,
  );
  const verdict = verifySigV2(object, { ...OPTIONS, nowMs: Date.now() });
  assert.equal(!verdict.ok && verdict.code, "SignatureDoesNotMatch");
});

Deno.test("SigV2: a non-ASCII x-amz-meta-* value verifies as its bytes were signed", () => {
  const date = new Date().toUTCString();
  const value = "ünïcødé 日本語";
  const text = `PUT\n\n\n${date}\nx-amz-meta-name:${value}\n/b/k`;
  const input = signedOver("PUT", "/b/k", [
    ["Date", date],
    ["x-amz-meta-name", asHeaderBytes(value)],
  ], text);
  const verdict = verifySigV2(input, { ...OPTIONS, nowMs: Date.now() });
  assert.equal(verdict.ok, true, JSON.stringify(verdict));
});

Deno.test("SigV2: a date before 1970 is AccessDenied", () => {
  const date = "Tue, 07 Jul 1950 21:53:04 GMT";
  const input = signedOver("GET", "/b/k", [["Date", date]], `GET\n\n\n${date}\n/b/k`);
  const verdict = verifySigV2(input, { ...OPTIONS, nowMs: Date.now() });
  assert.deepEqual([verdict.ok, !verdict.ok && verdict.code], [false, "AccessDenied"]);
});
