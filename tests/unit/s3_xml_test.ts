// Golden tests of S3's XML reader: request bodies as the clients people run write them (Go's
// encoding/xml for rclone and restic, botocore for the AWS CLI and boto3, the JavaScript SDK), and
// the bodies it refuses.

import assert from "node:assert/strict";
import { decodeReferences, parseXml } from "../../lib/s3/xml.ts";
import { parseCompleteBody } from "../../lib/s3/uploadparse.ts";
import { S3Error } from "../../lib/s3/error.ts";

Deno.test("decodeReferences: the five entities and numeric references, in one pass", () => {
  const golden: [string, string][] = [
    ["plain", "plain"],
    ["a &amp; b", "a & b"],
    ["&lt;&gt;&quot;&apos;", `<>"'`],
    ["it&#39;s", "it's"],
    ["&#34;etag&#34;", `"etag"`],
    ["&#x41;&#x0D;&#x0A;&#x9;&#x85;&#x2028;", "A\r\n\t\u0085\u2028"],
    ["&#128512;", "😀"],
    // One pass: an escaped ampersand is never decoded a second time.
    ["&amp;#39;", "&#39;"],
    ["&amp;amp;", "&amp;"],
  ];
  for (const [text, want] of golden) assert.equal(decodeReferences(text), want, text);
});

Deno.test("decodeReferences: a bare &, unknown entities and forbidden characters are refused", () => {
  for (
    const bad of [
      "a & b",
      "&",
      "&foo;",
      "&nbsp;",
      "&#x41",
      "&#;",
      "&#x;",
      "&#0;",
      "&#x1;",
      "&#xFFFE;",
      "&#x110000;",
      "&#55296;",
    ]
  ) {
    assert.equal(decodeReferences(bad), null, bad);
  }
});

Deno.test("parseXml: bodies written by Go's encoding/xml, botocore and the JavaScript SDK", () => {
  // Go (rclone, restic): quotes as &#34;, apostrophes as &#39;, newlines as &#xA;.
  const go = `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
    `<Part><PartNumber>1</PartNumber><ETag>&#34;0cc175b9c0f1b6a831c399e269772661&#34;</ETag></Part>` +
    `<Part><PartNumber>2</PartNumber><ETag>&#34;92eb5ffee6ae2fec3ad71c777531578f&#34;</ETag></Part>` +
    `</CompleteMultipartUpload>`;
  assert.deepEqual(parseCompleteBody(go), [
    { partNumber: 1, etag: "0cc175b9c0f1b6a831c399e269772661" },
    { partNumber: 2, etag: "92eb5ffee6ae2fec3ad71c777531578f" },
  ]);
  const goDelete = `<Delete><Object><Key>it&#39;s &amp; &lt;this&gt;&#xA;</Key></Object>` +
    `<Quiet>false</Quiet></Delete>`;
  assert.deepEqual(parseXml(goDelete), {
    Delete: { Object: [{ Key: "it's & <this>\n" }], Quiet: "false" },
  });
  // botocore (ElementTree): only &, < and > escaped in text; quotes as they are.
  const boto =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
    `<Object><Key>a&amp;b "c" 'd'</Key></Object></Delete>`;
  assert.deepEqual(parseXml(boto).Delete, { Object: [{ Key: `a&b "c" 'd'` }] });
  // The JavaScript SDK: carriage returns and line separators as hexadecimal references.
  const js =
    `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
    `<Object><Key>line&#x0D;&#x0A;sep&#x2028;</Key></Object></Delete>`;
  assert.deepEqual(parseXml(js).Delete, { Object: [{ Key: "line\r\nsep\u2028" }] });
});

Deno.test("parseXml: DTDs, entity definitions and unknown entities are MalformedXML", () => {
  const bodies = [
    `<!DOCTYPE d [<!ENTITY a "b">]><Delete><Object><Key>&a;</Key></Object></Delete>`,
    `<?xml version="1.0"?><!doctype d SYSTEM "file:///etc/passwd"><Delete/>`,
    `<Delete><Object><Key>&a;</Key></Object></Delete>`,
    `<Delete><Object><Key>a & b</Key></Object></Delete>`,
  ];
  for (const body of bodies) {
    assert.throws(
      () => parseXml(body),
      (err) => err instanceof S3Error && err.code === "MalformedXML" && err.status === 400,
      body,
    );
  }
});
