// Shared by the tests: temp directories, a real cluster on free ports, and small HTTP helpers
// that always consume or cancel the response body (so the sanitizers stay quiet).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, type ClusterProcess, freePort, spawnCluster } from "../dev/cluster.ts";
import { portAnswers } from "../nginx.ts";
import { Md5 } from "../lib/md5.ts";
import { keyToVolumes, locationHost, type Placement } from "../lib/placement.ts";
import { pidFileFor } from "../lib/nginx/mod.ts";
import { target } from "../lib/volumes/protocol.ts";

export { freePort };
// What a test needs of the programs' own checks: one definition each, in the programs.
export { exists } from "../lib/nginx/mod.ts";
export { portAnswers } from "../nginx.ts";

/** The repository's root directory. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** How long a condition polled for (a probe, a log line, a file) may take to come true. */
export const POLL_TIMEOUT_MS = 10_000;
/** How often a condition is polled. */
export const POLL_INTERVAL_MS = 25;
/** How long one answer may take: a request unanswered after this long fails rather than hangs. */
export const ANSWER_TIMEOUT_MS = 10_000;
/** How long a program run by a test may take, so that a hang fails instead of stalling CI. */
export const SCRIPT_TIMEOUT_MS = 120_000;
/** The index's --voltimeout in the tests that start it without one (its default). */
export const VOLTIMEOUT_MS = 1000;
/** What a GET may take beyond the voltimeout on a loaded machine; a bound, not a speed. */
export const GET_SLACK_MS = 1500;
/** The uid of `nobody`: another daemon's account, never nginx's workers'. */
export const NOBODY_UID = 65534;
/** The chunk size of `generated` values. */
const GENERATED_CHUNK_BYTES = 1024 * 1024;
/** How long one curl may take. */
const CURL_TIMEOUT_S = 30;

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
  /** Further flags for every volume, e.g. `["--keepalive", "1s"]`. */
  volumeArgs?: string[];
  /** False: volumes without `--index`, which the index checks on a GET (dev/cluster.ts). */
  volumeIndex?: boolean;
}

/** A cluster in a temp directory on free ports; stops it and removes the data on dispose. */
export async function testCluster(
  options: TestClusterOptions = {},
): Promise<Cluster & { dir: string }> {
  const [port, ...volumePorts] = freePorts((options.volumes ?? 3) + 1);
  const dir = await tempDir();
  let cluster: Cluster;
  try {
    cluster = await spawnCluster({
      dir: dir.path,
      port,
      volumePorts,
      indexArgs: options.indexArgs,
      volumeArgs: options.volumeArgs,
      volumeIndex: options.volumeIndex,
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

/** The S3 error an SDK call fails with: its name (S3's code) and HTTP status. */
export async function s3Failure(call: Promise<unknown>): Promise<{ name: string; status: number }> {
  try {
    await call;
  } catch (err) {
    const failure = err as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: failure.name, status: failure.$metadata?.httpStatusCode ?? 0 };
  }
  throw new Error("the call succeeded");
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
  const to = target(location, path);
  const port = Number(to.host.split(":")[1]);
  const i = cluster.volumes.findIndex((volume) => volume.port === port);
  return join(cluster.dir, `volume${i + 1}`, to.path);
}

export interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end (killed after `timeoutMs`); its exit code and output. */
export async function runCommand(
  command: string,
  args: string[],
  options: { timeoutMs?: number; cwd?: string } = {},
): Promise<ScriptResult> {
  const output = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? SCRIPT_TIMEOUT_MS),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs `deno run -A SCRIPT ARGS...` of this repository to its end (killed after `timeoutMs`). */
export async function runScript(
  args: string[],
  options: { timeoutMs?: number } = {},
): Promise<ScriptResult> {
  return await runCommand(
    Deno.execPath(),
    ["run", "-A", "--config", join(ROOT, "deno.json"), ...args],
    { ...options, cwd: ROOT },
  );
}

/**
 * Runs `curl -sS ARGS...`, as a user would (CI installs curl: a test that needs it fails
 * without it, never skips).
 */
export async function curl(args: string[]): Promise<ScriptResult> {
  return await runCommand("curl", ["-sS", "--max-time", String(CURL_TIMEOUT_S), ...args]);
}

/** Whether process `pid` runs (exists and is not a zombie). */
export function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Kills a volume as a machine crash would: its program and its nginx, with SIGKILL. */
export async function killVolume(volume: ClusterProcess): Promise<void> {
  const pids = await nginxPids(volume.port);
  volume.kill("SIGKILL");
  await volume.status;
  for (const pid of pids) if (running(pid)) Deno.kill(pid, "SIGKILL");
  const closed = await eventually(async () => !await portAnswers(volume.port), 5_000);
  assert.ok(closed, `volume :${volume.port} still answers after SIGKILL`);
}

/** The pids of the nginx on `port`: its master (from the pid file) and the master's children. */
export async function nginxPids(port: number): Promise<number[]> {
  const master = Number((await Deno.readTextFile(pidFileFor(port))).trim());
  const pids = [master];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    // Fields after the command name in parentheses: state, ppid, ...
    const [, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(ppid) === master) pids.push(Number(entry.name));
  }
  return pids;
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `pollMs` until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  pollMs = POLL_INTERVAL_MS,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(pollMs);
  }
}

/** Polls `check` until it holds; throws "timed out waiting for WHAT" after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = POLL_TIMEOUT_MS,
): Promise<void> {
  if (!await eventually(check, timeoutMs)) throw new Error(`timed out waiting for ${what}`);
}

/** The md5 of a value in lower-case hex, by node:crypto: apart from lib/md5.ts, which it checks. */
export function md5Hex(data: string | Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** Keys under `prefix` whose replicas do (or do not) include `host`, `count` of them. */
export function keysPlaced(
  options: { prefix: string; placement: Placement; host: string; onHost: boolean; count: number },
): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < options.count && i < 10_000; i++) {
    const key = `${options.prefix}${i}`;
    const hosts = keyToVolumes(key, options.placement).map(locationHost);
    if (hosts.includes(options.host) === options.onHost) keys.push(key);
  }
  return keys;
}

/**
 * `sizeBytes` of pseudo-random bytes made as they are read, 1 MiB at a time, each chunk stamped
 * with its offset so that no two are alike; `md5()` is known once all are read.
 */
export function generated(
  sizeBytes: number,
): { stream: ReadableStream<Uint8Array>; md5(): string } {
  const block = new Uint8Array(GENERATED_CHUNK_BYTES);
  crypto.getRandomValues(block.subarray(0, 65536));
  for (let i = 65536; i < block.byteLength; i += 65536) block.copyWithin(i, 0, 65536);
  const hash = new Md5();
  let sent = 0;
  let digest = "";
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= sizeBytes) {
        digest = hash.hex();
        controller.close();
        return;
      }
      const chunk = block.slice(0, Math.min(block.byteLength, sizeBytes - sent));
      if (chunk.byteLength >= 8) new DataView(chunk.buffer).setFloat64(0, sent);
      hash.update(chunk);
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  return {
    stream,
    md5() {
      assert.ok(digest !== "", "the value was not sent whole");
      return digest;
    },
  };
}
