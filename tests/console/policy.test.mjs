// Flow 3, in Chromium: a policy (rate limit 1 request per minute) made in the console and
// attached to an oauth2 profile; two tokens → the second is 429 rate_limited, and the usage
// page shows the `rate_limited` denial.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, adminApi, launchBrowser, openSession, oauthToken, assertLogClean,
} from './harness.mjs';
import {
  NAMES, signIn, nav, fill, submit, action, clickAndSettle, selectByText, copyAll, pick, ID_RE,
  SECRET_RE, idOnPage, reloadAsGet, openProfile,
} from './console.mjs';

let server, chrome;
before(async () => {
  server = await startServer({ name: 'policy' });
  chrome = await launchBrowser();
});
after(async () => {
  await chrome?.close();
  await server?.stop();
});

test('a rate-limit policy made in the console refuses the second token with 429, and usage shows rate_limited', async () => {
  const s = await openSession(chrome.browser, server, 'policy', { clipboard: true });
  const { page } = s;
  const api = adminApi(server);
  try {
    // Setup that is not the flow under test: a collection and a client.
    const col = await api.ok('POST', '/collections', {
      name: 'Billing API', audience: 'https://billing.example.test', scopes: [{ name: 'billing:read' }],
    });
    s.secret('introspection secret (API setup)', col.introspection_client_secret);
    const client = await api.ok('POST', '/clients', { name: 'Gamma Retail' });

    await signIn(s, server.adminId, server.adminSecret);

    // The policy.
    await nav(s, 'policies');
    await clickAndSettle(page, action(page, NAMES.newPolicy));
    await s.checkpoint('policy-new');
    await fill(page, NAMES.name, 'One a minute');
    await fill(page, NAMES.rateRequests, '1');
    await selectByText(page.getByLabel(NAMES.ratePer).first(), /minute/i);
    await submit(s, 'policy-created');
    const policy = (await api.ok('GET', '/policies')).items.find((p) => p.name === 'One a minute');
    assert.ok(policy, 'the policy was created');
    assert.deepEqual(policy.rate_limit, { requests: 1, per: 'minute' });

    // An oauth2 profile with the policy attached.
    await nav(s, 'clients');
    await clickAndSettle(page, page.getByRole('link', { name: 'Gamma Retail' }).first());
    await s.checkpoint('client');
    await clickAndSettle(page, action(page, NAMES.newProfile));
    await s.checkpoint('profile-new');
    await fill(page, NAMES.name, 'Gamma billing');
    await page.getByRole('checkbox', { name: /Billing API/ }).check();
    await selectByText(page.getByLabel(NAMES.authMethod), /oauth/i);
    await selectByText(page.getByLabel(NAMES.policy), /One a minute/);
    await submit(s, 'profile-created');
    const copied = await copyAll(page);
    const secret = pick(copied, SECRET_RE, 'the client secret');
    s.secret('oauth client secret', secret);
    const oauthClientId = copied.find((c) => ID_RE.oauthClient.test(c.text))?.text
      ?? (await idOnPage(page, 'gco_'));
    const profile = (await api.ok('GET', `/clients/${client.id}/access-profiles`)).items[0];
    assert.equal(profile.policy_id, policy.id, 'the policy is attached to the profile');

    // Two tokens: the second is over the limit.
    const first = await oauthToken(server, oauthClientId, secret);
    assert.equal(first.status, 200, first.text);
    const second = await oauthToken(server, oauthClientId, secret);
    assert.equal(second.status, 429, second.text);
    assert.equal(second.body?.error, 'rate_limited');
    assert.ok(second.headers.get('retry-after'), 'a 429 carries Retry-After');

    // The usage page shows the denial.
    const html = await reloadAsGet(s, 'panel-reloaded');
    assert.ok(!html.includes(secret), 'the secret is still on the page after a reload');
    await openProfile(s, 'Gamma Retail', 'Gamma billing');
    const usageLink = action(page, /usage/i);
    if (await usageLink.count()) {
      await clickAndSettle(page, usageLink);
      await s.checkpoint('usage');
    }
    const text = await page.locator('main').first().evaluate((el) => `${el.innerText}\n${el.textContent}`);
    assert.match(text, /rate[_ ]limited/i, 'the usage page does not show the rate_limited denial');

    await s.assertStorageClean();
    await s.assertVisitedPagesClean();
    assertLogClean(server, [...s.secrets, { name: 'bootstrap secret', value: server.adminSecret }]);
    s.assertEveryPageShot();
    s.assertNoFailures('at the end');
  } finally {
    await s.close();
  }
});
