// Flow 4, in Chromium: an admin limited to project A (`admin_projects` on its admin profile,
// set through the admin JSON API, and the two projects made in the console by the unlimited
// admin: setup, not the flow under test) signs in to the console,
// sees A's clients and not B's, and B's client page answers 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, adminApi, launchBrowser, openSession, assertLogClean,
} from './harness.mjs';
import { signIn, nav, clickAndSettle, createProject } from './console.mjs';

let server, chrome;
before(async () => {
  server = await startServer({ name: 'project-scope' });
  chrome = await launchBrowser();
});
after(async () => {
  await chrome?.close();
  await server?.stop();
});

test('an admin limited to project A sees only A\'s clients, and B\'s client page is 404', async () => {
  const api = adminApi(server);

  // The unlimited admin makes the two projects in the console, and learns the console's
  // address of B's client page.
  const boss = await openSession(chrome.browser, server, 'project-scope-unlimited');
  let bUrl, projA, projB, clientA, clientB, adminProfile;
  try {
    await signIn(boss, server.adminId, server.adminSecret);
    projA = await createProject(boss, 'Project A');
    projB = await createProject(boss, 'Project B');
    // Setup that is not the flow under test, through the admin JSON API: a client in each
    // project, and an admin profile limited to A.
    clientA = await api.ok('POST', '/clients', { name: 'Alpha Shipping', project: projA });
    clientB = await api.ok('POST', '/clients', { name: 'Bravo Foods', project: projB });
    const adminCol = (await api.ok('GET', '/collections')).items.find((c) => c.builtin);
    assert.ok(adminCol, 'the built-in admin collection');
    const holder = await api.ok('POST', '/clients', { name: 'Project A operators', project: projA });
    adminProfile = await api.ok('POST', `/clients/${holder.id}/access-profiles`, {
      name: 'Project A admin',
      auth_type: 'oauth2',
      collections: [adminCol.id],
      admin_projects: [projA],
    });
    assert.deepEqual(adminProfile.admin_projects, [projA], 'admin_projects is stored on the admin profile');
    assert.ok(adminProfile.oauth_client_secret, 'the admin profile\'s secret');

    await nav(boss, 'clients');
    await clickAndSettle(boss.page, boss.page.getByRole('link', { name: 'Bravo Foods' }).first());
    await boss.checkpoint('client-b');
    bUrl = boss.page.url();
    assert.ok(bUrl.includes(clientB.id), `B's client page ${bUrl} names its id`);
    boss.assertEveryPageShot();
    boss.assertNoFailures();
  } finally {
    await boss.close();
  }
  const limitedSecret = adminProfile.oauth_client_secret;

  // The limited admin, in a context of its own.
  const s = await openSession(chrome.browser, server, 'project-scope-limited');
  s.secret('limited admin secret', limitedSecret);
  const { page } = s;
  try {
    await signIn(s, adminProfile.oauth_client_id, limitedSecret);
    await nav(s, 'clients');
    const list = page.locator('main').first();
    await list.getByRole('link', { name: 'Alpha Shipping' }).first().waitFor({ timeout: 5000 });
    assert.equal(await list.getByText('Bravo Foods').count(), 0, 'B\'s client is listed for an admin limited to A');
    assert.ok(!(await page.content()).includes(clientB.id), 'B\'s client id is on the list page');

    // B's client page by its address: 404.
    s.expectStatus(404, bUrl);
    const res = await page.goto(bUrl);
    assert.equal(res.status(), 404, `B's client page answered ${res.status()}`);
    assert.ok(!(await page.content()).includes('Bravo Foods'), 'the 404 page names B\'s client');
    await s.checkpoint('client-b-404');

    // A's own client opens.
    await page.goto(bUrl.replace(clientB.id, clientA.id));
    await s.checkpoint('client-a');
    assert.match(await page.locator('main').first().innerText(), /Alpha Shipping/);

    await s.assertStorageClean();
    await s.assertVisitedPagesClean();
    assertLogClean(server, [...s.secrets, { name: 'bootstrap secret', value: server.adminSecret }]);
    s.assertEveryPageShot();
    s.assertNoFailures('at the end');
  } finally {
    await s.close();
  }
});
