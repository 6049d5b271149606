// The S3 API as the real clients people run drive it with their defaults: s3cmd signing with SigV2
// headers and handing out `s3cmd signurl` links, and Debian's boto3, whose presigned URLs are
// SigV2's query form. CI installs both (.ci/install); a test that lacks one fails, never skips.
//
//   node_modules/.bin/deno test -A tests/s3_clients_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { curl, freePort, runCommand, tempDir, testCluster } from "./helpers.ts";

const ADMIN = { key: "admin", secret: "admin-secret-0123" };
const READER = { key: "reader", secret: "reader-secret-0123" };
/** Debian's own Python, whose boto3 is Debian's (a Python of another install may lack it). */
const DEBIAN_PYTHON = "/usr/bin/python3";

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
