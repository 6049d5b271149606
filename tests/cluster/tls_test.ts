// Tests of TLS (`--tls-cert`/`--tls-key` of both programs, `--volume-tls`/`--volume-ca` of the
// index): each test run makes a throwaway CA and a server certificate for localhost, 127.0.0.1 and
// ::1 with openssl, in a temp directory (no network). The checks of the key file; the index's
// client to its volumes (lib/volumes/http1.ts) against a TLS server; and a whole cluster on HTTPS,
// used by clients that verify it: PUT, GET through the https Location, DELETE, an operation; a
// client without the CA and a plain-HTTP request are refused.

import assert from "node:assert/strict";
import { join } from "node:path";
import { Http1Pool } from "../../lib/volumes/http1.ts";
import { keyToPath } from "../../lib/placement.ts";
import { checkTlsFiles, readCaCerts } from "../../lib/nginx/mod.ts";
import { spawnIndex } from "../../dev/cluster.ts";
import { NginxError } from "../../nginx.ts";
import { curl, freePort, runScript, tempDir, testCluster } from "../helpers.ts";

/** A throwaway CA, and a certificate it signed for this machine's loopback names. */
interface TestCa extends AsyncDisposable {
  dir: string;
  /** The CA's certificate, PEM. */
  ca: string;
  caFile: string;
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const output = await new Deno.Command("openssl", {
    args,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/** Makes a CA and a server certificate (SAN localhost, 127.0.0.1, ::1), valid for two days. */
async function makeCa(): Promise<TestCa> {
  const dir = await Deno.makeTempDir({ prefix: "mkv-tls-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=mkv.ts test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await openssl(
    ["req", "-new", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
    dir,
  );
  await Deno.writeTextFile(
    join(dir, "server.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n" +
      "basicConstraints=critical,CA:FALSE\n" +
      "keyUsage=critical,digitalSignature\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-set_serial",
    "1",
    "-days",
    "2",
    "-extfile",
    "server.ext",
    "-out",
    "server.pem",
  ], dir);
  const key = join(dir, "server.key");
  await Deno.chmod(key, 0o600);
  return {
    dir,
    ca: await Deno.readTextFile(join(dir, "ca.pem")),
    caFile: join(dir, "ca.pem"),
    cert: join(dir, "server.pem"),
    key,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test("checkTlsFiles: the key must be private to its owner; says the chmod that fixes it", async () => {
  await using ca = await makeCa();
  await checkTlsFiles({ cert: ca.cert, key: ca.key });
  await Deno.chmod(ca.key, 0o400);
  await checkTlsFiles({ cert: ca.cert, key: ca.key });
  for (const mode of [0o644, 0o640, 0o604]) {
    await Deno.chmod(ca.key, mode);
    await assert.rejects(
      () => checkTlsFiles({ cert: ca.cert, key: ca.key }),
      (err: Error) => {
        assert.ok(err instanceof NginxError, String(err));
        assert.equal(
          err.message,
          `TLS key ${ca.key} is readable by others (mode 0${mode.toString(8)}); ` +
            `run: chmod 600 ${ca.key}`,
        );
        return true;
      },
    );
  }
  await Deno.chmod(ca.key, 0o600);
  await assert.rejects(
    () => checkTlsFiles({ cert: ca.cert, key: join(ca.dir, "absent.key") }),
    /cannot read TLS key .*absent\.key: no such file/,
  );
  // A certificate given as the key, and the key as the certificate: both not what they should be.
  const publicCopy = join(ca.dir, "cert-as-key.pem");
  await Deno.copyFile(ca.cert, publicCopy);
  await Deno.chmod(publicCopy, 0o600);
  await assert.rejects(
    () => checkTlsFiles({ cert: ca.cert, key: publicCopy }),
    /TLS key .* is not PEM/,
  );
  await assert.rejects(
    () => checkTlsFiles({ cert: ca.key, key: ca.key }),
    /TLS certificate .* is not PEM/,
  );
  assert.deepEqual(await readCaCerts(ca.caFile), [ca.ca]);
  await assert.rejects(() => readCaCerts(ca.key), /CA file .* is not PEM/);
});

Deno.test("volume.ts refuses a TLS key others can read, in one line, before nginx starts", async () => {
  await using ca = await makeCa();
  await using dir = await tempDir();
  await Deno.chmod(ca.key, 0o644);
  const port = freePort();
  const result = await runScript([
    "volume.ts",
    "--port",
    String(port),
    "--dir",
    join(dir.path, "v"),
    "--tls-cert",
    ca.cert,
    "--tls-key",
    ca.key,
  ]);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr.trim(),
    `volume: TLS key ${ca.key} is readable by others (mode 0644); run: chmod 600 ${ca.key}`,
  );
});

Deno.test("Http1Pool speaks TLS and verifies the server against caCerts", async () => {
  await using ca = await makeCa();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(ca.cert),
    key: await Deno.readTextFile(ca.key),
    onListen() {},
  }, (request) => new Response(null, { status: request.method === "PUT" ? 201 : 204 }));
  const host = `localhost:${server.addr.port}`;
  const verified = new Http1Pool({ tls: { caCerts: [ca.ca] } });
  const unverified = new Http1Pool({ tls: {} });
  const plain = new Http1Pool();
  try {
    const body = new TextEncoder().encode("hello");
    assert.equal(await verified.request(host, "PUT", "/a", { body, timeoutMs: 5000 }), 201);
    // Kept alive and reused, over the same TLS session.
    assert.equal(await verified.request(host, "HEAD", "/a", { timeoutMs: 5000 }), 204);
    assert.equal(verified.idleCount(host), 1);
    // A fresh connection (the health probe's) verifies too.
    assert.equal(await verified.request(host, "HEAD", "/", { timeoutMs: 5000, fresh: true }), 204);
    // Without the CA the certificate is unknown: the request fails, it never reaches the server.
    await assert.rejects(() => unverified.request(host, "HEAD", "/", { timeoutMs: 5000 }));
    // Plain HTTP to a TLS server gets no HTTP answer.
    await assert.rejects(() => plain.request(host, "HEAD", "/", { timeoutMs: 2000 }));
  } finally {
    verified.close();
    unverified.close();
    plain.close();
    await server.shutdown();
  }
});

Deno.test("TLS end to end: volumes and index on HTTPS, verified by the index and by clients", async () => {
  await using ca = await makeCa();
  const tlsArgs = ["--tls-cert", ca.cert, "--tls-key", ca.key];
  await using cluster = await testCluster({
    volumeArgs: tlsArgs,
    indexArgs: [...tlsArgs, "--volume-tls", "--volume-ca", ca.caFile, "--replicas", "2"],
  });
  const base = `https://localhost:${cluster.index.port}`;
  using client = Deno.createHttpClient({ caCerts: [ca.ca] });
  const ask = async (url: string, init: RequestInit = {}) => {
    const response = await fetch(url, { client, redirect: "manual", ...init });
    return { status: response.status, headers: response.headers, body: await response.text() };
  };

  // A small value (the index's pooled PUT) and a large one (streamed uploads), over TLS both ways.
  assert.equal((await ask(`${base}/small`, { method: "PUT", body: "bigswag" })).status, 201);
  const large = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
  assert.equal((await ask(`${base}/large`, { method: "PUT", body: large })).status, 201);
  const redirect = await ask(`${base}/small`);
  assert.equal(redirect.status, 302);
  const location = redirect.headers.get("location")!;
  assert.match(location, /^https:\/\/localhost:\d+\/sv[0-9A-F]{2}\/[0-9a-f]{2}\/[0-9a-f]{2}\//);
  assert.ok(location.endsWith(keyToPath("/small")), location);
  const followed = await fetch(`${base}/small`, { client });
  assert.equal(followed.status, 200);
  assert.equal(await followed.text(), "bigswag");
  const largeBack = await fetch(`${base}/large`, { client });
  assert.deepEqual(new Uint8Array(await largeBack.arrayBuffer()), large);

  // The volume's own port speaks only TLS, and the client verifies it too.
  const volume = await fetch(location, { client });
  assert.equal(await volume.text(), "bigswag");
  const plainVolume = await ask(location.replace(/^https:/, "http:"));
  assert.equal(plainVolume.status, 400);
  assert.match(plainVolume.body, /plain HTTP request was sent to HTTPS port/);

  // A plain-HTTP request to the index's TLS port is refused by nginx; no redirect, no value.
  const plainIndex = await ask(`http://localhost:${cluster.index.port}/small`);
  assert.equal(plainIndex.status, 400);
  assert.equal(plainIndex.headers.get("location"), null);
  // A client without the CA refuses the certificate.
  for (const url of [`${base}/small`, location]) {
    await assert.rejects(() => fetch(url), (err: Error) => {
      assert.match(`${err} ${err.cause}`, /certificate|UnknownIssuer/i);
      return true;
    });
  }

  // curl, as docs/security.md, "TLS", says, verifying against the CA.
  {
    const cacert = ["--cacert", ca.caFile];
    const put = await curl([...cacert, "-L", "-X", "PUT", "-d", "fromcurl", `${base}/curl`]);
    assert.equal(put.code, 0, put.stderr);
    const get = await curl([...cacert, "-L", `${base}/curl`]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "fromcurl");
    const withoutCa = await curl(["-L", `${base}/curl`]);
    assert.notEqual(withoutCa.code, 0);
    const del = await curl([
      ...cacert,
      "-X",
      "DELETE",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `${base}/curl`,
    ]);
    assert.equal(del.stdout, "204");
  }

  // An operation reads every replica through the server's TLS client.
  const verifyArgs = [
    "index.ts",
    "verify",
    "--md5",
    "--db",
    join(cluster.dir, "index"),
    "--volumes",
    cluster.volumes.map((v) => `localhost:${v.port}`).join(","),
    "--volume-tls",
  ];
  const verify = await runScript([...verifyArgs, "--volume-ca", ca.caFile]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /ok \d+/);

  assert.equal((await ask(`${base}/small`, { method: "DELETE" })).status, 204);
  assert.equal((await ask(`${base}/small`)).status, 404);
  // The volume (--index) sends a client that finds no file back to the index, which has no key.
  const miss = await ask(location);
  assert.equal(miss.status, 302);
  assert.ok(
    miss.headers.get("location")!.startsWith(`${base}/-/miss/`),
    miss.headers.get("location")!,
  );
  assert.equal((await ask(miss.headers.get("location")!)).status, 404);

  // Offline (no server), the operation makes its own TLS client; without the CA it cannot verify
  // the volumes and fails.
  await cluster.index.stop();
  const offline = await runScript([...verifyArgs, "--volume-ca", ca.caFile]);
  assert.equal(offline.code, 0, offline.stdout + offline.stderr);
  assert.match(offline.stdout, /ok 1\b/);
  const blindOffline = await runScript(verifyArgs);
  assert.equal(blindOffline.code, 1, blindOffline.stdout + blindOffline.stderr);
  assert.match(
    blindOffline.stdout + blindOffline.stderr,
    /marked down: probe failed: .*certificate/i,
  );

  // An index that speaks TLS to the volumes but cannot verify them finds them all down.
  await using blind = await spawnIndex({
    port: freePort(),
    db: join(cluster.dir, "blind"),
    volumes: cluster.volumes.map((v) => `localhost:${v.port}`),
    args: ["--volume-tls", "--replicas", "2"],
  });
  const refused = await fetch(`http://localhost:${blind.port}/blind`, {
    method: "PUT",
    body: "x",
  });
  assert.equal(refused.status, 503, await refused.text());
});
