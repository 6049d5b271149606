// index.ts: the mkv.ts index. It keeps key → volumes in Deno KV and serves minikeyvalue's HTTP API
// on Deno.serve, behind an nginx it runs itself on the public --port. GETs are answered with a 302
// to a volume, so values never pass through the index on the way out; PUTs stream to every replica
// at once. The operations (rebuild, rebalance, verify, gc) run beside a running server.
//
//   deno run -A index.ts server --port 3000 --db ./data/index \
//     --volumes localhost:3001,localhost:3002,localhost:3003
//   deno run -A index.ts --help

import type { Auth } from "./lib/auth/auth.ts";
import { COMMANDS, INDEX_USAGE, type IndexOptions, parseIndexArgs } from "./lib/config.ts";
import { CredentialsError, loadCredentials } from "./lib/auth/credentials.ts";
import { firstLine } from "./lib/errors.ts";
import { commandLine } from "./lib/flags.ts";
import { adminSocketPath, Core, StoreError } from "./lib/core/mod.ts";
import { IndexApi } from "./lib/http/api.ts";
import { IndexMetrics } from "./lib/http/metrics.ts";
import { volumeTlsFor } from "./lib/nginx/tls.ts";
import { readSecretFile, SecretError, Volumes } from "./lib/volumes/mod.ts";
import {
  DEFAULT_WORKER_USER,
  Nginx,
  NginxError,
  renderLimitZones,
  renderProxyLocations,
  renderProxyUpstream,
  shareSocketWithWorkers,
  stopOnSignals,
  workerAccount,
} from "./nginx.ts";

/**
 * nginx workers in front of the index: one per core (bench/NOTES.md, "Where more cores exist"),
 * as nginx's own `worker_processes auto` would make.
 */
const NGINX_WORKERS = Math.max(1, navigator.hardwareConcurrency);
/** Keep-alive connections from nginx to the Deno server. */
const UPSTREAM_KEEPALIVE = 256;
/** The system's CA certificates (Debian's), for nginx to verify HTTPS volumes without --volume-ca. */
const SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt";

/** A failure the handler did not expect: the index's own fault, so a 500 that says what broke. */
function onError(err: unknown): Response {
  const message = firstLine(err);
  console.error(`index: internal error: ${err instanceof Error ? err.stack : message}`);
  return new Response(`index: internal error: ${message}\n`, { status: 500 });
}

async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/** A running index server; `stop()` takes down nginx, the Deno servers and the database. */
export interface RunningIndex {
  api: IndexApi;
  /** The access keys of `--credentials`, or null when the API is open. */
  auth: Auth | null;
  stop(): Promise<void>;
}

/**
 * Serves the index until stopped; throws NginxError, StoreError or CredentialsError with a
 * one-line reason.
 */
export async function startIndex(
  options: IndexOptions,
  onGiveUp: (reason: string) => void,
): Promise<RunningIndex> {
  // A bad credentials file stops the start before anything is opened. lib/auth/auth.ts hashes with
  // node:crypto, whose Node layer costs the index about 5 MiB: it is loaded only when needed.
  const auth = options.credentials === "" ? null : new (await import("./lib/auth/auth.ts")).Auth(
    await loadCredentials(options.credentials),
    { publicRead: options.publicRead },
  );
  // With --volume-tls, a CA file that cannot be read stops the start too.
  const volumeTls = await volumeTlsFor(options);
  // So does a volume secret file that is not private; the secret never leaves this process
  // but in the signatures of requests to volumes.
  const volumeSecret = options.volumeSecretFile
    ? await readSecretFile(options.volumeSecretFile)
    : undefined;
  // As root, nginx's workers need their own account: a missing one stops the start here.
  const user = await workerAccount(options.user ?? DEFAULT_WORKER_USER);
  // A volume that comes back gets the removals that waited for it (deletes, failed writes).
  const volumes = new Volumes({
    hosts: options.volumes,
    timeoutMs: options.voltimeoutMs,
    tls: volumeTls,
    secret: volumeSecret,
    onUp: () => core.volumeUp(),
  });
  const metrics = new IndexMetrics();
  let core: Core;
  try {
    core = await Core.open(options.db, volumes, {
      placement: options,
      protect: options.protect,
      md5sum: options.md5sum,
      fallback: options.fallback,
      verbose: options.verbose,
      auth,
      readExpiryMs: options.readExpiryMs,
      metrics: options.metrics !== false,
      multipartMaxAgeMs: options.multipartMaxAgeMs,
    }, metrics);
  } catch (err) {
    volumes.close();
    throw err;
  }
  const store = core.store;
  const api = new IndexApi(core, metrics);
  const runDir = await Deno.makeTempDir({ prefix: "mkv-index-" });
  const stops: (() => Promise<void>)[] = [async () => {
    volumes.close();
    store.close();
    await removeIfPresent(runDir);
  }];
  const stop = async () => {
    for (const step of stops.splice(0).reverse()) await step();
  };
  try {
    await volumes.probeAll();
    volumes.start();
    // Only nginx's workers may talk to the Deno server: nginx is where bad input is refused.
    const socketPath = `${runDir}/index.sock`;
    const served = Deno.serve({ path: socketPath, onListen() {}, onError }, api.handle);
    stops.push(() => served.shutdown());
    await shareSocketWithWorkers(runDir, socketPath, user);
    const adminPath = adminSocketPath(options.db);
    await removeIfPresent(adminPath);
    // The operations are loaded on first use: a server that never runs one stays smaller.
    let admin: ((request: Request) => Promise<Response>) | null = null;
    let adminServer: Deno.HttpServer;
    try {
      adminServer = Deno.serve({ path: adminPath, onListen() {}, onError }, async (request) => {
        admin ??= (await import("./lib/ops/admin.ts")).adminHandler({
          store,
          volumes,
          setPlacement: (placement) => core.setPlacement(placement),
          board: api.board,
          retiring: (key) => core.isRetiring(key),
        });
        return await admin(request);
      });
    } catch (err) {
      // A unix socket's path has a length limit (108 bytes): a deep --db can exceed it.
      throw new StoreError(`cannot listen on ${adminPath}: ${(err as Error).message}`);
    }
    // The operations can rewrite the whole index: only our user (and root) may ask for them.
    await Deno.chmod(adminPath, 0o600);
    stops.push(async () => {
      await adminServer.shutdown();
      await removeIfPresent(adminPath);
    });
    // S3 GETs are proxied from the volumes by nginx: over TLS when they speak it, verified with
    // --volume-ca or the system's roots.
    const proxyOptions = options.volumeTls
      ? { volumeCaFile: options.volumeCa ?? SYSTEM_CA_FILE }
      : {};
    const nginx = await Nginx.start({
      name: `index :${options.port}`,
      port: options.port,
      user,
      workerProcesses: NGINX_WORKERS,
      httpBlocks: [
        renderProxyUpstream({ socketPath, keepalive: UPSTREAM_KEEPALIVE }),
        renderLimitZones(options.limits),
      ].filter((block) => block !== "").join("\n"),
      locations: renderProxyLocations(options.limits, proxyOptions),
      ...(options.s3Port !== undefined && {
        second: {
          port: options.s3Port,
          locations: renderProxyLocations(options.limits, { ...proxyOptions, s3Port: true }),
        },
      }),
      tls: options.tls,
      accessLog: options.accessLog,
      onGiveUp,
      tempPaths: [runDir],
    });
    stops.push(() => nginx.stop());
  } catch (err) {
    await stop();
    throw err;
  }
  api.start();
  stops.splice(1, 0, () => api.stop());
  return { api, auth, stop };
}

/**
 * Re-reads the credentials file (on SIGHUP): the new keys replace the old ones at once; a file
 * that cannot be used keeps the old ones, and says why in one line.
 */
async function reloadCredentials(path: string, auth: Auth): Promise<void> {
  try {
    auth.replace(await loadCredentials(path));
    console.error(`index: SIGHUP: loaded ${auth.size} access keys from ${path}`);
  } catch (err) {
    const reason = err instanceof CredentialsError ? err.message : firstLine(err);
    console.error(`index: SIGHUP: kept the ${auth.size} access keys loaded before: ${reason}`);
  }
}

async function main(): Promise<void> {
  const options = commandLine("index", parseIndexArgs, INDEX_USAGE);
  if (options === null) return;
  if (options.command !== "server") {
    const { runOperation } = await import("./lib/ops/cli.ts");
    Deno.exit(await runOperation(options));
  }
  const starting = startIndex(options, (reason) => {
    console.error(`index :${options.port}: ${reason}; exiting`);
    Deno.exit(1);
  });
  // Listening from the start: a signal during the start stops what it started (its nginx) once
  // the start is done, rather than ending the process and leaving nginx behind.
  stopOnSignals(() => starting.then((started) => started.stop(), () => {}));
  let running: RunningIndex;
  try {
    running = await starting;
  } catch (err) {
    if (
      !(err instanceof NginxError || err instanceof StoreError || err instanceof CredentialsError ||
        err instanceof SecretError)
    ) throw err;
    console.error(`index: ${err.message}`);
    Deno.exit(1);
  }
  if (options.volumeSecretFile !== undefined) {
    console.error(
      `index: every request to a volume is signed (--volume-secret-file); ` +
        (options.readExpiryMs === undefined
          ? "reads redirected to are unsigned"
          : `private reads: each Location is signed for ${options.readExpiryMs / 1000}s`),
    );
  }
  const auth = running.auth;
  let reloading = Promise.resolve();
  Deno.addSignalListener("SIGHUP", () => {
    if (auth === null) {
      console.error("index: SIGHUP: nothing to reload (no --credentials)");
      return;
    }
    reloading = reloading.then(() => reloadCredentials(options.credentials, auth));
  });
  const access = auth === null
    ? `open: no --credentials, anyone who can reach :${options.port} may read, write and delete`
    : `credentials: ${auth.size} access keys from ${options.credentials}` +
      (auth.publicRead ? ", public reads" : "");
  console.error(
    `index: serving on :${options.port}` +
      (options.s3Port === undefined ? "" : ` (S3 also on :${options.s3Port})`) +
      `, db ${options.db}, ${options.volumes.length} volumes, ` +
      `${options.replicas} replicas, ${options.subvolumes} subvolumes (commands: ${COMMANDS}); ` +
      access,
  );
}

if (import.meta.main) await main();
