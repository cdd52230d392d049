/**
 * A real browser for the report and /ui tests: Debian's headless Chromium driven by
 * playwright-core (which never downloads a browser of its own), with a fresh profile and
 * everything that would phone home turned off. Outside CI a missing Chromium skips the
 * browser tests with a hint; under CI=true they fail. Each page is watched for console
 * errors and for any request that would leave it; screenshots go to test-artifacts/.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { inCI } from './ci.js';

export const CHROMIUM = process.env.REAPER_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);
/** Whether the browser tests run: always under CI (where a missing browser then fails them). */
export const runBrowserTests = haveChromium || inCI;

if (!runBrowserTests) console.warn(`Chromium not found at ${CHROMIUM}: skipping the browser tests (Debian: apt-get install chromium; or set REAPER_TEST_CHROMIUM)`);

export const ARTIFACTS = path.resolve(__dirname, '../../../test-artifacts');

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  if (!haveChromium) throw new Error(`Chromium is required for the browser tests and is not at ${CHROMIUM} (apt-get install chromium)`);
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(tmpdir(), 'reaper-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface WatchedPage {
  page: Page;
  /** Console errors and uncaught exceptions (a CSP violation is one). */
  errors: string[];
  /** Every request the page made, in order. */
  requests: string[];
  /** Requests to anywhere but the allowed origin: refused, and listed here. */
  offsite: string[];
}

/**
 * A new page that records console errors and requests. Requests whose URL does not start
 * with `allowed` (the file itself, or the daemon's origin) are aborted and recorded.
 */
export async function watchedPage(browser: Browser, allowed: (url: string) => boolean): Promise<WatchedPage> {
  const page = await browser.context.newPage();
  const watched: WatchedPage = { page, errors: [], requests: [], offsite: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') watched.errors.push(m.text());
  });
  page.on('pageerror', (e) => watched.errors.push(`uncaught: ${e.message}`));
  page.on('request', (r) => watched.requests.push(r.url()));
  await page.route('**/*', async (route) => {
    const url = route.request().url();
    if (allowed(url)) await route.continue();
    else {
      watched.offsite.push(url);
      await route.abort('blockedbyclient');
    }
  });
  return watched;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const axeSource = (): string => readFileSync(createRequire(__filename).resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's violations of impact serious or critical, as `rule: target…` lines (evaluated over DevTools, so the page's CSP does not apply). */
export async function seriousA11yViolations(page: Page): Promise<string[]> {
  await page.evaluate(axeSource());
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(ctx: unknown, o: unknown): Promise<{ violations: { id: string; impact: string | null; nodes: { target: unknown[] }[] }[] }> } }).axe;
    const result = await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => JSON.stringify(n.target)) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.targets.join(', ')}`);
}
