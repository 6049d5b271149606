// index.ts: the mkv.ts index. It keeps key → volumes in Deno KV and serves minikeyvalue's HTTP API
// on Deno.serve, behind an nginx it runs itself on the public --port. GETs are answered with a 302
// to a volume, so values never pass through the index on the way out; PUTs stream to every replica
// at once. The operations (rebuild, rebalance, verify, gc) run beside a running server.
//
//   deno run -A index.ts server --port 3000 --db ./data/index \
//     --volumes localhost:3001,localhost:3002,localhost:3003
//   deno run -A index.ts --help

import { COMMANDS, INDEX_USAGE, type IndexOptions, parseIndexArgs } from "./lib/config.ts";
import { firstLine } from "./lib/errors.ts";
import { FlagError } from "./lib/flags.ts";
import { IndexServer } from "./lib/server.ts";
import { adminSocketPath, Store, StoreError } from "./lib/store.ts";
import { Volumes } from "./lib/volumes.ts";
import {
  Nginx,
  NginxError,
  renderProxyLocations,
  renderProxyUpstream,
  shareSocketWithWorkers,
  stopOnSignals,
} from "./nginx.ts";

/** nginx workers in front of the index; the machine has 2 cores. */
const NGINX_WORKERS = 2;
/** Keep-alive connections from nginx to the Deno server. */
const UPSTREAM_KEEPALIVE = 256;

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
  server: IndexServer;
  stop(): Promise<void>;
}

/** Serves the index until stopped; throws NginxError or StoreError with a one-line reason. */
export async function startIndex(
  options: IndexOptions,
  onGiveUp: (reason: string) => void,
): Promise<RunningIndex> {
  const store = await Store.open(options.db);
  // A volume that comes back gets the removals that waited for it (deletes, failed writes).
  const volumes = new Volumes({
    hosts: options.volumes,
    timeoutMs: options.voltimeoutMs,
    onUp: () => void server.sweepPending().catch(() => {}),
  });
  const server: IndexServer = new IndexServer(store, volumes, {
    placement: options,
    protect: options.protect,
    md5sum: options.md5sum,
    fallback: options.fallback,
    verbose: options.verbose,
  });
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
    const api = Deno.serve({ path: socketPath, onListen() {}, onError }, server.handle);
    stops.push(() => api.shutdown());
    await shareSocketWithWorkers(runDir, socketPath);
    const adminPath = adminSocketPath(options.db);
    await removeIfPresent(adminPath);
    // The operations are loaded on first use: a server that never runs one stays smaller.
    let admin: ((request: Request) => Promise<Response>) | null = null;
    let adminServer: Deno.HttpServer;
    try {
      adminServer = Deno.serve({ path: adminPath, onListen() {}, onError }, async (request) => {
        admin ??= (await import("./lib/ops/admin.ts")).adminHandler({
          store: server.store,
          volumes: server.volumes,
          setPlacement: (placement) => server.setPlacement(placement),
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
    const nginx = await Nginx.start({
      name: `index :${options.port}`,
      port: options.port,
      workerProcesses: NGINX_WORKERS,
      httpBlocks: renderProxyUpstream({ socketPath, keepalive: UPSTREAM_KEEPALIVE }),
      locations: renderProxyLocations(),
      onGiveUp,
      tempPaths: [runDir],
    });
    stops.push(() => nginx.stop());
  } catch (err) {
    await stop();
    throw err;
  }
  server.startSweeps();
  stops.splice(1, 0, () => server.stopSweeps());
  return { server, stop };
}

async function main(): Promise<void> {
  let options: IndexOptions;
  try {
    const parsed = parseIndexArgs(Deno.args);
    if (parsed === "help") {
      console.log(INDEX_USAGE);
      return;
    }
    options = parsed;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    console.error(`index: ${err.message}`);
    Deno.exit(2);
  }
  if (options.command !== "server") {
    const { runOperation } = await import("./lib/ops/cli.ts");
    Deno.exit(await runOperation(options));
  }
  let running: RunningIndex;
  try {
    running = await startIndex(options, (reason) => {
      console.error(`index :${options.port}: ${reason}; exiting`);
      Deno.exit(1);
    });
  } catch (err) {
    if (!(err instanceof NginxError || err instanceof StoreError)) throw err;
    console.error(`index: ${err.message}`);
    Deno.exit(1);
  }
  stopOnSignals(() => running.stop());
  console.error(
    `index: serving on :${options.port}, db ${options.db}, ${options.volumes.length} volumes, ` +
      `${options.replicas} replicas, ${options.subvolumes} subvolumes (commands: ${COMMANDS})`,
  );
}

if (import.meta.main) await main();
