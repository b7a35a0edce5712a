// Flow 1, by clicking and typing in Chromium: sign in (keyboard only) as the bootstrap admin;
// create a project, a collection (audience, one scope), a client with a logo in that project
// and an oauth2 access profile granting the collection; copy the one-time secret with its Copy
// button; reload (the secret is gone); get a token with it over HTTP; deactivate the client
// with the toggle (the token endpoint then says invalid_client); the usage chart shows the
// tokens issued. Flow 5 (no secret left anywhere) and flow 6 (360 px) ride along.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, adminApi, launchBrowser, openSession, oauthToken, writePngFixture, assertLogClean,
} from './harness.mjs';
import {
  NAMES, signIn, nav, fill, submit, action, clickAndSettle, selectByText, copyAll, pick, ID_RE,
  SECRET_RE, reloadAsGet, idOnPage, usageChartText, chooseProject, createProject,
} from './console.mjs';

let server, chrome;
before(async () => {
  server = await startServer({ name: 'oauth2-client' });
  chrome = await launchBrowser();
});
after(async () => {
  await chrome?.close();
  await server?.stop();
});

test('an admin creates a project, collection, client with logo and oauth2 profile; the secret works once and the toggle shuts it off', async () => {
  const s = await openSession(chrome.browser, server, 'oauth2-client', { clipboard: true });
  const { page } = s;
  const api = adminApi(server);
  try {
    await signIn(s, server.adminId, server.adminSecret);
    await s.checkpoint('home');

    // A project.
    const projectId = await createProject(s, 'Partners', 'External partner integrations');

    // A collection with an audience and one scope.
    await nav(s, 'collections');
    await clickAndSettle(page, action(page, NAMES.newCollection));
    await s.checkpoint('collection-new');
    await fill(page, NAMES.name, 'Orders API');
    await fill(page, NAMES.audience, 'https://orders.example.test');
    await fill(page, NAMES.scopes, 'orders:read');
    await submit(s, 'collection-created');
    const cols = await api.ok('GET', '/collections');
    const col = cols.items.find((c) => c.name === 'Orders API');
    assert.ok(col, 'the collection was created');
    assert.equal(col.audience, 'https://orders.example.test');
    assert.deepEqual(col.scopes.map((x) => x.name), ['orders:read']);
    // Its one-time panel shows the introspection secret: recorded for the secret search.
    const colCopied = await copyAll(page);
    s.secret('introspection secret', pick(colCopied, SECRET_RE, 'the introspection secret'));

    // A client with a logo, in the project.
    await nav(s, 'clients');
    await clickAndSettle(page, action(page, NAMES.newClient));
    await s.checkpoint('client-new');
    await fill(page, NAMES.name, 'ACME Company');
    await fill(page, NAMES.description, 'Orders from ACME');
    await page.getByLabel(NAMES.logo).setInputFiles(writePngFixture());
    await chooseProject(page, 'Partners');
    await submit(s, 'client-created');
    const clients = await api.ok('GET', '/clients');
    const client = clients.items.find((c) => c.name === 'ACME Company');
    assert.ok(client, 'the client was created');
    assert.equal(client.has_logo, true, 'the logo was uploaded');
    assert.equal(client.project, projectId, 'the client is in the project');
    // The logo is shown on the client's page (an <img> of it that loaded).
    if (!page.url().includes(client.id)) {
      await clickAndSettle(page, page.getByRole('link', { name: 'ACME Company' }).first());
      await s.checkpoint('client');
    }
    const logo = page.locator(`main img[src*="${client.id}"]`).first();
    await logo.waitFor();
    assert.ok(await logo.evaluate((img) => img.complete && img.naturalWidth === 16), 'the logo image loads');

    // An oauth2 access profile granting the collection.
    await clickAndSettle(page, action(page, NAMES.newProfile));
    await s.checkpoint('profile-new');
    await fill(page, NAMES.name, 'ACME orders');
    await page.getByRole('checkbox', { name: /Orders API/ }).check();
    await selectByText(page.getByLabel(NAMES.authMethod), /oauth/i);
    await submit(s, 'profile-created');

    // The one-time panel: the client id is shown; the secret is copied with Copy.
    const copied = await copyAll(page);
    const secret = pick(copied, SECRET_RE, 'the client secret');
    s.secret('oauth client secret', secret);
    const oauthClientId = copied.find((c) => ID_RE.oauthClient.test(c.text))?.text
      ?? (await idOnPage(page, 'gco_'));
    const profiles = await api.ok('GET', `/clients/${client.id}/access-profiles`);
    const profile = profiles.items.find((p) => p.name === 'ACME orders');
    assert.ok(profile, 'the profile was created');
    assert.equal(profile.oauth_client_id, oauthClientId, 'the console shows the profile\'s client id');
    assert.deepEqual(profile.collections, [col.id]);
    assert.equal(profile.auth_type, 'oauth2');

    // Reload: the secret is gone, and nothing keeps it in web storage.
    const html = await reloadAsGet(s, 'profile-reloaded');
    assert.ok(!html.includes(secret), 'the secret is still on the page after a reload');
    await s.assertStorageClean();

    // The copied secret works at the token endpoint (public listener), three times.
    for (let i = 0; i < 3; i++) {
      const r = await oauthToken(server, oauthClientId, secret);
      assert.equal(r.status, 200, `token ${i + 1}: ${r.text}`);
    }

    // Deactivate the client with the console's toggle.
    await nav(s, 'clients');
    await clickAndSettle(page, page.getByRole('link', { name: 'ACME Company' }).first());
    await s.checkpoint('client');
    const toggle = page.getByRole('switch', { name: NAMES.active })
      .or(page.getByRole('checkbox', { name: NAMES.active }))
      .or(page.getByRole('button', { name: NAMES.deactivate }))
      .first();
    await clickAndSettle(page, toggle);
    // A toggle inside a form may need its Save.
    const save = page.getByRole('button', { name: /^save/i });
    if ((await api.ok('GET', `/clients/${client.id}`)).active && await save.count()) {
      await clickAndSettle(page, save.first());
    }
    await s.checkpoint('client-deactivated');
    assert.equal((await api.ok('GET', `/clients/${client.id}`)).active, false, 'the toggle deactivated the client');
    const refused = await oauthToken(server, oauthClientId, secret);
    assert.equal(refused.status, 401, refused.text);
    assert.equal(refused.body?.error, 'invalid_client');

    // The usage chart (the profile's or the client's) shows the 3 tokens issued.
    const chartText = await usageChartText(s);
    assert.match(chartText, /\b3\b/, `the usage chart does not show the 3 tokens issued: ${chartText}`);

    // Flow 5: no secret in web storage, in any page visited after its panel, or in the log.
    await s.assertStorageClean();
    const pages = await s.assertVisitedPagesClean();
    assert.ok(pages >= 3, `only ${pages} pages were searched for secrets`);
    assertLogClean(server, [...s.secrets, { name: 'bootstrap secret', value: server.adminSecret }]);
    s.assertEveryPageShot();
    s.assertNoFailures('at the end');
  } finally {
    await s.close();
  }
});
