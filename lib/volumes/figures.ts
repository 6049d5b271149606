// The slow poll of each volume's own figures (lib/volumes/statusvolume.ts): its disk space and
// its nginx's connections and requests, for the metrics, the status page and the answer to a
// write a volume has no room for. Never on a request's path; a volume that does not serve them
// (an older one) simply has none.

import { DISK_STATUS_PATH, STUB_STATUS_PATH, volumeUrl } from "./protocol.ts";
import {
  type DiskFigures,
  parseDiskFigures,
  parseStubStatus,
  type StubStatus,
} from "./statusvolume.ts";

/** How often each volume's own figures (lib/volumes/statusvolume.ts) are read. */
const FIGURES_INTERVAL_MS = 10_000;
/** The most bytes read of a volume's figures: both answers are a few lines. */
const FIGURES_MAX_BYTES = 4096;

/** Each volume's figures as last read. */
export class Figures {
  #disk = new Map<string, DiskFigures>();
  #nginx = new Map<string, StubStatus>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Ends the figures' requests in flight when the client closes. */
  #closing = new AbortController();
  #client: Deno.HttpClient;
  #scheme: "http" | "https";
  #timeoutMs: number;
  #signed: (method: string, path: string) => string;
  #liveHosts: () => string[];

  constructor(
    options: {
      /** The client the streams use (Volumes), so that the poll opens no connections of its own. */
      client: Deno.HttpClient;
      scheme: "http" | "https";
      timeoutMs: number;
      /** The request target of a read, signed if the volumes want it (Volumes.signed). */
      signed: (method: string, path: string) => string;
      /** The hosts to read: those that answer their probe. */
      liveHosts: () => string[];
    },
  ) {
    this.#client = options.client;
    this.#scheme = options.scheme;
    this.#timeoutMs = options.timeoutMs;
    this.#signed = options.signed;
    this.#liveHosts = options.liveHosts;
  }

  /** `host`'s filesystem as last read (absent until read, or from a volume without the file). */
  disk(host: string): DiskFigures | undefined {
    return this.#disk.get(host);
  }

  /** `host`'s nginx's connections and requests, as last read. */
  nginx(host: string): StubStatus | undefined {
    return this.#nginx.get(host);
  }

  /**
   * Reads the figures of every host that is up (its disk file and nginx's stub_status).
   * Failures are not the volume's errors: the probe judges its health.
   */
  async read(): Promise<void> {
    await Promise.all(
      this.#liveHosts().map(async (host) => {
        const [disk, nginx] = await Promise.all([
          this.#readSmall(host, DISK_STATUS_PATH),
          this.#readSmall(host, STUB_STATUS_PATH),
        ]);
        const figures = disk === null ? null : parseDiskFigures(disk);
        if (figures !== null) this.#disk.set(host, figures);
        const counts = nginx === null ? null : parseStubStatus(nginx);
        if (counts !== null) this.#nginx.set(host, counts);
      }),
    );
  }

  /** The body of a small answer (`GET path` on `host`), or null on any failure. */
  async #readSmall(host: string, path: string): Promise<string | null> {
    try {
      const url = volumeUrl({ host, path: this.#signed("GET", path) }, this.#scheme);
      const response = await fetch(url, {
        client: this.#client,
        signal: AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), this.#closing.signal]),
      });
      const length = Number(response.headers.get("content-length") ?? FIGURES_MAX_BYTES + 1);
      if (response.status !== 200 || !(length <= FIGURES_MAX_BYTES)) {
        await response.body?.cancel();
        return null;
      }
      return await response.text();
    } catch (err) {
      if (err instanceof TypeError || err instanceof DOMException) return null;
      throw err;
    }
  }

  /** Reads the figures now and every FIGURES_INTERVAL_MS, one round at a time, until `close()`. */
  start(): void {
    if (this.#timer !== undefined) return;
    let reading = false;
    const read = async () => {
      if (reading) return;
      reading = true;
      try {
        await this.read();
      } finally {
        reading = false;
      }
    };
    read();
    this.#timer = setInterval(read, FIGURES_INTERVAL_MS);
  }

  /** Stops the poll and ends its requests in flight. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#closing.abort();
  }
}
