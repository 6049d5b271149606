// Golden tests of lib/core/pages.ts: the key pages' encoding, their order (KV's, by UTF-8 bytes),
// a page's changes, its split, the packing of a build, and the assembly of a `?list` answer.

import assert from "node:assert/strict";
import {
  compareKeys,
  decodePage,
  encodePage,
  fits,
  insertKey,
  keyAfter,
  ListingBody,
  packPages,
  PAGE_FILL_KEYS,
  PAGE_MAX_KEYS,
  PAGE_MAX_UNITS,
  pageElements,
  removeKey,
  splitPage,
} from "../../lib/core/pages.ts";

Deno.test("a page is its count and its keys as a JSON array, and decodes back", () => {
  assert.equal(encodePage(["/a", "/b c", 'q"\n']), '3 ["/a","/b c","q\\"\\n"]');
  assert.equal(encodePage([]), "0 []");
  assert.deepEqual(decodePage('3 ["/a","/b c","q\\"\\n"]'), ["/a", "/b c", 'q"\n']);
  assert.deepEqual(decodePage("0 []"), []);
  assert.deepEqual(pageElements('2 ["/a","/b"]'), { count: 2, elements: '"/a","/b"' });
  assert.deepEqual(pageElements("0 []"), { count: 0, elements: "" });
  assert.throws(() => decodePage('["/a"]'), /bad key page/);
  assert.throws(() => decodePage("1 [1]"), /bad key page/);
});

Deno.test("keys order as KV orders them, by UTF-8 bytes, not UTF-16 units", () => {
  const encoder = new TextEncoder();
  const byBytes = (a: string, b: string) => {
    const x = encoder.encode(a);
    const y = encoder.encode(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  };
  // U+FF5E (a unit above the surrogates) sorts before U+1F600 in UTF-8, after it in UTF-16.
  const keys = ["/a", "/\uff5e", "/\u{1f600}", "/", "/a\0", "/\u00e9", "/b", "/ab", "/\ud7ff"];
  const sorted = [...keys].sort(compareKeys);
  assert.deepEqual(sorted, [...keys].sort(byBytes));
  assert.deepEqual(sorted, [
    "/",
    "/a",
    "/a\0",
    "/ab",
    "/b",
    "/\u00e9",
    "/\ud7ff",
    "/\uff5e",
    "/\u{1f600}",
  ]);
  assert.ok("/\u{1f600}" < "/\uff5e", "JavaScript's own order differs there");
  assert.equal(compareKeys("/a", "/a"), 0);
  assert.ok(compareKeys("/a", keyAfter("/a")) < 0 && compareKeys(keyAfter("/a"), "/a\u0001") < 0);
});

Deno.test("insertKey and removeKey keep a page sorted and say whether they changed it", () => {
  const keys = ["/b", "/d"];
  assert.equal(insertKey(keys, "/c"), true);
  assert.equal(insertKey(keys, "/a"), true);
  assert.equal(insertKey(keys, "/e"), true);
  assert.equal(insertKey(keys, "/c"), false);
  assert.deepEqual(keys, ["/a", "/b", "/c", "/d", "/e"]);
  assert.equal(removeKey(keys, "/c"), true);
  assert.equal(removeKey(keys, "/c"), false);
  assert.equal(removeKey(keys, "/z"), false);
  assert.deepEqual(keys, ["/a", "/b", "/d", "/e"]);
});

Deno.test("a page over its bounds splits in halves, each bounded by its first key", () => {
  const key = (i: number) => `/${i.toString(36).padStart(2, "0")}`;
  const many = Array.from({ length: PAGE_MAX_KEYS + 1 }, (_, i) => key(i));
  assert.equal(fits(many), false);
  assert.equal(fits(many.slice(1)), true);
  const halves = splitPage({ bound: "", keys: many });
  assert.deepEqual(halves.map((page) => [page.bound, page.keys.length]), [
    ["", 512],
    [key(512), 513],
  ]);
  // By units: 80 keys of 200 units (203 in JSON with a comma) make two pages of 40.
  const long = Array.from(
    { length: 80 },
    (_, i) => `/${String(i).padStart(2, "0")}${"x".repeat(197)}`,
  );
  const pieces = splitPage({ bound: "/", keys: long });
  assert.deepEqual(pieces.map((page) => page.keys.length), [40, 40]);
  assert.equal(pieces[0].bound, "/");
  for (const page of pieces) assert.ok(encodePage(page.keys).length <= PAGE_MAX_UNITS);
  for (const page of pieces.slice(1)) assert.equal(page.bound, page.keys[0]);
  assert.deepEqual(pieces.flatMap((page) => page.keys), long);
  // A page that fits, and a page of one key, come back alone.
  assert.deepEqual(splitPage({ bound: "/a", keys: ["/b"] }), [{ bound: "/a", keys: ["/b"] }]);
});

Deno.test("a build packs pages to three quarters; no keys make only the first page", () => {
  const keys = Array.from({ length: 1000 }, (_, i) => `/${String(i).padStart(4, "0")}`);
  const pages = packPages("", keys);
  assert.deepEqual(pages.map((page) => page.keys.length), [PAGE_FILL_KEYS, 232]);
  assert.deepEqual(pages.map((page) => page.bound), ["", "/0768"]);
  assert.deepEqual(packPages("/\0", keys.slice(5, 7)), [{
    bound: "/\0",
    keys: ["/0005", "/0006"],
  }]);
  assert.deepEqual(packPages("", []), [{ bound: "", keys: [] }]);
  assert.deepEqual(packPages("/m", []), []);
  const long = Array.from(
    { length: 80 },
    (_, i) => `/${String(i).padStart(2, "0")}${"y".repeat(197)}`,
  );
  for (const page of packPages("", long)) assert.ok(fits(page.keys));
});

Deno.test("a listing's answer is JSON.stringify's, from pages passed whole or split at the limit", () => {
  const pages = [["/a", "/b"], ["/c", 'q"'], ["/e", "/f", "/g"]];
  const run = (keys: string[]) => pageElements(encodePage(keys));
  for (const limit of [0, 1, 2, 3, 4, 5, 7, 8, 10_000]) {
    const body = new ListingBody(limit);
    body.add({ keys: ["/0"] });
    for (const keys of pages) if (!body.add(run(keys))) break;
    const all = ["/0", ...pages.flat()];
    const want = { next: all[limit] ?? "", keys: all.slice(0, limit) };
    assert.equal(body.text(), JSON.stringify(want), `limit ${limit}`);
    assert.equal(body.full, limit < all.length);
  }
  const empty = new ListingBody(10);
  assert.equal(empty.add(run([])), true);
  assert.equal(empty.text(), '{"next":"","keys":[]}');
});
