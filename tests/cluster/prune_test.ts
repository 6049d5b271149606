// The volume's removal of empty directories (lib/volumes/prune.ts) on real volumes: a volume that
// prunes at start, and passes racing PUTs without a stored value lost. What a pass removes and
// keeps is in tests/unit/prune_test.ts.
//
//   node_modules/.bin/deno test -A tests/cluster/prune_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnVolume } from "../../dev/cluster.ts";
import { DEFAULT_WORKER_USER, workerAccount } from "../../nginx.ts";
import { keyToPath } from "../../lib/placement.ts";
import { pruneEmptyDirs } from "../../lib/volumes/prune.ts";
import { eventually, exists, freePorts, request, tempDir } from "../helpers.ts";
import { layout, LONG_AGO, tree } from "../dir_layout.ts";

/** How long a freshly started volume may take to finish its first pass over a small directory. */
const FIRST_PASS_MS = 10_000;

/**
 * Makes a directory laid out by hand a volume's as volume.ts set it up, so that a volume started
 * by root takes it: its contents the workers' (mode 0700), itself root's, the workers' group, mode
 * 1770. Not root: the invoking user's, as it is. Dates are kept.
 */
async function asVolumeMade(root: string): Promise<void> {
  const workers = await workerAccount(DEFAULT_WORKER_USER);
  if (workers === null || Deno.uid() !== 0) return;
  for (const path of await tree(root)) {
    await Deno.chown(join(root, path), workers.uid, workers.gid);
    await Deno.chmod(join(root, path), path.endsWith("/") ? 0o700 : 0o600);
  }
  await Deno.chown(root, 0, workers.gid);
  await Deno.chmod(root, 0o1770);
}

Deno.test("a volume removes old empty directories at start, and keeps serving what it holds", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "volume");
  const empty = ["0a/0b/", "sv03/ff/00/"];
  await layout(root, [...empty, "0a/", "0c/0d/"], [...empty, "0a/", "sv03/ff/", "0c/0d/", "0c/"]);
  await asVolumeMade(root);
  // As root, a pass runs as the workers' account: an empty directory that account may not
  // remove (root's, here) stays, where root itself would have removed it.
  const asRoot = Deno.uid() === 0;
  if (asRoot) {
    for (const path of ["0c", "0c/0d"]) {
      await Deno.chown(join(root, path), 0, 0);
      await Deno.chmod(join(root, path), 0o755);
    }
    await Deno.utime(join(root, "0c"), LONG_AGO, LONG_AGO);
  }
  const [port] = freePorts(1);
  await using volume = await spawnVolume({ port, dir: root });
  const key = "/kept";
  assert.equal(
    (await request(`${volume.url}${keyToPath(key)}`, { method: "PUT", body: "v" })).status,
    201,
  );
  // The pass's report comes once it has ended: after its removals, which may be seen first.
  const pruned = await eventually(
    async () =>
      !(await exists(join(root, "0a"))) && !(await exists(join(root, "sv03/ff"))) &&
      /removed \d+ empty directories/.test(volume.log),
    FIRST_PASS_MS,
  );
  assert.ok(pruned, `empty directories left: ${(await tree(root)).join(" ")}\n${volume.log}`);
  assert.equal((await request(`${volume.url}${keyToPath(key)}`)).body, "v");
  if (asRoot) {
    assert.ok(await exists(join(root, "0c/0d")), "a pass removed what its account could not");
    assert.match(volume.log, /refused: permission denied/);
  }
});

Deno.test("passes with no age limit racing PUTs to a real volume: every stored value stays, whole", async () => {
  await using dir = await tempDir();
  const [port] = freePorts(1);
  await using volume = await spawnVolume({ port, dir: join(dir.path, "volume") });
  const root = join(dir.path, "volume");
  // The worst case: every empty directory is removed at once, while PUTs and DELETEs create and
  // empty them. Keys share few directories, so that removals and renames meet.
  let writing = true;
  let passes = 0;
  let removed = 0;
  const pruning = (async () => {
    while (writing) {
      removed += (await pruneEmptyDirs(root, { ageMs: 0 })).removed;
      passes++;
    }
  })();
  const stored = new Map<string, string>();
  const failed: string[] = [];
  try {
    await Promise.all(Array.from({ length: 8 }, async (_, worker) => {
      for (let i = 0; i < 150; i++) {
        const key = `/race/${worker}/${i % 20}/${i}`;
        const url = `${volume.url}${keyToPath(key)}`;
        const value = `${key} ${"v".repeat(i)}`;
        const put = await request(url, { method: "PUT", body: value });
        if (put.status === 201 || put.status === 204) stored.set(url, value);
        else failed.push(url);
        // Every other value is deleted again, leaving its directory empty for the pruner.
        if (i % 2 === 0 && stored.has(url)) {
          assert.equal((await request(url, { method: "DELETE" })).status, 204);
          stored.delete(url);
        }
      }
    }));
  } finally {
    writing = false;
    await pruning;
  }
  for (const [url, value] of stored) {
    const got = await request(url);
    assert.equal(got.status, 200, `${url}: lost`);
    assert.equal(got.body, value);
  }
  assert.ok(
    passes > 1 && removed > 0,
    `the pruner never raced: ${passes} passes, ${removed} removed`,
  );
  // With no age limit a PUT can lose the race (its directory removed between nginx's mkdir and
  // its rename): it fails whole, and nothing of it is stored. The age limit closes that window.
  for (const url of failed) assert.equal((await request(url)).status, 404, url);
});
