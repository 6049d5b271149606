// Golden tests of bench/proc.ts's pure parsers: fixed /proc/PID/stat, /proc/PID/status and
// /proc/loadavg text (taken from a Linux machine, some fields changed to tell them apart) and the
// numbers the bench must read from it; then the descendant walk over a fixed process tree.

import assert from "node:assert/strict";
import {
  descendantsIn,
  parseLoadAverage,
  parsePeakRssMib,
  parseStat,
  parseStatusMib,
  type ProcStat,
  TICKS_PER_SECOND,
} from "../../bench/proc.ts";

/** An nginx worker: ppid 20679, utime 250, stime 75, cutime 12, cstime 3 ticks. */
const NGINX_STAT = "20681 (nginx) S 20679 20679 18933 0 -1 4194560 97 0 0 0 250 75 12 3 20 0 1 0 " +
  "252453 3133440 383 18446744073709551615 94761562177536 94761562197417 140720849204704 0 0 0 " +
  "0 0 0 0 0 0 17 1 0 0 0 0 0 94761562213424 94761562215040 94762061615104 140720849205978 " +
  "140720849205998 140720849205998 140720849207275 0\n";

/** A command name with spaces and a parenthesis: only the last `)` ends it. */
const ODD_NAME_STAT =
  "777 (my (odd) name) R 1 777 777 0 -1 4194304 0 0 0 0 1234 567 8 9 20 0 1 0 " +
  "100 3133440 383 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

const STATUS = [
  "Name:\tdeno",
  "Umask:\t0022",
  "State:\tS (sleeping)",
  "Tgid:\t4242",
  "Pid:\t4242",
  "PPid:\t4200",
  "VmPeak:\t 2000000 kB",
  "VmSize:\t 1900000 kB",
  "VmLck:\t       0 kB",
  "VmHWM:\t   62464 kB",
  "VmRSS:\t   48640 kB",
  "RssAnon:\t   30000 kB",
  "Threads:\t9",
  "",
].join("\n");

/** The expected parse: CPU times in seconds, user then system, of the process and its children. */
function expectedStat(
  pid: number,
  ppid: number,
  [user, system]: number[],
  [childrenUser, childrenSystem]: number[],
): ProcStat {
  return {
    pid,
    ppid,
    cpu: { user, system },
    children: { user: childrenUser, system: childrenSystem },
  };
}

Deno.test("proc: a stat line gives pid, ppid and the CPU times in seconds", () => {
  assert.equal(TICKS_PER_SECOND, 100);
  assert.deepEqual(parseStat(NGINX_STAT), expectedStat(20681, 20679, [2.5, 0.75], [0.12, 0.03]));
  // A command name with spaces and parentheses does not shift the fields.
  assert.deepEqual(parseStat(ODD_NAME_STAT), expectedStat(777, 1, [12.34, 5.67], [0.08, 0.09]));
});

Deno.test("proc: an empty or cut stat read (the process has gone) is null", () => {
  assert.equal(parseStat(""), null);
  assert.equal(parseStat("20681 (nginx) S 20679 20679"), null);
});

Deno.test("proc: status lines in kB are read in MiB", () => {
  assert.equal(parseStatusMib(STATUS, "VmHWM"), 61);
  assert.equal(parseStatusMib(STATUS, "VmRSS"), 47.5);
  assert.equal(parseStatusMib(STATUS, "VmLck"), 0);
  assert.equal(parseStatusMib(STATUS, "VmSwap"), null);
  // A line whose name merely ends like the one asked for is not it.
  assert.equal(parseStatusMib(STATUS, "Anon"), null);
  assert.equal(parsePeakRssMib(STATUS), 61);
  assert.throws(() => parsePeakRssMib("Name:\tdeno\nVmRSS:\t 1024 kB\n"), /no VmHWM/);
});

Deno.test("proc: the load average is the first three fields of /proc/loadavg", () => {
  assert.equal(parseLoadAverage("1.63 1.19 0.64 1/87 20683\n"), "1.63 1.19 0.64");
  assert.equal(parseLoadAverage("?"), "?");
});

Deno.test("proc: descendants are children, grandchildren..., depth first", () => {
  // 10 (Deno) → 11 (nginx master) → 12, 13 (workers); 20 elsewhere, with a child of its own.
  const parents = new Map([[1, 0], [10, 1], [11, 10], [12, 11], [13, 11], [20, 1], [21, 20]]);
  assert.deepEqual(descendantsIn(parents, 10), [11, 12, 13]);
  assert.deepEqual(descendantsIn(parents, 11), [12, 13]);
  assert.deepEqual(descendantsIn(parents, 12), []);
  assert.deepEqual(descendantsIn(parents, 99), []);
});
