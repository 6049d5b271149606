// The S3 API as the real clients people run drive it with their defaults: s3cmd signing with SigV2
// headers and handing out `s3cmd signurl` links; Debian's boto3, whose presigned URLs are SigV2's
// query form; rclone's multipart uploads (Go's XML) and `rclone check`; the AWS CLI's `s3 cp` and
// `sync` (multipart above 8 MiB) and `presign`; restic's init, backup, check --read-data and
// restore. CI installs them all (.ci/install test); a test that lacks one fails, never skips.
//
//   node_modules/.bin/deno test -A tests/cluster/s3_clients_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { curl, freePort, runCommand, SCRIPT_TIMEOUT_MS, tempDir, testCluster } from "../helpers.ts";

const ADMIN = { key: "admin", secret: "admin-secret-0123" };
const READER = { key: "reader", secret: "reader-secret-0123" };
/** Debian's own Python, whose boto3 is Debian's (a Python of another install may lack it). */
const DEBIAN_PYTHON = "/usr/bin/python3";
/** Debian's AWS CLI (another may come first on PATH). */
const DEBIAN_AWS = "/usr/bin/aws";
const MIB = 1024 * 1024;

/** s3cmd against `endpoint` (host:port) with `who`'s keys, path-style, SigV2, no config file. */
function s3cmd(endpoint: string, who: { key: string; secret: string }, args: string[]) {
  return runCommand("s3cmd", [
    "--config=/dev/null",
    `--access_key=${who.key}`,
    `--secret_key=${who.secret}`,
    `--host=${endpoint}`,
    `--host-bucket=${endpoint}`,
    "--no-ssl",
    "--signature-v2",
    "--no-check-md5",
    ...args,
  ]);
}

/** A presigned GET of Debian's boto3 with its default signer for a custom endpoint. */
async function botoPresigned(url: string, who: { key: string; secret: string }, key: string) {
  const script = [
    "import sys, boto3",
    "c = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2],",
    "  aws_secret_access_key=sys.argv[3])",
    "print(c.generate_presigned_url('get_object', Params={'Bucket': 'clients', 'Key': sys.argv[4]},",
    "  ExpiresIn=600))",
  ].join("\n");
  const result = await runCommand(DEBIAN_PYTHON, ["-c", script, url, who.key, who.secret, key]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}

Deno.test("s3cmd (SigV2 headers, signurl) and Debian's boto3 presigned URLs, with credentials", async (t) => {
  await using dir = await tempDir();
  const file = join(dir.path, "credentials");
  await Deno.writeTextFile(
    file,
    `${ADMIN.key} ${ADMIN.secret} all\n${READER.key} ${READER.secret} read,list\n`,
    { mode: 0o600 },
  );
  const s3Port = freePort();
  await using cluster = await testCluster({
    indexArgs: ["--s3-port", String(s3Port), "--credentials", file],
  });
  const endpoint = `localhost:${cluster.index.port}`;
  const value = join(dir.path, "value");
  await Deno.writeTextFile(value, "signed the old way\n");

  await t.step("s3cmd makes a bucket, puts, lists and gets with SigV2 headers", async () => {
    for (
      const args of [
        ["mb", "s3://clients"],
        ["put", value, "s3://clients/dir/it's here.txt"],
      ]
    ) {
      const result = await s3cmd(endpoint, ADMIN, args);
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    }
    const listed = await s3cmd(endpoint, READER, ["ls", "-r", "s3://clients"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /s3:\/\/clients\/dir\/it's here\.txt/);
    const out = join(dir.path, "got");
    const got = await s3cmd(endpoint, READER, ["get", "s3://clients/dir/it's here.txt", out]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await Deno.readTextFile(out), "signed the old way\n");
    // The reader may not write; a wrong secret is refused.
    const refused = await s3cmd(endpoint, READER, ["put", value, "s3://clients/nope"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /AccessDenied|403/);
    const wrong = await s3cmd(endpoint, { key: ADMIN.key, secret: "wrong-secret-0123" }, [
      "ls",
      "s3://clients",
    ]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /SignatureDoesNotMatch|403/);
  });

  await t.step("s3cmd signurl links read the value until they expire", async () => {
    const expiry = Math.floor(Date.now() / 1000) + 600;
    const signed = await s3cmd(endpoint, READER, [
      "signurl",
      "s3://clients/dir/it's here.txt",
      String(expiry),
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    const url = signed.stdout.trim().replace(/^https?:\/\/[^/]+/, `http://${endpoint}`);
    const read = await curl([url]);
    assert.equal(read.stdout, "signed the old way\n", read.stderr);
    // On --s3-port too.
    const viaS3Port = await curl([url.replace(endpoint, `localhost:${s3Port}`)]);
    assert.equal(viaS3Port.stdout, "signed the old way\n");
    const tampered = await curl([
      "-w",
      "%{http_code}",
      "-o",
      "/dev/null",
      url.replace("dir", "dix"),
    ]);
    assert.equal(tampered.stdout, "403");
    const past = await s3cmd(endpoint, READER, [
      "signurl",
      "s3://clients/dir/it's here.txt",
      String(Math.floor(Date.now() / 1000) - 1),
    ]);
    const expired = await curl([
      past.stdout.trim().replace(/^https?:\/\/[^/]+/, `http://${endpoint}`),
    ]);
    assert.match(expired.stdout, /<Code>AccessDenied<\/Code>/);
  });

  await t.step("Debian's boto3: its default presigned URL (SigV2 query form) reads", async () => {
    const url = await botoPresigned(cluster.url, READER, "dir/it's here.txt");
    assert.match(url, /AWSAccessKeyId=reader/);
    const read = await curl([url]);
    assert.equal(read.stdout, "signed the old way\n", read.stderr);
    const forged = await botoPresigned(
      cluster.url,
      { key: READER.key, secret: "x".repeat(18) },
      "dir/it's here.txt",
    );
    assert.match((await curl([forged])).stdout, /<Code>SignatureDoesNotMatch<\/Code>/);
  });
});

/**
 * Runs a client with only PATH, HOME and `env` in its environment, so that no setting of the
 * machine (AWS_CA_BUNDLE, a profile) changes what it does; fails the test on exit ≠ 0.
 */
async function run(
  command: string,
  args: string[],
  env: Record<string, string> & { HOME: string },
  options: { cwd?: string } = {},
): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(SCRIPT_TIMEOUT_MS),
  }).output();
  const text = new TextDecoder();
  assert.equal(
    output.code,
    0,
    `${command} ${args.join(" ")}: ${text.decode(output.stderr)}${text.decode(output.stdout)}`,
  );
  return text.decode(output.stdout);
}

/** A tree of files to upload: small ones, and one of `bigBytes` that goes up in parts. */
async function makeTree(dir: string, bigBytes: number): Promise<Map<string, string>> {
  const big = new Uint8Array(bigBytes);
  crypto.getRandomValues(big.subarray(0, 65536));
  // Each 64 KiB block differs from the others by its index in its first bytes.
  for (let at = 65536; at < bigBytes; at += 65536) {
    big.copyWithin(at, 0, 65536);
    new DataView(big.buffer).setUint32(at, at);
  }
  const files: [string, Uint8Array][] = [
    ["a.txt", new TextEncoder().encode("alpha\n")],
    ["deep/it's & <this>.txt", new TextEncoder().encode("quotes\n")],
    ["deep/er/big.bin", big],
  ];
  await Deno.mkdir(join(dir, "deep/er"), { recursive: true });
  const sums = new Map<string, string>();
  for (const [name, bytes] of files) {
    await Deno.writeFile(join(dir, name), bytes);
    sums.set(name, createHash("sha256").update(bytes).digest("hex"));
  }
  return sums;
}

/** The sha256 of every file under `dir`, by path relative to it. */
async function treeSums(dir: string, sub = ""): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  for await (const entry of Deno.readDir(join(dir, sub))) {
    const name = sub === "" ? entry.name : `${sub}/${entry.name}`;
    if (entry.isDirectory) { for (const [k, v] of await treeSums(dir, name)) sums.set(k, v); }
    else {sums.set(
        name,
        createHash("sha256").update(await Deno.readFile(join(dir, name))).digest("hex"),
      );}
  }
  return sums;
}

Deno.test("rclone (multipart), the AWS CLI and restic, with credentials, data checked by sha256", async (t) => {
  await using dir = await tempDir();
  const file = join(dir.path, "credentials");
  await Deno.writeTextFile(file, `${ADMIN.key} ${ADMIN.secret} all\n`, { mode: 0o600 });
  await using cluster = await testCluster({ indexArgs: ["--credentials", file] });
  const tree = join(dir.path, "tree");
  const sums = await makeTree(tree, 12 * MIB);
  const aws = {
    AWS_ACCESS_KEY_ID: ADMIN.key,
    AWS_SECRET_ACCESS_KEY: ADMIN.secret,
    AWS_DEFAULT_REGION: "us-east-1",
    AWS_CONFIG_FILE: "/dev/null",
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    HOME: dir.path,
  };

  await t.step("rclone: multipart copy (5 MiB parts), check, and back", async () => {
    const rclone = {
      RCLONE_CONFIG: "/dev/null",
      RCLONE_CONFIG_MKV_TYPE: "s3",
      RCLONE_CONFIG_MKV_PROVIDER: "Other",
      RCLONE_CONFIG_MKV_ENDPOINT: cluster.url,
      RCLONE_CONFIG_MKV_ACCESS_KEY_ID: ADMIN.key,
      RCLONE_CONFIG_MKV_SECRET_ACCESS_KEY: ADMIN.secret,
      RCLONE_CONFIG_MKV_FORCE_PATH_STYLE: "true",
      HOME: dir.path,
    };
    const flags = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--retries", "1"];
    await run("rclone", ["mkdir", "mkv:rclone"], rclone);
    await run("rclone", ["copy", ...flags, tree, "mkv:rclone/tree"], rclone);
    await run("rclone", ["check", tree, "mkv:rclone/tree"], rclone);
    const back = join(dir.path, "rclone-back");
    await run("rclone", ["copy", "mkv:rclone/tree", back], rclone);
    assert.deepEqual(await treeSums(back), sums);
  });

  await t.step("the AWS CLI: s3 sync (multipart above 8 MiB), cp back, presign", async () => {
    const endpoint = ["--endpoint-url", cluster.url];
    await run(DEBIAN_AWS, [...endpoint, "s3", "mb", "s3://awscli"], aws);
    await run(DEBIAN_AWS, [...endpoint, "s3", "sync", tree, "s3://awscli/tree"], aws);
    const back = join(dir.path, "aws-back");
    await run(DEBIAN_AWS, [...endpoint, "s3", "cp", "--recursive", "s3://awscli/tree", back], aws);
    assert.deepEqual(await treeSums(back), sums);
    const url =
      (await run(DEBIAN_AWS, [...endpoint, "s3", "presign", "s3://awscli/tree/a.txt"], aws))
        .trim();
    assert.equal((await curl([url])).stdout, "alpha\n");
  });

  await t.step("restic: init, backup, check --read-data, restore", async () => {
    const restic = {
      ...aws,
      RESTIC_REPOSITORY: `s3:${cluster.url}/restic`,
      RESTIC_PASSWORD: "correct horse battery staple",
      RESTIC_CACHE_DIR: join(dir.path, "restic-cache"),
    };
    await run("restic", ["init"], restic);
    await run("restic", ["backup", "."], restic, { cwd: tree });
    await run("restic", ["check", "--read-data"], restic);
    const back = join(dir.path, "restic-back");
    await run("restic", ["restore", "latest", "--target", back], restic);
    assert.deepEqual(await treeSums(back), sums);
  });
});
