// One pass of the volume's removal of empty directories (lib/volumes/prune.ts), as a program of
// its own: volume.ts, started by root, runs it as the workers' account under `setpriv`, so that
// the walk and its rmdirs happen with no more rights than the account that owns those directories.
// Prints the pass's result as one JSON line.
//
//   deno run --allow-read=DIR --allow-write=DIR lib/volumes/prunepass.ts DIR AGE_MS

import { pruneEmptyDirs } from "./prune.ts";

async function main(): Promise<number> {
  const [dir, age] = Deno.args;
  if (dir === undefined || !/^\d{1,12}$/.test(age ?? "")) {
    console.error("usage: prunepass.ts DIR AGE_MS");
    return 2;
  }
  const result = await pruneEmptyDirs(dir, { ageMs: Number(age) });
  console.log(JSON.stringify(result));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
