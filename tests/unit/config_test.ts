// Tests of the command lines of the programs: lib/config.ts (index.ts: minikeyvalue's flags and
// defaults, the subcommands, and the checks that refuse a bad cluster description) and
// parseVolumeArgs of volume.ts.

import assert from "node:assert/strict";
import { resolve } from "node:path";
import { COMMANDS, INDEX_FLAGS, INDEX_USAGE, parseIndexArgs } from "../../lib/config.ts";
import { FlagError } from "../../lib/flags.ts";
import { parseVolumeArgs, type VolumeOptions } from "../../volume.ts";

const VOLUMES = "localhost:3001,localhost:3002,localhost:3003";
const BASE = ["server", "--db", "/tmp/indexdb", "--volumes", VOLUMES];

/** Asserts that `parse(args)` throws a one-line FlagError matching `message`. */
function assertRefused(parse: (args: string[]) => unknown, args: string[], message: RegExp) {
  assert.throws(() => parse(args), (err: Error) => {
    assert.ok(err instanceof FlagError, `${args.join(" ")}: ${err}`);
    assert.match(err.message, message, args.join(" "));
    assert.ok(!err.message.includes("\n"), err.message);
    return true;
  });
}

Deno.test("parseIndexArgs: minikeyvalue's defaults", () => {
  assert.deepEqual(parseIndexArgs(BASE), {
    command: "server",
    port: 3000,
    db: "/tmp/indexdb",
    volumes: ["localhost:3001", "localhost:3002", "localhost:3003"],
    replicas: 3,
    subvolumes: 10,
    protect: false,
    md5sum: true,
    voltimeoutMs: 1000,
    fallback: "",
    verbose: false,
    credentials: "",
    publicRead: false,
    md5: false,
    repair: false,
    dryRun: false,
    concurrency: 8,
    json: false,
    multipartMaxAgeMs: 7 * 24 * 3_600_000,
  });
});

Deno.test("parseIndexArgs: every server flag, Go style, subcommand last", () => {
  const options = parseIndexArgs([
    "-port",
    "3005",
    "-db",
    "/tmp/indexdb/",
    "-volumes",
    "localhost:3001,localhost:3002",
    "-replicas",
    "2",
    "-subvolumes",
    "1",
    "-protect",
    "-md5sum=false",
    "-voltimeout",
    "1m30s",
    "-fallback",
    "localhost:4000",
    "-v",
    "-credentials",
    "/etc/mkv/credentials",
    "-public-read",
    "-multipart-max-age",
    "24h",
    "server",
  ]);
  assert.deepEqual(options, {
    command: "server",
    port: 3005,
    db: "/tmp/indexdb/",
    volumes: ["localhost:3001", "localhost:3002"],
    replicas: 2,
    subvolumes: 1,
    protect: true,
    md5sum: false,
    voltimeoutMs: 90_000,
    fallback: "localhost:4000",
    verbose: true,
    credentials: "/etc/mkv/credentials",
    publicRead: true,
    md5: false,
    repair: false,
    dryRun: false,
    concurrency: 8,
    json: false,
    multipartMaxAgeMs: 24 * 3_600_000,
    // -v without --access-log: nginx's access log goes to stderr.
    accessLog: "stderr",
  });
});

Deno.test("parseIndexArgs: the operations and their flags", () => {
  for (const command of COMMANDS) {
    const options = parseIndexArgs([command, ...BASE.slice(1)]);
    assert.ok(options !== "help");
    assert.equal(options.command, command);
  }
  const options = parseIndexArgs([
    "verify",
    ...BASE.slice(1),
    "--md5",
    "--repair",
    "--dry-run",
    "--json",
    "--concurrency",
    "32",
  ]);
  assert.ok(options !== "help");
  assert.deepEqual(
    [options.md5, options.repair, options.dryRun, options.json, options.concurrency],
    [true, true, true, true, 32],
  );
});

Deno.test("parseIndexArgs: volume hosts may be names, IPv4 or bracketed IPv6", () => {
  const options = parseIndexArgs([
    "server",
    "--db",
    "d",
    "--volumes",
    "vol-1.example:80, 127.0.0.1:3001,[::1]:3002",
    "--fallback",
    "[::1]:8080",
  ]);
  assert.ok(options !== "help");
  assert.deepEqual(options.volumes, ["vol-1.example:80", "127.0.0.1:3001", "[::1]:3002"]);
  assert.equal(options.fallback, "[::1]:8080");
});

Deno.test("parseIndexArgs: --help, anywhere", () => {
  assert.equal(parseIndexArgs(["--help"]), "help");
  assert.equal(parseIndexArgs(["server", "-h"]), "help");
  assert.equal(parseIndexArgs([...BASE, "-help"]), "help");
  // Usage is asked for even when the rest would be refused.
  assert.equal(parseIndexArgs(["--replicas", "9", "--help"]), "help");
});

Deno.test("parseIndexArgs: refuses a bad command line with a one-line reason", () => {
  const cases: [string[], RegExp][] = [
    [BASE.slice(1), /a command is needed/],
    [["serve", ...BASE.slice(1)], /unknown command serve/],
    [[...BASE, "extra"], /unexpected argument extra/],
    [[...BASE, "--bogus"], /unknown flag --bogus/],
    [[...BASE, "--port"], /-port needs a value/],
    [[...BASE, "--port", "0"], /-port 0 is not a port number/],
    [[...BASE, "--port", "65536"], /-port 65536 is not a port number/],
    [["server", "--volumes", VOLUMES], /-db is required/],
    [["server", "--db", "d"], /-volumes is required/],
    [["server", "--db", "d", "--volumes", ","], /-volumes is required/],
    [["server", "--db", "d", "--volumes", "localhost"], /volume "localhost" is not host:port/],
    [["server", "--db", "d", "--volumes", "http://a:1"], /volume "http:\/\/a:1" is not/],
    [["server", "--db", "d", "--volumes", "a:1/sv00"], /volume "a:1\/sv00" is not host:port/],
    [["server", "--db", "d", "--volumes", "a:1,a:1"], /-volumes has a duplicate/],
    [[...BASE, "--replicas", "4"], /-replicas 4 is more than the 3 volumes/],
    [[...BASE, "--replicas", "0"], /-replicas must be at least 1/],
    [[...BASE, "--multipart-max-age", "500ms"], /-multipart-max-age must be at least 1s/],
    [[...BASE, "--subvolumes", "0"], /-subvolumes must be 1 to 256/],
    [[...BASE, "--subvolumes", "257"], /-subvolumes must be 1 to 256/],
    [[...BASE, "--voltimeout", "0s"], /-voltimeout must be more than 0/],
    [[...BASE, "--voltimeout", "1"], /-voltimeout: invalid duration/],
    [[...BASE, "--fallback", "http://x/"], /-fallback "http:\/\/x\/" is not host:port/],
    [[...BASE, "--md5sum=nope"], /invalid value "nope" for -md5sum/],
    [[...BASE, "--concurrency", "0"], /-concurrency must be 1 to 1024/],
    [[...BASE, "--public-read"], /-public-read needs -credentials/],
  ];
  for (const [args, message] of cases) assertRefused(parseIndexArgs, args, message);
});

Deno.test("INDEX_USAGE names every command and every flag with its default", () => {
  for (const command of COMMANDS) assert.match(INDEX_USAGE, new RegExp(`^  ${command} `, "m"));
  for (const name of Object.keys(INDEX_FLAGS)) {
    assert.match(INDEX_USAGE, new RegExp(`^  --${name}\\b.*\\(default `, "m"), name);
  }
  assert.match(INDEX_USAGE, /--replicas N +replicas of each value \(default 3\)/);
  assert.match(INDEX_USAGE, /--voltimeout DURATION +.*\(default 1s\)/);
});

Deno.test("parseVolumeArgs: port and dir, Go style, dir made absolute", () => {
  assert.deepEqual(parseVolumeArgs(["-port", "3002", "-dir", "/tmp/volume2"]), {
    port: 3002,
    dir: "/tmp/volume2",
    workers: 1,
    keepaliveMs: 75_000,
  });
  assert.deepEqual(parseVolumeArgs(["--dir=data/volume1", "--workers", "2"]), {
    port: 3001,
    dir: resolve("data/volume1"),
    workers: 2,
    keepaliveMs: 75_000,
  });
  assert.equal(
    (parseVolumeArgs(["--dir", "d", "--keepalive", "5s"]) as VolumeOptions).keepaliveMs,
    5000,
  );
  assert.equal((parseVolumeArgs(["--dir", "d", "-keepalive=0s"]) as VolumeOptions).keepaliveMs, 0);
  assert.equal(parseVolumeArgs(["--help"]), "help");
  assert.equal(parseVolumeArgs(["-h", "--dir", "x"]), "help");
});

Deno.test("parseVolumeArgs: refuses a bad command line with a one-line reason", () => {
  const cases: [string[], RegExp][] = [
    [[], /-dir is required/],
    [["--port", "3001"], /-dir is required/],
    [["--dir", "d", "extra"], /unexpected argument extra/],
    [["--dir", "d", "--bogus"], /unknown flag --bogus/],
    [["--dir"], /-dir needs a value/],
    [["--dir", "d", "--port", "0"], /-port 0 is not a port number/],
    [["--dir", "d", "--port", "70000"], /-port 70000 is not a port number/],
    [["--dir", "d", "--port", "x"], /invalid value "x" for -port/],
    [["--dir", "d", "--workers", "0"], /-workers must be at least 1/],
    [["--dir", "d", "--keepalive", "75"], /-keepalive: invalid duration "75"/],
    [["--dir", "d", "--keepalive", "1.5ms"], /-keepalive 1.5ms is not a whole number/],
  ];
  for (const [args, message] of cases) assertRefused(parseVolumeArgs, args, message);
});

Deno.test("parseIndexArgs: TLS and limits flags, absent by default", () => {
  const plain = parseIndexArgs(BASE);
  assert.ok(plain !== "help");
  for (const name of ["tls", "volumeTls", "volumeCa", "limits"]) assert.ok(!(name in plain), name);
  const options = parseIndexArgs([
    ...BASE,
    "--tls-cert",
    "/etc/mkv/index.pem",
    "--tls-key=/etc/mkv/index.key",
    "-volume-tls",
    "--volume-ca",
    "ca.pem",
    "--limit-conn",
    "16",
    "--limit-rate",
    "10/s",
    "--limit-burst",
    "20",
  ]);
  assert.ok(options !== "help");
  assert.deepEqual(options.tls, { cert: "/etc/mkv/index.pem", key: "/etc/mkv/index.key" });
  assert.equal(options.volumeTls, true);
  assert.equal(options.volumeCa, resolve("ca.pem"));
  assert.deepEqual(options.limits, { conn: 16, rate: "10r/s", burst: 20 });
  const rate = parseIndexArgs([...BASE, "--limit-rate", "600r/m"]);
  assert.ok(rate !== "help");
  assert.deepEqual(rate.limits, { rate: "600r/m", burst: 0 });
  const conn = parseIndexArgs([...BASE, "--limit-conn", "4", "--volume-tls"]);
  assert.ok(conn !== "help");
  assert.deepEqual(conn.limits, { conn: 4 });
  assert.equal(conn.volumeTls, true);
  assert.ok(!("volumeCa" in conn));
  // Relative certificate paths are made absolute: nginx would take them as relative to its prefix.
  const relative = parseIndexArgs([...BASE, "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
  assert.ok(relative !== "help");
  assert.deepEqual(relative.tls, { cert: resolve("c.pem"), key: resolve("k.pem") });
});

Deno.test("parseIndexArgs: --access-log, off by default, made absolute, stderr with -v", () => {
  const plain = parseIndexArgs(BASE);
  assert.ok(plain !== "help");
  assert.ok(!("accessLog" in plain));
  const cases: [string[], string][] = [
    [["--access-log", "/var/log/mkv.log"], "/var/log/mkv.log"],
    // nginx would take a relative path as relative to its (temporary) prefix directory.
    [["--access-log=logs/access.log"], resolve("logs/access.log")],
    [["--access-log", "stderr"], "stderr"],
    [["-v"], "stderr"],
    [["-v", "--access-log", "a.log"], resolve("a.log")],
  ];
  for (const [args, accessLog] of cases) {
    const options = parseIndexArgs([...BASE, ...args]);
    assert.ok(options !== "help");
    assert.equal(options.accessLog, accessLog, args.join(" "));
  }
  assertRefused(parseIndexArgs, [...BASE, "--access-log", "/tmp/$host.log"], /bad character/);
});

Deno.test("parseIndexArgs and parseVolumeArgs: refuse bad TLS and limits flags in one line", () => {
  const cases: [string[], RegExp][] = [
    [[...BASE, "--tls-cert", "c.pem"], /-tls-cert needs -tls-key/],
    [[...BASE, "--tls-key", "k.pem"], /-tls-key needs -tls-cert/],
    [[...BASE, "--volume-ca", "ca.pem"], /-volume-ca needs -volume-tls/],
    [[...BASE, "--limit-conn", "-1"], /-limit-conn must be 0/],
    [[...BASE, "--limit-rate", "10"], /-limit-rate "10" is not N\/s or N\/m/],
    [[...BASE, "--limit-rate", "0/s"], /-limit-rate "0\/s" is not N\/s/],
    [[...BASE, "--limit-rate", "5/h"], /-limit-rate "5\/h" is not/],
    [[...BASE, "--limit-burst", "5"], /-limit-burst needs -limit-rate/],
    [[...BASE, "--limit-rate", "5/s", "--limit-burst", "-1"], /-limit-burst must be 0 or more/],
  ];
  for (const [args, message] of cases) assertRefused(parseIndexArgs, args, message);
  assertRefused(parseVolumeArgs, ["--dir", "d", "--tls-cert", "c"], /-tls-cert needs -tls-key/);
  assertRefused(parseVolumeArgs, ["--dir", "d", "--tls-key", "k"], /-tls-key needs -tls-cert/);
});

Deno.test("parseVolumeArgs: --tls-cert and --tls-key, made absolute", () => {
  assert.deepEqual(
    (parseVolumeArgs([
      "--dir",
      "/d",
      "--tls-cert",
      "v.pem",
      "--tls-key",
      "/k/v.key",
    ]) as VolumeOptions)
      .tls,
    { cert: resolve("v.pem"), key: "/k/v.key" },
  );
  assert.ok(!("tls" in (parseVolumeArgs(["--dir", "/d"]) as VolumeOptions)));
});
