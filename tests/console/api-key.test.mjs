// Flow 2, in Chromium: a `token` access profile. Its API key is shown once (copied with Copy,
// gone after a reload); a refresh with a grace period shows the new key once; the old key
// (within the grace period) and the new one both introspect active with the collection's
// introspection credentials, copied from the collection's one-time panel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, adminApi, launchBrowser, openSession, introspect, assertLogClean,
} from './harness.mjs';
import {
  NAMES, signIn, nav, fill, submit, action, clickAndSettle, selectByText, copyAll, pick, ID_RE,
  SECRET_RE, reloadAsGet, idOnPage, openProfile,
} from './console.mjs';

let server, chrome;
before(async () => {
  server = await startServer({ name: 'api-key' });
  chrome = await launchBrowser();
});
after(async () => {
  await chrome?.close();
  await server?.stop();
});

/** Fill a grace-period field, whatever its unit: about ten minutes. */
async function fillGrace(page) {
  const field = page.getByLabel(NAMES.grace).first();
  const tag = await field.evaluate((el) => el.tagName);
  if (tag === 'SELECT') {
    await selectByText(field, /minute|hour|day/i);
    return;
  }
  const label = await field.evaluate((el) => (el.labels?.[0]?.textContent ?? '') + (el.getAttribute('placeholder') ?? ''));
  const value = /hour/i.test(label) ? '1' : /minute/i.test(label) ? '10' : '600';
  await field.fill(value);
}

test('a token profile shows its API key once; a refresh with grace keeps the old key working beside the new', async () => {
  const s = await openSession(chrome.browser, server, 'api-key', { clipboard: true });
  const { page } = s;
  const api = adminApi(server);
  try {
    // Setup that is not the flow under test: the client.
    const client = await api.ok('POST', '/clients', { name: 'Beta Logistics' });

    await signIn(s, server.adminId, server.adminSecret);

    // The collection, in the console: its one-time panel gives the introspection credentials.
    await nav(s, 'collections');
    await clickAndSettle(page, action(page, NAMES.newCollection));
    await s.checkpoint('collection-new');
    await fill(page, NAMES.name, 'Tracking API');
    await fill(page, NAMES.audience, 'https://tracking.example.test');
    await fill(page, NAMES.scopes, 'tracking:read');
    await submit(s, 'collection-created');
    const colCopied = await copyAll(page);
    const rsId = colCopied.find((c) => ID_RE.introspection.test(c.text))?.text ?? (await idOnPage(page, 'grs_'));
    const rsSecret = pick(colCopied, SECRET_RE, 'the introspection secret');
    s.secret('introspection secret', rsSecret);
    const colHtml = await reloadAsGet(s, 'collection-reloaded');
    assert.ok(!colHtml.includes(rsSecret), 'the introspection secret is still there after a reload');

    // The token profile.
    await nav(s, 'clients');
    await clickAndSettle(page, page.getByRole('link', { name: 'Beta Logistics' }).first());
    await s.checkpoint('client');
    await clickAndSettle(page, action(page, NAMES.newProfile));
    await s.checkpoint('profile-new');
    await fill(page, NAMES.name, 'Beta tracking key');
    await page.getByRole('checkbox', { name: /Tracking API/ }).check();
    await selectByText(page.getByLabel(NAMES.authMethod), /token|api key/i);
    await submit(s, 'profile-created');
    const firstKey = pick(await copyAll(page), ID_RE.apiKey, 'the API key');
    s.secret('first API key', firstKey);
    const profile = (await api.ok('GET', `/clients/${client.id}/access-profiles`)).items[0];
    assert.equal(profile.auth_type, 'token');

    // Shown once: a reload does not show it again.
    let html = await reloadAsGet(s, 'profile-reloaded');
    assert.ok(!html.includes(firstKey), 'the API key is still on the page after a reload');
    await s.assertStorageClean();
    await openProfile(s, 'Beta Logistics', 'Beta tracking key');

    // Refresh with a grace period.
    const grace = page.getByLabel(NAMES.grace);
    if ((await grace.count()) && (await grace.first().isVisible())) {
      await fillGrace(page);
      await clickAndSettle(page, page.getByRole('button', { name: NAMES.refresh }).first());
    } else {
      await clickAndSettle(page, action(page, NAMES.refresh));
      await s.checkpoint('key-refresh');
      await fillGrace(page);
      await clickAndSettle(page, page.getByRole('button', { name: /refresh|rotate|confirm/i }).first());
    }
    await s.checkpoint('key-refreshed');
    const newKey = pick(await copyAll(page), ID_RE.apiKey, 'the new API key');
    assert.notEqual(newKey, firstKey, 'the refresh showed a new key');
    assert.match(await page.locator('main').first().innerText(), /previous .*(until|expires)/i,
      'the refresh panel says until when the previous key keeps working');
    s.secret('new API key', newKey);
    html = await reloadAsGet(s, 'key-refreshed-reloaded');
    assert.ok(!html.includes(newKey), 'the new API key is still on the page after a reload');

    // Both keys introspect active for the collection (the old one within its grace).
    for (const [what, key] of [['old key', firstKey], ['new key', newKey]]) {
      const r = await introspect(server, rsId, rsSecret, key);
      assert.equal(r.status, 200, `${what}: ${r.text}`);
      assert.equal(r.body.active, true, `${what} is not active: ${r.text}`);
      assert.equal(r.body.token_type, 'api_key');
      assert.equal(r.body.profile_id, profile.id);
    }

    // Flow 5.
    await s.assertStorageClean();
    await s.assertVisitedPagesClean();
    assertLogClean(server, [...s.secrets, { name: 'bootstrap secret', value: server.adminSecret }]);
    s.assertEveryPageShot();
    s.assertNoFailures('at the end');
  } finally {
    await s.close();
  }
});
