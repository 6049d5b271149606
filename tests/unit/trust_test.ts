// Unit tests of the GET without a volume check (docs/design.md, "A GET trusts the record"): the
// volume's config with --index (golden), the index URLs volume.ts accepts, the key of a path a
// volume sends back, and the headers of the index's requests and of a probe's answer.
//
//   deno test -A tests/unit/trust_test.ts

import assert from "node:assert/strict";
import { renderVolumeLocations, validIndexUrl } from "../../lib/nginx/volumeconf.ts";
import { missedKey } from "../../lib/core/miss.ts";
import { keyToPath, versionPath } from "../../lib/placement.ts";
import { encodeRequest, parseResponseHead } from "../../lib/volumes/_http1.ts";
import { parseVolumeArgs } from "../../volume.ts";

/** What --index adds to a volume's locations, beside those of one without it. */
const MISS_LINES = {
  probe: `      add_header X-Mkv-Misses "http://localhost:3000";`,
  errorPage: `      error_page 404 = @mkv_miss;`,
  location: `    location @mkv_miss {
      if ($http_x_mkv_from_index) {
        return 404;
      }
      if ($request_method !~ "^(GET|HEAD)$") {
        return 404;
      }
      return 302 "http://localhost:3000/-/miss$uri?volume=$http_host";
    }`,
};

Deno.test("renderVolumeLocations with an index: misses go back to it, the probe says so (golden)", () => {
  const plain = renderVolumeLocations({ dir: "/d" });
  const withIndex = renderVolumeLocations({ dir: "/d", index: "http://localhost:3000" });
  const expected = plain
    .replace("    location / {\n", `    location / {\n${MISS_LINES.probe}\n`)
    .replace(/( {4}location ~ "[^\n]*" \{\n)/, `$1${MISS_LINES.errorPage}\n`) +
    `\n${MISS_LINES.location}`;
  assert.equal(withIndex, expected);
  assert.ok(!plain.includes("mkv_miss") && !plain.includes("X-Mkv-Misses"));
});

Deno.test("validIndexUrl: http(s)://host[:port][/path], nothing nginx would read otherwise", () => {
  for (const url of ["http://localhost:3000", "https://idx.example.com", "http://[::1]:3000/kv"]) {
    assert.ok(validIndexUrl(url), url);
  }
  for (
    const url of [
      "localhost:3000",
      "ftp://x",
      "http://x/",
      "http://x?a=1",
      "http://x/$uri",
      'http://x/"',
      "http://x y",
      "http://x/a;b",
    ]
  ) {
    assert.ok(!validIndexUrl(url), url);
  }
});

Deno.test("volume.ts --index: kept without a trailing slash, refused if not an index URL", () => {
  const parsed = parseVolumeArgs(["--dir", "/d", "--index", "http://localhost:3000/"]);
  assert.ok(parsed !== "help");
  assert.equal(parsed.index, "http://localhost:3000");
  const none = parseVolumeArgs(["--dir", "/d"]);
  assert.ok(none !== "help" && none.index === undefined);
  assert.throws(() => parseVolumeArgs(["--dir", "/d", "--index", "localhost:3000"]), /-index/);
});

Deno.test("missedKey: the key of a file's path as a volume sees it, subvolume and version aside", () => {
  const path = keyToPath("/photos/1.jpg");
  assert.equal(missedKey(path), "/photos/1.jpg");
  assert.equal(missedKey(`/sv05${path}`), "/photos/1.jpg");
  assert.equal(missedKey(versionPath(path, "0193a5f2c4000001")), "/photos/1.jpg");
  assert.equal(missedKey("/sv05/00/00/aGVsbG8="), null);
  assert.equal(missedKey("/etc/passwd"), null);
  assert.equal(missedKey(""), null);
});

Deno.test("the index's requests say whose they are; a probe's answer says if misses come back", () => {
  const text = new TextDecoder().decode(encodeRequest("HEAD", "localhost:3001", "/a", null));
  assert.equal(text, "HEAD /a HTTP/1.1\r\nHost: localhost:3001\r\nX-Mkv-From-Index: 1\r\n\r\n");
  assert.equal(
    parseResponseHead("HTTP/1.1 200 OK\r\nx-mkv-misses: http://localhost:3000")?.sendsMisses,
    true,
  );
  assert.equal(parseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 0")?.sendsMisses, undefined);
});
