// Tests of the operations' pure parts (lib/ops/): plans, verdicts, progress lines. The operations
// run against real clusters are in tests/cluster/ops_test.ts.

import assert from "node:assert/strict";
import {
  formatDuration,
  formatItem,
  formatProgress,
  formatSummary,
  isUndone,
  parseOperationRequest,
} from "../../lib/ops/protocol.ts";
import { planRebalance } from "../../lib/core/mod.ts";
import {
  currentVersion,
  orderByPlacement,
  planCopies,
  rebuildVerdict,
} from "../../lib/ops/rebuild.ts";
import { holdsValue } from "../../lib/ops/walk.ts";
import { classifyReplicas } from "../../lib/ops/verify.ts";
import { keyToVolumes, type Placement } from "../../lib/placement.ts";
import type { KeyRecord } from "../../lib/core/record.ts";
import { md5Hex } from "../helpers.ts";

const PLACEMENT: Placement = {
  volumes: ["larry:1", "moe:2", "curly:3", "shemp:4"],
  replicas: 2,
  subvolumes: 1,
};

Deno.test("orderByPlacement puts the placement's volumes first, in its order, then the rest", () => {
  const wanted = keyToVolumes("/k", PLACEMENT);
  const others = PLACEMENT.volumes.filter((v) => !wanted.includes(v));
  assert.deepEqual(
    orderByPlacement("/k", [others[1], wanted[1], others[0], wanted[0]], PLACEMENT),
    [
      wanted[0],
      wanted[1],
      ...others.slice(0, 2).sort(),
    ],
  );
  assert.deepEqual(orderByPlacement("/k", [wanted[1]], PLACEMENT), [wanted[1]]);
});

Deno.test("planRebalance copies to new targets and deletes from the old ones", () => {
  const targets = keyToVolumes("/k", PLACEMENT);
  const old = PLACEMENT.volumes.filter((v) => !targets.includes(v));
  const plan = planRebalance(
    "/k",
    { state: "live", volumes: [targets[1], old[0]], md5: "" },
    PLACEMENT,
  );
  assert.equal(plan.balanced, false);
  assert.deepEqual(plan.targets, targets);
  assert.deepEqual(plan.copyTo, [targets[0]]);
  assert.deepEqual(plan.deleteFrom, [old[0]]);
  const reordered = planRebalance("/k", {
    state: "live",
    volumes: [targets[1], targets[0]],
    md5: "",
  }, PLACEMENT);
  assert.equal(reordered.balanced, false);
  assert.deepEqual([reordered.copyTo, reordered.deleteFrom], [[], []]);
  assert.equal(
    planRebalance("/k", { state: "live", volumes: targets, md5: "" }, PLACEMENT).balanced,
    true,
  );
});

Deno.test("rebuildVerdict agrees on equal replicas and refuses to pick among different ones", () => {
  const md5 = md5Hex("v");
  const ok = rebuildVerdict("/k", [
    { location: "shemp:4", sizeBytes: 1, md5 },
    { location: "moe:2", sizeBytes: 1, md5 },
  ], PLACEMENT);
  assert.deepEqual(ok, {
    ok: true,
    volumes: orderByPlacement("/k", ["shemp:4", "moe:2"], PLACEMENT),
    md5,
  });
  const noMd5 = rebuildVerdict("/k", [{ location: "moe:2", sizeBytes: 3 }], PLACEMENT);
  assert.deepEqual(noMd5, { ok: true, volumes: ["moe:2"], md5: "" });
  const sizes = rebuildVerdict("/k", [
    { location: "moe:2", sizeBytes: 1 },
    { location: "larry:1", sizeBytes: 2 },
  ], PLACEMENT);
  assert.equal(sizes.ok, false);
  assert.match(!sizes.ok ? sizes.detail : "", /moe:2 1 bytes, larry:1 2 bytes/);
  const md5s = rebuildVerdict("/k", [
    { location: "moe:2", sizeBytes: 1, md5 },
    { location: "larry:1", sizeBytes: 1, md5: md5Hex("w") },
  ], PLACEMENT);
  assert.equal(md5s.ok, false);
});

Deno.test("currentVersion: the record's version if found, else the newest; the plain file is oldest", () => {
  const [old, mid, late] = ["0193a5f2c4000000", "0193a5f2c4000001", "0193a5f2c4000002"];
  const found = [
    { location: "a:1", sizeBytes: 1 },
    { location: "a:1", sizeBytes: 1, version: mid },
    { location: "b:1", sizeBytes: 1, version: late },
    { location: "c:1", sizeBytes: 1, version: old },
  ];
  assert.equal(currentVersion(found), late);
  assert.equal(currentVersion(found, { version: mid }), mid);
  assert.equal(currentVersion(found, {}), undefined);
  // A record whose version is on no volume: the newest found.
  assert.equal(currentVersion(found, { version: "0193a5f2c4000009" }), late);
  assert.equal(currentVersion([{ location: "a:1", sizeBytes: 1 }]), undefined);
});

Deno.test("holdsValue tells a copy of the recorded value by md5, else by length, else not at all", () => {
  const md5 = md5Hex("value");
  const info = { size: 5, mtime: 0 };
  const live: KeyRecord = { state: "live", volumes: ["moe:2"], md5, info };
  assert.equal(holdsValue(live, { location: "larry:1", sizeBytes: 5, md5 }), true);
  // Same length, other bytes: only the md5 tells.
  assert.equal(
    holdsValue(live, { location: "larry:1", sizeBytes: 5, md5: md5Hex("other") }),
    false,
  );
  // Not read (--md5sum=false): the length decides.
  assert.equal(holdsValue(live, { location: "larry:1", sizeBytes: 5 }), true);
  assert.equal(holdsValue(live, { location: "larry:1", sizeBytes: 6 }), false);
  const noMd5: KeyRecord = { ...live, md5: "" };
  assert.equal(
    holdsValue(noMd5, { location: "larry:1", sizeBytes: 5, md5: md5Hex("other") }),
    true,
  );
  const bare: KeyRecord = { state: "live", volumes: ["moe:2"], md5: "" };
  assert.equal(holdsValue(bare, { location: "larry:1", sizeBytes: 5 }), "unknown");
});

Deno.test("planCopies never shortens a record: it keeps every location and adds copies of its value", () => {
  const md5 = md5Hex("v");
  const record: KeyRecord = {
    state: "live",
    volumes: ["larry:1", "moe:2"],
    md5,
    info: { size: 1, mtime: 0 },
  };
  // The walk saw one of the record's replicas (the other renamed into place after it listed).
  assert.deepEqual(
    planCopies("/k", record, [{ location: "moe:2", sizeBytes: 1, md5 }], PLACEMENT),
    {
      volumes: ["larry:1", "moe:2"],
      added: [],
      stale: [],
      unsure: [],
    },
  );
  // A copy of the value elsewhere joins; a file of another value there is stale.
  const copy = { location: "shemp:4", sizeBytes: 1, md5 };
  const other = { location: "curly:3", sizeBytes: 2, md5: md5Hex("ww") };
  assert.deepEqual(planCopies("/k", record, [copy, other], PLACEMENT), {
    volumes: ["larry:1", "moe:2", "shemp:4"],
    added: ["shemp:4"],
    stale: [other],
    unsure: [],
  });
  // Without md5 or size in the record, nothing can be told: left alone.
  const bare: KeyRecord = { state: "unlinked", volumes: ["larry:1"], md5: "" };
  assert.deepEqual(planCopies("/k", bare, [copy], PLACEMENT), {
    volumes: ["larry:1"],
    added: [],
    stale: [],
    unsure: [copy],
  });
});

Deno.test("classifyReplicas sorts replicas into good, missing, corrupt, unreachable, conflict", () => {
  const md5 = md5Hex("v");
  const verdict = classifyReplicas(md5, [
    { location: "a:1", state: "present", md5 },
    { location: "b:2", state: "present", md5: md5Hex("x") },
    { location: "c:3", state: "missing" },
    { location: "d:4", state: "unreachable", detail: "timed out" },
  ]);
  assert.deepEqual(verdict, {
    good: ["a:1"],
    missing: ["c:3"],
    corrupt: ["b:2"],
    unreachable: ["d:4"],
    conflict: false,
  });
  // Not read: presence is all that is known, and it is good.
  assert.deepEqual(classifyReplicas(md5, [{ location: "a:1", state: "present" }]).good, ["a:1"]);
  // No md5 recorded: replicas that disagree cannot be told apart.
  const conflict = classifyReplicas("", [
    { location: "a:1", state: "present", md5 },
    { location: "b:2", state: "present", md5: md5Hex("x") },
  ]);
  assert.equal(conflict.conflict, true);
  assert.deepEqual(conflict.good, []);
  assert.equal(classifyReplicas("", [{ location: "a:1", state: "present", md5 }]).conflict, false);
});

Deno.test("progress, item and summary lines say done/total, rate, ETA and counts", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(62_000), "1:02");
  assert.equal(formatDuration(3_723_000), "1:02:03");
  assert.equal(
    formatProgress({
      type: "progress",
      command: "verify",
      done: 250,
      total: 1000,
      unit: "keys",
      elapsedMs: 2000,
      counts: { ok: 249, missing: 1, corrupt: 0 },
    }),
    "verify: 250/1000 keys 25.0%, 125 keys/s, ETA 0:06 (missing 1, ok 249)",
  );
  assert.equal(
    formatProgress({
      type: "progress",
      command: "gc",
      done: 3,
      total: null,
      unit: "dirs",
      elapsedMs: 0,
      counts: {},
    }),
    "gc: 3 dirs, 0.0 dirs/s (nothing)",
  );
  assert.equal(
    formatProgress({
      type: "progress",
      command: "rebalance",
      done: 0,
      total: null,
      unit: "keys",
      elapsedMs: 5,
      counts: {},
    }),
    "rebalance: starting",
  );
  assert.equal(
    formatItem({
      type: "item",
      command: "verify",
      outcome: "missing",
      key: "/a b",
      location: "localhost:3001/sv02",
      detail: "",
    }),
    'verify: missing "/a b" at localhost:3001/sv02',
  );
  assert.equal(
    formatSummary({
      type: "summary",
      command: "rebuild",
      counts: { added: 9, conflict: 1 },
      undone: 1,
      elapsedMs: 1500,
    }),
    "rebuild: added 9, conflict 1 in 0:02; 1 left undone",
  );
  assert.equal(isUndone("conflict"), true);
  assert.equal(isUndone("repaired"), false);
  assert.equal(isUndone("orphan"), false);
});

Deno.test("parseOperationRequest refuses what is not an operation", () => {
  const good = {
    command: "verify",
    placement: { volumes: ["localhost:3001"], replicas: 1, subvolumes: 10 },
    md5sum: true,
    md5: false,
    repair: false,
    dryRun: false,
    concurrency: 8,
  };
  assert.deepEqual(parseOperationRequest(good), good);
  assert.throws(() => parseOperationRequest(null), /JSON object/);
  assert.throws(() => parseOperationRequest({ ...good, command: "server" }), /command/);
  assert.throws(
    () => parseOperationRequest({ ...good, placement: { ...good.placement, replicas: 2 } }),
    /placement/,
  );
  assert.throws(() => parseOperationRequest({ ...good, repair: "yes" }), /repair/);
  assert.throws(() => parseOperationRequest({ ...good, concurrency: 0 }), /concurrency/);
});
