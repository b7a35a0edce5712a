// The harness itself: the server starts and answers, Chromium starts, and the watchers that
// every console test relies on do catch what they are meant to catch (so a green flow means
// something).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, adminApi, launchBrowser, openSession, pngFixture } from './harness.mjs';

let server, chrome;
before(async () => {
  server = await startServer({ name: 'harness' });
  chrome = await launchBrowser();
});
after(async () => {
  await chrome?.close();
  await server?.stop();
});

test('the server is ready and the bootstrap admin gets an admin token', async () => {
  const api = adminApi(server);
  const cols = await api.ok('GET', '/collections');
  assert.ok(cols.items.some((c) => c.builtin), 'the built-in admin collection is listed');
});

test('the PNG fixture is a valid PNG', () => {
  const png = pngFixture();
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.subarray(12, 16).toString('ascii'), 'IHDR');
});

test('the watchers catch an unexpected 404, a console error and a page error', async () => {
  const s = await openSession(chrome.browser, server, 'harness');
  try {
    await s.page.goto(`${server.adminUrl}/no-such-page-${Date.now()}`);
    await s.page.evaluate(() => console.error('deliberate'));
    await s.page.evaluate(() => setTimeout(() => { throw new Error('deliberate throw'); }, 0));
    await s.page.waitForTimeout(200);
    assert.ok(s.failures.some((f) => f.startsWith('HTTP 404')), s.failures.join('\n'));
    assert.ok(s.failures.some((f) => f.includes('console error: deliberate')), s.failures.join('\n'));
    assert.ok(s.failures.some((f) => f.includes('pageerror: deliberate throw')), s.failures.join('\n'));
    // An expected status is not a failure.
    s.failures.length = 0;
    s.expectStatus(404, '/also-missing');
    await s.page.goto(`${server.adminUrl}/also-missing`);
    assert.deepEqual(s.failures, []);
  } finally {
    await s.close();
  }
});

test('the watchers catch a CSP violation on a console page', async () => {
  const s = await openSession(chrome.browser, server, 'harness-csp');
  try {
    await s.page.goto(`${server.adminUrl}/console/sign-in`);
    await s.page.evaluate(() => {
      const el = document.createElement('script');
      el.textContent = 'window.__inlineRan = true;';
      document.body.append(el);
    });
    await s.page.waitForTimeout(200);
    assert.equal(await s.page.evaluate(() => window.__inlineRan ?? false), false, 'the CSP let an inline script run');
    assert.ok(s.failures.some((f) => /CSP violation: script-src/.test(f)), s.failures.join('\n'));
  } finally {
    await s.close();
  }
});
