// Each volume's health, tracked by a probe in the background so that a GET never waits on a dead
// volume: up (answers and stores), full (answers, cannot store) or down (no answer). A volume
// marked down has every request in flight to it ended at once, and nothing sent to it until its
// probe succeeds again; one that closes an idle pooled socket is suspect and probed at once. The
// probe leaves its socket in the pool when the pool has no idle one to the volume that is far from
// expiring, so that there always is one to close: a volume whose nginx dies is avoided within milliseconds, even one no
// request went to lately. The probe's answer also says whether the volume sends misses back to
// the index (started with `--index`), which lets a GET trust it without a check.

import { type EventLog } from "../events.ts";
import { locationHost } from "../placement.ts";
import { reason, VolumeError } from "./errors.ts";
import type { Http1Pool } from "./http1.ts";
import { WRITE_PROBE_PATH } from "./protocol.ts";
import type { DiskFigures } from "./statusvolume.ts";

/** How often each volume is probed. */
const PROBE_INTERVAL_MS = 1000;
/**
 * A volume whose probe has gone this long without an answer is not trusted without a check
 * (sendsMisses): it may have hung, which closes no socket, and a client sent to it would wait.
 * The check has the voltimeout; the probe, two. Probes take a millisecond or so when all is well.
 */
const PROBE_LATE_MS = 250;
/** How often a probe also checks that a volume can store a file. */
const WRITE_PROBE_INTERVAL_MS = 10_000;

const encoder = new TextEncoder();

/**
 * A volume's health, as its probe last found it. `up`: it answers and stores. `full`: it answers
 * reads and DELETEs but cannot store a file (its disk full or read-only): reads, deletes and the
 * operations' removals go on, so that space can be freed; writes placed on it are refused with
 * 507. `down`: it does not answer; nothing is sent to it until its probe succeeds again.
 */
export type VolumeHealth = "up" | "full" | "down";

/** The volume hosts (`host:port`), their health and their probes. */
export class Health {
  #health = new Map<string, VolumeHealth>();
  /** Aborted when its host is marked down: every request in flight to it ends at once. */
  #down = new Map<string, AbortController>();
  /** When each host's write probe last ran. */
  #writeProbedMs = new Map<string, number>();
  /** How long each host's last probe took, in milliseconds. */
  #probeMs = new Map<string, number>();
  /** Failed requests per host (probes included), for the metrics. */
  #errors = new Map<string, number>();
  /** Hosts whose probe is running, so that a burst of failures probes once. */
  #probing = new Map<string, Promise<void>>();
  /**
   * Hosts that closed an idle pooled socket and whose probe, asked for at once, has not answered
   * yet: no read is sent to them meanwhile (isAlive), so that a volume that died is avoided
   * within milliseconds rather than at its next probe.
   */
  #suspect = new Set<string>();
  /** Hosts whose last probe answer announced that they send misses back to the index. */
  #sendsMisses = new Set<string>();
  /** When each probe's `HEAD` waiting for its answer was sent (Date.now()), for PROBE_LATE_MS. */
  #probeStartedMs = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #pool: Http1Pool;
  #timeoutMs: number;
  #log: EventLog;
  #onUp: (host: string) => void;
  #signed: (method: string, path: string) => string;
  #diskOf: (host: string) => DiskFigures | undefined;

  constructor(
    options: {
      hosts: string[];
      /** The pool the probes go through, each on a fresh connection. */
      pool: Http1Pool;
      timeoutMs: number;
      /** Where volume down, full and up events go (lib/events.ts). */
      log: EventLog;
      /** Called when a volume that was down answers its probe again (up or full). */
      onUp: (host: string) => void;
      /** The request target of a probe, signed if the volumes want it (Volumes.signed). */
      signed: (method: string, path: string) => string;
      /** A volume's disk figures as last read (lib/volumes/figures.ts), for the full event. */
      diskOf: (host: string) => DiskFigures | undefined;
    },
  ) {
    this.#pool = options.pool;
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.log;
    this.#onUp = options.onUp;
    this.#signed = options.signed;
    this.#diskOf = options.diskOf;
    for (const host of options.hosts) this.#health.set(host, "up");
  }

  /** Adds hosts to the set that is probed (new volumes of a rebalance, say). */
  track(hosts: string[]): void {
    for (const host of hosts) if (!this.#health.has(host)) this.#health.set(host, "up");
  }

  /** The health of the host of a location (`host:port` or `host:port/svXX`); `down` if unknown. */
  health(location: string): VolumeHealth {
    return this.#health.get(locationHost(location)) ?? "down";
  }

  /**
   * Whether the host of a location answered its last probe, so that reads and DELETEs go to it:
   * a full volume does.
   */
  isAlive(location: string): boolean {
    return this.health(location) !== "down" && !this.#suspect.has(locationHost(location));
  }

  /**
   * Whether the host of a location is alive and sends a client that finds no file back to the
   * index (its last probe's answer said so, MISSES_HEADER), and its probe's `HEAD`, if one is
   * out, is not late (PROBE_LATE_MS): a GET may then be redirected there without checking that it
   * holds the file.
   */
  sendsMisses(location: string): boolean {
    const host = locationHost(location);
    if (!this.#sendsMisses.has(host) || !this.isAlive(host)) return false;
    const startedMs = this.#probeStartedMs.get(host);
    return startedMs === undefined || Date.now() - startedMs < PROBE_LATE_MS;
  }

  /**
   * Waits for the probes of those of `locations` whose volumes are suspect (they closed a socket
   * and are being probed), so that a key held only there is read once a volume proves alive
   * instead of being answered as lost.
   */
  async probed(locations: string[]): Promise<void> {
    const hosts = locations.map(locationHost).filter((host) => this.#suspect.has(host));
    await Promise.all(hosts.map((host) => this.#probing.get(host)));
  }

  /**
   * A volume closed an idle socket of the pool. nginx does so when it stops or dies (all its
   * sockets at once), and seldom otherwise (its keep-alive timeout is longer than the pool's): it
   * is probed at once, and read from again once it answers.
   */
  suspectDead(host: string): void {
    if (this.health(host) === "down" || this.#suspect.has(host)) return;
    this.#suspect.add(host);
    this.probe(host).finally(() => this.#suspect.delete(host));
  }

  /**
   * The first of `locations` whose volume cannot take a write now (down or full) and its health,
   * or undefined if all can.
   */
  unwritable(locations: string[]): { location: string; health: VolumeHealth } | undefined {
    const location = locations.find((l) => this.health(l) !== "up");
    return location === undefined ? undefined : { location, health: this.health(location) };
  }

  hosts(): string[] {
    return [...this.#health.keys()];
  }

  /** How long `host`'s last probe took, in seconds (0 before its first). */
  probeSeconds(host: string): number {
    return (this.#probeMs.get(host) ?? 0) / 1000;
  }

  /** Failed requests to `host` (probes included) since the index started. */
  errors(host: string): number {
    return this.#errors.get(host) ?? 0;
  }

  /** Counts a failed request to `host`. */
  failed(host: string): void {
    this.#errors.set(host, (this.#errors.get(host) ?? 0) + 1);
  }

  /** Marks a volume down and ends every request in flight to it (the probe's verdict). */
  #markDead(location: string, why: string): void {
    const host = locationHost(location);
    if (this.health(host) === "down") return;
    this.#health.set(host, "down");
    this.#log("volume_down", {
      msg: `volume ${host}: marked down: ${why}`,
      volume: host,
      reason: why,
    });
    const reason = new VolumeError(host, null, `volume ${host}: down: ${why}`);
    this.#down.get(host)?.abort(reason);
    this.#down.delete(host);
  }

  #markUp(host: string): void {
    const was = this.health(host);
    if (was === "up") return;
    this.#health.set(host, "up");
    const msg = was === "full" ? `volume ${host}: takes writes again` : `volume ${host}: up again`;
    this.#log("volume_up", { msg, volume: host });
    if (was === "down") this.#onUp(host);
  }

  /**
   * Marks a volume full: it answers, but its write probe failed. Requests in flight go on (reads
   * and deletes work; a write fails by itself). A volume that was down answers reads again.
   */
  #markFull(host: string, why: string): void {
    const was = this.health(host);
    if (was === "full") return;
    this.#health.set(host, "full");
    const disk = this.#diskOf(host);
    const used = disk === undefined || disk.totalBytes === 0
      ? ""
      : ` (disk ${Math.round(100 * (1 - disk.freeBytes / disk.totalBytes))}% used)`;
    this.#log("volume_full", {
      msg: `volume ${host}: full: serves reads and deletes, refuses writes: ${why}${used}`,
      volume: host,
      reason: why,
    });
    if (was === "down") this.#onUp(host);
  }

  /** The signal that ends requests to `host` when it is marked down. */
  downSignal(host: string): AbortSignal {
    let controller = this.#down.get(host);
    if (controller === undefined) {
      controller = new AbortController();
      this.#down.set(host, controller);
    }
    return controller.signal;
  }

  /** Probes every host once; then, with `start()`, every second. */
  async probeAll(): Promise<void> {
    await Promise.all(this.hosts().map((host) => this.probe(host)));
  }

  /**
   * Probes `host` now with its write probe due, whatever its last one found: after a PUT refused
   * with an error status, so that a volume that has just filled up is found full at once.
   */
  async probeWrite(host: string): Promise<void> {
    this.#writeProbedMs.delete(host);
    await this.probe(host);
  }

  /**
   * Probes one host, on a fresh connection so that a stale pooled socket never judges it: a
   * `HEAD /`, and every WRITE_PROBE_INTERVAL_MS (every time while it is not up) a small PUT. A
   * volume that answers the HEAD but refuses the PUT with an error status cannot store (its disk
   * full or read-only): it is full, not down, and takes writes again once the PUT succeeds. No
   * answer to either is down. Concurrent calls for one host share one probe.
   */
  probe(host: string): Promise<void> {
    let running = this.#probing.get(host);
    if (running === undefined) {
      running = this.#probeOnce(host).finally(() => this.#probing.delete(host));
      this.#probing.set(host, running);
    }
    return running;
  }

  async #probeOnce(host: string): Promise<void> {
    const started = performance.now();
    try {
      const status = await this.#probeHead(host);
      if (status >= 500) throw new Error(`status ${status}`);
      const writeDue = this.health(host) !== "up" ||
        Date.now() - (this.#writeProbedMs.get(host) ?? 0) >= WRITE_PROBE_INTERVAL_MS;
      if (writeDue) {
        const status = await this.#pool.request(
          host,
          "PUT",
          this.#signed("PUT", WRITE_PROBE_PATH),
          {
            body: encoder.encode(`${new Date().toISOString()}\n`),
            timeoutMs: this.#timeoutMs,
            fresh: true,
          },
        );
        this.#probeMs.set(host, performance.now() - started);
        // A volume that refuses the probe's path (4xx) is not one of ours: only 5xx counts.
        if (status >= 500) {
          // Counted once, when it turns full, not at each probe (every second) while full.
          if (this.health(host) !== "full") this.failed(host);
          this.#markFull(host, `cannot write: PUT ${WRITE_PROBE_PATH}: status ${status}`);
          return;
        }
        this.#writeProbedMs.set(host, Date.now());
      }
      this.#probeMs.set(host, performance.now() - started);
      this.#markUp(host);
    } catch (err) {
      this.#probeMs.set(host, performance.now() - started);
      this.failed(host);
      this.#markDead(host, `probe failed: ${reason(err)}`);
    }
  }

  /**
   * The status of `HEAD /` on a fresh connection, which is then kept in the pool if it has no
   * young idle socket of the host (Http1Pool `park`); whether the answer announces that the volume
   * sends misses back is noted. A volume that is up gets a second try after a timeout: on a
   * machine short of CPU (the index's own event loop late, say) one probe can time out with
   * nothing wrong, and calling the volume down would fail every write to it. A hung volume is so
   * noticed after two timeouts instead of one.
   */
  async #probeHead(host: string): Promise<number> {
    const head = () =>
      this.#pool.request(host, "HEAD", this.#signed("HEAD", "/"), {
        timeoutMs: this.#timeoutMs,
        fresh: true,
        park: true,
        onHead: (answer) => {
          if (answer.sendsMisses === true) this.#sendsMisses.add(host);
          else this.#sendsMisses.delete(host);
        },
      });
    this.#probeStartedMs.set(host, Date.now());
    try {
      return await head();
    } catch (err) {
      if (!(err instanceof DOMException && err.name === "TimeoutError") || !this.isAlive(host)) {
        throw err;
      }
      return await head();
    } finally {
      this.#probeStartedMs.delete(host);
    }
  }

  /** Probes every host every PROBE_INTERVAL_MS, one round at a time, until `close()`. */
  start(): void {
    if (this.#timer !== undefined) return;
    let running = false;
    this.#timer = setInterval(async () => {
      if (running) return;
      running = true;
      try {
        await this.probeAll();
      } finally {
        running = false;
      }
    }, PROBE_INTERVAL_MS);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
