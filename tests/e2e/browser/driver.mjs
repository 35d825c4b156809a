// Drives Debian's chromium (playwright-core, no browser download) for
// tests/e2e/test_dashboard.py. One browser for the whole run; each request
// is a scenario in a fresh browser context (no cookies, its own viewport and
// colour scheme). Requests and answers are JSON lines on stdin/stdout:
//   -> {"id": 1, "scenario": "tour", "params": {...}}
//   <- {"id": 1, "ok": true, "data": {...}, "console": [...]}
// "console" lists every console error, uncaught exception and CSP
// violation the pages produced, except the browser's own "Failed to load
// resource" line for an API status the scenario expects (a 401 while signed
// out, a 402 when the balance is short): those are answers, not faults.
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T = 30000;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  chromiumSandbox: false,
  args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

async function withPage(p, fn) {
  const context = await browser.newContext({
    baseURL: p.base,
    viewport: p.mobile ? { width: 375, height: 740 } : { width: 1280, height: 860 },
    colorScheme: p.dark ? 'dark' : 'light',
    isMobile: !!p.mobile,
    hasTouch: !!p.mobile,
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  const problems = [];
  const expected = new Set(p.expect_status || [401]);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const s = /status of (\d{3})/.exec(m.text());
    if (s && /Failed to load resource/.test(m.text()) && expected.has(Number(s[1]))) return;
    problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  let loads = 0;
  page.on('load', () => { loads += 1; });
  try {
    const data = await fn(page, context, () => loads);
    return { data, console: problems };
  } finally {
    await context.close();
  }
}

async function shot(page, p, name) {
  if (!p.artifacts) return;
  mkdirSync(p.artifacts, { recursive: true });
  const variant = `${p.mobile ? 'mobile' : 'desktop'}-${p.dark ? 'dark' : 'light'}`;
  await page.screenshot({ path: join(p.artifacts, `${name}-${variant}.png`), fullPage: true });
}

// axe-core on the page as it is: serious and critical violations only.
async function axe(page) {
  await page.evaluate(AXE);
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
}

async function signedIn(page, p) {
  await page.goto(p.link);
  await page.getByTestId('balance').waitFor();
}

async function open(page, id, title) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: title, exact: true }).click();
  await page.waitForURL(`**/#/${id}`);
  await page.getByRole('heading', { level: 1, name: title, exact: true }).waitFor();
}

const PAGES = [
  ['overview', 'Overview'], ['jobs', 'Jobs'], ['members', 'Members'],
  ['organisation', 'Organisation'], ['webhooks', 'Webhooks'], ['api', 'API'],
];

const scenarios = {
  // The sign-in page, then Google sign-in through the OpenID stand-in.
  async signin_google(page, p) {
    await page.goto('/');
    await page.getByRole('heading', { name: 'Sign in to NexusAPI' }).waitFor();
    const violations = await axe(page);
    await shot(page, p, 'signin');
    await page.getByRole('button', { name: 'Sign in with Google' }).click();
    await page.getByTestId('balance').waitFor();
    return { violations, balance: await page.getByTestId('balance').innerText(), url: page.url() };
  },

  async signin_link(page, p) {
    await signedIn(page, p);
    return { balance: await page.getByTestId('balance').innerText(), url: page.url() };
  },

  // A link already spent: the sign-in page says so.
  async link_refused(page, p) {
    await page.goto(p.link);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    return { message: await alert.innerText(), url: page.url() };
  },

  // Every page, keyboard first: axe and a screenshot of each.
  async tour(page, p) {
    await signedIn(page, p);
    const out = {};
    for (const [id, title] of PAGES) {
      await open(page, id, title);
      if (id === 'overview') await page.getByTestId('balance').waitFor();
      await page.waitForLoadState('networkidle');
      out[id] = await axe(page);
      await shot(page, p, id);
    }
    // keyboard: on a fresh load the skip link comes first, and it leads
    // to the page's content
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'API' }).waitFor();
    await page.keyboard.press('Tab');
    const skip = await page.evaluate(() => document.activeElement.textContent);
    await page.keyboard.press('Enter');
    const after = await page.evaluate(() => document.activeElement.id);
    return { violations: out, first_tab: skip, skip_to: after };
  },

  async summarise(page, p, loads) {
    await signedIn(page, p);
    await open(page, 'jobs', 'Jobs');
    await page.getByLabel('Type').selectOption('summarise');
    await page.getByLabel('Text').fill(p.text);
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.getByRole('status').filter({ hasText: 'Submitted' }).waitFor();
    const job = page.locator('li.job').first();
    const seen = [];
    const deadline = Date.now() + 90000;
    while (Date.now() < deadline) {
      const s = await job.getAttribute('data-status');
      if (seen[seen.length - 1] !== s) seen.push(s);
      if (s === 'completed' || s === 'failed') break;
      await page.waitForTimeout(50);
    }
    await job.locator('summary').click();
    const summary = await job.locator('.summary').innerText().catch(() => null);
    await shot(page, p, 'jobs-completed');
    await open(page, 'overview', 'Overview');
    await page.getByTestId('balance').waitFor();
    const today = new Date().toISOString().slice(0, 10);
    const spent = await page.locator(`tr[data-date="${today}"] td`).nth(1).textContent();
    const canvas = await page.locator('.chart-box canvas').first().boundingBox();
    await shot(page, p, 'overview-after-job');
    return { seen, summary, spent, canvas, loads: loads(), balance: await page.getByTestId('balance').innerText() };
  },

  async member_view(page, p) {
    await signedIn(page, p);
    await open(page, 'members', 'Members');
    await page.locator('tbody tr').first().waitFor();
    const selects = await page.locator('main select').count();
    const removes = await page.getByRole('button', { name: /Remove/ }).count();
    const members = await page.locator('tbody tr').count();
    await shot(page, p, 'members-as-member');
    await open(page, 'organisation', 'Organisation');
    await page.getByLabel('Name').waitFor();
    const nameDisabled = await page.getByLabel('Name').isDisabled();
    const saves = await page.getByRole('button', { name: 'Save' }).count();
    await open(page, 'webhooks', 'Webhooks');
    const webhooks = await page.locator('main').innerText();
    return { selects, removes, members, nameDisabled, saves, webhooks };
  },

  async change_role(page, p) {
    await signedIn(page, p);
    await open(page, 'members', 'Members');
    const select = page.getByLabel(`Role of ${p.who}`);
    await select.selectOption(p.role);
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    await shot(page, p, 'members-as-admin');
    return { value: await select.inputValue() };
  },

  async payment(page, p) {
    await signedIn(page, p);
    await open(page, 'jobs', 'Jobs');
    await page.getByLabel('Text').fill('Short balance, one sentence.');
    await page.getByRole('button', { name: 'Submit' }).click();
    const alert = page.locator('form').getByRole('alert');
    await alert.waitFor();
    await shot(page, p, 'jobs-402');
    return { message: await alert.innerText() };
  },

  async logout(page, p, loads, context) {
    await signedIn(page, p);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to NexusAPI' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to NexusAPI' }).waitFor();
    const cookies = (await context.cookies()).filter((c) => c.name.endsWith('nexus_session') && c.value);
    return { cookies: cookies.length };
  },

  async webhooks_page(page, p) {
    await signedIn(page, p);
    await open(page, 'webhooks', 'Webhooks');
    await page.waitForLoadState('networkidle');
    return { text: await page.locator('main').innerText() };
  },

  async webhook_test(page, p) {
    await signedIn(page, p);
    await open(page, 'webhooks', 'Webhooks');
    await page.getByLabel('URL').fill(p.url);
    await page.getByLabel('Description').fill('receiver');
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    const secret = await page.getByTestId('webhook-secret').innerText();
    await page.getByRole('button', { name: 'Send test event' }).click();
    const row = page.locator('li[data-event-type="webhook.test"][data-status="succeeded"]');
    await row.waitFor({ timeout: 90000 });
    await shot(page, p, 'webhooks-delivered');
    return { secret };
  },

  async rate_limit(page, p) {
    await signedIn(page, p);
    await page.getByRole('heading', { name: 'Rate limit' }).waitFor();
    return { text: await page.locator('main').innerText() };
  },
};

const rl = createInterface({ input: process.stdin });
process.stdout.write(`${JSON.stringify({ ready: true, version: browser.version() })}\n`);
for await (const line of rl) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  let answer;
  try {
    const fn = scenarios[req.scenario];
    if (!fn) throw new Error(`no scenario "${req.scenario}"`);
    const r = await withPage(req.params, (page, context, loads) => fn(page, req.params, loads, context));
    answer = { id: req.id, ok: true, ...r };
  } catch (e) {
    answer = { id: req.id, ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await browser.close();
