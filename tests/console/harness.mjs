// Harness for the console's real-browser tests: one Gatehouse server (the debug binary CI
// builds first; nothing is built here) in a fresh temp data dir on free loopback ports with a
// known bootstrap admin, one headless Chromium (Debian's /usr/bin/chromium, never a
// downloaded one), and pages that fail the test on any console error, page error, CSP
// violation, failed request or unexpected HTTP status >= 400.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { deflateSync } from 'node:zlib';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const outputDir = path.join(here, 'output');

/** The server binary: $GATEHOUSE_BIN, else $CARGO_TARGET_DIR/debug/gatehouse, else the repo's target/. */
export function serverBinary() {
  if (process.env.GATEHOUSE_BIN) return path.resolve(process.env.GATEHOUSE_BIN);
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target');
  return path.join(target, 'debug', 'gatehouse');
}

export const chromiumPath = process.env.GATEHOUSE_CHROMIUM || '/usr/bin/chromium';

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start the server. Returns { publicUrl, adminUrl, adminId, adminSecret, logPath, dataDir,
 * log(), stop() }. stdout and stderr both go to logPath (searched for secrets later).
 */
export async function startServer({ name = 'console', env: extra = {} } = {}) {
  const bin = serverBinary();
  assert.ok(fs.existsSync(bin), `no server binary at ${bin}: build it first (cargo build -p gatehouse-server --bin gatehouse) or set GATEHOUSE_BIN`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `gatehouse-${name}-`));
  const [pub, adm] = [await freePort(), await freePort()];
  const publicUrl = `http://127.0.0.1:${pub}`;
  const adminUrl = `http://127.0.0.1:${adm}`;
  const adminId = `console-admin-${randomBytes(4).toString('hex')}`;
  const adminSecret = randomBytes(32).toString('base64url');
  const logPath = path.join(dataDir, 'server.log');
  const logFd = fs.openSync(logPath, 'a');
  const env = {
    PATH: process.env.PATH,
    GATEHOUSE_PUBLIC_ADDR: `127.0.0.1:${pub}`,
    GATEHOUSE_ADMIN_ADDR: `127.0.0.1:${adm}`,
    GATEHOUSE_ISSUER: publicUrl,
    GATEHOUSE_ADMIN_URL: adminUrl,
    GATEHOUSE_DATA_DIR: dataDir,
    GATEHOUSE_BOOTSTRAP_CLIENT_ID: adminId,
    GATEHOUSE_BOOTSTRAP_CLIENT_SECRET: adminSecret,
    GATEHOUSE_LOG: process.env.GATEHOUSE_LOG || 'info',
    ...extra,
  };
  const child = spawn(bin, [], { env, cwd: dataDir, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const started = Date.now();
  for (;;) {
    if (exited) {
      throw new Error(`the server exited (${JSON.stringify(exited)}):\n${fs.readFileSync(logPath, 'utf8')}`);
    }
    try {
      const r = await fetch(`${publicUrl}/readyz`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() - started > 30_000) {
      child.kill('SIGKILL');
      throw new Error(`not ready within 30 s:\n${fs.readFileSync(logPath, 'utf8')}`);
    }
    await sleep(100);
  }
  return {
    publicUrl, adminUrl, adminId, adminSecret, logPath, dataDir,
    log: () => fs.readFileSync(logPath, 'utf8'),
    async stop() {
      if (exited) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(t);
    },
  };
}

/** The admin JSON API, for setup that is not the flow under test and for verification. */
export function adminApi(server, { id = server.adminId, secret = server.adminSecret } = {}) {
  let token = null;
  async function getToken() {
    if (token) return token;
    const r = await oauthToken(server, id, secret, { scope: 'gatehouse:admin' });
    assert.equal(r.status, 200, `admin token: ${r.status} ${JSON.stringify(r.body)}`);
    token = r.body.access_token;
    return token;
  }
  async function call(method, p, body) {
    const headers = { authorization: `Bearer ${await getToken()}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(`${server.adminUrl}/admin/v1${p}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, body: json, text };
  }
  return {
    get: (p) => call('GET', p),
    post: (p, b) => call('POST', p, b ?? {}),
    patch: (p, b) => call('PATCH', p, b),
    del: (p) => call('DELETE', p),
    async ok(method, p, body) {
      const r = await call(method, p, body);
      assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${r.text}`);
      return r.body;
    },
  };
}

function basic(id, secret) {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');
}

/** POST /oauth/token (client_credentials, client_secret_basic) on the PUBLIC listener. */
export async function oauthToken(server, id, secret, { scope } = {}) {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (scope) form.set('scope', scope);
  const r = await fetch(`${server.publicUrl}/oauth/token`, {
    method: 'POST',
    headers: { authorization: basic(id, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body, text, headers: r.headers };
}

/** POST /oauth/introspect with a collection's introspection credentials. */
export async function introspect(server, id, secret, token) {
  const r = await fetch(`${server.publicUrl}/oauth/introspect`, {
    method: 'POST',
    headers: { authorization: basic(id, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  });
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body, text };
}

export const LAUNCH_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Chromium. playwright-core's launch() always starts it with a new, empty --user-data-dir of
 * its own (a temp dir it deletes on close); it refuses the flag from us, so it is not repeated.
 */
export async function launchBrowser() {
  assert.ok(fs.existsSync(chromiumPath), `no Chromium at ${chromiumPath}: apt-get install -y chromium fonts-dejavu-core`);
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: LAUNCH_ARGS,
  });
  return { browser, close: () => browser.close() };
}

export const DESKTOP = { width: 1280, height: 900 };
export const NARROW = { width: 360, height: 780 };

/**
 * A browser session for one flow: a context, a page, the failure watchers, screenshots,
 * the list of pages visited and the secrets seen (for the secret search).
 */
export async function openSession(browser, server, flow, { clipboard = false } = {}) {
  const context = await browser.newContext({ viewport: DESKTOP, baseURL: server.adminUrl });
  context.setDefaultTimeout(10_000);
  if (clipboard) {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.adminUrl });
  }
  // A CSP violation is reported in the console by Chromium ("Refused to ..."); this makes it
  // an explicit console error too, with the directive, whatever the message wording.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  const failures = [];
  const expected = []; // { status, test(url) , used }
  const visited = []; // { url, step } in order
  const secrets = []; // { name, value, step } — step = visited.length when first shown
  let shotNo = 0;
  const shot = new Set(); // URLs screenshotted
  const dir = path.join(outputDir, flow);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });

  page.on('console', (msg) => {
    const text = msg.text();
    // Chromium logs every error response as a console error too; one the test expects is
    // not a failure (the response watcher below judges the status itself).
    const loadFailure = /^Failed to load resource: the server responded with a status of (\d+)/.exec(text);
    if (loadFailure) {
      const url = msg.location()?.url ?? '';
      if (expected.some((e) => e.status === Number(loadFailure[1]) && e.test(url))) return;
    }
    if (msg.type() === 'error' || /Refused to|Content Security Policy/i.test(text)) {
      failures.push(`console ${msg.type()}: ${text} (${msg.location()?.url ?? ''})`);
    }
  });
  page.on('pageerror', (err) => failures.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => {
    failures.push(`requestfailed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
  });
  page.on('response', (res) => {
    if (res.status() < 400) return;
    const hit = expected.find((e) => e.status === res.status() && e.test(res.url()));
    if (hit) { hit.used = true; return; }
    failures.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
  });
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) visited.push({ url: frame.url(), step: visited.length });
  });

  const session = {
    context, page, failures, visited, secrets, dir,
    /** Allow one kind of error response the test expects (status and URL substring/regex). */
    expectStatus(status, match) {
      const test = typeof match === 'string' ? (u) => u.includes(match) : (u) => match.test(u);
      const e = { status, test, used: false, match: String(match) };
      expected.push(e);
      return e;
    },
    /** Record a secret the console showed: searched for in every later page and at the end. */
    secret(name, value) {
      assert.ok(value && value.length >= 16, `secret ${name} looks empty: ${value}`);
      secrets.push({ name, value, step: visited.length - 1 });
    },
    assertNoFailures(where = '') {
      if (!failures.length) return;
      const short = [...new Set(failures.map((f) => (f.length > 400 ? `${f.slice(0, 400)}…` : f)))];
      assert.fail(`browser failures ${where}:\n${short.join('\n')}`);
    },
    /**
     * Screenshot the current page at desktop width and at 360 px (full page), and check the
     * page does not overflow horizontally at 360 px.
     */
    async checkpoint(name) {
      await page.waitForLoadState('load');
      shot.add(page.url());
      const n = String(++shotNo).padStart(2, '0');
      const base = path.join(dir, `${n}-${name.replace(/[^a-z0-9-]+/gi, '-')}`);
      await page.screenshot({ path: `${base}-desktop.png`, fullPage: true });
      await page.setViewportSize(NARROW);
      const width = await page.evaluate(() => document.scrollingElement.scrollWidth);
      await page.screenshot({ path: `${base}-360.png`, fullPage: true });
      await page.setViewportSize(DESKTOP);
      assert.ok(width <= NARROW.width,
        `${page.url()} (${name}) overflows at 360 px: scrollWidth ${width} (see ${base}-360.png)`);
      session.assertNoFailures(`at ${name} (${page.url()})`);
    },
    /** Secrets are not in localStorage/sessionStorage of the admin origin. */
    async assertStorageClean() {
      const dump = await page.evaluate(() => {
        const all = [];
        for (const s of [window.localStorage, window.sessionStorage]) {
          for (let i = 0; i < s.length; i++) all.push(`${s.key(i)}=${s.getItem(s.key(i))}`);
        }
        return all.join('\n');
      });
      for (const s of secrets) {
        assert.ok(!dump.includes(s.value), `secret ${s.name} found in web storage`);
      }
    },
    /**
     * Fetch again (with the session's cookies) every page visited after a secret was shown and
     * assert the secret is in none of them.
     */
    async assertVisitedPagesClean() {
      const seen = new Set();
      for (const v of visited) {
        if (!v.url.startsWith(server.adminUrl)) continue;
        const relevant = secrets.filter((s) => v.step >= s.step);
        if (!relevant.length) continue;
        const key = v.url;
        if (seen.has(key)) continue;
        seen.add(key);
        const r = await context.request.get(v.url, { failOnStatusCode: false, maxRedirects: 5 });
        const html = await r.text();
        for (const s of relevant) {
          assert.ok(!html.includes(s.value), `secret ${s.name} is on ${v.url} when fetched again`);
        }
      }
      return seen.size;
    },
    /** Every console page this session visited was screenshotted (and checked at 360 px). */
    assertEveryPageShot() {
      const missed = [...new Set(visited.map((v) => v.url))]
        .filter((u) => u.startsWith(server.adminUrl) && !shot.has(u));
      assert.deepEqual(missed, [], 'pages visited without a checkpoint (screenshots, 360 px check)');
    },
    async close() {
      await context.close();
    },
  };
  return session;
}

/** The server's log (stdout + stderr) holds none of the secrets. */
export function assertLogClean(server, secrets) {
  const log = server.log();
  for (const s of secrets) {
    assert.ok(!log.includes(s.value), `secret ${s.name} found in the server log ${server.logPath}`);
  }
}

/** A small valid PNG (a 16x16 coloured square), made here: signature, IHDR, IDAT, IEND. */
export function pngFixture() {
  const w = 16, h = 16;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = 0x1f; raw[o + 1] = 0x6f + x * 4; raw[o + 2] = 0xc0 - y * 4;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

function crc32(buf) {
  let c, crc = 0xffffffff;
  for (let n = 0; n < buf.length; n++) {
    c = (crc ^ buf[n]) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return crc ^ 0xffffffff;
}

/** Write the PNG fixture into a temp file and return its path. */
export function writePngFixture() {
  const p = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-logo-')), 'logo.png');
  fs.writeFileSync(p, pngFixture());
  return p;
}
