// The store the bench at many keys (keys.ts) measures: N keys written straight onto the volumes'
// directories in the shared on-disk layout (as a restore would, far faster than through an index),
// owned as the volumes' own files are. tests/faults/scale_test.ts fills its stores the same way.

import { join } from "node:path";
import { keyToPath, keyToVolumes, type Placement } from "../lib/placement.ts";
import { log } from "./tools.ts";

/** Every key the bench writes: `/bench/key-00000042`, in byte order as in number order. */
export const KEY_PREFIX = "/bench/key-";
export const KEY_DIGITS = 8;

/** The bench's i-th key. */
export function benchKey(i: number): string {
  return KEY_PREFIX + String(i).padStart(KEY_DIGITS, "0");
}

/** How nginx's workers own what they write on a volume: learnt from a file they wrote. */
export interface Ownership {
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
}

/**
 * Writes one file through a volume's nginx and reads how it and its directory are owned, so that
 * the files the bench writes by hand are the volume's own (its workers can read and delete them).
 */
export async function volumeOwnership(port: number, dir: string): Promise<Ownership> {
  const path = keyToPath("/bench-ownership-probe");
  const url = `http://localhost:${port}${path}`;
  const put = await fetch(url, { method: "PUT", body: "probe" });
  await put.body?.cancel();
  if (put.status !== 201 && put.status !== 204) {
    throw new Error(`volume localhost:${port}: cannot PUT ${JSON.stringify(path)}: ${put.status}`);
  }
  const file = await Deno.stat(join(dir, path));
  const parent = await Deno.stat(join(dir, path, ".."));
  const removed = await fetch(url, { method: "DELETE" });
  await removed.body?.cancel();
  return {
    uid: file.uid ?? Deno.uid() ?? 0,
    gid: file.gid ?? Deno.gid() ?? 0,
    fileMode: (file.mode ?? 0o644) & 0o777,
    dirMode: (parent.mode ?? 0o755) & 0o777,
  };
}

/**
 * Writes `keys` values straight into the volumes' directories in the on-disk layout, owned as
 * the volumes' own files are; `valueBytes` each, each starting with its key so none repeat.
 * Synchronous calls, one file after another: for small files they are several times faster than
 * many async writes at once, each of which costs a trip through the runtime's thread pool.
 */
export function fillVolumes(options: {
  keys: number;
  valueBytes: number;
  placement: Placement;
  dirs: Map<string, string>;
  owners: Map<string, Ownership>;
}): void {
  const made = new Set<string>();
  const root = Deno.uid() === 0;
  const makeDirs = (base: string, relative: string, owner: Ownership) => {
    let at = base;
    for (const part of relative.split("/").filter((p) => p !== "")) {
      at = join(at, part);
      if (made.has(at)) continue;
      try {
        Deno.mkdirSync(at, { mode: owner.dirMode });
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
      if (root) Deno.chownSync(at, owner.uid, owner.gid);
      made.add(at);
    }
  };
  const encoder = new TextEncoder();
  const value = new Uint8Array(options.valueBytes);
  for (let i = 0; i < options.keys; i++) {
    const key = benchKey(i);
    const [location] = keyToVolumes(key, options.placement);
    const base = options.dirs.get(location)!;
    const owner = options.owners.get(location)!;
    const path = keyToPath(key);
    makeDirs(base, path.slice(0, path.lastIndexOf("/")), owner);
    value.fill(0x2e);
    value.set(encoder.encode(key).subarray(0, value.length));
    const file = join(base, path);
    Deno.writeFileSync(file, value, { mode: owner.fileMode });
    if (root) Deno.chownSync(file, owner.uid, owner.gid);
    if (i > 0 && i % 100_000 === 0) log(`filled ${i.toLocaleString("en-US")} keys`);
  }
}
