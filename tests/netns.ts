// A harness of hosts for the tests: Linux network namespaces joined by veth pairs to a bridge in
// the root namespace, so that volumes, the index and the client are on different hosts, each
// with its own addresses, links and routes, on one machine. The client (the test itself) stays
// in the root namespace, which has an address on the bridge; every program a test starts runs in
// its host's namespace (`ip netns exec`, see dev/cluster.ts `netns`). Used by
// tests/faults/hosts_test.ts.
//
// Addresses: 10.231.S.0/24, S drawn per network and not in use on this machine, and the IPv6
// ULA fd0a:e7:S::/64 beside it (0a.e7 is 10.231), the root namespace at .1 and the hosts from .10
// up. Names carry the creating process's pid and a random id, so that parallel runs never clash
// and a network left by a killed run is found and removed by the next one. Everything is removed
// on dispose, also when the test failed. Needs root (CAP_NET_ADMIN) and `ip` (Debian's iproute2).

import { join } from "node:path";
import { ROOT, runCommand, SCRIPT_TIMEOUT_MS, type ScriptResult } from "./helpers.ts";

/** How long one `ip` command may take. */
const IP_TIMEOUT_MS = 10_000;
/** What the names of namespaces start with; `netns-PID-ID-HOST`. */
const NETNS_PREFIX = "mkv-test";
/** Where `ip netns exec NAME` finds files it mounts over /etc, such as `hosts`. */
const NETNS_ETC = "/etc/netns";
/** The first host's last address byte; the root namespace is .1. */
const FIRST_HOST_BYTE = 10;
/** Tries at finding a free 10.231.S.0/24. */
const SUBNET_TRIES = 50;

/** One host: a network namespace with one link to the bridge. */
export interface Host {
  /** The test's name for it, e.g. `vol1`. */
  name: string;
  /** The network namespace's name, for `ip netns exec`. */
  netns: string;
  /** Its IPv4 address, 10.231.S.N. */
  address: string;
  /** Its IPv6 address, fd0a:e7:S::N (bare, without brackets). */
  address6: string;
  /** Its link's end in the root namespace, a port of the bridge: down means the host is cut. */
  link: string;
}

// ---------------------------------------------------------------------------------------------
// Pure

/** The link names of a network (at most 15 bytes, the kernel's limit): `mk` + id + suffix. */
function linkName(id: string, suffix: string): string {
  return `mk${id}${suffix}`;
}

/** The namespace name of a host. */
function netnsName(pid: number, id: string, host: string): string {
  return `${NETNS_PREFIX}-${pid}-${id}-${host}`;
}

/** A hosts file (`/etc/hosts` form) naming `entries` (name → address), and localhost. */
export function renderHosts(entries: Record<string, string>): string {
  const lines = ["127.0.0.1 localhost", "::1 localhost"];
  for (const [name, address] of Object.entries(entries)) lines.push(`${address} ${name}`);
  return lines.join("\n") + "\n";
}

/** The second-to-last bytes S of the 10.231.S.0/24 networks named in `ip -o addr` output. */
export function subnetsInUse(ipAddrOutput: string): Set<number> {
  const used = new Set<number>();
  for (const match of ipAddrOutput.matchAll(/inet 10\.231\.(\d+)\.\d+/g)) {
    used.add(Number(match[1]));
  }
  return used;
}

// ---------------------------------------------------------------------------------------------
// I/O

/** Runs `ip ARGS...`; throws with its stderr if it fails. Returns its stdout. */
async function ip(...args: string[]): Promise<string> {
  const result = await runCommand("ip", args, { timeoutMs: IP_TIMEOUT_MS });
  if (result.code !== 0) {
    throw new Error(`ip ${args.join(" ")}: exit ${result.code}: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/** Runs `ip ARGS...` where failing is fine (removing what may be gone already). */
async function ipQuiet(...args: string[]): Promise<void> {
  await runCommand("ip", args, { timeoutMs: IP_TIMEOUT_MS }).catch(() => {});
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Kills (SIGKILL) every process still in a namespace; they are the test's own. */
async function killAllIn(netns: string): Promise<void> {
  const pids = await runCommand("ip", ["netns", "pids", netns], { timeoutMs: IP_TIMEOUT_MS }).catch(
    () => null,
  );
  for (const pid of pids?.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)) ?? []) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
}

/** Removes a namespace, what runs in it, and its files under /etc/netns. */
async function removeNetns(netns: string): Promise<void> {
  await killAllIn(netns);
  await ipQuiet("netns", "delete", netns);
  await Deno.remove(join(NETNS_ETC, netns), { recursive: true }).catch(() => {});
}

/**
 * Removes the networks of runs that died without cleaning up (their pid is gone): namespaces
 * named `mkv-test-PID-ID-*` and the links `mkID*` of the same id.
 */
async function removeLeftovers(): Promise<void> {
  const listed = await ip("netns", "list");
  const dead = new Set<string>();
  for (const line of listed.split("\n")) {
    const match = line.match(new RegExp(`^(${NETNS_PREFIX}-(\\d+)-([0-9a-f]{4})-\\S+)`));
    if (!match || processAlive(Number(match[2]))) continue;
    dead.add(match[3]);
    await removeNetns(match[1]);
  }
  if (dead.size === 0) return;
  for (const line of (await ip("-o", "link", "show")).split("\n")) {
    const name = line.match(/^\d+: ([^:@]+)/)?.[1];
    if (name && [...dead].some((id) => name.startsWith(linkName(id, "")))) {
      await ipQuiet("link", "delete", name);
    }
  }
}

/**
 * Why network namespaces cannot be made here (not root, no `ip`), or null if they can: tried by
 * making one and removing it. Any other failure throws, so that a broken harness fails the test
 * instead of skipping it.
 */
export async function netnsUnavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return `network namespaces are Linux's; this is ${Deno.build.os}`;
  const probe = netnsName(Deno.pid, "0000", "probe");
  let result: ScriptResult;
  try {
    result = await runCommand("ip", ["netns", "add", probe], { timeoutMs: IP_TIMEOUT_MS });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "`ip` is not installed (Debian: iproute2)";
    throw err;
  }
  if (result.code !== 0) {
    const why = result.stderr.trim();
    if (/not permitted|permission denied/i.test(why)) {
      return `cannot create a network namespace (needs root or CAP_NET_ADMIN): ${why}`;
    }
    throw new Error(`ip netns add ${probe}: exit ${result.code}: ${why}`);
  }
  await ip("netns", "delete", probe);
  return null;
}

/** Hosts on one bridge, with the client's address in the root namespace; removed on dispose. */
export class Network {
  readonly id: string;
  /** S of 10.231.S.0/24 and fd0a:e7:S::/64. */
  readonly subnet: number;
  readonly bridge: string;
  /** The root namespace's addresses on the bridge. */
  readonly rootAddress: string;
  readonly rootAddress6: string;
  readonly hosts = new Map<string, Host>();
  #nextByte = FIRST_HOST_BYTE;

  private constructor(id: string, subnet: number) {
    this.id = id;
    this.subnet = subnet;
    this.bridge = linkName(id, "br");
    this.rootAddress = `10.231.${subnet}.1`;
    this.rootAddress6 = `fd0a:e7:${subnet.toString(16)}::1`;
  }

  /** A bridge with an address in the root namespace, and a host for each of `names`. */
  static async create(names: string[]): Promise<Network> {
    await removeLeftovers();
    const used = subnetsInUse(await ip("-o", "-4", "addr", "show"));
    let subnet = 0;
    for (let i = 0; i < SUBNET_TRIES && subnet === 0; i++) {
      const s = 1 + Math.floor(Math.random() * 254);
      if (!used.has(s)) subnet = s;
    }
    if (subnet === 0) throw new Error("no free 10.231.S.0/24 for a test network");
    const id = crypto.getRandomValues(new Uint8Array(2)).toHex();
    const network = new Network(id, subnet);
    try {
      await ip("link", "add", network.bridge, "type", "bridge", "forward_delay", "0");
      await ip("addr", "add", `${network.rootAddress}/24`, "dev", network.bridge);
      await ip("addr", "add", `${network.rootAddress6}/64`, "dev", network.bridge, "nodad");
      await ip("link", "set", network.bridge, "up");
      for (const name of names) await network.addHost(name);
    } catch (err) {
      await network.remove();
      throw err;
    }
    return network;
  }

  /** The host named `name`. */
  host(name: string): Host {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no host ${name} in network ${this.id}`);
    return host;
  }

  /** Adds a host: a namespace with `lo` up and one link to the bridge, with both addresses. */
  async addHost(name: string): Promise<Host> {
    const byte = this.#nextByte++;
    const host: Host = {
      name,
      netns: netnsName(Deno.pid, this.id, name),
      address: `10.231.${this.subnet}.${byte}`,
      address6: `fd0a:e7:${this.subnet.toString(16)}::${byte.toString(16)}`,
      link: linkName(this.id, `h${byte}`),
    };
    this.hosts.set(name, host);
    await ip("netns", "add", host.netns);
    await ip("-n", host.netns, "link", "set", "lo", "up");
    await ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.netns);
    await ip("link", "set", host.link, "master", this.bridge);
    await ip("link", "set", host.link, "up");
    await ip("-n", host.netns, "addr", "add", `${host.address}/24`, "dev", "eth0");
    await ip("-n", host.netns, "addr", "add", `${host.address6}/64`, "dev", "eth0", "nodad");
    await ip("-n", host.netns, "link", "set", "eth0", "up");
    return host;
  }

  /** Takes the host's link down: nothing reaches it or leaves it, as if unplugged. */
  async linkDown(host: Host): Promise<void> {
    await ip("link", "set", host.link, "down");
  }

  async linkUp(host: Host): Promise<void> {
    await ip("link", "set", host.link, "up");
  }

  /**
   * Cuts `from` off from `to` (both addresses) with blackhole routes in `from`'s namespace: a
   * partition that only `from` sees; everyone else still reaches `to`.
   */
  async cut(from: Host, to: Host): Promise<void> {
    await ip("-n", from.netns, "route", "add", "blackhole", `${to.address}/32`);
    await ip("-n", from.netns, "-6", "route", "add", "blackhole", `${to.address6}/128`);
  }

  /** Undoes `cut`. */
  async heal(from: Host, to: Host): Promise<void> {
    await ip("-n", from.netns, "route", "delete", "blackhole", `${to.address}/32`);
    await ip("-n", from.netns, "-6", "route", "delete", "blackhole", `${to.address6}/128`);
  }

  /**
   * Gives the host a hosts file of its own (`/etc/netns/NETNS/hosts`, which `ip netns exec`
   * mounts over /etc/hosts for the processes started afterwards).
   */
  async writeHosts(host: Host, entries: Record<string, string>): Promise<void> {
    const dir = join(NETNS_ETC, host.netns);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "hosts"), renderHosts(entries));
  }

  /** Runs `deno run -A ARGS...` of this repository in the host's namespace, to its end. */
  async runScript(host: Host, args: string[]): Promise<ScriptResult> {
    const deno = [Deno.execPath(), "run", "-A", "--config", join(ROOT, "deno.json")];
    return await runCommand("ip", ["netns", "exec", host.netns, ...deno, ...args], {
      timeoutMs: SCRIPT_TIMEOUT_MS,
    });
  }

  /** Removes every host (killing what still runs there), the links and the bridge. */
  async remove(): Promise<void> {
    for (const host of this.hosts.values()) {
      await ipQuiet("link", "delete", host.link);
      await removeNetns(host.netns);
    }
    this.hosts.clear();
    await ipQuiet("link", "delete", this.bridge);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }
}
