// Every figure of every server, in alternating rounds: the big value, wrk on a missing key, on
// present keys at random and on one hot key (with the ceiling in the same rounds), thrasher.ts
// runs, and the value loads, each metered (meter.ts) and combined over its rounds into the
// servers' figures.

import {
  type LatencySummary,
  type Operation,
  OPERATIONS,
  runThrasher,
  type ThrashResult,
} from "../thrasher.ts";
import { bigValue, makeBigValue } from "./bigvalue.ts";
import { BlobLoad, type BlobPhase, megabytesPerSecond } from "./blobs.ts";
import {
  addCost,
  type BenchResult,
  combineLatency,
  type Cost,
  type Load,
  MIB,
  type ServerFigures,
} from "./figures.ts";
import { sizeName } from "./format.ts";
import { emptyCostOf, meter, type Server } from "./meter.ts";
import { expectStatus, log, wrk } from "./tools.ts";

/** One thrasher.ts run as its own process: wall seconds (start included), its report, the cost. */
async function thrashOnce(
  server: Server,
  load: Load,
): Promise<{ seconds: number; result: ThrashResult; cost: Cost }> {
  // thrasher.ts draws a fresh key prefix per run, so no server sees another's keys.
  const stop = await meter(server);
  const started = performance.now();
  const result = await runThrasher({
    url: server.url,
    count: load.thrashCount,
    concurrency: load.thrashConcurrency,
  });
  const seconds = (performance.now() - started) / 1000;
  const cost = await stop(3 * load.thrashCount, 0);
  return { seconds, result, cost };
}

/** One round of a value load against a server: PUT, GET (checked), DELETE, each metered. */
async function blobRound(
  server: Server,
  options: { sizeBytes: number; count: number; concurrency: number; round: number },
): Promise<{ put: BlobPhase; get: BlobPhase; remove: BlobPhase; putCost: Cost; getCost: Cost }> {
  using load = new BlobLoad({
    url: server.url,
    prefix: `${server.prefix}blob-${options.sizeBytes}-${options.round}-`,
    count: options.count,
    sizeBytes: options.sizeBytes,
    concurrency: options.concurrency,
  });
  let stop = await meter(server);
  const put = await load.put();
  const putCost = await stop(put.requests, put.bytes);
  stop = await meter(server);
  const get = await load.get();
  const getCost = await stop(get.requests, get.bytes);
  const remove = await load.remove();
  return { put, get, remove, putCost, getCost };
}

/** Clients writing or removing the keys read at random: as many as the value loads'. */
const RANDOM_KEYS_CONCURRENCY = 16;

/** The key read at random number `i` of a server. */
function randomKey(server: Server, i: number): string {
  return `${server.prefix}random-${i}`;
}

/** Sends `method` for each of the server's `count` keys read at random, expecting `status`. */
async function eachRandomKey(
  server: Server,
  count: number,
  init: RequestInit,
  status: number,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      await expectStatus(`${server.url}${randomKey(server, i)}`, init, status);
    }
  };
  await Promise.all(Array.from({ length: RANDOM_KEYS_CONCURRENCY }, worker));
}

/** A wrk script that GETs the server's `count` keys read at random, in random order. */
async function randomKeysScript(server: Server, count: number): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "mkv-bench-", suffix: ".lua" });
  await Deno.writeTextFile(
    path,
    [
      `math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)`,
      `request = function()`,
      `  return wrk.format("GET", "${randomKey(server, 0).slice(0, -1)}" .. ` +
      `math.random(0, ${count - 1}))`,
      `end`,
      ``,
    ].join("\n"),
  );
  return path;
}

/** A server's figures before any load: zeros, no rounds, costs of what can be read of it. */
function newFigures(server: Server, load: Load): ServerFigures {
  const cost = () => emptyCostOf(server);
  return {
    name: server.name,
    url: server.url,
    missingRps: 0,
    randomRps: 0,
    presentRps: 0,
    wrkRoundsRps: { missing: [], random: [], present: [] },
    thrashCyclesPerSecond: 0,
    thrashRunSeconds: [],
    thrashLatency: {} as Record<Operation, LatencySummary>,
    blobs: load.blobs.map(({ sizeBytes, count }) => ({
      sizeBytes,
      count,
      putMBps: 0,
      getMBps: 0,
      roundsMBps: { put: [], get: [] },
      latency: {} as Record<Operation, LatencySummary>,
      cost: { put: cost(), get: cost() },
    })),
    bigPutSeconds: 0,
    bigGetSeconds: 0,
    bigPeakRssMib: null,
    bigRssBeforeMib: null,
    cost: { missing: cost(), random: cost(), present: cost(), thrash: cost(), bigPut: cost() },
    notes: [],
  };
}

/**
 * Every figure of every server, in alternating rounds (the servers in turn within each round),
 * so that other work on the machine meets them all alike. The ceiling is measured under wrk in
 * the same rounds, just before the servers' own wrk runs.
 */
export async function measureAll(
  servers: Server[],
  ceiling: Server,
  load: Load,
): Promise<{ figures: ServerFigures[]; ceiling: BenchResult["ceiling"] }> {
  const figures = servers.map((server) => newFigures(server, load));

  log(`${load.bigBytes / MIB} MiB value: md5 of it`);
  const big = makeBigValue(load.bigBytes);
  for (const [i, server] of servers.entries()) {
    log(`${server.name}: ${load.bigBytes / MIB} MiB value`);
    await bigValue(server, big, figures[i]);
  }

  // wrk goes to the address itself, so that `localhost` resolving to ::1 first changes nothing.
  const wrkBase = (url: string) => url.replace("//localhost:", "//127.0.0.1:");
  for (const server of servers) {
    await expectStatus(`${server.url}${server.prefix}missing`, {}, 404);
    await expectStatus(
      `${server.url}${server.prefix}present`,
      { method: "PUT", body: "present" },
      201,
    );
    await expectStatus(`${server.url}${server.prefix}present`, {}, 302);
    log(`${server.name}: writing ${load.randomKeys} keys to read at random`);
    await eachRandomKey(server, load.randomKeys, { method: "PUT", body: "random" }, 201);
  }
  const scripts = await Promise.all(
    servers.map((server) => randomKeysScript(server, load.randomKeys)),
  );
  const ceilingFigures = { rps: 0, roundsRps: [] as number[], cost: emptyCostOf(ceiling) };
  /** Runs wrk on `target`, adding the server's cost to `into`. */
  const measured = async (server: Server, target: string, script?: string) => {
    const stop = await meter(server);
    const result = await wrk(target, load, script);
    return { ...result, cost: await stop(result.requests, 0) };
  };
  // Other work on the machine only ever slows a run down, so each figure is its best round.
  for (let round = 1; round <= load.wrkRounds; round++) {
    log(`ceiling (bare Deno.serve), round ${round}`);
    const c = await measured(ceiling, ceiling.url);
    ceilingFigures.roundsRps.push(c.rps);
    ceilingFigures.cost = addCost(ceilingFigures.cost, c.cost);
    for (const [i, server] of servers.entries()) {
      const f = figures[i];
      log(`${server.name}: fetch missing, round ${round}`);
      const missing = await measured(server, `${wrkBase(server.url)}${server.prefix}missing`);
      f.wrkRoundsRps.missing.push(missing.rps);
      f.cost.missing = addCost(f.cost.missing, missing.cost);
      for (const line of missing.trouble) {
        if (!line.startsWith("Non-2xx")) f.notes.push(`fetch missing: ${line}`);
      }
      log(`${server.name}: fetch random, round ${round}`);
      const random = await measured(server, `${wrkBase(server.url)}/`, scripts[i]);
      f.wrkRoundsRps.random.push(random.rps);
      f.cost.random = addCost(f.cost.random, random.cost);
      for (const line of random.trouble) f.notes.push(`fetch random: ${line}`);
      log(`${server.name}: fetch present, round ${round}`);
      const present = await measured(server, `${wrkBase(server.url)}${server.prefix}present`);
      f.wrkRoundsRps.present.push(present.rps);
      f.cost.present = addCost(f.cost.present, present.cost);
      for (const line of present.trouble) f.notes.push(`fetch present: ${line}`);
    }
  }
  ceilingFigures.rps = Math.max(...ceilingFigures.roundsRps);
  for (const [i, server] of servers.entries()) {
    figures[i].missingRps = Math.max(...figures[i].wrkRoundsRps.missing);
    figures[i].randomRps = Math.max(...figures[i].wrkRoundsRps.random);
    figures[i].presentRps = Math.max(...figures[i].wrkRoundsRps.present);
    await Deno.remove(scripts[i]);
    await eachRandomKey(server, load.randomKeys, { method: "DELETE" }, 204);
    await expectStatus(`${server.url}${server.prefix}missing`, {}, 404);
    await expectStatus(`${server.url}${server.prefix}present`, {}, 302);
    await expectStatus(`${server.url}${server.prefix}present`, { method: "DELETE" }, 204);
  }

  const thrashRuns: Record<Operation, LatencySummary>[][] = servers.map(() => []);
  for (let round = 1; round <= load.thrashRuns; round++) {
    for (const [i, server] of servers.entries()) {
      log(`${server.name}: thrasher, run ${round}`);
      const run = await thrashOnce(server, load);
      figures[i].thrashRunSeconds.push(run.seconds);
      figures[i].cost.thrash = addCost(figures[i].cost.thrash, run.cost);
      thrashRuns[i].push(run.result.latency as Record<Operation, LatencySummary>);
    }
  }
  for (const [i, f] of figures.entries()) {
    const meanSeconds = f.thrashRunSeconds.reduce((a, b) => a + b, 0) / f.thrashRunSeconds.length;
    f.thrashCyclesPerSecond = load.thrashCount / meanSeconds;
    for (const op of OPERATIONS) {
      f.thrashLatency[op] = combineLatency(thrashRuns[i].map((run) => run[op]));
    }
  }

  for (const [b, blob] of load.blobs.entries()) {
    const latency = servers.map(
      () => ({ PUT: [], GET: [], DELETE: [] } as Record<Operation, LatencySummary[]>),
    );
    for (let round = 1; round <= load.blobRounds; round++) {
      for (const [i, server] of servers.entries()) {
        log(`${server.name}: ${blob.count} values of ${sizeName(blob.sizeBytes)}, round ${round}`);
        const r = await blobRound(server, { ...blob, concurrency: load.blobConcurrency, round });
        const f = figures[i].blobs[b];
        f.roundsMBps.put.push(megabytesPerSecond(r.put));
        f.roundsMBps.get.push(megabytesPerSecond(r.get));
        f.cost.put = addCost(f.cost.put, r.putCost);
        f.cost.get = addCost(f.cost.get, r.getCost);
        latency[i].PUT.push(r.put.latency);
        latency[i].GET.push(r.get.latency);
        latency[i].DELETE.push(r.remove.latency);
      }
    }
    for (const [i, f] of figures.entries()) {
      const blobFigures = f.blobs[b];
      blobFigures.putMBps = Math.max(...blobFigures.roundsMBps.put);
      blobFigures.getMBps = Math.max(...blobFigures.roundsMBps.get);
      for (const op of OPERATIONS) blobFigures.latency[op] = combineLatency(latency[i][op]);
    }
  }
  return { figures, ceiling: ceilingFigures };
}
