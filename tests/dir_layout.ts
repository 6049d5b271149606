// Directory trees for the tests of the volume's pruning of empty directories: made from a list of
// paths, with old modification times where asked, and listed back. Shared by
// tests/unit/prune_test.ts and tests/cluster/prune_test.ts.

import { join } from "node:path";

/** An mtime well past the pruner's age threshold. */
export const LONG_AGO = new Date(Date.now() - 24 * 3600_000);

/** Everything under `dir`, as sorted relative paths; directories end with `/`. */
export async function tree(dir: string, relative = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, relative))) {
    const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory) out.push(`${path}/`, ...await tree(dir, path));
    else out.push(path);
  }
  return out.sort();
}

/**
 * Makes `paths` under `dir` (a trailing `/` makes a directory, anything else a file), then dates
 * every directory named in `old` LONG_AGO, deepest first (a change inside a directory dates it).
 */
export async function layout(dir: string, paths: string[], old: string[]): Promise<void> {
  for (const path of paths) {
    if (path.endsWith("/")) {
      await Deno.mkdir(join(dir, path), { recursive: true });
    } else {
      await Deno.mkdir(join(dir, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, path), "x");
    }
  }
  for (const path of [...old].sort((a, b) => b.split("/").length - a.split("/").length)) {
    await Deno.utime(join(dir, path), LONG_AGO, LONG_AGO);
  }
}
