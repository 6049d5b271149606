// Tests of lib/nginx (through nginx.ts and lib/nginx/mod.ts) that run no nginx: the rendered
// configs (golden: the whole text for fixed options), the check that nginx's workers can write a
// directory, the runtime directory, and the leftovers of a crashed run. Running nginx as a child is
// in tests/cluster/nginx_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DEFAULT_WORKER_USER,
  NginxError,
  prepareAccessLog,
  prepareVolumeDir,
  renderConfig,
  renderLimitZones,
  renderProxyLocations,
  renderProxyUpstream,
  renderVolumeLocations,
  SECRET_PARAMS,
  type WorkerAccount,
  workerAccount,
} from "../../nginx.ts";
import { missingAccountMessage, parseAccount, volumeDirProblem } from "../../lib/nginx/_account.ts";
import {
  ensureRuntimeDir,
  lockFileFor,
  pidFileFor,
  runtimeDir,
  stopLeftover,
} from "../../lib/nginx/mod.ts";
import { exists, freePort, NOBODY_UID, tempDir } from "../helpers.ts";

/** The account of nginx's workers here: null unless the tests run as root. */
const USER = await workerAccount(DEFAULT_WORKER_USER);
/** The type bits of a directory in `stat`'s mode. */
const DIRECTORY_BITS = 0o40000;
const ACCOUNT: WorkerAccount = { name: "mkv", uid: 999, gid: 995, group: "mkv" };

const PROXY_CONFIG =
  `# mkv.ts: rendered by nginx.ts; lives only as long as the program that wrote it.
daemon off;
master_process on;
worker_processes 2;
pid "/tmp/mkv.ts-0/nginx-3000.pid";
error_log stderr warn;
events {
  worker_connections 4096;
}
http {
  access_log off;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  merge_slashes off;
  large_client_header_buffers 4 16k;
  client_body_temp_path "/tmp/mkv-nginx-abc/client_body";
  proxy_temp_path "/tmp/mkv-nginx-abc/proxy";
  fastcgi_temp_path "/tmp/mkv-nginx-abc/fastcgi";
  uwsgi_temp_path "/tmp/mkv-nginx-abc/uwsgi";
  scgi_temp_path "/tmp/mkv-nginx-abc/scgi";
  types {
    application/octet-stream bin;
  }
  default_type application/octet-stream;
  upstream mkv_index {
    server "unix:/tmp/mkv-index-x/index.sock";
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 3000;
    listen [::]:3000;
    client_max_body_size 0;
    set $mkv_csp sandbox;
    if ($uri = /-/status) {
      set $mkv_csp "";
    }
    add_header X-Content-Type-Options nosniff always;
    add_header Content-Security-Policy $mkv_csp always;
    if ($request_uri ~ "#") {
      return 400 "percent-encode # as %23\\n";
    }
    error_page 501 = @unsupported;
    location @unsupported {
      return 400 "unsupported Transfer-Encoding\\n";
    }
    location @mkv_replica {
      set $mkv_volume $upstream_http_x_mkv_volume;
      set $mkv_target $upstream_http_x_mkv_target;
      set $mkv_host $upstream_http_x_mkv_host;
      set $mkv_sni $upstream_http_x_mkv_sni;
      set $mkv_range $upstream_http_x_mkv_range;
      set $mkv_etag $upstream_http_x_mkv_etag;
      set $mkv_modified $upstream_http_x_mkv_modified;
      set $mkv_type $upstream_http_x_mkv_type;
      set $mkv_encoding $upstream_http_x_mkv_encoding;
      set $mkv_language $upstream_http_x_mkv_language;
      proxy_pass http://$mkv_volume$mkv_target;
      proxy_http_version 1.1;
      proxy_pass_request_headers off;
      proxy_pass_request_body off;
      proxy_set_header Host $mkv_host;
      proxy_set_header Range $mkv_range;
      proxy_set_header X-Mkv-From-Index 1;
      proxy_set_header Connection "";
      proxy_hide_header ETag;
      proxy_hide_header Last-Modified;
      proxy_hide_header Content-Type;
      add_header ETag $mkv_etag;
      add_header Last-Modified $mkv_modified;
      add_header Content-Type $mkv_type;
      add_header Content-Encoding $mkv_encoding;
      add_header Content-Language $mkv_language;
      add_header X-Content-Type-Options nosniff always;
      add_header Content-Security-Policy $mkv_csp always;
      proxy_buffering off;
      proxy_connect_timeout 10s;
      proxy_read_timeout 60s;
      proxy_intercept_errors on;
      error_page 404 = @mkv_replica_missing;
      error_page 502 503 504 = @mkv_replica_unavailable;
      error_page 400 403 405 416 500 = @mkv_replica_failed;
    }
    location @mkv_replica_missing {
      default_type application/xml;
      return 404 "<?xml version=\\"1.0\\" encoding=\\"UTF-8\\"?>\\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>$request_id</RequestId></Error>\\n";
    }
    location @mkv_replica_unavailable {
      default_type application/xml;
      return 503 "<?xml version=\\"1.0\\" encoding=\\"UTF-8\\"?>\\n<Error><Code>ServiceUnavailable</Code><Message>The volume holding the object did not answer; try again.</Message><RequestId>$request_id</RequestId></Error>\\n";
    }
    location @mkv_replica_failed {
      default_type application/xml;
      return 500 "<?xml version=\\"1.0\\" encoding=\\"UTF-8\\"?>\\n<Error><Code>InternalError</Code><Message>The volume holding the object refused to serve it.</Message><RequestId>$request_id</RequestId></Error>\\n";
    }
    location / {
      proxy_pass http://mkv_index;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header x-mkv-s3 "";
      proxy_request_buffering off;
      client_body_buffer_size 256k;
      proxy_buffering on;
      proxy_max_temp_file_size 0;
      proxy_redirect off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
`;

const VOLUME_CONFIG =
  `# mkv.ts: rendered by nginx.ts; lives only as long as the program that wrote it.
daemon off;
master_process on;
worker_processes 1;
pid "/tmp/mkv.ts-0/nginx-3001.pid";
error_log stderr warn;
events {
  worker_connections 4096;
}
http {
  access_log off;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  merge_slashes off;
  large_client_header_buffers 4 16k;
  client_body_temp_path "/tmp/mkv-nginx-def/client_body";
  proxy_temp_path "/tmp/mkv-nginx-def/proxy";
  fastcgi_temp_path "/tmp/mkv-nginx-def/fastcgi";
  uwsgi_temp_path "/tmp/mkv-nginx-def/uwsgi";
  scgi_temp_path "/tmp/mkv-nginx-def/scgi";
  types {
    application/octet-stream bin;
  }
  default_type application/octet-stream;
  server {
    listen 3001;
    root "/data/volume1";
    keepalive_timeout 75s;
    location / {
      limit_except GET {
        deny all;
      }
      autoindex on;
      autoindex_format json;
    }
    location ~ "^(/sv[0-9A-F]{2})?/[0-9a-f]{2}/[0-9a-f]{2}/[A-Za-z0-9+/]*[A-Za-z0-9+]={0,2}(~/[0-9a-f]{16})?$" {
      limit_except GET PUT DELETE {
        deny all;
      }
      client_body_temp_path "/data/volume1/.mkv/tmp";
      client_max_body_size 0;
      dav_methods PUT DELETE;
      dav_access user:rw;
      create_full_put_path on;
    }
    location ^~ /. {
      return 404;
    }
    location = /.mkv-probe {
      limit_except GET PUT {
        deny all;
      }
      client_body_temp_path "/data/volume1/.mkv/tmp";
      dav_methods PUT;
      dav_access user:rw;
    }
    location = /.mkv-status {
      limit_except GET {
        deny all;
      }
      stub_status;
    }
    location = /.mkv-disk {
      limit_except GET {
        deny all;
      }
      default_type application/json;
      alias "/data/volume1/.mkv/disk.json";
    }
  }
}
`;

Deno.test("renderConfig: the index's nginx, proxying to its Deno server (golden)", () => {
  const config = renderConfig({
    prefixDir: "/tmp/mkv-nginx-abc",
    pidFile: "/tmp/mkv.ts-0/nginx-3000.pid",
    port: 3000,
    ipv6: true,
    workerProcesses: 2,
    httpBlocks: renderProxyUpstream({ socketPath: "/tmp/mkv-index-x/index.sock", keepalive: 256 }),
    locations: renderProxyLocations(),
  });
  assert.equal(config, PROXY_CONFIG);
});

Deno.test("renderConfig: a volume's nginx, without IPv6 (golden)", () => {
  const config = renderConfig({
    prefixDir: "/tmp/mkv-nginx-def",
    pidFile: "/tmp/mkv.ts-0/nginx-3001.pid",
    port: 3001,
    ipv6: false,
    workerProcesses: 1,
    locations: renderVolumeLocations({ dir: "/data/volume1" }),
  });
  assert.equal(config, VOLUME_CONFIG);
  // Run by root, the workers get the account they are given.
  const asRoot = renderConfig({
    prefixDir: "/tmp/mkv-nginx-def",
    pidFile: "/tmp/mkv.ts-0/nginx-3001.pid",
    port: 3001,
    ipv6: false,
    workerProcesses: 1,
    user: ACCOUNT,
    locations: renderVolumeLocations({ dir: "/data/volume1" }),
  });
  assert.equal(
    asRoot,
    VOLUME_CONFIG.replace("worker_processes", "user mkv mkv;\nworker_processes"),
  );
});

Deno.test("renderVolumeLocations quotes a directory with quotes and backslashes", () => {
  assert.deepEqual(
    renderVolumeLocations({ dir: '/data/a "b"\\c' }).split("\n").filter((line) =>
      line.includes("/data/")
    ),
    [
      `    root "/data/a \\"b\\"\\\\c";`,
      `      client_body_temp_path "/data/a \\"b\\"\\\\c/.mkv/tmp";`,
      `      client_body_temp_path "/data/a \\"b\\"\\\\c/.mkv/tmp";`,
      `      alias "/data/a \\"b\\"\\\\c/.mkv/disk.json";`,
    ],
  );
});

Deno.test("renderProxyUpstream and renderProxyLocations (golden)", () => {
  assert.equal(
    renderProxyUpstream({ socketPath: "/run/x.sock", keepalive: 8 }),
    `  upstream mkv_index {\n    server "unix:/run/x.sock";\n    keepalive 8;\n    keepalive_requests 1000000;\n  }`,
  );
  assert.equal(
    renderProxyLocations(),
    PROXY_CONFIG.slice(
      PROXY_CONFIG.indexOf("    client_max_body_size 0;"),
      PROXY_CONFIG.indexOf("\n  }\n}\n"),
    ),
  );
});

Deno.test("volumeDirProblem: root's, the workers' group, 1770; else the commands that fix it", () => {
  const dir = "/data/volume1";
  const cases: [number | null, number | null, number | null, boolean][] = [
    [0, 995, DIRECTORY_BITS | 0o1770, true],
    [0, 995, 0o1770, true],
    [0, 995, 0o770, false],
    [0, 995, 0o1775, false],
    [0, 995, 0o1777, false],
    [0, 0, 0o1770, false],
    [999, 995, 0o1770, false],
    [65534, 65534, 0o755, false],
    [null, 995, 0o1770, false],
  ];
  for (const [uid, gid, mode, ok] of cases) {
    const problem = volumeDirProblem(dir, { uid, gid, mode }, ACCOUNT);
    assert.equal(problem === null, ok, `uid ${uid} gid ${gid} mode ${mode?.toString(8)}`);
  }
  assert.equal(
    volumeDirProblem(dir, { uid: 65534, gid: 65534, mode: 0o755 }, ACCOUNT),
    "volume directory /data/volume1 is not root's with group mkv and mode 1770, so mkv's nginx " +
      "workers could not store there or could plant links for root to follow; run: " +
      "chown -R mkv:mkv /data/volume1 && chmod -R go= /data/volume1 && " +
      "chown root:mkv /data/volume1 && chmod 1770 /data/volume1",
  );
});

Deno.test("parseAccount and missingAccountMessage (golden)", () => {
  assert.deepEqual(
    parseAccount("mkv:x:999:995::/nonexistent:/usr/sbin/nologin\n", "mkv:x:995:\n"),
    ACCOUNT,
  );
  assert.equal(parseAccount("", ""), null);
  assert.equal(parseAccount("mkv:x:abc:995::/:/bin/sh", "mkv:x:995:"), null);
  assert.equal(parseAccount("mkv:x:999:995::/:/bin/sh", ""), null);
  assert.equal(
    missingAccountMessage("mkv"),
    "user mkv (for nginx's workers) does not exist; " +
      "run: useradd --system --no-create-home --shell /usr/sbin/nologin mkv",
  );
});

Deno.test("renderVolumeLocations: keepalive_timeout from keepaliveMs, 75s by default", () => {
  const line = (keepaliveMs?: number) =>
    renderVolumeLocations({ dir: "/d", keepaliveMs }).split("\n")[1];
  assert.equal(line(), "    keepalive_timeout 75s;");
  assert.equal(line(5000), "    keepalive_timeout 5s;");
  assert.equal(line(1500), "    keepalive_timeout 1500ms;");
  assert.equal(line(0), "    keepalive_timeout 0s;");
});

Deno.test("pidFileFor is fixed per port, in the runtime directory", () => {
  assert.equal(pidFileFor(3001), `${runtimeDir()}/nginx-3001.pid`);
  assert.equal(lockFileFor(3001), `${runtimeDir()}/nginx-3001.lock`);
  assert.notEqual(pidFileFor(3001), pidFileFor(3002));
  assert.equal(pidFileFor(3001), pidFileFor(3001));
});

Deno.test("prepareVolumeDir: makes a missing directory, its own directory and the spool", async () => {
  await using dir = await tempDir();
  const volume = join(dir.path, "a", "volume");
  await prepareVolumeDir(volume, USER);
  const modes = async (path: string) => {
    const info = await Deno.lstat(path);
    assert.ok(info.isDirectory, path);
    return [info.uid, info.gid, info.mode! & 0o7777];
  };
  const uid = Deno.uid()!;
  if (USER) {
    assert.deepEqual(await modes(volume), [0, USER.gid, 0o1770]);
    assert.deepEqual(await modes(join(volume, ".mkv")), [0, USER.gid, 0o750]);
    assert.deepEqual(await modes(join(volume, ".mkv/tmp")), [USER.uid, USER.gid, 0o700]);
  } else {
    assert.equal((await modes(volume))[0], uid);
    assert.equal((await modes(join(volume, ".mkv/tmp")))[2], 0o700);
  }
  // Again, as at every start: nothing changes.
  await prepareVolumeDir(volume, USER);
  if (USER) assert.deepEqual(await modes(join(volume, ".mkv/tmp")), [USER.uid, USER.gid, 0o700]);
});

Deno.test({
  name: "prepareVolumeDir: refuses a directory that is not set up for the workers, unchanged",
  ignore: USER === null && Deno.env.get("CI") !== "true",
  async fn() {
    assert.ok(USER, "needs root (the workers' account is used only when root runs nginx)");
    await using dir = await tempDir();
    const rootOnly = join(dir.path, "root-only");
    await Deno.mkdir(rootOnly, { mode: 0o755 });
    await Deno.chmod(rootOnly, 0o755);
    await assert.rejects(
      () => prepareVolumeDir(rootOnly, USER),
      (err: Error) => {
        assert.ok(err instanceof NginxError);
        assert.match(err.message, /is not root's with group mkv and mode 1770.*run: chown -R/);
        assert.ok(!err.message.includes("\n"));
        return true;
      },
    );
    // The directory is left as it was: refusing never changes an existing directory.
    assert.equal((await Deno.stat(rootOnly)).mode! & 0o7777, 0o755);
    assert.ok(!await exists(join(rootOnly, ".mkv")));

    const file = join(dir.path, "file");
    await Deno.writeTextFile(file, "x");
    await assert.rejects(() => prepareVolumeDir(file, USER), NginxError);

    // A directory under one the workers cannot enter.
    const closed = join(dir.path, "closed");
    await Deno.mkdir(closed);
    await Deno.chmod(closed, 0o700);
    await assert.rejects(
      () => prepareVolumeDir(join(closed, "volume"), USER),
      /cannot be reached by nginx's workers/,
    );
  },
});

Deno.test("stopLeftover leaves alone what is not a leftover nginx of ours", async () => {
  await using dir = await tempDir();
  // A pid file is trusted only in a directory that no one else can write.
  await Deno.chmod(dir.path, 0o700);
  const pidFile = join(dir.path, "nginx.pid");
  await stopLeftover(pidFile);
  // A pid file naming a live process that is not our nginx (this test): only the file goes.
  await Deno.writeTextFile(pidFile, `${Deno.pid}\n`);
  await stopLeftover(pidFile);
  await assert.rejects(() => Deno.stat(pidFile), Deno.errors.NotFound);
});

Deno.test("stopLeftover removes the temp files a crashed run listed, and only ours", async () => {
  await ensureRuntimeDir();
  const port = freePort();
  const tmp = (Deno.env.get("TMPDIR") ?? "/tmp").replace(/\/+$/, "");
  // What a killed program leaves: its temp directory and file, listed beside the pid file.
  const leftDir = await Deno.makeTempDir({ prefix: "mkv-index-" });
  const leftFile = await Deno.makeTempFile({ prefix: "mkv-nginx-", suffix: ".conf" });
  await using outside = await tempDir();
  const notOurs = join(outside.path, "keep");
  await Deno.writeTextFile(notOurs, "not a temp file of ours");
  const list = pidFileFor(port).replace(/\.pid$/, ".files");
  await Deno.writeTextFile(list, JSON.stringify([leftDir, leftFile, notOurs, `${tmp}/../etc`]));
  await stopLeftover(pidFileFor(port));
  await assert.rejects(() => Deno.stat(leftDir), Deno.errors.NotFound);
  await assert.rejects(() => Deno.stat(leftFile), Deno.errors.NotFound);
  await assert.rejects(() => Deno.stat(list), Deno.errors.NotFound);
  assert.equal(await Deno.readTextFile(notOurs), "not a temp file of ours");
  await assert.rejects(() => Deno.stat(lockFileFor(port)), Deno.errors.NotFound);
});

Deno.test("ensureRuntimeDir makes a private directory and refuses one others could write", async () => {
  await using dir = await tempDir();
  const fresh = join(dir.path, "fresh");
  assert.equal(await ensureRuntimeDir(fresh), fresh);
  assert.equal((await Deno.stat(fresh)).mode! & 0o777, 0o700);

  const open = join(dir.path, "open");
  await Deno.mkdir(open);
  await Deno.chmod(open, 0o777);
  await assert.rejects(
    () => ensureRuntimeDir(open),
    new NginxError(`runtime directory ${open} is writable by others; run: chmod 700 ${open}`),
  );
  await Deno.chmod(open, 0o770);
  await assert.rejects(() => ensureRuntimeDir(open), /is writable by its group; run: chmod 700/);

  const link = join(dir.path, "link");
  await Deno.symlink(fresh, link);
  await assert.rejects(
    () => ensureRuntimeDir(link),
    new NginxError(`runtime directory ${link} is a symbolic link; run: rm ${link}`),
  );

  const file = join(dir.path, "file");
  await Deno.writeTextFile(file, "");
  await assert.rejects(() => ensureRuntimeDir(file), /is not a directory; run: rm /);

  if (Deno.uid() === 0) {
    const theirs = join(dir.path, "theirs");
    await Deno.mkdir(theirs, { mode: 0o700 });
    await Deno.chown(theirs, NOBODY_UID, NOBODY_UID);
    await assert.rejects(
      () => ensureRuntimeDir(theirs),
      new NginxError(
        `runtime directory ${theirs} is owned by uid ${NOBODY_UID}, not by us (uid 0); ` +
          `run: sudo rm -r ${theirs}`,
      ),
    );
  }
  // stopLeftover does not trust a pid file in such a directory either.
  await Deno.writeTextFile(join(open, "nginx-1.pid"), `${Deno.pid}\n`);
  await assert.rejects(() => stopLeftover(join(open, "nginx-1.pid")), /writable by its group/);
});

Deno.test("renderConfig: TLS listens with ssl, modern protocols only (golden)", () => {
  const config = renderConfig({
    prefixDir: "/tmp/mkv-nginx-def",
    pidFile: "/tmp/mkv.ts-0/nginx-3001.pid",
    port: 3001,
    ipv6: true,
    workerProcesses: 1,
    locations: "    # locations",
    tls: { cert: "/etc/mkv/volume.pem", key: '/etc/mkv/"volume".key' },
  });
  const server = config.slice(config.indexOf("  server {"));
  assert.equal(
    server,
    `  server {
    listen 3001 ssl;
    listen [::]:3001 ssl;
    ssl_certificate "/etc/mkv/volume.pem";
    ssl_certificate_key "/etc/mkv/\\"volume\\".key";
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:mkv_tls:1m;
    ssl_session_timeout 1h;
    # locations
  }
}
`,
  );
  // Without TLS nothing of it appears.
  const plain = renderConfig({
    prefixDir: "/tmp/mkv-nginx-def",
    pidFile: "/tmp/mkv.ts-0/nginx-3001.pid",
    port: 3001,
    ipv6: true,
    workerProcesses: 1,
    locations: "    # locations",
  });
  assert.ok(!/ssl/.test(plain), plain);
  assert.equal(config.replaceAll(" ssl;", ";").replace(/^ {4}ssl_.*\n/gm, ""), plain);
});

Deno.test("renderLimitZones and renderProxyLocations with limits (golden)", () => {
  assert.equal(renderLimitZones(), "");
  assert.equal(renderLimitZones({}), "");
  assert.equal(renderProxyLocations({}), renderProxyLocations());
  assert.equal(
    renderLimitZones({ conn: 16, rate: "10r/s", burst: 20 }),
    `  limit_conn_zone $binary_remote_addr zone=mkv_conn:10m;
  limit_req_zone $binary_remote_addr zone=mkv_req:10m rate=10r/s;`,
  );
  assert.equal(
    renderLimitZones({ rate: "600r/m" }),
    `  limit_req_zone $binary_remote_addr zone=mkv_req:10m rate=600r/m;`,
  );
  const both = renderProxyLocations({ conn: 16, rate: "10r/s", burst: 20 });
  assert.equal(
    both.slice(0, both.indexOf("    if ($request_uri")),
    `    client_max_body_size 0;
    set $mkv_csp sandbox;
    if ($uri = /-/status) {
      set $mkv_csp "";
    }
    add_header X-Content-Type-Options nosniff always;
    add_header Content-Security-Policy $mkv_csp always;
    limit_conn mkv_conn 16;
    limit_conn_status 429;
    limit_conn_log_level info;
    limit_req zone=mkv_req burst=20 nodelay;
    limit_req_status 429;
    limit_req_log_level info;
    error_page 429 = @limited;
    location @limited {
      return 429 "too many requests or connections from your address\\n";
    }
`,
  );
  // The rest is the same as without limits.
  assert.equal(
    both.slice(both.indexOf("    if ($request_uri")),
    renderProxyLocations().slice(renderProxyLocations().indexOf("    if ($request_uri")),
  );
  const connOnly = renderProxyLocations({ conn: 4 });
  assert.ok(
    connOnly.includes(
      "    limit_conn mkv_conn 4;\n    limit_conn_status 429;\n    limit_conn_log_level info;\n",
    ),
  );
  assert.ok(!connOnly.includes("limit_req"));
  const rateOnly = renderProxyLocations({ rate: "5r/s" });
  assert.match(rateOnly, /limit_req zone=mkv_req burst=0 nodelay;/);
  assert.ok(!rateOnly.includes("limit_conn"));
});

Deno.test("renderConfig: the access log, a JSON line per request (golden)", () => {
  const options = {
    prefixDir: "/tmp/mkv-nginx-abc",
    pidFile: "/tmp/mkv.ts-0/nginx-3000.pid",
    port: 3000,
    ipv6: true,
    workerProcesses: 2,
    httpBlocks: renderProxyUpstream({ socketPath: "/tmp/mkv-index-x/index.sock", keepalive: 256 }),
    locations: renderProxyLocations(),
  };
  // The uri is logged with each secret parameter's value redacted, one map per parameter.
  assert.deepEqual(SECRET_PARAMS.slice(0, 2), ["X-Amz-Signature", "X-Amz-Credential"]);
  assert.ok(SECRET_PARAMS.includes("md5"));
  const maps = SECRET_PARAMS.map((param, i) => {
    const from = i === 0 ? "$request_uri" : `$mkv_logged_uri_${i - 1}`;
    const to = i === SECRET_PARAMS.length - 1 ? "$mkv_logged_uri" : `$mkv_logged_uri_${i}`;
    return `  map ${from} ${to} {\n` +
      `    "~*^(?<mkv_before_${i}>.*[?&]${param}=)[^&]*(?<mkv_after_${i}>.*)$" ` +
      `"\${mkv_before_${i}}REDACTED\${mkv_after_${i}}";\n` +
      `    default ${from};\n  }\n`;
  }).join("");
  const format = `${maps}  log_format mkv_json escape=json '{"time":"$time_iso8601",` +
    `"remote_addr":"$remote_addr","method":"$request_method","uri":"$mkv_logged_uri",` +
    `"status":$status,"body_bytes_sent":$body_bytes_sent,"request_length":$request_length,` +
    `"request_time":$request_time,"upstream_response_time":"$upstream_response_time",` +
    `"user_agent":"$http_user_agent"}';`;
  assert.equal(
    renderConfig({ ...options, accessLog: "/var/log/mkv/access.log" }),
    PROXY_CONFIG.replace(
      "  access_log off;\n",
      `${format}\n  access_log "/var/log/mkv/access.log" mkv_json;\n`,
    ),
  );
  assert.equal(
    renderConfig({ ...options, accessLog: "stderr" }),
    PROXY_CONFIG.replace(
      "  access_log off;\n",
      `${format}\n  access_log "/dev/stderr" mkv_json;\n`,
    ),
  );
  assert.equal(renderConfig({ ...options, accessLog: undefined }), PROXY_CONFIG);
  // No header but the User-Agent is logged: never the Authorization.
  assert.ok(!/http_(?!user_agent)/.test(format));
  assert.ok(!format.includes(`"uri":"$request_uri"`));
  assert.throws(() => renderConfig({ ...options, accessLog: "a.log" }), /not an absolute path/);
  assert.throws(() => renderConfig({ ...options, accessLog: "/x/$host" }), /bad character/);
});

Deno.test("prepareAccessLog: creates a missing file 0600, keeps an existing one", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "access.log");
  await prepareAccessLog(path);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  await Deno.writeTextFile(path, "kept\n");
  await Deno.chmod(path, 0o640);
  await prepareAccessLog(path);
  assert.equal(await Deno.readTextFile(path), "kept\n");
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
  await assert.rejects(prepareAccessLog(dir.path), /cannot open access log .*not a regular file/);
  await assert.rejects(
    prepareAccessLog(join(dir.path, "none", "access.log")),
    (err: Error) => err instanceof NginxError && /cannot open access log/.test(err.message),
  );
});
