// Tests of nginx.ts and lib/nginx/runtime.ts with real processes: running nginx as a child (start,
// serve, stop, busy port), what a pid file may make us signal, and volume.ts's refusal of an open
// runtime directory. The rendered configs are in tests/unit/nginx_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkPortFree,
  DEFAULT_WORKER_USER,
  Nginx,
  NginxError,
  prepareVolumeDir,
  renderVolumeLocations,
  workerAccount,
} from "../../nginx.ts";
import {
  alive,
  ensureRuntimeDir,
  lockFileFor,
  pidFileFor,
  stopLeftover,
} from "../../lib/nginx/runtime.ts";
import { freePort, NOBODY_UID, ROOT, tempDir } from "../helpers.ts";

/** The account of nginx's workers here: null unless the tests run as root. */
const USER = await workerAccount(DEFAULT_WORKER_USER);

/** A volume directory under `parent`, readied as volume.ts readies it. */
async function volumeDir(parent: string): Promise<string> {
  const dir = join(parent, "volume");
  await prepareVolumeDir(dir, USER);
  return dir;
}

Deno.test("checkPortFree and freePort", () => {
  const port = freePort();
  checkPortFree(port);
  using listener = Deno.listen({ hostname: "127.0.0.1", port });
  assert.throws(() => checkPortFree(port), new NginxError(`port ${port} is busy`));
  assert.equal((listener.addr as Deno.NetAddr).port, port);
});

Deno.test("Nginx runs a volume: serves WebDAV and byte ranges, hides .tmp, stops clean", async () => {
  await using dir = await tempDir();
  const port = freePort();
  const volume = await volumeDir(dir.path);
  const nginx = await Nginx.start({
    name: `test :${port}`,
    port,
    user: USER,
    locations: renderVolumeLocations({ dir: volume }),
  });
  try {
    assert.ok(nginx.pid > 0);
    const url = `http://127.0.0.1:${port}/sv01/5d/41/aGVsbG8=`;
    const put = await fetch(url, { method: "PUT", body: "hello" });
    await put.body?.cancel();
    assert.equal(put.status, 201);
    assert.equal(await Deno.readTextFile(join(volume, "sv01/5d/41/aGVsbG8=")), "hello");
    const range = await fetch(url, { headers: { range: "bytes=1-3" } });
    assert.equal(range.status, 206);
    assert.equal(await range.text(), "ell");
    const hidden = await fetch(`http://127.0.0.1:${port}/.tmp/`);
    await hidden.body?.cancel();
    assert.equal(hidden.status, 404);
  } finally {
    await nginx.stop();
  }
  await nginx.stop();
  checkPortFree(port);
  await assert.rejects(() => Deno.stat(pidFileFor(port)), Deno.errors.NotFound);
  await assert.rejects(() => Deno.stat(lockFileFor(port)), Deno.errors.NotFound);
});

Deno.test("Nginx.start refuses the port of a running nginx of ours and leaves it alone", async () => {
  await using dir = await tempDir();
  const port = freePort();
  const locations = renderVolumeLocations({ dir: await volumeDir(dir.path) });
  const first = await Nginx.start({ name: `first :${port}`, port, user: USER, locations });
  let second: Nginx | null = null;
  try {
    const pid = first.pid;
    // A second program on the same port (an operator starting a volume twice) must not take the
    // running one for the leftover of a crash.
    const refusal = await Nginx.start({ name: `second :${port}`, port, user: USER, locations })
      .then(
        (started) => {
          second = started;
          return null;
        },
        (err: Error) => err,
      );
    assert.ok(refusal !== null, "a second nginx started on the port of a running one");
    assert.deepEqual(
      refusal,
      new NginxError(`port ${port} is busy: another mkv.ts program runs nginx on it`),
    );
    assert.equal(first.pid, pid, "the running nginx was stopped and restarted");
    const answer = await fetch(`http://127.0.0.1:${port}/`, { method: "HEAD" });
    await answer.body?.cancel();
    assert.equal(answer.status, 200);
  } finally {
    await (second as Nginx | null)?.stop();
    await first.stop();
  }
});

/** Plants a pid file and a temp list for `port` where a crashed run of ours would leave them. */
async function plant(port: number, pid: number, listed: string[]): Promise<void> {
  await ensureRuntimeDir();
  await Deno.writeTextFile(pidFileFor(port), `${pid}\n`);
  await Deno.writeTextFile(pidFileFor(port).replace(/\.pid$/, ".files"), JSON.stringify(listed));
}

Deno.test("stopLeftover signals no process that is not a listed nginx of ours", async () => {
  await using dir = await tempDir();
  const tmp = (Deno.env.get("TMPDIR") ?? "/tmp").replace(/\/+$/, "");
  const port = freePort();
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const nginxPort = freePort();
  const running = await Nginx.start({
    name: `running :${nginxPort}`,
    port: nginxPort,
    user: USER,
    locations: renderVolumeLocations({ dir: await volumeDir(dir.path) }),
  });
  try {
    // Not nginx at all: a pid file naming any process of ours must not make us kill it.
    await plant(port, sleeper.pid, [`${tmp}/mkv-nginx-listed.conf`]);
    await stopLeftover(pidFileFor(port));
    assert.ok(alive(sleeper.pid), "a process that is not nginx was signalled");
    // An nginx of ours, but running a config that the list does not name (another program's).
    await plant(port, running.pid, [`${tmp}/mkv-nginx-listed.conf`]);
    await stopLeftover(pidFileFor(port));
    assert.ok(alive(running.pid), "an nginx whose config is not listed was signalled");
    const answer = await fetch(`http://127.0.0.1:${nginxPort}/`, { method: "HEAD" });
    await answer.body?.cancel();
    assert.equal(answer.status, 200);
    await assert.rejects(() => Deno.stat(pidFileFor(port)), Deno.errors.NotFound);
  } finally {
    sleeper.kill();
    await sleeper.status;
    await running.stop();
  }
});

Deno.test({
  name: "stopLeftover signals no process of another user, even one that looks like ours",
  // Needs root to start a process as another user; in CI (.ci/run sets CI=true) never skipped.
  ignore: Deno.uid() !== 0 && Deno.env.get("CI") !== "true",
  async fn() {
    // A fake nginx master: perl with nginx's title, naming a config of ours that is listed.
    const conf = await Deno.makeTempFile({ prefix: "mkv-nginx-", suffix: ".conf" });
    const fake = (uid: number) =>
      new Deno.Command("perl", {
        args: ["-e", `$0 = "nginx: master process /usr/sbin/nginx -c ${conf}"; sleep 30;`],
        uid,
        gid: uid,
      }).spawn();
    const port = freePort();
    const others = fake(NOBODY_UID);
    const ours = fake(0);
    try {
      // Until perl has set its title, it does not look like nginx at all.
      for (const child of [others, ours]) {
        const deadline = Date.now() + 10_000;
        while (!(await Deno.readTextFile(`/proc/${child.pid}/cmdline`)).startsWith("nginx:")) {
          assert.ok(Date.now() < deadline, "perl did not set its title");
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      await plant(port, others.pid, [conf]);
      await stopLeftover(pidFileFor(port));
      assert.ok(alive(others.pid), "another user's process was signalled");
      // The same fake running as us is taken for ours: only its user saved the other one.
      await plant(port, ours.pid, [conf]);
      await stopLeftover(pidFileFor(port));
      assert.equal((await ours.status).signal, "SIGTERM");
    } finally {
      for (const child of [others, ours]) {
        try {
          child.kill();
        } catch {
          // Already gone.
        }
        await child.status;
      }
      await Deno.remove(conf).catch(() => {});
    }
  },
});

Deno.test("volume.ts refuses a runtime directory others can write, in one line", async () => {
  await using dir = await tempDir();
  const runtime = join(dir.path, "mkv.ts");
  await Deno.mkdir(runtime, { mode: 0o700 });
  await Deno.chmod(runtime, 0o777);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "volume.ts", "--port", String(freePort()), "--dir", join(dir.path, "v")],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: dir.path },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 1);
  assert.equal(
    new TextDecoder().decode(output.stderr),
    `volume: runtime directory ${runtime} is writable by others; run: chmod 700 ${runtime}\n`,
  );
  assert.deepEqual(await Array.fromAsync(Deno.readDir(runtime)), []);
});
