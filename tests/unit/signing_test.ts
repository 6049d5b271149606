// Volume signatures (lib/volumes/signing.ts), pure: the signing function against fixed values
// computed with openssl, the secret file's checks, the rendered config, the flags and the signed
// targets. Real volumes and clusters with signatures are in tests/cluster/signing_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseIndexArgs } from "../../lib/config.ts";
import { type KeyPath } from "../../lib/placement.ts";
import {
  expiresIn,
  readSecretFile,
  SecretError,
  signVolumeUrl,
} from "../../lib/volumes/signing.ts";
import { volumeSignature } from "../../lib/volumes/_signing.ts";
import { Volumes } from "../../lib/volumes/mod.ts";
import { renderVolumeHttpBlocks, renderVolumeLocations } from "../../nginx.ts";
import { parseVolumeArgs } from "../../volume.ts";
import { tempDir } from "../helpers.ts";

const SECRET = "0123456789abcdefSECRET";

Deno.test("volumeSignature: base64url md5 of expires, method, path and secret, as openssl makes it", () => {
  // printf '%s' "1700000000PUT/sv05/5d/41/aGVsbG8= 0123456789abcdefSECRET" |
  //   openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =
  const golden: [string, string, number, string][] = [
    ["PUT", "/sv05/5d/41/aGVsbG8=", 1700000000, "EUZkMmAAYzAC_Sng45BI9Q"],
    ["GET", "/5d/41/aGVsbG8=", 1700000000, "JEZJtUVkUfOZLu_dWUsp_w"],
    ["HEAD", "/5d/41/aGVsbG8=", 1700000000, "JEZJtUVkUfOZLu_dWUsp_w"],
    ["DELETE", "/sv05/5d/41/aGVsbG8=", 1700000000, "-WmeDEB8dhy4KTGu9vJA4g"],
    ["PUT", "/.mkv-probe", 1700000060, "sOoKE5AmG-RQvppy-cFNdw"],
  ];
  for (const [method, path, expiresAt, signature] of golden) {
    assert.equal(volumeSignature({ method, path, expiresAt, secret: SECRET }), signature);
  }
  assert.equal(
    signVolumeUrl({
      method: "PUT",
      path: "/sv05/5d/41/aGVsbG8=",
      expiresAt: 1700000000,
      secret: SECRET,
    }),
    "/sv05/5d/41/aGVsbG8=?md5=EUZkMmAAYzAC_Sng45BI9Q&expires=1700000000",
  );
});

Deno.test("volumeSignature: method, path, expiry and secret each change it", () => {
  const base = { method: "PUT", path: "/5d/41/aGVsbG8=", expiresAt: 1700000000, secret: SECRET };
  const signature = volumeSignature(base);
  for (
    const other of [
      { ...base, method: "DELETE" },
      { ...base, path: "/5d/41/aGVsbG9=" },
      { ...base, expiresAt: 1700000001 },
      { ...base, secret: `${SECRET}x` },
    ]
  ) assert.notEqual(volumeSignature(other), signature);
  assert.match(signature, /^[A-Za-z0-9_-]{22}$/);
  assert.throws(() => signVolumeUrl({ ...base, expiresAt: 1.5 }), RangeError);
});

Deno.test("expiresIn rounds up to whole seconds", () => {
  assert.equal(expiresIn(60_000, 1_700_000_000_000), 1_700_000_060);
  assert.equal(expiresIn(60_000, 1_700_000_000_001), 1_700_000_061);
});

Deno.test("readSecretFile: only a private file with a plain one-line secret", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "secret");
  await Deno.writeTextFile(file, `${SECRET}\n`, { mode: 0o600 });
  await Deno.chmod(file, 0o600);
  assert.equal(await readSecretFile(file), SECRET);
  await Deno.chmod(file, 0o400);
  assert.equal(await readSecretFile(file), SECRET);
  await Deno.chmod(file, 0o644);
  await assert.rejects(readSecretFile(file), (err: Error) => {
    assert.ok(err instanceof SecretError);
    assert.equal(
      err.message,
      `volume secret file ${file} is readable or writable by others; run: chmod 600 ${file}`,
    );
    return true;
  });
  await Deno.chmod(file, 0o600);
  for (const bad of ["short", `${SECRET}$x`, `${SECRET} two`, `"${SECRET}"`]) {
    await Deno.writeTextFile(file, bad);
    await assert.rejects(readSecretFile(file), (err: Error) => {
      assert.ok(err instanceof SecretError);
      assert.ok(!err.message.includes(bad), "the message shows the secret");
      return true;
    });
  }
  await assert.rejects(readSecretFile(join(dir.path, "absent")), SecretError);
});

Deno.test("renderVolumeLocations: the signature check, only with a secret", () => {
  const plain = renderVolumeLocations({ dir: "/d" });
  assert.ok(!plain.includes("secure_link"));
  const signed = renderVolumeLocations({ dir: "/d", secret: SECRET });
  const check = [
    `      secure_link $arg_md5,$arg_expires;`,
    `      secure_link_md5 "$secure_link_expires$mkv_signed_method$uri ${SECRET}";`,
  ].join("\n");
  // The key's location and the probe's check writes; `location /` (listings) stays open.
  assert.equal(signed.split(check).length - 1, 2);
  assert.equal(signed.split(`if ($mkv_signed !~ "^(GET|HEAD):|:1$") {`).length - 1, 2);
  assert.ok(
    signed.startsWith(
      `    root "/d";\n    keepalive_timeout 75s;\n    location / {\n      limit_except`,
    ),
  );
  // With private reads every location checks: listings, keys, the probe, and the volume's own
  // figures (stub_status and the disk file).
  const reads = renderVolumeLocations({ dir: "/d", secret: SECRET, privateReads: true });
  assert.equal(reads.split(check).length - 1, 5);
  assert.equal(reads.split(`      if ($secure_link != "1") {\n        return 403;`).length - 1, 5);
  assert.ok(!reads.includes("$mkv_signed "));
  assert.equal(
    renderVolumeHttpBlocks(),
    "  map $request_method $mkv_signed_method {\n    HEAD GET;\n    default $request_method;\n  }",
  );
  assert.throws(() => renderVolumeLocations({ dir: "/d", secret: `${SECRET}";` }));
});

Deno.test("flags: --private-reads needs the secret file; paths made absolute", () => {
  const base = ["server", "--db", "d", "--volumes", "localhost:1", "--replicas", "1"];
  assert.throws(() => parseIndexArgs([...base, "--private-reads"]), /needs -volume-secret-file/);
  const options = parseIndexArgs([
    ...base,
    "--volume-secret-file",
    "s",
    "--private-reads",
    "--read-expiry",
    "2s",
  ]);
  assert.ok(options !== "help");
  assert.equal(options.volumeSecretFile, join(Deno.cwd(), "s"));
  assert.equal(options.readExpiryMs, 2000);
  const open = parseIndexArgs([...base, "--volume-secret-file", "s"]);
  assert.ok(open !== "help" && open.readExpiryMs === undefined);
  assert.throws(
    () => parseVolumeArgs(["--dir", "x", "--private-reads"]),
    /needs -volume-secret-file/,
  );
  const volume = parseVolumeArgs(["--dir", "x", "--volume-secret-file", "s", "--private-reads"]);
  assert.ok(volume !== "help" && volume.privateReads === true);
});

Deno.test("Volumes: signed targets and read URLs only with a secret", () => {
  const signed = new Volumes({ hosts: [], timeoutMs: 1000, secret: SECRET });
  const plain = new Volumes({ hosts: [], timeoutMs: 1000 });
  try {
    const path = "/5d/41/aGVsbG8=" as KeyPath;
    assert.equal(plain.readUrl("localhost:3001/sv05", path), `http://localhost:3001/sv05${path}`);
    assert.equal(plain.signed("PUT", `/sv05${path}`), `/sv05${path}`);
    assert.equal(signed.readUrl("localhost:3001/sv05", path), `http://localhost:3001/sv05${path}`);
    const url = new URL(signed.readUrl("localhost:3001/sv05", path, 2000));
    const expiresAt = Number(url.searchParams.get("expires"));
    assert.ok(expiresAt >= now() + 2 && expiresAt <= now() + 3, String(expiresAt));
    assert.equal(
      url.searchParams.get("md5"),
      volumeSignature({ method: "GET", path: `/sv05${path}`, expiresAt, secret: SECRET }),
    );
    const target = signed.signed("DELETE", `/sv05${path}`);
    const expires = Number(target.match(/&expires=(\d+)$/)![1]);
    assert.ok(expires >= now() + 60 && expires <= now() + 61);
    assert.equal(target, sign("DELETE", `/sv05${path}`, expires));
  } finally {
    signed.close();
    plain.close();
  }
});

const now = () => Math.floor(Date.now() / 1000);
const sign = (method: string, path: string, expiresAt = now() + 60) =>
  signVolumeUrl({ method, path, expiresAt, secret: SECRET });
