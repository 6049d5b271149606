// The address nginx proxies a volume at (docs/s3.md, "Reads never pass through Deno"): an IP
// address and port, since nginx resolves names in proxy_pass only at start (or with a resolver).
// Names are looked up again every ADDRESS_TTL_MS.

import { lookup } from "node:dns/promises";
import { firstLine } from "../errors.ts";
import { isHostPort } from "../placement.ts";
import { S3Error } from "./error.ts";

/** A volume host's resolved address is used this long before it is looked up again. */
const ADDRESS_TTL_MS = 10_000;

/** The resolved addresses of volume hosts, each kept ADDRESS_TTL_MS. */
export class VolumeAddresses {
  #addresses = new Map<string, { address: string; atMs: number }>();

  /** The `address:port` of a volume's `host:port`; S3Error (ServiceUnavailable) if it has none. */
  async resolve(host: string): Promise<string> {
    const colon = host.lastIndexOf(":");
    const name = host.slice(0, colon);
    if (name.startsWith("[") || /^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return host;
    const cached = this.#addresses.get(host);
    if (cached !== undefined && Date.now() - cached.atMs < ADDRESS_TTL_MS) return cached.address;
    let address: string;
    try {
      const found = await lookup(name);
      address = found.family === 6
        ? `[${found.address}]${host.slice(colon)}`
        : `${found.address}${host.slice(colon)}`;
    } catch (err) {
      throw new S3Error(
        503,
        "ServiceUnavailable",
        `volume ${host}: cannot resolve ${name}: ${firstLine(err)}`,
      );
    }
    if (!isHostPort(address)) {
      throw new S3Error(503, "ServiceUnavailable", `volume ${host}: bad address ${address}`);
    }
    this.#addresses.set(host, { address, atMs: Date.now() });
    return address;
  }
}
