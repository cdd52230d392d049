/**
 * The daemon's /ui in a real browser (Debian's Chromium over playwright-core), over the
 * demo sandbox after a real audit and an executed reap: sign-in refuses a wrong token and
 * sets an HttpOnly, SameSite=Strict cookie for the right one (the token in no URL and no
 * log line); the page loads with no console error and no request off its origin, under a
 * strict CSP; it shows leases by holder, leases about to expire, renewal numbers and the
 * reap run with its outcomes; it refreshes without a reload; a renewal the store refuses (the
 * daemon's lease released behind its back) shows as a failure and a lost lease; axe-core finds no serious
 * violation. Cross-site forms and a flood of wrong tokens are refused (no browser needed).
 * Needs `npm run build` (the audit and reap run through the CLI).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo } from '../../src/cli/commands/demo.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { loadManifest } from '../../src/manifest/load.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import { launchBrowser, runBrowserTests, screenshot, seriousA11yViolations, watchedPage, type Browser } from './support/browser.js';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

const TOKEN = 'ui-test-token-0123456789abcdef';

let dir: string;
let store: SqliteStateStore;
let daemon: Daemon;
let reapRunId: string;
let marked: number;
const logLines: string[] = [];

beforeAll(async () => {
  dir = path.join(tmp('reaper-ui-'), 'demo');
  await buildDemo(dir);
  expect(reaper(['audit', '-c', 'reaper.yaml', '--output', 'json'], { cwd: dir }).code).toBe(0);
  const reap = reaper(['reap', '-c', 'reaper.yaml', '--execute', '--output', 'json'], { cwd: dir });
  expect(reap.code).toBe(0);
  ({ runId: reapRunId, outcomes: { marked } } = JSON.parse(reap.stdout) as { runId: string; outcomes: { marked: number } });
  const manifest = await loadManifest(path.join(dir, 'reaper.yaml'), {});
  store = await SqliteStateStore.open(path.join(dir, '.reaper', 'state.db'));
  for (let i = 0; i < 3; i++) await store.acquireLease({ key: `job:batch-${i}`, holder: 'batch-runner', ttlMs: 600_000 });
  daemon = await startDaemon({
    store,
    holder: 'web-1',
    leases: ['session:web-1'],
    ttlMs: 30_000,
    // A heartbeat each second, so a renewal refused behind the daemon's back shows within the test.
    intervalMs: 1_000,
    listen: { host: '127.0.0.1', port: 0 },
    token: TOKEN,
    log: { write: (line: string) => logLines.push(line) },
    logLevel: 'debug',
    stopTimeoutMs: 2_000,
    ui: { store, resources: manifest.resources, refreshSeconds: 1 },
  });
});

afterAll(async () => {
  await daemon?.stop();
  await store?.close();
  removeTempDirs();
});

describe('/ui without a browser', () => {
  it('refuses a sign-in form posted from another site, and sends no cookie', async () => {
    const res = await fetch(`${daemon.url}/ui/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://attacker.invalid' },
      body: `token=${TOKEN}`,
      redirect: 'manual',
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('set-cookie')).toBeNull();
  });

  it('answers data only to a session, and the page script and style to anyone', async () => {
    const data = await fetch(`${daemon.url}/ui/data.json`);
    expect(data.status).toBe(401);
    expect(await data.json()).toEqual({ error: 'signed out', signIn: '/ui/sign-in' });
    const page = await fetch(`${daemon.url}/ui`, { redirect: 'manual', headers: { authorization: `Bearer ${TOKEN}` } });
    expect([page.status, page.headers.get('location')]).toEqual([303, '/ui/sign-in']);
    const script = await fetch(`${daemon.url}/ui/report.js`);
    expect([script.status, script.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
  });
});

describe.skipIf(!runBrowserTests)('/ui in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  const sameOrigin = (url: string) => url.startsWith(`${daemon.url}/`);

  async function signIn() {
    await browser.context.clearCookies();
    const watched = await watchedPage(browser, sameOrigin);
    const { page } = watched;
    await page.goto(`${daemon.url}/ui`);
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${daemon.url}/ui`);
    await page.waitForSelector('#findings tbody tr');
    return watched;
  }

  it('refuses a wrong token, and signs in with the right one into an HttpOnly, SameSite=Strict session', async () => {
    const { page, errors, requests, offsite } = await watchedPage(browser, sameOrigin);
    await page.goto(`${daemon.url}/ui`);
    expect(page.url()).toBe(`${daemon.url}/ui/sign-in`);
    await screenshot(page, 'ui-sign-in');
    expect(await seriousA11yViolations(page)).toEqual([]);
    await page.getByLabel('API token').fill('not-the-token-at-all');
    const [refused] = await Promise.all([page.waitForResponse(`${daemon.url}/ui/sign-in`), page.getByRole('button', { name: 'Sign in' }).click()]);
    expect(refused.status()).toBe(401);
    expect(await page.getByRole('alert').textContent()).toBe('That is not the API token.');
    expect(await page.context().cookies(daemon.url)).toEqual([]);

    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${daemon.url}/ui`);
    const cookies = await page.context().cookies(`${daemon.url}/ui`);
    expect(cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path }))).toEqual([{ name: 'reaper_ui', httpOnly: true, sameSite: 'Strict', path: '/ui' }]);
    expect(cookies[0]!.value).not.toContain(TOKEN);
    // The script cannot read the session, and the token went nowhere but the form's body.
    expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe('');
    expect(requests.filter((u) => u.includes(TOKEN))).toEqual([]);
    expect(logLines.filter((l) => l.includes(TOKEN))).toEqual([]);
    expect(logLines.some((l) => l.includes('"event":"ui-sign-in-refused"'))).toBe(true);
    expect(errors.filter((e) => !/401 \(Unauthorized\)/.test(e))).toEqual([]);
    expect(offsite).toEqual([]);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${daemon.url}/ui/sign-in`);
    expect(await page.context().cookies(`${daemon.url}/ui`)).toEqual([]);
    await page.close();
  });

  it('shows leases by holder, expiring leases, renewals and the reap run, with no console error, no request off the origin, a strict CSP', async () => {
    const { page, errors, offsite } = await signIn();
    const csp = (await page.request.get(`${daemon.url}/ui/sign-in`)).headers()['content-security-policy'];
    expect(csp).toBe("default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'");
    expect(await page.locator('script:not([src])').count()).toBe(0);
    expect(await page.locator('[style]').count()).toBe(0);

    const holders = Object.fromEntries(await page.locator('#holders g.bar').evaluateAll((gs) => gs.map((g) => [(g as unknown as { dataset: { label: string } }).dataset.label, Number((g as unknown as { dataset: { value: string } }).dataset.value)])));
    const expected: Record<string, number> = {};
    for (const l of await store.listLeases()) expected[l.holder] = (expected[l.holder] ?? 0) + 1;
    expect(holders).toEqual(expected);
    expect(holders).toMatchObject({ 'batch-runner': 3, 'web-1': 1 });
    expect(Number(await page.locator('.card[data-metric="renewalsFailed"]').getAttribute('data-value'))).toBe(0);
    const run = page.locator('#reap-runs tbody tr', { hasText: reapRunId });
    expect(await run.count()).toBe(1);
    expect((await run.locator('td').allTextContents()).slice(0, 4)).toEqual(['ok', 'execute', expect.stringMatching(/UTC$/), String(marked)]);
    // The report views: the newest audit's types, and the tombstones the reap marked.
    expect(await page.locator('table.types tbody tr').count()).toBe(2);
    expect(Number(await page.locator('#pending tbody tr', { hasText: 'scratch-uploads' }).locator('td').first().textContent())).toBeGreaterThan(0);
    await screenshot(page, 'ui');
    expect(await seriousA11yViolations(page)).toEqual([]);
    expect(errors).toEqual([]);
    expect(offsite).toEqual([]);
    await page.close();
  });

  it('refreshes without a reload: a lease about to expire and a new holder appear, the filters stay', async () => {
    const { page, errors } = await signIn();
    await page.evaluate(() => ((globalThis as unknown as { loadedOnce: number }).loadedOnce = 42));
    await page.getByLabel('Search').fill('bob');
    const before = await page.locator('#findings tbody tr').count();
    // Not renewed, a 9 s lease has under a third of its ttl left from 6 s on: "about to expire" until it does.
    await store.acquireLease({ key: 'session:short-lived', holder: 'late-holder', ttlMs: 9_000 });
    await page.locator('#holders g.bar[data-label="late-holder"]').waitFor({ timeout: 5_000 });
    await page.locator('#expiring tbody tr', { hasText: 'session:short-lived' }).waitFor({ timeout: 8_500 });
    expect(await page.evaluate(() => (globalThis as unknown as { loadedOnce?: number }).loadedOnce)).toBe(42);
    expect(await page.getByLabel('Search').inputValue()).toBe('bob');
    expect(await page.locator('#findings tbody tr').count()).toBe(before);
    expect(await page.locator('.live-state').textContent()).toMatch(/^Live: updated \d\d:\d\d:\d\d UTC/);
    await screenshot(page, 'ui-refreshed');
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows a renewal the store refused: the daemon's lease released behind its back is a failed renewal and a lost lease", async () => {
    const { page, errors } = await signIn();
    const value = (metric: string) => page.locator(`.card[data-metric="${metric}"]`).getAttribute('data-value');
    expect([await value('renewalsFailed'), await value('leasesLost')]).toEqual(['0', '0']);
    const session = daemon.leases().find((l) => l.key === 'session:web-1')!;
    await store.releaseLease(session.leaseId);
    // The next heartbeat's renewal is refused (released); the daemon counts it and takes the key again.
    await page.locator('.card.warn[data-metric="renewalsFailed"][data-value="1"]').waitFor({ timeout: 15_000 });
    expect(await value('leasesLost')).toBe('1');
    // The store saw the refusal too: its failure count over the window is no longer 0.
    expect(await value('failureRate')).toMatch(/^[1-9]\d* of \d+ /);
    await page.locator('.card[data-metric="held"][data-value="1 / 1"]').waitFor({ timeout: 15_000 });
    await screenshot(page, 'ui-renewal-failed');
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('/ui sign-in throttle', () => {
  it('answers 429 after ten wrong tokens in a minute, even to the right one', async () => {
    const post = (token: string) =>
      fetch(`${daemon.url}/ui/sign-in`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(token)}`, redirect: 'manual' });
    const codes: number[] = [];
    for (let i = 0; i < 11; i++) codes.push((await post(`wrong-${i}`)).status);
    expect(codes.filter((c) => c === 401).length).toBeGreaterThanOrEqual(9);
    expect(codes[codes.length - 1]).toBe(429);
    expect((await post(TOKEN)).status).toBe(429);
  });
});
