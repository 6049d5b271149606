// Golden and interop tests of SigV4 (lib/s3/sigv4.ts, sigv4canonical.ts,
// sigv4parse.ts): AWS's documented S3 SigV4 examples (header auth,
// presigned URL, the chunked upload's seed signature), requests signed by AWS's own signer
// (@smithy/signature-v4) with awkward keys and queries, every refusal with S3's code, and the
// streamed payload check. Run: node_modules/.bin/deno test -A tests/unit/s3_sigv4_test.ts

import assert from "node:assert/strict";
import { SignatureV4 } from "npm:@smithy/signature-v4@5.7.5";
import { Sha256 } from "npm:@aws-crypto/sha256-js@5.2.0";
import { sha256Verifier, type SigV4Verdict, verifySigV4 } from "../../lib/s3/sigv4.ts";
import {
  canonicalQuery,
  canonicalRequest,
  canonicalUri,
  EMPTY_SHA256,
  formatAmzDate,
  parseAmzDate,
  sha256Hex,
  type SigV4Input,
} from "../../lib/s3/sigv4canonical.ts";
import { uriEncode } from "../../lib/s3/_sigv4.ts";
import { type ParsedSigV4, parseSigV4, STREAMING_PAYLOAD } from "../../lib/s3/sigv4parse.ts";
import { S3Error } from "../../lib/s3/error.ts";
import {
  CHUNKED_SEED_SIGNATURE,
  chunkedExampleInput,
  EXAMPLE_KEY,
  EXAMPLE_MS,
  exampleAuthorization,
  exampleOptions,
  SKEW_MS,
} from "../s3_examples.ts";

const EXAMPLE_HOST = "examplebucket.s3.amazonaws.com";

/** AWS's "GET Object" example: a range read of /test.txt. */
function getObjectExample(): SigV4Input {
  return {
    method: "GET",
    rawPath: "/test.txt",
    rawQuery: "",
    headers: new Headers({
      host: EXAMPLE_HOST,
      range: "bytes=0-9",
      "x-amz-content-sha256": EMPTY_SHA256,
      "x-amz-date": "20130524T000000Z",
      authorization: exampleAuthorization(
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
      ),
    }),
  };
}

function assertFailure(verdict: SigV4Verdict, status: number, code: string, message?: RegExp) {
  assert.equal(verdict.ok, false, `expected ${code}, got ${JSON.stringify(verdict)}`);
  if (verdict.ok) return;
  assert.equal(verdict.code, code, verdict.message);
  assert.equal(verdict.status, status);
  if (message) assert.match(verdict.message, message);
}

function parsed(input: SigV4Input): ParsedSigV4 {
  const result = parseSigV4(input);
  assert.ok(result !== null && !("ok" in result), JSON.stringify(result));
  return result;
}

Deno.test("sigv4: AWS's GET Object example, its canonical request and signature", () => {
  const input = getObjectExample();
  assert.equal(
    canonicalRequest(input, parsed(input)),
    [
      "GET",
      "/test.txt",
      "",
      `host:${EXAMPLE_HOST}`,
      "range:bytes=0-9",
      `x-amz-content-sha256:${EMPTY_SHA256}`,
      "x-amz-date:20130524T000000Z",
      "",
      "host;range;x-amz-content-sha256;x-amz-date",
      EMPTY_SHA256,
    ].join("\n"),
  );
  assert.equal(
    sha256Hex(canonicalRequest(input, parsed(input))),
    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
  );
  assert.deepEqual(verifySigV4(input, exampleOptions()), {
    ok: true,
    accessKey: EXAMPLE_KEY,
    payloadHash: EMPTY_SHA256,
    presigned: false,
  });
});

Deno.test("sigv4: AWS's PUT Object example ($ in the key, Date and x-amz-date)", () => {
  const body = "Welcome to Amazon S3.";
  const input: SigV4Input = {
    method: "PUT",
    rawPath: "/test$file.text",
    rawQuery: "",
    headers: new Headers({
      host: EXAMPLE_HOST,
      date: "Fri, 24 May 2013 00:00:00 GMT",
      "x-amz-date": "20130524T000000Z",
      "x-amz-storage-class": "REDUCED_REDUNDANCY",
      "x-amz-content-sha256": sha256Hex(body),
      authorization: exampleAuthorization(
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
      ),
    }),
  };
  assert.equal(sha256Hex(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  assert.equal(canonicalUri(input.rawPath), "/test%24file.text");
  const verdict = verifySigV4(input, exampleOptions());
  assert.ok(verdict.ok, JSON.stringify(verdict));
  // The same request with the key sent encoded signs the same.
  assert.ok(verifySigV4({ ...input, rawPath: "/test%24file.text" }, exampleOptions()).ok);
});

Deno.test("sigv4: AWS's bucket examples: a query without a value, and one to sort", () => {
  const bucketGet = (rawQuery: string, signature: string): SigV4Input => ({
    method: "GET",
    rawPath: "/",
    rawQuery,
    headers: new Headers({
      host: EXAMPLE_HOST,
      "x-amz-content-sha256": EMPTY_SHA256,
      "x-amz-date": "20130524T000000Z",
      authorization: exampleAuthorization("host;x-amz-content-sha256;x-amz-date", signature),
    }),
  });
  const lifecycle = bucketGet(
    "lifecycle",
    "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
  );
  assert.ok(verifySigV4(lifecycle, exampleOptions()).ok);
  const list = bucketGet(
    "prefix=J&max-keys=2",
    "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
  );
  assert.equal(canonicalQuery(list.rawQuery, false), "max-keys=2&prefix=J");
  assert.ok(verifySigV4(list, exampleOptions()).ok);
});

Deno.test("sigv4: AWS's presigned URL example, until it expires", () => {
  const input: SigV4Input = {
    method: "GET",
    rawPath: "/test.txt",
    rawQuery: "X-Amz-Algorithm=AWS4-HMAC-SHA256" +
      `&X-Amz-Credential=${EXAMPLE_KEY}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request` +
      "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
      "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
    headers: new Headers({ host: EXAMPLE_HOST }),
  };
  assert.deepEqual(verifySigV4(input, exampleOptions(EXAMPLE_MS + 3_600_000)), {
    ok: true,
    accessKey: EXAMPLE_KEY,
    payloadHash: "UNSIGNED-PAYLOAD",
    presigned: true,
  });
  assert.ok(verifySigV4(input, exampleOptions(EXAMPLE_MS + 86_400_000)).ok, "the last second");
  assertFailure(
    verifySigV4(input, exampleOptions(EXAMPLE_MS + 86_401_000)),
    403,
    "AccessDenied",
    /^Request has expired$/,
  );
  assertFailure(
    verifySigV4(input, exampleOptions(EXAMPLE_MS - SKEW_MS - 1000)),
    403,
    "AccessDenied",
    /not valid yet/,
  );
  const tampered = { ...input, rawPath: "/test.txu" };
  assertFailure(verifySigV4(tampered, exampleOptions()), 403, "SignatureDoesNotMatch");
  // Out of S3's bounds (more than a week, or negative) is an AccessDenied, as S3 answers it.
  for (const expires of ["604801", "-7"]) {
    const outOfBounds = { ...input, rawQuery: input.rawQuery.replace("86400", expires) };
    assertFailure(verifySigV4(outOfBounds, exampleOptions()), 403, "AccessDenied", /604800/);
  }
  const notNumber = { ...input, rawQuery: input.rawQuery.replace("86400", "soon") };
  assertFailure(
    verifySigV4(notNumber, exampleOptions()),
    400,
    "AuthorizationQueryParametersError",
  );
});

Deno.test("sigv4: AWS's chunked upload example: the seed signature and what chunks need", () => {
  const input = chunkedExampleInput();
  const verdict = verifySigV4(input, exampleOptions());
  assert.ok(verdict.ok, JSON.stringify(verdict));
  assert.equal(verdict.payloadHash, STREAMING_PAYLOAD);
  assert.equal(verdict.streaming?.amzDate, "20130524T000000Z");
  assert.equal(verdict.streaming?.scope, "20130524/us-east-1/s3/aws4_request");
  assert.equal(
    verdict.streaming?.seedSignature,
    CHUNKED_SEED_SIGNATURE,
  );
});

Deno.test("sigv4: requests that are not SigV4 are null; malformed ones say why", () => {
  const bare = (headers: Record<string, string>, rawQuery = ""): SigV4Input => ({
    method: "GET",
    rawPath: "/b/k",
    rawQuery,
    headers: new Headers({ host: "localhost", ...headers }),
  });
  assert.equal(parseSigV4(bare({})), null);
  assert.equal(parseSigV4(bare({ authorization: "Basic YTpi" })), null);
  assert.equal(parseSigV4(bare({ authorization: "AWS AKID:c2ln" })), null);
  assertFailure(verifySigV4(bare({}), exampleOptions()), 403, "AccessDenied");

  const example = getObjectExample();
  const withAuthorization = (authorization: string): SigV4Input => {
    const headers = new Headers(example.headers);
    headers.set("authorization", authorization);
    return { ...example, headers };
  };
  const good = example.headers.get("authorization")!;
  const cases: [string, number, string][] = [
    [good.replace(/Signature=[0-9a-f]+/, ""), 400, "AuthorizationHeaderMalformed"],
    [good.replace("/s3/", "/ec2/"), 400, "AuthorizationHeaderMalformed"],
    [good.replace("aws4_request", "aws5_request"), 400, "AuthorizationHeaderMalformed"],
    [good.replace("20130524/", "20130525/"), 400, "AuthorizationHeaderMalformed"],
    [good.replace("host;", ""), 400, "AuthorizationHeaderMalformed"],
    [good.replace("Signature=f0e8", "Signature=F0E8"), 400, "AuthorizationHeaderMalformed"],
    [good.replace(EXAMPLE_KEY, "AKIANOBODY"), 403, "InvalidAccessKeyId"],
    [good.replace("f0e8", "f0e9"), 403, "SignatureDoesNotMatch"],
  ];
  for (const [authorization, status, code] of cases) {
    assertFailure(verifySigV4(withAuthorization(authorization), exampleOptions()), status, code);
  }

  const both = { ...example, rawQuery: "X-Amz-Algorithm=AWS4-HMAC-SHA256" };
  assertFailure(verifySigV4(both, exampleOptions()), 400, "InvalidArgument");
  const noPayloadHash = new Headers(example.headers);
  noPayloadHash.delete("x-amz-content-sha256");
  assertFailure(
    verifySigV4({ ...example, headers: noPayloadHash }, exampleOptions()),
    400,
    "InvalidRequest",
  );
  const badDate = new Headers(example.headers);
  badDate.set("x-amz-date", "20130524T250000Z");
  assertFailure(
    verifySigV4({ ...example, headers: badDate }, exampleOptions()),
    403,
    "AccessDenied",
  );
  const extra = new Headers(example.headers);
  extra.set("x-amz-copy-source", "/examplebucket/secret");
  assertFailure(
    verifySigV4({ ...example, headers: extra }, exampleOptions()),
    403,
    "AccessDenied",
    /not signed: x-amz-copy-source/,
  );
  assertFailure(
    verifySigV4(example, exampleOptions(EXAMPLE_MS + SKEW_MS + 1000)),
    403,
    "RequestTimeTooSkewed",
  );
  assertFailure(
    verifySigV4(bare({}, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"), exampleOptions()),
    400,
    "AuthorizationQueryParametersError",
  );
});

Deno.test("sigv4: X-Amz-Date is a real date-time in ISO 8601 basic form", () => {
  assert.equal(parseAmzDate("20130524T000000Z"), EXAMPLE_MS);
  assert.equal(formatAmzDate(EXAMPLE_MS + 1_234), "20130524T000001Z");
  for (
    const text of ["20131324T000000Z", "20130231T000000Z", "20130524T240000Z", "20130524T006000Z"]
  ) {
    assert.equal(parseAmzDate(text), null, text);
  }
  assert.equal(parseAmzDate("2013-05-24T00:00:00Z"), null);
});

Deno.test("sigv4: the canonical URI and query, decoded then encoded as S3 does", () => {
  assert.equal(canonicalUri(""), "/");
  // A '/' sent encoded is a '/' like any other: S3's clients keep them as they are in keys.
  assert.equal(canonicalUri("/a%7eb/c~d/%2Fe"), "/a~b/c~d//e");
  assert.equal(canonicalUri("/a b+c/é"), "/a%20b%2Bc/%C3%A9");
  assert.equal(canonicalUri("/100%/%zz"), "/100%25/%25zz");
  assert.equal(canonicalUri("/x/../y//z"), "/x/../y//z");
  assert.equal(uriEncode("a/b c*'()!"), "a%2Fb%20c%2A%27%28%29%21");
  assert.equal(
    canonicalQuery("b=2&a=2&a=1&c&X-Amz-Signature=ab&q=%7e+x", true),
    "a=1&a=2&b=2&c=&q=~%2Bx",
  );
  assert.equal(canonicalQuery("X-Amz-Signature=ab", false), "X-Amz-Signature=ab");
});

const SMITHY_KEY = "smithy.key~1";
const SMITHY_SECRET = "se cret+/=~é";

function smithySigner(secret = SMITHY_SECRET): SignatureV4 {
  return new SignatureV4({
    credentials: { accessKeyId: SMITHY_KEY, secretAccessKey: secret },
    region: "eu-nowhere-1",
    service: "s3",
    sha256: Sha256,
    // S3's clients encode each key once themselves; the signer must not encode it again.
    uriEscapePath: false,
    applyChecksum: false,
  });
}

const smithyOptions = (nowMs: number) => ({
  secretFor: (key: string) => key === SMITHY_KEY ? SMITHY_SECRET : null,
  nowMs,
  maxSkewMs: SKEW_MS,
});

/** Keys that exercise the encoding: spaces, unicode, every character signers treat specially. */
const ODD_KEYS = [
  "plain.txt",
  "with space/and+plus/=equals/~tilde",
  "ünïcødé/日本語/😀",
  "all/!'()*$&,;:@[]#?%",
  "trailing/",
];
const ODD_QUERY = { "prefix": "a b+c=d~e", "delimiter": "/", "x-id": "ünï", "empty": "" };

/** The query as a client would send it: encodeURIComponent, which differs from AWS's encoding. */
function sentQuery(query: Record<string, string | string[] | null>): string {
  return Object.entries(query).map(([name, value]) =>
    `${encodeURIComponent(name)}=${encodeURIComponent(String(value ?? ""))}`
  ).join("&");
}

/** The path as a client might send it: encodeURI's choices, with lower-case hex. */
function sentPath(key: string): string {
  return "/bucket/" +
    key.split("/").map((part) =>
      encodeURIComponent(part).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())
    ).join("/");
}

Deno.test("sigv4: requests signed by AWS's signer (@smithy/signature-v4) verify", async () => {
  const nowMs = Date.now();
  for (const key of ODD_KEYS) {
    const path = "/bucket/" + uriEncode(key, true);
    const signed = await smithySigner().sign({
      method: "PUT",
      protocol: "http:",
      hostname: "127.0.0.1",
      port: 8080,
      path,
      query: ODD_QUERY,
      headers: {
        host: "127.0.0.1:8080",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-meta-note": "  spaced   out  ",
        "content-type": "text/plain",
      },
    }, { signingDate: new Date(nowMs) });
    const headers = new Headers(signed.headers as Record<string, string>);
    const input: SigV4Input = {
      method: "PUT",
      rawPath: sentPath(key),
      rawQuery: sentQuery(signed.query as Record<string, string>),
      headers,
    };
    const verdict = verifySigV4(input, smithyOptions(nowMs));
    assert.ok(verdict.ok, `${key}: ${JSON.stringify(verdict)}`);
    assert.equal(verdict.accessKey, SMITHY_KEY);

    assertFailure(
      verifySigV4({ ...input, rawPath: sentPath(key + "x") }, smithyOptions(nowMs)),
      403,
      "SignatureDoesNotMatch",
    );
    assertFailure(
      verifySigV4(
        { ...input, rawQuery: input.rawQuery.replace("delimiter", "delimiteR") },
        smithyOptions(nowMs),
      ),
      403,
      "SignatureDoesNotMatch",
    );
    const tampered = new Headers(headers);
    tampered.set("x-amz-meta-note", "other");
    assertFailure(
      verifySigV4({ ...input, headers: tampered }, smithyOptions(nowMs)),
      403,
      "SignatureDoesNotMatch",
    );
    assertFailure(
      verifySigV4(input, { ...smithyOptions(nowMs), secretFor: () => "not the secret" }),
      403,
      "SignatureDoesNotMatch",
    );
    assertFailure(
      verifySigV4(input, smithyOptions(nowMs + SKEW_MS + 1000)),
      403,
      "RequestTimeTooSkewed",
    );
  }
});

/** A text as the index sees it in a header: each UTF-8 byte as one latin-1 character. */
function asHeaderBytes(text: string): string {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

Deno.test("sigv4: a non-ASCII x-amz-meta-* value verifies as its bytes were signed", async () => {
  const nowMs = Date.now();
  const value = "ünïcødé 日本語 😀";
  const signed = await smithySigner().sign({
    method: "PUT",
    protocol: "http:",
    hostname: "127.0.0.1",
    port: 8080,
    path: "/bucket/key",
    query: {},
    headers: {
      host: "127.0.0.1:8080",
      "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
      "x-amz-meta-name": value,
    },
  }, { signingDate: new Date(nowMs) });
  const headers = new Headers();
  for (const [name, sent] of Object.entries(signed.headers as Record<string, string>)) {
    headers.set(name, asHeaderBytes(sent));
  }
  const input: SigV4Input = { method: "PUT", rawPath: "/bucket/key", rawQuery: "", headers };
  const verdict = verifySigV4(input, smithyOptions(nowMs));
  assert.ok(verdict.ok, JSON.stringify(verdict));
  headers.set("x-amz-meta-name", asHeaderBytes(value.replace("ü", "u")));
  assertFailure(verifySigV4(input, smithyOptions(nowMs)), 403, "SignatureDoesNotMatch");
});

Deno.test("sigv4: URLs presigned by AWS's signer verify until they expire", async () => {
  const nowMs = Date.now();
  for (const key of ODD_KEYS) {
    const presigned = await smithySigner().presign({
      method: "GET",
      protocol: "http:",
      hostname: "127.0.0.1",
      port: 8080,
      path: "/bucket/" + uriEncode(key, true),
      query: ODD_QUERY,
      // As S3's presigner does: the body is not signed.
      headers: { host: "127.0.0.1:8080", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    }, { signingDate: new Date(nowMs), expiresIn: 600 });
    const input: SigV4Input = {
      method: "GET",
      rawPath: sentPath(key),
      rawQuery: sentQuery(presigned.query as Record<string, string>),
      headers: new Headers({ host: "127.0.0.1:8080" }),
    };
    const verdict = verifySigV4(input, smithyOptions(nowMs + 60_000));
    assert.ok(verdict.ok, `${key}: ${JSON.stringify(verdict)}`);
    assert.equal(verdict.presigned, true);
    assert.equal(verdict.payloadHash, "UNSIGNED-PAYLOAD");

    assertFailure(verifySigV4(input, smithyOptions(nowMs + 601_000)), 403, "AccessDenied");
    assertFailure(
      verifySigV4({ ...input, method: "DELETE" }, smithyOptions(nowMs)),
      403,
      "SignatureDoesNotMatch",
    );
    assertFailure(
      verifySigV4({ ...input, rawPath: "/bucket/other" }, smithyOptions(nowMs)),
      403,
      "SignatureDoesNotMatch",
    );
    assertFailure(
      verifySigV4(
        { ...input, headers: new Headers({ host: "127.0.0.1:8081" }) },
        smithyOptions(nowMs),
      ),
      403,
      "SignatureDoesNotMatch",
    );
    assertFailure(
      verifySigV4(
        { ...input, rawQuery: input.rawQuery.replace("X-Amz-Expires=600", "X-Amz-Expires=6000") },
        smithyOptions(nowMs),
      ),
      403,
      "SignatureDoesNotMatch",
    );
  }
});

Deno.test("sigv4: a signed streaming upload from AWS's signer carries its seed", async () => {
  const nowMs = Date.now();
  const signed = await smithySigner().sign({
    method: "PUT",
    protocol: "http:",
    hostname: "127.0.0.1",
    path: "/bucket/k",
    query: {},
    headers: {
      host: "127.0.0.1",
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
      "x-amz-trailer": "x-amz-checksum-crc32",
      "x-amz-decoded-content-length": "5",
      "content-encoding": "aws-chunked",
    },
  }, { signingDate: new Date(nowMs) });
  const authorization = (signed.headers as Record<string, string>).authorization;
  const verdict = verifySigV4({
    method: "PUT",
    rawPath: "/bucket/k",
    rawQuery: "",
    headers: new Headers(signed.headers as Record<string, string>),
  }, smithyOptions(nowMs));
  assert.ok(verdict.ok, JSON.stringify(verdict));
  assert.equal(verdict.streaming?.seedSignature, authorization.split("Signature=")[1]);
});

async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("sigv4: sha256Verifier passes a body through, and refuses one that differs", async () => {
  const body = new TextEncoder().encode("Welcome to Amazon S3.");
  const source = () => new Blob([body.subarray(0, 7), body.subarray(7)]).stream();
  const hash = sha256Hex(body);
  assert.deepEqual(await drain(source().pipeThrough(sha256Verifier(hash))), body);
  assert.deepEqual(await drain(source().pipeThrough(sha256Verifier(hash.toUpperCase()))), body);
  await assert.rejects(
    drain(source().pipeThrough(sha256Verifier(EMPTY_SHA256))),
    (err: unknown) =>
      err instanceof S3Error && err.code === "XAmzContentSHA256Mismatch" &&
      err.status === 400,
  );
});
