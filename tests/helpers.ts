// Shared by the tests: temp directories, a real cluster on free ports, and small HTTP helpers
// that always consume or cancel the response body (so the sanitizers stay quiet).

import { join } from "node:path";
import { type Cluster, startCluster } from "../lib/cluster.ts";
import { freePort } from "../nginx.ts";

/** A temp directory that nginx's workers can write, removed on dispose. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "mkv-test-" });
  await Deno.chmod(path, 0o777);
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Distinct free ports. */
export function freePorts(count: number): number[] {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(freePort());
  return [...ports];
}

export interface TestClusterOptions {
  volumes?: number;
  /** Further flags for the index, e.g. `["--replicas", "2"]`. */
  indexArgs?: string[];
}

/** A cluster in a temp directory on free ports; stops it and removes the data on dispose. */
export async function testCluster(
  options: TestClusterOptions = {},
): Promise<Cluster & { dir: string }> {
  const [port, ...volumePorts] = freePorts((options.volumes ?? 3) + 1);
  const dir = await tempDir();
  let cluster: Cluster;
  try {
    cluster = await startCluster({
      dir: dir.path,
      port,
      volumePorts,
      indexArgs: options.indexArgs,
    });
  } catch (err) {
    await dir[Symbol.asyncDispose]();
    throw err;
  }
  const stop = cluster.stop.bind(cluster);
  return Object.assign(cluster, {
    dir: dir.path,
    async stop() {
      await stop();
      await dir[Symbol.asyncDispose]();
    },
    async [Symbol.asyncDispose]() {
      await stop();
      await dir[Symbol.asyncDispose]();
    },
  });
}

export interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

/** One request, no redirect following, body read as text. */
export async function request(
  url: string,
  init: RequestInit = {},
): Promise<Answer> {
  const response = await fetch(url, { redirect: "manual", ...init });
  const body = await response.text();
  return { status: response.status, headers: response.headers, body };
}

/** PUT a value; returns the status. */
export async function put(
  base: string,
  key: string,
  value: string | Uint8Array<ArrayBuffer>,
): Promise<number> {
  return (await request(`${base}${key}`, { method: "PUT", body: value })).status;
}

/** GET following the redirect, as `curl -L` does. */
export async function getFollow(
  base: string,
  key: string,
  init: RequestInit = {},
): Promise<Answer> {
  const response = await fetch(`${base}${key}`, { redirect: "follow", ...init });
  const body = await response.text();
  return { status: response.status, headers: response.headers, body };
}

/** The path of a data file of a volume on disk, for `location` like `localhost:3001/sv05`. */
export function fileOnDisk(cluster: Cluster & { dir: string }, location: string, path: string) {
  const [hostPort, sub] = location.split("/");
  const port = Number(hostPort.split(":")[1]);
  const i = cluster.volumes.findIndex((volume) => volume.port === port);
  return join(cluster.dir, `volume${i + 1}`, sub ?? "", path);
}
