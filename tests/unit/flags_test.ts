// Tests of lib/flags.ts: Go-style command lines (minikeyvalue's work unchanged), durations, the
// usage table and comma lists.

import assert from "node:assert/strict";
import {
  FlagError,
  flagsOf,
  type FlagSpec,
  formatDurationMs,
  type ParsedFlags,
  parseDurationMs,
  parseFlags,
  splitList,
  usageFlags,
} from "../../lib/flags.ts";

const SPEC: FlagSpec = {
  port: { type: "int", default: 3000, help: "port", arg: "PORT" },
  db: { type: "string", default: "", help: "database", arg: "DIR" },
  protect: { type: "bool", default: false, help: "protect" },
  md5sum: { type: "bool", default: true, help: "md5" },
  voltimeout: { type: "duration", default: 1000, help: "timeout", arg: "DURATION" },
};

const DEFAULTS = { port: 3000, db: "", protect: false, md5sum: true, voltimeout: 1000 };

Deno.test("parseFlags: no arguments gives the defaults", () => {
  assert.deepEqual(parseFlags([], SPEC), { values: DEFAULTS, positionals: [], help: false });
});

Deno.test("parseFlags: -flag value, --flag value, -flag=value and --flag=value", () => {
  for (
    const args of [["-port", "3001"], ["--port", "3001"], ["-port=3001"], ["--port=3001"]]
  ) {
    assert.equal(parseFlags(args, SPEC).values.port, 3001, args.join(" "));
  }
  assert.equal(parseFlags(["-db", "/tmp/indexdb/"], SPEC).values.db, "/tmp/indexdb/");
  assert.equal(parseFlags(["--db="], SPEC).values.db, "");
  // A value may itself start with a dash or contain `=`.
  assert.equal(parseFlags(["-db", "-odd"], SPEC).values.db, "-odd");
  assert.equal(parseFlags(["-db=a=b"], SPEC).values.db, "a=b");
});

Deno.test("parseFlags: bools are set bare or with =value, never by the next argument", () => {
  assert.equal(parseFlags(["-protect"], SPEC).values.protect, true);
  assert.equal(parseFlags(["--protect"], SPEC).values.protect, true);
  assert.equal(parseFlags(["-protect=true"], SPEC).values.protect, true);
  assert.equal(parseFlags(["-md5sum=false"], SPEC).values.md5sum, false);
  assert.equal(parseFlags(["--md5sum=0"], SPEC).values.md5sum, false);
  assert.equal(parseFlags(["-md5sum=F"], SPEC).values.md5sum, false);
  // As in Go, `-protect false` sets the flag and leaves `false` as an argument.
  assert.deepEqual(parseFlags(["-protect", "false"], SPEC), {
    values: { ...DEFAULTS, protect: true },
    positionals: ["false"],
    help: false,
  });
  assert.throws(() => parseFlags(["-protect=maybe"], SPEC), FlagError);
});

Deno.test("parseFlags: the subcommand may come before or after the flags", () => {
  const want = {
    values: { ...DEFAULTS, port: 3001, db: "/tmp/indexdb/" },
    positionals: ["server"],
    help: false,
  };
  // minikeyvalue's README puts it last: ./mkv -port 3001 -db /tmp/indexdb/ server
  assert.deepEqual(parseFlags(["-port", "3001", "-db", "/tmp/indexdb/", "server"], SPEC), want);
  assert.deepEqual(parseFlags(["server", "--port", "3001", "--db", "/tmp/indexdb/"], SPEC), want);
  assert.deepEqual(parseFlags(["--port=3001", "server", "--db=/tmp/indexdb/"], SPEC), want);
});

Deno.test("parseFlags: -- ends the flags, and - alone is an argument", () => {
  assert.deepEqual(parseFlags(["-port", "1", "--", "-protect", "x"], SPEC).positionals, [
    "-protect",
    "x",
  ]);
  assert.equal(parseFlags(["-port", "1", "--", "-protect"], SPEC).values.protect, false);
  assert.deepEqual(parseFlags(["-"], SPEC).positionals, ["-"]);
});

Deno.test("parseFlags: -h, -help and --help ask for usage", () => {
  for (const flag of ["-h", "--h", "-help", "--help"]) {
    assert.equal(parseFlags(["server", flag], SPEC).help, true, flag);
  }
});

Deno.test("parseFlags: a bad command line throws a one-line FlagError", () => {
  const cases: [string[], RegExp][] = [
    [["-bogus"], /unknown flag -bogus/],
    [["--bogus=1"], /unknown flag --bogus=1/],
    [["-port"], /-port needs a value/],
    [["server", "--db"], /-db needs a value/],
    [["-port", "abc"], /invalid value "abc" for -port/],
    [["-port=3.5"], /invalid value "3.5" for -port/],
    [["-voltimeout", "10"], /-voltimeout: invalid duration "10"/],
    [["-voltimeout=1x"], /-voltimeout: invalid duration "1x"/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseFlags(args, SPEC), (err: Error) => {
      assert.ok(err instanceof FlagError, args.join(" "));
      assert.match(err.message, message);
      assert.ok(!err.message.includes("\n"), err.message);
      return true;
    });
  }
});

Deno.test("parseFlags: durations are Go's", () => {
  assert.equal(parseFlags(["-voltimeout", "500ms"], SPEC).values.voltimeout, 500);
  assert.equal(parseFlags(["-voltimeout=1s"], SPEC).values.voltimeout, 1000);
  assert.equal(parseFlags(["--voltimeout", "1m30s"], SPEC).values.voltimeout, 90_000);
});

Deno.test("formatDurationMs writes the largest whole unit, and parses back", () => {
  const cases: [number, string][] = [
    [1000, "1s"],
    [60_000, "1m"],
    [604_800_000, "168h"],
    [250, "250ms"],
    [1500, "1500ms"],
    [0, "0ms"],
  ];
  for (const [ms, text] of cases) {
    assert.equal(formatDurationMs(ms), text, String(ms));
    assert.equal(parseDurationMs(text), ms, text);
  }
});

Deno.test("parseDurationMs reads Go durations into milliseconds", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["1s", 1000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1m30s", 90_000],
    ["1h", 3_600_000],
    ["1s500ms", 1500],
  ];
  for (const [text, ms] of cases) assert.equal(parseDurationMs(text), ms, text);
  for (const text of ["", "10", "s", "1x", "-1s", "1 s", "1s "]) {
    assert.throws(() => parseDurationMs(text), FlagError, JSON.stringify(text));
  }
});

Deno.test("usageFlags renders one aligned line per flag with its default", () => {
  assert.equal(
    usageFlags(SPEC),
    [
      "  --port PORT            port (default 3000)",
      '  --db DIR               database (default "")',
      "  --protect              protect (default false)",
      "  --md5sum               md5 (default true)",
      "  --voltimeout DURATION  timeout (default 1s)",
    ].join("\n"),
  );
});

Deno.test("splitList splits on commas and drops empty items and spaces", () => {
  assert.deepEqual(splitList("localhost:3001,localhost:3002"), [
    "localhost:3001",
    "localhost:3002",
  ]);
  assert.deepEqual(splitList(" a , b,,c, "), ["a", "b", "c"]);
  assert.deepEqual(splitList(""), []);
});

Deno.test("flagsOf: the parsed flags, or help", () => {
  const parse = flagsOf({ n: { type: "int", default: 3, help: "a number", arg: "N" } });
  assert.equal(parse(["--help"]), "help");
  const parsed = parse(["--n", "5"]);
  assert.notEqual(parsed, "help");
  assert.equal((parsed as ParsedFlags).values.n, 5);
  assert.throws(() => parse(["--m", "1"]), FlagError);
});
