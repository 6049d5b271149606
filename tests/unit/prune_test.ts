// The volume's removal of empty directories (lib/volumes/prune.ts), without a volume: what a pass
// removes and keeps, and the pass command. A real volume pruning is in tests/cluster/prune_test.ts.
//
//   node_modules/.bin/deno test -A tests/unit/prune_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { pruneEmptyDirs } from "../../lib/volumes/prune.ts";
import { passCommand } from "../../lib/volumes/_prune.ts";
import { exists, tempDir } from "../helpers.ts";
import { layout, tree } from "../dir_layout.ts";

Deno.test("pruneEmptyDirs removes the layout's empty directories left alone for the age, deepest first, and nothing else", async () => {
  await using dir = await tempDir();
  const old = [
    "ab/cd/", // holds a file: kept
    "ab/ce/", // empty: removed
    "ab/",
    "12/34/x/y/", // an empty tree (base64 names with `/`): removed whole, in one pass
    "12/34/x/",
    "12/34/",
    "12/",
    "sv01/5d/41/", // empty, in a subvolume: removed with its parent
    "sv01/5d/",
    "sv01/66/77/", // empty but its parent changed lately: the child goes, the parent stays
    ".tmp/", // nginx's spool: not the layout's, kept
    "zz/", // not a hex directory: kept
  ];
  await layout(dir.path, [
    "ab/cd/aGVsbG8=",
    "ab/ce/",
    "ab/cf/", // empty but new: kept
    "12/34/x/y/",
    "sv01/5d/41/",
    "sv01/66/77/",
    ".tmp/",
    "zz/",
    ".mkv-disk",
  ], old);
  await Deno.utime(join(dir.path, "sv01/66"), new Date(), new Date());
  const result = await pruneEmptyDirs(dir.path, { ageMs: 3600_000 });
  assert.deepEqual(await tree(dir.path), [
    ".mkv-disk",
    ".tmp/",
    "ab/",
    "ab/cd/",
    "ab/cd/aGVsbG8=",
    "ab/cf/",
    "sv01/",
    "sv01/66/",
    "zz/",
  ]);
  assert.equal(result.removed, 8);
  assert.equal(result.refused, 0);
  // A second pass finds nothing more to do; an age of zero takes the new ones too.
  assert.equal((await pruneEmptyDirs(dir.path, { ageMs: 3600_000 })).removed, 0);
  assert.equal((await pruneEmptyDirs(dir.path, { ageMs: 0 })).removed, 2);
  assert.ok(await exists(join(dir.path, "ab/cd/aGVsbG8=")));
});

Deno.test("passCommand: a pass as the workers' account, its rights bounded to the directory", () => {
  assert.deepEqual(
    passCommand("/srv/v1", {
      account: { uid: 999, gid: 995 },
      ageMs: 600_000,
      deno: "/usr/bin/deno",
      script: "/opt/mkv/lib/prunepass.ts",
    }),
    [
      "setpriv",
      "--reuid=999",
      "--regid=995",
      "--clear-groups",
      "--",
      "/usr/bin/deno",
      "run",
      "--allow-read=/srv/v1",
      "--allow-write=/srv/v1",
      "/opt/mkv/lib/prunepass.ts",
      "/srv/v1",
      "600000",
    ],
  );
});
