// The index's plain HTTP API (minikeyvalue's, docs/design.md): GET/HEAD answer with a 302 to a
// live replica, PUT streams to every replica at once, DELETE/UNLINK, REBALANCE, and `?list` /
// `?unlinked` listings; the `/-/` endpoints, the miss route (`/-/miss/...`, where a volume sends
// a client back that found no file: lib/core/miss.ts); and S3 requests handed to the S3 API,
// loaded on the first one. Bad input gets a 4xx with a short reason; a 5xx always names the volume
// or the disk that failed. The index itself is the core (lib/core/).

import {
  type Core,
  failureStatus,
  hasUploads,
  type KeyRecord,
  type KeyResult,
  missedKey,
  StoreError,
} from "../core/mod.ts";
import { textResponse } from "../errors.ts";
import { splitTarget } from "../rawtarget.ts";
import { OperationBoard } from "../ops/runner.ts";
import type { S3Api } from "../s3/api.ts";
import { isS3Request } from "../s3/detect.ts";
import { MISS_PREFIX, VolumeError } from "../volumes/mod.ts";
import { endpoint, ENDPOINTS, type Observed, RESERVED_PREFIX } from "./endpoints.ts";
import type { IndexMetrics } from "./metrics.ts";
import { StatusHistory } from "./status.ts";
import { parseTarget } from "./target.ts";

/** The methods of the API, for `Allow`. */
const ALLOW = "GET, HEAD, PUT, DELETE, UNLINK, REBALANCE";

/** The miss route's paths: MISS_PREFIX, then the file's path on the volume. */
const MISS_ROUTE = `${MISS_PREFIX}/`;

/** An answer without a body; Deno.serve adds its `Content-Length: 0`. */
function empty(status: number, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

/** The answer to a DELETE, UNLINK or REBALANCE: 204, a bare 404, or the refusal's reason. */
function keyAnswer(result: KeyResult): Response {
  if (result.ok) return empty(204);
  return result.status === 404 ? empty(404) : textResponse(result.status, result.reason);
}

/** The HTTP front of one core: `handle` answers every request of the index's port. */
export class IndexApi implements Observed {
  readonly core: Core;
  /** What `/-/metrics` shows; kept unless --metrics=false (a few additions per request). */
  readonly metrics: IndexMetrics;
  /** The operation running on this index, and the last one (the admin socket's). */
  readonly board = new OperationBoard();
  /** Request rate and latency over the last minutes, for the status page. */
  readonly history = new StatusHistory();
  /** Whether requests are measured (`--metrics`). */
  readonly measure: boolean;
  /** The S3 API, made on the first S3 request. */
  #s3: Promise<S3Api> | null = null;

  constructor(core: Core, metrics: IndexMetrics) {
    this.core = core;
    this.metrics = metrics;
    this.measure = core.options.metrics !== false;
  }

  handle = async (request: Request): Promise<Response> => {
    const started = performance.now();
    let response: Response;
    try {
      response = await this.#route(request);
    } catch (err) {
      if (!(err instanceof StoreError || err instanceof VolumeError)) throw err;
      await request.body?.cancel().catch(() => {});
      const { status, reason } = failureStatus(err);
      response = textResponse(status, reason);
    }
    if (this.measure) {
      this.metrics.request(request.method, response.status, (performance.now() - started) / 1000);
    }
    if (this.core.options.verbose) {
      const ms = (performance.now() - started).toFixed(1);
      console.error(
        `${request.method} ${new URL(request.url).pathname} ${response.status} ${ms}ms`,
      );
    }
    return response;
  };

  async #route(request: Request): Promise<Response> {
    const url = request.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    const target = pathStart === -1 ? "/" : url.slice(pathStart);
    const method = request.method;
    if (target.startsWith(MISS_ROUTE) && (method === "GET" || method === "HEAD")) {
      return await this.#miss(target, request);
    }
    if (target.startsWith(RESERVED_PREFIX) && (method === "GET" || method === "HEAD")) {
      const answer = await endpoint(this, target, request);
      if (answer !== null) return answer;
    }
    // S3 requests go to the S3 API, told apart as docs/s3.md, "Which requests are S3's", says
    // (lib/s3/detect.ts).
    const { rawQuery } = splitTarget(target);
    if (isS3Request({ rawQuery, headers: request.headers })) {
      return await (await this.#s3Api()).handle(request, target);
    }
    const parsed = parseTarget(target);
    if (parsed.kind === "bad") {
      await request.body?.cancel();
      return textResponse(parsed.status, parsed.reason);
    }
    const auth = this.core.options.auth;
    if (auth) {
      const verdict = auth.check(method, parsed.kind, request.headers.get("authorization"));
      if (!verdict.ok) {
        await request.body?.cancel();
        return textResponse(verdict.status, verdict.reason, verdict.headers);
      }
    }
    if (parsed.kind === "list") {
      if (method !== "GET" && method !== "HEAD") {
        await request.body?.cancel();
        return textResponse(400, `${method} takes no query`);
      }
      return await this.#list(parsed);
    }
    if (
      parsed.key.startsWith(RESERVED_PREFIX) &&
      (method === "PUT" || method === "DELETE" || method === "UNLINK" || method === "REBALANCE")
    ) {
      await request.body?.cancel();
      return textResponse(
        400,
        `keys under ${RESERVED_PREFIX} are reserved for the index's endpoints ` +
          `(${ENDPOINTS.join(", ")}): ${method} refused`,
      );
    }
    switch (method) {
      case "GET":
      case "HEAD":
        return await this.#get(parsed.key, parsed.rawPath);
      case "PUT":
        return await this.#put(parsed.key, request);
      case "DELETE":
      case "UNLINK":
        await request.body?.cancel();
        return keyAnswer(
          await this.core.remove(parsed.key, { unlink: method === "UNLINK", background: true }),
        );
      case "REBALANCE":
        await request.body?.cancel();
        return keyAnswer(await this.core.rebalance(parsed.key));
      default:
        await request.body?.cancel();
        return textResponse(405, `method ${method} not allowed`, { allow: ALLOW });
    }
  }

  async #get(key: string, rawPath: string): Promise<Response> {
    const found = await this.core.locate(key);
    if (found.ok) return this.#redirect(key, found.record, found.location);
    return found.status === 404 ? this.#notFound(rawPath) : textResponse(410, found.reason);
  }

  /**
   * A client that a volume sent back for want of a file (`/-/miss/PATH?volume=HOST`): a 302 to a
   * replica just seen holding it, a bare 404, or 410 with the reason. It needs the right to read.
   */
  async #miss(target: string, request: Request): Promise<Response> {
    const verdict = this.core.options.auth?.check(
      "GET",
      "key",
      request.headers.get("authorization"),
    );
    if (verdict !== undefined && !verdict.ok) {
      return textResponse(verdict.status, verdict.reason, verdict.headers);
    }
    const { rawPath, rawQuery } = splitTarget(target);
    let volumePath: string;
    try {
      volumePath = decodeURIComponent(rawPath.slice(MISS_PREFIX.length));
    } catch (err) {
      if (!(err instanceof URIError)) throw err;
      return textResponse(400, "the path is not valid percent-encoded UTF-8");
    }
    const found = await this.core.miss(
      volumePath,
      new URLSearchParams(rawQuery).get("volume") ?? "",
    );
    if (found.ok) return this.#redirect(missedKey(volumePath)!, found.record, found.location);
    return found.status === 404 ? empty(404) : textResponse(410, found.reason);
  }

  #notFound(rawPath: string): Response {
    const fallback = this.core.options.fallback;
    if (fallback === "") return empty(404);
    return empty(302, { location: `http://${fallback}${rawPath}` });
  }

  #redirect(key: string, record: KeyRecord, location: string): Response {
    const parts = this.core.redirectParts(key, record);
    const headers: Record<string, string> = {
      // With private reads the URL carries its own signature: `curl -L` needs no header there.
      location: this.core.volumes.readUrl(location, parts.path, this.core.options.readExpiryMs),
      "key-volumes": parts.volumes,
      "key-balance": parts.balance,
    };
    if (record.md5 !== "") headers["content-md5"] = record.md5;
    return new Response(null, { status: 302, headers });
  }

  async #list(
    parsed: { key: string; state: "live" | "unlinked"; start?: string; limit: number },
  ): Promise<Response> {
    // The index's own keys (multipart parts) are no one's values.
    const body = await this.core.store.listJson({
      prefix: parsed.key,
      start: parsed.start,
      state: parsed.state,
      exclude: RESERVED_PREFIX,
      limit: parsed.limit,
    });
    return new Response(body, {
      headers: { "content-type": "application/json" },
    });
  }

  async #put(key: string, request: Request): Promise<Response> {
    const length = request.headers.get("content-length");
    const result = await this.core.write(key, request.body, {
      sizeBytes: length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined,
    });
    return result.ok ? empty(201) : textResponse(result.status, result.reason);
  }

  /**
   * The S3 API, loaded on the first S3 request: a plain minikeyvalue index never pays its
   * memory (XML, SigV4 and Node's crypto).
   */
  #s3Api(): Promise<S3Api> {
    this.#s3 ??= import("../s3/api.ts").then(({ S3Api }) => new S3Api(this.core));
    return this.#s3;
  }

  /**
   * Aborts S3 multipart uploads older than --multipart-max-age and parts left without an upload;
   * loads the S3 API only if there is any.
   */
  async reapUploads(): Promise<number> {
    if (!await hasUploads(this.core.store)) return 0;
    return await (await this.#s3Api()).multipart.reap();
  }

  /**
   * Starts the core's sweeps, with the reaping of S3 multipart uploads, and (unless
   * --metrics=false) samples the request totals for the status page's history meanwhile.
   */
  start(): void {
    this.core.startSweeps(() => this.reapUploads());
    if (this.measure) this.history.start(() => this.metrics.totals());
  }

  /** Stops the sampling and the core's sweeps; waits for one running. */
  async stop(): Promise<void> {
    this.history.stop();
    await this.core.stopSweeps();
  }
}
