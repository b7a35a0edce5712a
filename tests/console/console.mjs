// How a person drives the console: by the names a person reads (labels, roles, link and
// button text), never by CSS classes or ids. Every name used by the flows is here, in one
// place, matched loosely (case-insensitive) so wording may vary but the meaning may not.
import assert from 'node:assert/strict';

export const NAMES = {
  clientId: /client id/i,
  clientSecret: /client secret|^secret$/i,
  signIn: /sign in|log in/i,
  nav: {
    projects: /^projects$/i,
    collections: /^(api )?collections$/i,
    clients: /^(api )?clients$/i,
    policies: /^(access )?policies$/i,
  },
  newProject: /new project|create project|add project/i,
  newCollection: /new collection|create collection|add collection/i,
  newClient: /new client|create client|add client/i,
  newProfile: /new (access )?profile|create (new )?access profile|add (access )?profile/i,
  done: /^done$/i,
  newPolicy: /new policy|create policy|add policy/i,
  submit: /^(create|save|add)\b/i,
  name: /^(name|profile name|client name|project name|collection name|policy name)\b/i,
  description: /^description/i,
  audience: /^audience/i,
  scopes: /^scope (1 )?name|^scopes?$/i,
  logo: /client logo|^logo/i,
  project: /^project\b/i,
  authMethod: /authentication method|auth(entication)? type/i,
  policy: /^policy\b/i,
  copy: /copy/i,
  active: /^active\b|status/i,
  deactivate: /deactivate|disable/i,
  refresh: /refresh|rotate/i,
  grace: /grace/i,
  rateRequests: /rate limit|requests/i,
  ratePer: /per\b|period|window/i,
};

/** A link or a button with this accessible name (whichever the console chose). */
export function action(page, name) {
  return page.getByRole('link', { name }).or(page.getByRole('button', { name })).first();
}

/**
 * Click something that leads to another page and wait until that page is there: a full
 * navigation (a new document), or htmx's boosted swap (its htmx:afterSettle event).
 */
export async function clickAndSettle(page, locator) {
  await page.evaluate(() => {
    window.__gatehouseSettled = false;
    document.addEventListener('htmx:afterSettle', () => { window.__gatehouseSettled = true; }, { once: true });
  });
  await locator.click();
  // A new document has no flag at all; the old one gets it from htmx.
  await page.waitForFunction(() => window.__gatehouseSettled !== false, null, { polling: 50 });
  await page.waitForLoadState('load');
  await page.waitForLoadState('networkidle').catch(() => {});
}

/** Choose the <option> whose visible text matches `re` (labels may vary in wording). */
export async function selectByText(select, re) {
  const options = await select.locator('option').evaluateAll((os) => os.map((o) => ({ text: o.textContent.trim(), value: o.value })));
  const hit = options.find((o) => re.test(o.text));
  assert.ok(hit, `no option matching ${re} in ${JSON.stringify(options)}`);
  await select.selectOption(hit.value);
}

/** Is this locator the focused element? */
async function focused(locator) {
  return locator.evaluate((el) => el === document.activeElement).catch(() => false);
}

/**
 * Sign in with the keyboard only: open /console, Tab to the client id field, type it, Tab to
 * the secret field, type it, press Enter.
 */
export async function signIn(s, id, secret) {
  const { page } = s;
  s.secret(`secret of ${id}`, secret); // searched for in every page and in the log
  await page.goto('/console');
  await s.checkpoint('sign-in');
  const idField = page.getByLabel(NAMES.clientId);
  const secretField = page.getByLabel(NAMES.clientSecret);
  await idField.waitFor();
  let tabs = 0;
  while (!(await focused(idField))) {
    assert.ok(tabs++ < 30, 'Tab never reached the client id field');
    await page.keyboard.press('Tab');
  }
  await page.keyboard.type(id);
  await page.keyboard.press('Tab');
  assert.ok(await focused(secretField), 'Tab from the client id field does not reach the secret field');
  await page.keyboard.type(secret);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST'),
    page.keyboard.press('Enter'),
  ]);
  await page.waitForLoadState('load');
  assert.ok(answer.status() < 400,
    `sign-in answered ${answer.status()}: ${(await page.locator('body').innerText()).slice(0, 300)}`);
  await mainNav(page).getByRole('link', { name: NAMES.nav.clients }).first().waitFor();
  await page.waitForLoadState('load');
  assert.ok(!(await page.content()).includes(secret), 'the admin secret is on the page after sign-in');
}

/** The console's main navigation (the first navigation landmark; breadcrumbs come later). */
export function mainNav(page) {
  return page.getByRole('navigation').first();
}

/** Go to a section through the console's navigation. */
export async function nav(s, which) {
  const link = mainNav(s.page).getByRole('link', { name: NAMES.nav[which] }).first();
  await clickAndSettle(s.page, link);
  await s.checkpoint(which);
}

/** Fill a field found by its label. */
export async function fill(page, label, value) {
  const field = page.getByLabel(label).first();
  await field.click();
  await field.fill(value);
}

/** Submit the form on the page with its create/save button. */
export async function submit(s, name, label = NAMES.submit) {
  await clickAndSettle(s.page, s.page.getByRole('button', { name: label }).first());
  await s.checkpoint(name);
}

/** Text of the clipboard (the context must have clipboard-read). */
export async function clipboard(page) {
  return page.evaluate(() => navigator.clipboard.readText());
}

/**
 * Click every Copy button on the page and return what each put on the clipboard, keyed by
 * the button's accessible name.
 */
export async function copyAll(page) {
  const buttons = page.getByRole('button', { name: NAMES.copy });
  const n = await buttons.count();
  assert.ok(n > 0, 'no Copy button on the one-time panel');
  const out = [];
  for (let i = 0; i < n; i++) {
    const b = buttons.nth(i);
    const name = (await b.getAttribute('aria-label')) || (await b.innerText());
    await page.evaluate(() => navigator.clipboard.writeText(''));
    await b.click();
    let text = '';
    for (let t = 0; t < 20 && !text; t++) {
      text = await clipboard(page);
      if (!text) await page.waitForTimeout(50);
    }
    out.push({ name: name.trim(), text });
  }
  return out;
}

/** The value a one-time panel's Copy buttons put on the clipboard that matches `re`. */
export function pick(copied, re, what) {
  const hit = copied.find((c) => re.test(c.text));
  assert.ok(hit, `no Copy button copied ${what}: ${JSON.stringify(copied.map((c) => c.name))}`);
  return hit.text;
}

export const ID_RE = {
  oauthClient: /^gco_[A-Za-z0-9]+$/,
  introspection: /^grs_[A-Za-z0-9]+$/,
  apiKey: /^ghk_[A-Za-z0-9]+$/,
};

/** A secret that is none of the public ids (a client or introspection secret). */
export const SECRET_RE = /^(?!gco_|grs_|ghk_|cli_|prf_|col_|prj_|pol_|key_)[A-Za-z0-9_\-.~+/=]{20,}$/;

/** The first public id of this kind written on the page. */
export async function idOnPage(page, prefix) {
  const text = await page.locator('body').innerText();
  const m = new RegExp(`\\b${prefix}[A-Za-z0-9]+`).exec(text);
  assert.ok(m, `no ${prefix}… id on ${page.url()}`);
  return m[0];
}

/**
 * Reload the page with GET (never re-POST a form) and return its HTML; then go back to the
 * console's address, as a person would after looking.
 */
export async function reloadAsGet(s, name) {
  const res = await s.page.reload();
  assert.equal(res?.request().method(), 'GET', 'reloading the one-time panel re-sent a form');
  const html = await s.page.content();
  await s.checkpoint(name);
  await s.page.goto('/console');
  return html;
}

/**
 * What the usage chart of tokens issued says, on this page or, when there is none, on the page
 * the "Usage" link leads to: the chart's accessible name (an SVG with role img) and the text
 * of its figure (caption, SVG text and titles).
 */
export async function usageChartText(s) {
  const { page } = s;
  const chart = () => page.locator('figure')
    .filter({ has: page.locator('svg') })
    .filter({ hasText: /tokens? issued|tokens/i });
  if (!(await chart().count())) {
    await clickAndSettle(page, action(page, /usage/i));
    await s.checkpoint('usage');
  }
  const fig = chart().first();
  await fig.waitFor();
  return fig.evaluate((el) => {
    const svg = el.querySelector('svg');
    return [el.innerText, el.textContent, svg?.getAttribute('aria-label') ?? ''].join('\n');
  });
}

/** Fill the project field of the client form: a select of projects, or a text field. */
export async function chooseProject(page, name) {
  const field = page.getByLabel(NAMES.project).first();
  if ((await field.evaluate((el) => el.tagName)) === 'SELECT') {
    await selectByText(field, new RegExp(name));
  } else {
    await field.fill(name);
  }
}

/** Open a client's page, and one of its profiles' pages, through the navigation. */
export async function openClient(s, clientName) {
  await nav(s, 'clients');
  await clickAndSettle(s.page, s.page.getByRole('link', { name: clientName }).first());
  await s.checkpoint('client');
}
export async function openProfile(s, clientName, profileName) {
  await openClient(s, clientName);
  await clickAndSettle(s.page, s.page.getByRole('link', { name: profileName }).first());
  await s.checkpoint('profile');
}

/** Create a project on the Projects page; returns its id (read from its link in the list). */
export async function createProject(s, name, description = '') {
  const { page } = s;
  await nav(s, 'projects');
  await clickAndSettle(page, action(page, NAMES.newProject));
  await s.checkpoint('project-new');
  await fill(page, NAMES.name, name);
  if (description) await fill(page, NAMES.description, description);
  await submit(s, 'project-created');
  await nav(s, 'projects');
  const href = await page.locator('main').getByRole('link', { name, exact: true }).first().getAttribute('href');
  const m = /prj_[A-Za-z0-9]+/.exec(href ?? '');
  assert.ok(m, `the project ${name} is listed with a link naming its id (${href})`);
  return m[0];
}
