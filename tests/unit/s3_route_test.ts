// The pure parts of the S3 API: which requests are S3's (lib/s3/detect.ts), what a path-style
// request names and which operation it is, bucket names, Range and conditional headers, listing
// parameters (lib/s3/request.ts, operation.ts, headers.ts, conditions.ts, listparams.ts), and the
// nginx location that proxies replicas.
//
//   node_modules/.bin/deno test -A tests/unit/s3_route_test.ts

import assert from "node:assert/strict";
import { OPERATION_RIGHTS, s3Operation } from "../../lib/s3/operation.ts";
import { isS3Request } from "../../lib/s3/detect.ts";
import { parseListBucketsParams } from "../../lib/s3/buckets.ts";
import { bucketNameProblem, parseCopySource, parseS3Path } from "../../lib/s3/request.ts";
import { checkConditions, parseRange, rangeApplies } from "../../lib/s3/conditions.ts";
import { decodeToken, encodeToken, parseListParams } from "../../lib/s3/listparams.ts";
import {
  objectHeaders,
  responseOverrides,
  storedHeaders,
  userMetadata,
} from "../../lib/s3/headers.ts";
import { S3Error } from "../../lib/s3/error.ts";
import type { KeyRecord } from "../../lib/core/record.ts";
import { renderProxyLocations } from "../../nginx.ts";
import { parseIndexArgs } from "../../lib/config.ts";

function detect(rawQuery: string, headers: Record<string, string> = {}): boolean {
  return isS3Request({ rawQuery, headers: new Headers(headers) });
}

Deno.test("isS3Request: signatures, S3 queries, SDK headers and the --s3-port mark; else plain", () => {
  const s3: [string, Record<string, string>][] = [
    ["", { authorization: "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/s3/aws4_request" }],
    ["", { authorization: "AWS key:sig" }],
    ["X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Signature=b", {}],
    ["AWSAccessKeyId=a&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D", {}],
    ["list-type=2&prefix=a", {}],
    ["uploads", {}],
    ["uploadId=1&partNumber=2", {}],
    ["delete", {}],
    ["location", {}],
    ["", { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" }],
    ["", { "amz-sdk-invocation-id": "0f0e" }],
    ["", { "x-mkv-s3": "1" }],
    ["Prefix=a", {}],
  ];
  for (const [query, headers] of s3) {
    assert.equal(detect(query, headers), true, `${query} ${JSON.stringify(headers)}`);
  }
  const plain: [string, Record<string, string>][] = [
    ["", {}],
    ["list", {}],
    ["list&start=/a&limit=10", {}],
    ["unlinked", {}],
    ["lsit", {}],
    ["", { authorization: "Basic YTpi" }],
    ["", { authorization: "Bearer a:b" }],
    ["", { "x-mkv-s3": "" }],
    ["", { "content-type": "text/plain", "user-agent": "curl/8.5.0" }],
  ];
  for (const [query, headers] of plain) {
    assert.equal(detect(query, headers), false, `${query} ${JSON.stringify(headers)}`);
  }
});

function failureCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof S3Error) return `${err.status} ${err.code}`;
    throw err;
  }
  return "no failure";
}

Deno.test("parseS3Path: service, bucket, object; bad names and long keys refused", () => {
  assert.deepEqual(parseS3Path("/"), { kind: "service" });
  assert.deepEqual(parseS3Path("/photos"), { kind: "bucket", bucket: "photos" });
  assert.deepEqual(parseS3Path("/photos/"), { kind: "bucket", bucket: "photos" });
  assert.deepEqual(parseS3Path("/photos/a%20b/c.jpg"), {
    kind: "object",
    bucket: "photos",
    objectKey: "a b/c.jpg",
    key: "/photos/a b/c.jpg",
  });
  assert.equal(failureCode(() => parseS3Path("/Photos/a")), "400 InvalidBucketName");
  assert.equal(failureCode(() => parseS3Path("/-/health")), "400 InvalidBucketName");
  assert.equal(failureCode(() => parseS3Path("/photos/%zz")), "400 InvalidURI");
  assert.equal(failureCode(() => parseS3Path("/photos/%C2%AE%C2%8A-")), "400 InvalidURI");
  assert.equal(parseS3Path("/photos/%C2%AE%C2%A0-").kind, "object");
  assert.equal(failureCode(() => parseS3Path(`/photos/${"k".repeat(182)}`)), "400 KeyTooLongError");
  assert.equal(parseS3Path(`/photos/${"k".repeat(181)}`).kind, "object");
});

Deno.test("bucketNameProblem: S3's rules", () => {
  for (const good of ["abc", "my-bucket.2", "a".repeat(63), "0bucket"]) {
    assert.equal(bucketNameProblem(good), null, good);
  }
  for (
    const bad of [
      "ab",
      "a".repeat(64),
      "Bucket",
      "-abc",
      "abc-",
      "a..b",
      "192.168.1.1",
      "xn--abc",
      "abc-s3alias",
      "a_b",
    ]
  ) {
    assert.notEqual(bucketNameProblem(bad), null, bad);
  }
});

Deno.test("s3Operation: method, target and query make the operation; unknown ones refused", () => {
  const op = (method: string, path: string, query = "", headers: Record<string, string> = {}) =>
    s3Operation(method, parseS3Path(path), new URLSearchParams(query), new Headers(headers));
  assert.equal(op("GET", "/"), "ListBuckets");
  assert.equal(op("PUT", "/b1b"), "CreateBucket");
  assert.equal(op("HEAD", "/b1b"), "HeadBucket");
  assert.equal(op("DELETE", "/b1b"), "DeleteBucket");
  assert.equal(op("GET", "/b1b", "list-type=2"), "ListObjects");
  assert.equal(op("GET", "/b1b", "location"), "GetBucketLocation");
  assert.equal(op("GET", "/b1b", "versions&key-marker=a"), "ListObjectVersions");
  assert.equal(op("GET", "/b1b", "uploads"), "ListMultipartUploads");
  assert.equal(op("POST", "/b1b", "delete"), "DeleteObjects");
  assert.equal(op("GET", "/b1b/k"), "GetObject");
  assert.equal(op("HEAD", "/b1b/k"), "HeadObject");
  assert.equal(op("PUT", "/b1b/k"), "PutObject");
  assert.equal(op("PUT", "/b1b/k", "", { "x-amz-copy-source": "b1b/j" }), "CopyObject");
  assert.equal(op("DELETE", "/b1b/k"), "DeleteObject");
  assert.equal(op("POST", "/b1b/k", "uploads"), "CreateMultipartUpload");
  assert.equal(op("PUT", "/b1b/k", "partNumber=1&uploadId=u"), "UploadPart");
  assert.equal(
    op("PUT", "/b1b/k", "partNumber=1&uploadId=u", { "x-amz-copy-source": "b1b/j" }),
    "UploadPartCopy",
  );
  assert.equal(op("POST", "/b1b/k", "uploadId=u"), "CompleteMultipartUpload");
  assert.equal(op("DELETE", "/b1b/k", "uploadId=u"), "AbortMultipartUpload");
  assert.equal(op("GET", "/b1b/k", "uploadId=u"), "ListParts");
  assert.equal(failureCode(() => op("GET", "/b1b/k", "acl")), "501 NotImplemented");
  // A sub-resource the API lacks is never taken for the bucket itself: no DeleteBucket for these.
  for (const sub of ["publicAccessBlock", "ownershipControls", "requestPayment", "metrics"]) {
    assert.equal(failureCode(() => op("DELETE", "/b1b", sub)), "501 NotImplemented", sub);
    assert.equal(failureCode(() => op("PUT", "/b1b", sub)), "501 NotImplemented", sub);
  }
  assert.equal(failureCode(() => op("PUT", "/b1b", "versioning")), "501 NotImplemented");
  assert.equal(op("GET", "/b1b", "versioning"), "GetBucketVersioning");
  assert.equal(failureCode(() => op("PATCH", "/b1b/k")), "405 MethodNotAllowed");
  assert.equal(failureCode(() => op("DELETE", "/")), "405 MethodNotAllowed");
  assert.deepEqual(OPERATION_RIGHTS.CopyObject, ["read", "write"]);
  assert.deepEqual(OPERATION_RIGHTS.ListObjects, ["list"]);
});

Deno.test("parseRange: S3's byte ranges against a value's size", () => {
  assert.equal(parseRange(null, 10), null);
  assert.deepEqual(parseRange("bytes=0-3", 10), { start: 0, end: 3 });
  assert.deepEqual(parseRange("bytes=5-", 10), { start: 5, end: 9 });
  assert.deepEqual(parseRange("bytes=-3", 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange("bytes=-30", 10), { start: 0, end: 9 });
  assert.deepEqual(parseRange("bytes=8-100", 10), { start: 8, end: 9 });
  assert.equal(parseRange("bytes=10-", 10), "invalid");
  assert.equal(parseRange("bytes=-0", 10), "invalid");
  assert.equal(parseRange("bytes=0-", 0), "invalid");
  assert.equal(parseRange("bytes=0-1,3-4", 10), null);
  assert.equal(parseRange("items=0-1", 10), null);
  assert.equal(parseRange("bytes=5-2", 10), null);
});

const RECORD: KeyRecord = {
  state: "live",
  volumes: ["localhost:3001"],
  md5: "5d41402abc4b2a76b9719d911017c592",
  info: {
    size: 5,
    mtime: Date.UTC(2026, 0, 2, 3, 4, 5, 600),
    type: "text/plain",
    meta: { a: "b" },
  },
};

Deno.test("checkConditions and objectHeaders: ETag and dates of a record", () => {
  const check = (headers: Record<string, string>) => checkConditions(new Headers(headers), RECORD);
  const etag = '"5d41402abc4b2a76b9719d911017c592"';
  assert.equal(check({}), null);
  assert.equal(check({ "if-match": etag }), null);
  assert.equal(check({ "if-match": '"other", ' + etag }), null);
  assert.equal(check({ "if-match": '"other"' }), 412);
  assert.equal(check({ "if-none-match": etag }), 304);
  assert.equal(check({ "if-none-match": "*" }), 304);
  assert.equal(check({ "if-modified-since": "Fri, 02 Jan 2026 03:04:05 GMT" }), 304);
  assert.equal(check({ "if-modified-since": "Fri, 02 Jan 2026 03:04:04 GMT" }), null);
  assert.equal(check({ "if-unmodified-since": "Fri, 02 Jan 2026 03:04:04 GMT" }), 412);
  assert.deepEqual(objectHeaders(RECORD), {
    "accept-ranges": "bytes",
    "content-type": "text/plain",
    "last-modified": "Fri, 02 Jan 2026 03:04:05 GMT",
    etag,
    "x-amz-meta-a": "b",
  });
  const applies = (ifRange: string) => rangeApplies(new Headers({ "if-range": ifRange }), RECORD);
  assert.equal(rangeApplies(new Headers(), RECORD), true);
  assert.equal(applies(etag), true);
  assert.equal(applies('"other"'), false);
  assert.equal(applies("Fri, 02 Jan 2026 03:04:05 GMT"), true);
  assert.equal(applies("Fri, 02 Jan 2026 03:04:04 GMT"), false);
  assert.equal(
    objectHeaders({ ...RECORD, info: { ...RECORD.info!, etag: "abc-2" } }).etag,
    '"abc-2"',
  );
});

Deno.test("storedHeaders: the five standard headers, aws-chunked left out, bounded", () => {
  assert.equal(storedHeaders(new Headers({ "content-type": "x", "x-amz-meta-a": "b" })), undefined);
  assert.deepEqual(
    storedHeaders(
      new Headers({
        "content-encoding": "deflate, aws-chunked,gzip",
        "cache-control": "no-cache",
        expires: "Thu, 01 Jan 2030 00:00:00 GMT",
      }),
    ),
    {
      "cache-control": "no-cache",
      "content-encoding": "deflate, gzip",
      expires: "Thu, 01 Jan 2030 00:00:00 GMT",
    },
  );
  assert.equal(storedHeaders(new Headers({ "content-encoding": "aws-chunked" })), undefined);
  assert.throws(
    () => storedHeaders(new Headers({ "content-disposition": "x".repeat(2100) })),
    (err) => err instanceof S3Error && err.code === "InvalidArgument",
  );
  assert.deepEqual(
    responseOverrides(new URLSearchParams("response-expires=x&response-content-language=fr&a=b")),
    { expires: "x", "content-language": "fr" },
  );
});

Deno.test("userMetadata: x-amz-meta-* kept, bounded at 2 KB", () => {
  assert.equal(userMetadata(new Headers({ "content-type": "x" })), undefined);
  assert.deepEqual(userMetadata(new Headers({ "x-amz-meta-Color": "blue" })), { color: "blue" });
  assert.equal(
    failureCode(() => userMetadata(new Headers({ "x-amz-meta-a": "v".repeat(2048) }))),
    "400 MetadataTooLarge",
  );
});

Deno.test("parseCopySource and listing parameters", () => {
  assert.deepEqual(parseCopySource("photos/a%20b"), {
    kind: "object",
    bucket: "photos",
    objectKey: "a b",
    key: "/photos/a b",
  });
  assert.equal(parseCopySource("/photos/a?versionId=null").key, "/photos/a");
  assert.equal(failureCode(() => parseCopySource("photos")), "400 InvalidArgument");
  assert.equal(failureCode(() => parseCopySource("photos/a?versionId=3")), "400 InvalidArgument");
  const v2 = parseListParams(
    new URLSearchParams(
      `list-type=2&prefix=a/&delimiter=/&max-keys=5000&continuation-token=${
        encodeToken("a/b")
      }&start-after=a/0`,
    ),
  );
  assert.equal(v2.version, 2);
  assert.equal(v2.maxKeys, 1000);
  assert.equal(v2.after, "a/b");
  assert.equal(v2.startAfter, "a/0");
  assert.equal(parseListParams(new URLSearchParams("marker=m")).after, "m");
  assert.equal(decodeToken(encodeToken("é/ü")), "é/ü");
  assert.equal(
    failureCode(() => parseListParams(new URLSearchParams("max-keys=-1"))),
    "400 InvalidArgument",
  );
  assert.equal(
    failureCode(() => parseListParams(new URLSearchParams("list-type=2&continuation-token=%%"))),
    "400 InvalidArgument",
  );
});

Deno.test("renderProxyLocations: the replica location, the Host header, the --s3-port mark", () => {
  const main = renderProxyLocations();
  assert.match(main, /location @mkv_replica \{/);
  assert.match(main, /proxy_pass http:\/\/\$mkv_volume\$mkv_target;/);
  assert.match(main, /proxy_pass_request_headers off;/);
  assert.match(main, /proxy_set_header Host \$http_host;/);
  assert.match(main, /proxy_set_header x-mkv-s3 "";/);
  const s3 = renderProxyLocations({}, { s3Port: true, volumeCaFile: "/etc/ca.pem" });
  assert.match(s3, /proxy_set_header x-mkv-s3 "1";/);
  assert.match(s3, /proxy_pass https:\/\/\$mkv_volume\$mkv_target;/);
  assert.match(s3, /proxy_ssl_trusted_certificate "\/etc\/ca.pem";/);
});

Deno.test("--s3-port: parsed, and refused when it is the main port or no port", () => {
  const base = ["server", "--db", "/tmp/db", "--volumes", "localhost:3001", "--replicas", "1"];
  const parsed = parseIndexArgs([...base, "--s3-port", "3010"]);
  assert.ok(parsed !== "help");
  assert.equal(parsed.s3Port, 3010);
  const without = parseIndexArgs(base);
  assert.ok(without !== "help");
  assert.equal(without.s3Port, undefined);
  assert.throws(() => parseIndexArgs([...base, "--s3-port", "3000"]), /differ from -port/);
  assert.throws(() => parseIndexArgs([...base, "--s3-port", "70000"]), /not a port number/);
});

Deno.test("parseListBucketsParams: max-buckets, continuation-token, prefix; bad ones refused", () => {
  const parse = (query: string) => parseListBucketsParams(new URLSearchParams(query));
  assert.deepEqual(parse(""), { maxBuckets: 10_000, after: "", prefix: "" });
  assert.deepEqual(parse("max-buckets=1&prefix=ph&continuation-token=cGhvdG9z"), {
    maxBuckets: 1,
    after: "photos",
    prefix: "ph",
  });
  for (const bad of ["max-buckets=0", "max-buckets=10001", "max-buckets=x", "max-buckets=-1"]) {
    assert.throws(() => parse(bad), { code: "InvalidArgument" }, bad);
  }
  assert.throws(() => parse("continuation-token=%FF"), { code: "InvalidArgument" });
});
