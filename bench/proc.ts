// What the bench tools (bench.ts, profile.ts) read from Linux's /proc: the CPU times of processes
// (/proc/PID/stat), their resident set (/proc/PID/status), the descendants of a process (the nginx
// master and workers of a Deno process), the load average. The parsers come first and are pure
// (tests/unit/proc_test.ts feeds them fixed /proc text); the readers after them touch /proc.

/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux). */
export const TICKS_PER_SECOND = 100;

/** CPU seconds in user and in system (kernel) mode. */
export interface CpuTimes {
  user: number;
  system: number;
}

/** What the bench uses of one /proc/PID/stat line; times in seconds. */
export interface ProcStat {
  pid: number;
  ppid: number;
  /** CPU time of the process itself (utime, stime). */
  cpu: CpuTimes;
  /** CPU time of the children it waited for (cutime, cstime). */
  children: CpuTimes;
}

// ---- pure: parsing /proc text ----

/**
 * One /proc/PID/stat line (see proc(5)), or null if it is not one (an empty read: the process
 * has gone). The command name is in parentheses and may hold spaces and parentheses itself.
 */
export function parseStat(stat: string): ProcStat | null {
  const close = stat.lastIndexOf(")");
  if (close < 0) return null;
  // The fields after the command name: [0] is field 3 of proc(5) (state), [1] field 4 (ppid),
  // [11]..[14] fields 14..17 (utime, stime, cutime, cstime), in clock ticks.
  const fields = stat.slice(close + 2).split(" ");
  if (fields.length < 15) return null;
  const seconds = (field: string) => Number(field) / TICKS_PER_SECOND;
  return {
    pid: Number(stat.slice(0, stat.indexOf(" "))),
    ppid: Number(fields[1]),
    cpu: { user: seconds(fields[11]), system: seconds(fields[12]) },
    children: { user: seconds(fields[13]), system: seconds(fields[14]) },
  };
}

/** A `kB` line of a /proc/PID/status text (`VmHWM`, `VmRSS`...) in MiB, or null if absent. */
export function parseStatusMib(status: string, name: string): number | null {
  const match = status.match(new RegExp(`^${name}:\\s+(\\d+) kB$`, "m"));
  return match ? Number(match[1]) / 1024 : null;
}

/** `VmHWM` (peak resident set) of a `/proc/PID/status` text, in MiB. */
export function parsePeakRssMib(status: string): number {
  const mib = parseStatusMib(status, "VmHWM");
  if (mib === null) throw new Error("no VmHWM in /proc status");
  return mib;
}

/** The three load averages of a /proc/loadavg text (`"1.63 1.19 0.64"`). */
export function parseLoadAverage(loadavg: string): string {
  return loadavg.split(" ").slice(0, 3).join(" ");
}

/** Every descendant of `pid` in a map of pid → parent pid, depth first. */
export function descendantsIn(parents: Map<number, number>, pid: number): number[] {
  const out: number[] = [];
  const walk = (of: number) => {
    for (const [child, parent] of parents) {
      if (parent === of) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

// ---- I/O: reading /proc ----

/** The parsed /proc/PID/stat of `pid` (or of this process), or null if it has gone. */
export async function readStat(pid: number | "self"): Promise<ProcStat | null> {
  return parseStat(await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => ""));
}

/**
 * CPU seconds (user + system) of the main thread of `pid` (its thread id is the pid): for Deno,
 * the thread that runs JavaScript, which one core bounds however many the machine has. Null if
 * the process has gone.
 */
export async function mainThreadCpuSeconds(pid: number): Promise<number | null> {
  const stat = parseStat(await Deno.readTextFile(`/proc/${pid}/task/${pid}/stat`).catch(() => ""));
  return stat === null ? null : stat.cpu.user + stat.cpu.system;
}

/** CPU seconds (user, system) used so far by each of `pids`; those gone are left out. */
export async function cpuSeconds(pids: number[]): Promise<Map<number, CpuTimes>> {
  const times = new Map<number, CpuTimes>();
  for (const pid of pids) {
    const stat = await readStat(pid);
    if (stat !== null) times.set(pid, stat.cpu);
  }
  return times;
}

/** The summed CPU seconds (user + system) of `pids` so far. */
export async function totalCpuSeconds(pids: number[]): Promise<number> {
  let total = 0;
  for (const { user, system } of (await cpuSeconds(pids)).values()) total += user + system;
  return total;
}

/** CPU seconds used by the children this process waited for: the load generators (wrk, thrasher). */
export async function childrenCpuSeconds(): Promise<CpuTimes> {
  const stat = await readStat("self");
  if (stat === null) throw new Error("cannot read /proc/self/stat");
  return stat.children;
}

/** Every descendant of `pid` (nginx master and workers of a Deno process, say). */
export async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await readStat(Number(entry.name));
    if (stat !== null) parents.set(Number(entry.name), stat.ppid);
  }
  return descendantsIn(parents, pid);
}

/** The current resident set (`VmRSS`) of `pid` in MiB, or null if /proc does not say. */
export async function readRssMib(pid: number): Promise<number | null> {
  return parseStatusMib(await Deno.readTextFile(`/proc/${pid}/status`), "VmRSS");
}

/** The peak resident set (`VmHWM`) of `pid` in MiB, since its start or its last reset. */
export async function readPeakRssMib(pid: number): Promise<number> {
  return parsePeakRssMib(await Deno.readTextFile(`/proc/${pid}/status`));
}

/** Resets the peak resident set (VmHWM) of `pid` to its current one; false if not allowed. */
export function resetPeakRss(pid: number): boolean {
  try {
    // "5" resets the peak resident set (VmHWM) to the current one (see proc(5), clear_refs).
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The three load averages (1, 5, 15 minutes) of /proc/loadavg, or "?" if it cannot be read. */
export async function loadAverage(): Promise<string> {
  return parseLoadAverage(await Deno.readTextFile("/proc/loadavg").catch(() => "?"));
}
