// The status page (`/-/status`) in a real headless Chromium (Debian's, installed by .ci/install
// test) driven by puppeteer-core, on a real cluster: it loads without console errors, shows the
// three volumes, flips one to down when it is stopped, and shows a running verify's progress. It
// takes a screenshot meanwhile; with MKV_SCREENSHOT=1 in the environment it is saved as
// docs/status.png (docs/monitoring.md shows it). The renderer is in tests/unit/status_test.ts.

import assert from "node:assert/strict";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25.16.0";
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from "npm:@aws-sdk/client-s3@3.1178.0";
import { getSignedUrl } from "npm:@aws-sdk/s3-request-presigner@3.1178.0";
import { put, request, ROOT, runScript, tempDir, testCluster } from "../helpers.ts";

/** Debian's Chromium, which .ci/install test installs. */
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** How long Chromium may take to close before it is killed. */
const CLOSE_TIMEOUT_MS = 5_000;
/** How long the page may take to show a change (it polls every second). */
const PAGE_TIMEOUT_MS = 15_000;
/**
 * Keys written for the verify to work through, read one at a time with their md5, and the size of
 * each: enough bytes that the verify runs for several of the page's polls on an idle machine, since
 * the reads of small values go by faster than a poll.
 */
const VERIFY_KEYS = 3000;
const VERIFY_VALUE_BYTES = 64 * 1024;
const PUT_CONCURRENCY = 32;
const SCREENSHOT = join(ROOT, "docs", "status.png");

/** Chromium, closed (or killed) on dispose whatever happened. */
async function launchChromium(): Promise<Browser & AsyncDisposable> {
  const profile = await tempDir();
  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS, `--user-data-dir=${profile.path}`],
      headless: true,
      pipe: true,
    });
  } catch (err) {
    await profile[Symbol.asyncDispose]();
    throw err;
  }
  return Object.assign(browser, {
    async [Symbol.asyncDispose]() {
      // Chromium is killed if it does not close in time, or cannot be told to.
      const kill = () => browser.process()?.kill("SIGKILL");
      const timer = setTimeout(kill, CLOSE_TIMEOUT_MS);
      try {
        await browser.close();
      } catch {
        kill();
      } finally {
        clearTimeout(timer);
        await profile[Symbol.asyncDispose]();
      }
    },
  });
}

/** Waits until the expression `check` holds in the page, or fails naming `what`. */
async function waitInPage(page: Page, what: string, check: string): Promise<void> {
  try {
    await page.waitForFunction(check, { timeout: PAGE_TIMEOUT_MS, polling: 100 });
  } catch (err) {
    const text = await page.$eval("body", (body) => body.innerText).catch(() => "");
    throw new Error(`the page did not show ${what}: ${(err as Error).message}\n${text}`);
  }
}

/** PUTs `count` keys, `PUT_CONCURRENCY` at once. */
async function putMany(base: string, count: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: PUT_CONCURRENCY }, async () => {
    while (next < count) {
      const key = `/verify/${next++}`;
      const value = `value of ${key} `.padEnd(VERIFY_VALUE_BYTES, "x");
      assert.equal(await put(base, key, value), 201, key);
    }
  }));
}

Deno.test("the status page in headless Chromium: volumes, one going down, a running verify", async () => {
  await using cluster = await testCluster();
  const base = `http://localhost:${cluster.index.port}`;
  const hosts = cluster.volumes.map((volume) => `localhost:${volume.port}`);
  await putMany(base, VERIFY_KEYS);

  // Without JS (a terminal browser, curl) the page is the state itself.
  const raw = await request(`${base}/-/status`);
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.get("content-type"), "text/html; charset=utf-8");
  for (const host of hosts) assert.ok(raw.body.includes(`data-volume="${host}"`), host);

  await using browser = await launchChromium();
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${(err as Error).message}`));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()}`));
  await page.setViewport({ width: 1000, height: 760 });
  const answer = await page.goto(`${base}/-/status`, { waitUntil: "load" });
  assert.equal(answer?.status(), 200);
  const rows = await page.$$eval(
    "#volumes tbody tr",
    (trs) => trs.map((tr) => [tr.getAttribute("data-volume"), tr.getAttribute("data-state")]),
  );
  assert.deepEqual(rows, hosts.map((host) => [host, "up"]));
  // The page's own JS takes over: it says it is live once it has polled.
  await waitInPage(
    page,
    "that it is live",
    `document.getElementById("live").textContent === "live"`,
  );

  // A verify that reads every replica of every key, one key at a time: its progress shows.
  const verify = runScript([
    "index.ts",
    "verify",
    "--db",
    join(cluster.dir, "index"),
    "--volumes",
    hosts.join(","),
    "--md5",
    "--concurrency",
    "1",
  ]);
  try {
    await waitInPage(
      page,
      "the verify's progress",
      `/verify running · [\\d,]+ \\/ [\\d,]+ keys/.test(` +
        `document.querySelector('#operation [data-running="true"]')?.textContent ?? "")`,
    );
    const png = await page.screenshot({ type: "png" });
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a PNG");
    if (Deno.env.get("MKV_SCREENSHOT") === "1") await Deno.writeFile(SCREENSHOT, png);
    const metrics = (await request(`${base}/-/metrics`)).body;
    assert.match(metrics, /^mkv_operation_running\{operation="verify"\} 1$/m);
  } finally {
    const result = await verify;
    assert.equal(result.code, 0, `verify: ${result.stdout}${result.stderr}`);
  }
  await waitInPage(
    page,
    "the verify finished",
    `document.querySelector('#operation [data-running="false"][data-operation="verify"]')`,
  );

  // A volume stopped: its row turns to down within a few seconds (a probe, then a poll).
  await cluster.volumes[1].stop();
  await waitInPage(
    page,
    "the stopped volume down",
    `document.querySelectorAll('#volumes tr[data-state="down"]').length === 1`,
  );
  const down = await page.$eval(
    '#volumes tr[data-state="down"]',
    (tr) => tr.getAttribute("data-volume"),
  );
  assert.equal(down, hosts[1]);
  // The index's own events went to its stderr as JSON lines.
  const events = cluster.index.log.split("\n").filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
  const names = events.map((event) => event.event);
  for (const name of ["operation_started", "operation_finished", "volume_down"]) {
    assert.ok(names.includes(name), `${name} in ${names}`);
  }
  const volumeDown = events.find((event) => event.event === "volume_down");
  assert.equal(volumeDown.volume, hosts[1]);
  assert.match(volumeDown.msg, new RegExp(`^volume ${hosts[1]}: marked down: `));

  // On a phone's width nothing sticks out of the page (the table scrolls in its own box).
  await page.setViewport({ width: 390, height: 844, isMobile: true });
  const overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth");
  assert.ok(Number(overflow) <= 0, `the page is ${overflow}px wider than a phone`);
  assert.deepEqual(problems, []);
});

/**
 * A stored page that tries what a script on the index's origin could do with an admin's Basic
 * credentials: read the status, store what it read, delete a key. `document.title` says it ran.
 */
const HOSTILE_PAGE = `<!doctype html><title>stored</title><script>
document.title = "ran";
fetch("/-/status.json").then((r) => r.text()).then((t) => fetch("/stolen", { method: "PUT", body: t }));
fetch("/victim", { method: "DELETE" });
</script>`;
/** How long the stored page is given to do harm. */
const HOSTILE_PAGE_MS = 2_000;

Deno.test("a stored text/html page served by the index cannot use an admin's credentials", async () => {
  const admin = { accessKeyId: "admin", secretAccessKey: "admin-secret-0123" };
  const writer = { accessKeyId: "writer", secretAccessKey: "writer-secret-0123" };
  const reader = { accessKeyId: "reader", secretAccessKey: "reader-secret-0123" };
  await using dir = await tempDir();
  const credentials = join(dir.path, "credentials");
  await Deno.writeTextFile(
    credentials,
    [
      `${admin.accessKeyId} ${admin.secretAccessKey} all`,
      `${writer.accessKeyId} ${writer.secretAccessKey} write`,
      `${reader.accessKeyId} ${reader.secretAccessKey} read`,
    ].join("\n") + "\n",
    { mode: 0o600 },
  );
  await Deno.chmod(credentials, 0o600);
  await using cluster = await testCluster({
    volumes: 1,
    indexArgs: ["--replicas", "1", "--credentials", credentials],
  });
  const base = `http://localhost:${cluster.index.port}`;
  const asAdmin = {
    authorization: `Basic ${btoa(`${admin.accessKeyId}:${admin.secretAccessKey}`)}`,
  };
  const stored = await request(`${base}/victim`, {
    method: "PUT",
    body: "keep me",
    headers: asAdmin,
  });
  assert.equal(stored.status, 201);
  const s3 = (credentials: { accessKeyId: string; secretAccessKey: string }) =>
    new S3Client({
      endpoint: base,
      region: "us-east-1",
      forcePathStyle: true,
      credentials,
      maxAttempts: 1,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  await s3(admin).send(new CreateBucketCommand({ Bucket: "site" }));
  // A key with only the write right stores a page...
  await s3(writer).send(
    new PutObjectCommand({
      Bucket: "site",
      Key: "page.html",
      Body: HOSTILE_PAGE,
      ContentType: "text/html",
    }),
  );
  // ...served from the index's own origin by an S3 GET (and HEAD).
  const presign = (command: GetObjectCommand | HeadObjectCommand) =>
    getSignedUrl(s3(reader), command, { expiresIn: 300 });
  const url = await presign(new GetObjectCommand({ Bucket: "site", Key: "page.html" }));
  const headUrl = await presign(new HeadObjectCommand({ Bucket: "site", Key: "page.html" }));
  for (const [method, signed] of [["GET", url], ["HEAD", headUrl]]) {
    const answer = await request(signed, { method });
    assert.equal(answer.status, 200, `${method}: ${answer.body}`);
    assert.equal(answer.headers.get("content-type"), "text/html");
    assert.equal(answer.headers.get("x-content-type-options"), "nosniff", method);
    assert.equal(answer.headers.get("content-security-policy"), "sandbox", method);
  }
  const redirect = await request(`${base}/victim`, { headers: asAdmin });
  assert.equal(redirect.headers.get("content-security-policy"), "sandbox");

  await using browser = await launchChromium();
  const page = await browser.newPage();
  await page.authenticate({ username: admin.accessKeyId, password: admin.secretAccessKey });
  // The admin logs in to the status page; the page itself still runs its script.
  const status = await page.goto(`${base}/-/status`, { waitUntil: "load" });
  assert.equal(status?.status(), 200);
  assert.equal(status?.headers()["content-security-policy"], undefined);
  await waitInPage(
    page,
    "that it is live",
    `document.getElementById("live").textContent === "live"`,
  );
  // Then opens the stored page's link.
  const opened = await page.goto(url, { waitUntil: "load" });
  assert.equal(opened?.status(), 200);
  await new Promise((resolve) => setTimeout(resolve, HOSTILE_PAGE_MS));
  assert.notEqual(await page.title(), "ran", "the stored page's script ran on the index's origin");
  assert.equal((await request(`${base}/stolen`, { headers: asAdmin })).status, 404);
  const victim = await request(`${base}/victim`, { headers: asAdmin, redirect: "follow" });
  assert.equal(victim.body, "keep me");
});
