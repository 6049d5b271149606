// bench/kvcommit.ts: what a Deno KV commit costs here, by records per commit and by how pending
// records are marked (the choice in lib/core/store.ts): no marker, one entry per key (`["w", key]`,
// as earlier versions did), or one entry per commit (`["p", n, 0]` → keys, as now). Keys are
// random, as a blob store's often are. Prints the wall time per commit and the CPU time of KV's
// SQLite thread per commit, from /proc.
//
//   deno run -A --unstable-kv bench/kvcommit.ts [--commits 2000] [--records 1,5,20]

import { commandLine, flagsOf, type FlagSpec, splitList, usageFlags } from "../lib/flags.ts";

/** Ticks of /proc/PID/task/TID/stat, 10 ms each on Linux. */
const TICK_US = 10_000;
/** A record as the index writes it for a PUT in progress. */
const RECORD = "WRITINGlocalhost:3001/sv01,localhost:3002/sv07,localhost:3003/sv03\n" +
  JSON.stringify({ size: 1024, mtime: 1764800000000 });

const FLAGS: FlagSpec = {
  commits: { type: "int", default: 2000, help: "commits per case", arg: "N" },
  records: { type: "string", default: "1,5,20", help: "records per commit, cases", arg: "LIST" },
};

type Marking = "none" | "per key" | "per commit";

/** CPU ticks of this process's KV (SQLite) threads, named `sw-N`. */
function sqliteTicks(): number {
  let ticks = 0;
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const dir = `/proc/self/task/${task.name}`;
    if (!Deno.readTextFileSync(`${dir}/comm`).startsWith("sw-")) continue;
    const fields = Deno.readTextFileSync(`${dir}/stat`).split(") ")[1].split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks;
}

async function measure(options: { records: number; commits: number; marking: Marking }) {
  const dir = await Deno.makeTempDir({ prefix: "mkv-kvcommit-" });
  const kv = await Deno.openKv(`${dir}/index.kv`);
  try {
    const ticksBefore = sqliteTicks();
    const started = performance.now();
    for (let n = 0; n < options.commits; n++) {
      const op = kv.atomic();
      const keys = Array.from({ length: options.records }, () => `/${crypto.randomUUID()}`);
      for (const key of keys) {
        op.set(["k", key], RECORD);
        if (options.marking === "per key") op.set(["w", key], true);
      }
      if (options.marking === "per commit") op.set(["p", n, 0], keys);
      op.set(["stats"], {
        liveKeys: n,
        liveBytes: n,
        unlinkedKeys: 0,
        unlinkedBytes: 0,
        pending: 0,
      });
      await op.commit();
    }
    const wallUs = (performance.now() - started) * 1000 / options.commits;
    const cpuUs = (sqliteTicks() - ticksBefore) * TICK_US / options.commits;
    return { wallUs, cpuUs };
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function main(): Promise<void> {
  const parsed = commandLine(
    "kvcommit.ts",
    flagsOf(FLAGS),
    `kvcommit.ts: what a KV commit costs, by records and marking\n\n${usageFlags(FLAGS)}`,
  );
  if (parsed === null) return;
  const commits = parsed.values.commits as number;
  const cases = splitList(String(parsed.values.records)).map(Number);
  console.log("records | marking    | wall per commit (µs) | SQLite thread CPU per commit (µs)");
  for (const records of cases) {
    for (const marking of ["none", "per key", "per commit"] as const) {
      const { wallUs, cpuUs } = await measure({ records, commits, marking });
      console.log(
        `${String(records).padStart(7)} | ${marking.padEnd(10)} | ${
          wallUs.toFixed(0).padStart(20)
        } | ${cpuUs.toFixed(0).padStart(33)}`,
      );
    }
  }
}

if (import.meta.main) await main();
