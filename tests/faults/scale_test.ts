// The operations at size: 100,000 small values written straight onto three volumes in the
// on-disk layout (bench/keys.ts's fill, as a restore would), then `rebuild`, `verify`, `gc` and a
// full `?list` walk over them, each of which must see every key. Correctness only: the speed of
// each is measured by `deno task bench --keys N`, never asserted here.

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ClusterProcess, spawnIndex, spawnVolume } from "../../dev/cluster.ts";
import type { Placement } from "../../lib/placement.ts";
import { benchKey, fillVolumes, type Ownership, volumeOwnership } from "../../bench/keys_fill.ts";
import { freePorts, request, runScript, SCRIPT_TIMEOUT_MS, tempDir } from "../helpers.ts";

const KEYS = 100_000;
const VALUE_BYTES = 16;
/** Keys per `?list` page: the most the index gives. */
const PAGE_KEYS = 10_000;

/** The counts of a summary line such as `rebuild: added 9, conflict 1 in 0:02`. */
function summaryCounts(output: string, command: string): Record<string, number> {
  const line = output.split("\n").find((l) => l.startsWith(`${command}: `) && / in \d/.test(l));
  assert.ok(line !== undefined, `no summary from ${command}:\n${output}`);
  const counts: Record<string, number> = {};
  const listed = line.slice(command.length + 2, line.lastIndexOf(" in "));
  for (const [, name, count] of listed.matchAll(/([a-z-]+) (\d+)/g)) counts[name] = Number(count);
  return counts;
}

Deno.test("100,000 keys on the volumes: rebuild, verify, gc and ?list each see every one", async () => {
  await using dir = await tempDir();
  await Deno.chmod(dir.path, 0o755);
  const [indexPort, ...ports] = freePorts(4);
  const volumes: ClusterProcess[] = [];
  try {
    const dirs = new Map<string, string>();
    const owners = new Map<string, Ownership>();
    for (const [i, port] of ports.entries()) {
      const volumeDir = join(dir.path, `volume${i + 1}`);
      volumes.push(await spawnVolume({ port, dir: volumeDir }));
      dirs.set(`localhost:${port}`, volumeDir);
      owners.set(`localhost:${port}`, await volumeOwnership(port, volumeDir));
    }
    const hosts = [...dirs.keys()];
    const placement: Placement = { volumes: hosts, replicas: 1, subvolumes: 1 };
    fillVolumes({ keys: KEYS, valueBytes: VALUE_BYTES, placement, dirs, owners });
    const db = join(dir.path, "index");
    const flags = [
      "--db",
      db,
      "--volumes",
      hosts.join(","),
      "--replicas",
      "1",
      "--subvolumes",
      "1",
    ];
    const run = async (args: string[]) => {
      const result = await runScript(["index.ts", ...args, ...flags], {
        timeoutMs: SCRIPT_TIMEOUT_MS,
      });
      const output = result.stdout + result.stderr;
      assert.equal(result.code, 0, `index.ts ${args.join(" ")}:\n${output}`);
      return output;
    };

    const rebuilt = summaryCounts(await run(["rebuild", "--md5sum=false"]), "rebuild");
    assert.deepEqual(rebuilt, { added: KEYS });
    const verified = summaryCounts(await run(["verify"]), "verify");
    assert.equal(verified.ok, KEYS, JSON.stringify(verified));
    const collected = summaryCounts(await run(["gc"]), "gc");
    assert.equal(collected.removed ?? 0, 0, JSON.stringify(collected));

    await using index = await spawnIndex({
      port: indexPort,
      db,
      volumes: hosts,
      args: ["--replicas", "1", "--subvolumes", "1"],
    });
    let start = "";
    let listed = 0;
    while (true) {
      const query = `list&limit=${PAGE_KEYS}` +
        (start === "" ? "" : `&start=${encodeURIComponent(start)}`);
      const answer = await request(`${index.url}/bench/?${query}`);
      assert.equal(answer.status, 200, answer.body);
      const page = JSON.parse(answer.body) as { next: string; keys: string[] };
      for (const key of page.keys) {
        assert.equal(key, benchKey(listed), "?list out of order or a key missing");
        listed++;
      }
      if (page.next === "") break;
      start = page.next;
    }
    assert.equal(listed, KEYS);
  } finally {
    await Promise.all(volumes.map((volume) => volume.stop()));
  }
});
