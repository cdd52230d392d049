/**
 * The HTML report in a real browser (Debian's Chromium over playwright-core): a report of
 * a real audit of the demo sandbox — with a file whose name is markup — loads with no
 * console error and no request but the file itself, its charts carry the audit's numbers,
 * its findings table filters, sorts and pages, and axe-core finds no serious or critical
 * accessibility violation. Screenshots go to test-artifacts/. Needs `npm run build`.
 */
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo } from '../../src/cli/commands/demo.js';
import type { AuditDocument, FindingOutput } from '../../src/report/document.js';
import { launchBrowser, runBrowserTests, screenshot, seriousA11yViolations, watchedPage, type Browser, type WatchedPage } from './support/browser.js';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

const EVIL_OWNER = '"><img src=x onerror=alert(1)>';

describe.skipIf(!runBrowserTests)('the HTML report in Chromium', () => {
  let browser: Browser;
  let dir: string;
  let doc: AuditDocument;
  let findings: FindingOutput[];

  beforeAll(async () => {
    dir = path.join(tmp('reaper-report-browser-'), 'demo');
    await buildDemo(dir);
    // An orphan whose owner directory is markup: it must show as text and load nothing.
    mkdirSync(path.join(dir, 'scratch', EVIL_OWNER));
    const evil = path.join(dir, 'scratch', EVIL_OWNER, 'x.part');
    writeFileSync(evil, 'x'.repeat(321));
    const old = new Date(Date.now() - 3 * 86_400_000);
    utimesSync(evil, old, old);
    const audit = reaper(['audit', '-c', 'reaper.yaml', '--output', 'json', '--findings', 'f.ndjson', '--html', 'audit.html'], { cwd: dir });
    expect(audit.stderr).toBe('');
    expect(audit.code).toBe(0);
    writeFileSync(path.join(dir, 'a.json'), audit.stdout);
    doc = JSON.parse(audit.stdout) as AuditDocument;
    findings = readFileSync(path.join(dir, 'f.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FindingOutput);
    const report = reaper(['report', 'a.json', 'f.ndjson', '-c', 'reaper.yaml', '--out', 'report.html'], { cwd: dir });
    expect(report.stderr).toBe('');
    expect(report.code).toBe(0);
    // A findings file alone, longer than a page of the table.
    const many = Array.from({ length: 120 }, (_, i) => JSON.stringify({ resource: 'uploads', backend: 's3', id: `k/${i}`, status: 'orphaned', reason: 'owner-dead', owner: `session:${i % 7}`, ageSeconds: i * 60, bytes: i }));
    writeFileSync(path.join(dir, 'many.ndjson'), `${many.join('\n')}\n`);
    expect(reaper(['report', 'many.ndjson', '--out', 'many.html'], { cwd: dir }).code).toBe(0);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    removeTempDirs();
  });

  async function open(file: string): Promise<WatchedPage> {
    const url = pathToFileURL(path.join(dir, file)).href;
    const watched = await watchedPage(browser, (u) => u === url);
    await watched.page.goto(url);
    await watched.page.waitForSelector('#findings tbody tr');
    return watched;
  }

  it('loads with no console error and no request but the file itself', async () => {
    const { page, errors, requests, offsite } = await open('report.html');
    await screenshot(page, 'report');
    expect(errors).toEqual([]);
    expect(offsite).toEqual([]);
    expect(requests).toEqual([pathToFileURL(path.join(dir, 'report.html')).href]);
    // The markup in a name is text on the page, and no element was made of it.
    expect(await page.locator('#findings td.owner', { hasText: 'onerror' }).count()).toBe(1);
    expect(await page.locator('img').count()).toBe(0);
    await page.close();
  });

  it('draws its charts from the numbers of the audit', async () => {
    const { page, errors } = await open('report.html');
    for (const r of doc.resources) {
      const row = page.locator('table.types tbody tr', { has: page.locator(`[data-type="${r.name}"]`) });
      const bar: Record<string, number> = {};
      for (const rect of await row.locator('svg.stacked rect[data-key]').all()) bar[(await rect.getAttribute('data-key'))!] = Number(await rect.getAttribute('data-value'));
      const expected = Object.fromEntries((['live', 'orphaned', 'expired', 'protected', 'young', 'unknown'] as const).filter((s) => r[s] > 0).map((s) => [s, r[s]]));
      expect(bar).toEqual(expected);
    }
    const card = async (metric: string) => Number(await page.locator(`.card[data-metric="${metric}"]`).getAttribute('data-value'));
    expect(await card('scanned')).toBe(doc.summary.scanned);
    expect(await card('orphaned')).toBe(doc.summary.orphaned);
    expect(await card('orphanBytes')).toBe(doc.summary.orphanBytes);

    const orphans = findings.filter((f) => f.status === 'orphaned');
    const columns = await page.locator('#ages g.column').evaluateAll((gs) => gs.map((g) => Number((g as unknown as { dataset: { value: string } }).dataset.value)));
    expect(columns.reduce((a, b) => a + b, 0)).toBe(orphans.length);

    const bytes = Object.fromEntries(await page.locator('#bytes g.bar').evaluateAll((gs) => gs.map((g) => [(g as unknown as { dataset: { label: string } }).dataset.label, Number((g as unknown as { dataset: { value: string } }).dataset.value)])));
    expect(bytes).toEqual(Object.fromEntries(doc.resources.filter((r) => r.orphanBytes > 0).map((r) => [r.name, r.orphanBytes])));

    const byOwner = new Map<string, number>();
    for (const f of orphans) byOwner.set(f.owner ?? '(no owner)', (byOwner.get(f.owner ?? '(no owner)') ?? 0) + 1);
    const top = [...byOwner.entries()].sort((a, b) => b[1] - a[1])[0]!;
    const first = page.locator('#owners g.bar').first();
    expect([await first.getAttribute('data-label'), Number(await first.getAttribute('data-value'))]).toEqual(top);

    // The trend ends with this audit's run.
    const last = page.locator('#trend .series-orphaned circle').last();
    expect(Number(await last.getAttribute('data-value'))).toBe(doc.summary.orphaned);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('filters and sorts the findings table', async () => {
    const { page, errors } = await open('report.html');
    const rows = page.locator('#findings tbody tr');
    expect(await rows.count()).toBe(findings.length);
    await page.getByLabel('Search').fill('bob');
    expect(await rows.count()).toBe(findings.filter((f) => f.id.includes('bob') || f.owner?.includes('bob')).length);
    expect(await page.locator('#findings .pager .status').textContent()).toBe(`Findings 1–3 of 3 (filtered from ${findings.length})`);
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Status').selectOption('expired');
    const statuses = await page.locator('#findings tbody td.status').allTextContents();
    expect(statuses).toEqual(findings.filter((f) => f.status === 'expired').map(() => 'expired'));
    await page.getByLabel('Status').selectOption('');

    await page.getByRole('button', { name: 'bytes' }).click();
    const shownBytes = async () => (await page.locator('#findings tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as unknown as { children: { textContent: string }[] }).children[1]!.textContent)));
    const bySize = [...findings].sort((a, b) => (b.bytes ?? -1) - (a.bytes ?? -1)).map((f) => f.id);
    expect(await shownBytes()).toEqual(bySize);
    expect(await page.locator('th[data-sort="bytes"]').getAttribute('aria-sort')).toBe('descending');
    await page.getByRole('button', { name: 'bytes' }).click();
    expect(await page.locator('th[data-sort="bytes"]').getAttribute('aria-sort')).toBe('ascending');
    expect((await shownBytes())[0]).toBe(bySize[bySize.length - 1]);
    await screenshot(page, 'report-sorted');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('pages a long findings list', async () => {
    const { page, errors } = await open('many.html');
    const status = page.locator('#findings .pager .status');
    expect(await status.textContent()).toBe('Findings 1–50 of 120');
    expect(await page.getByRole('button', { name: 'Previous' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Next' }).click();
    expect(await status.textContent()).toBe('Findings 51–100 of 120');
    await page.getByRole('button', { name: 'Next' }).click();
    expect(await status.textContent()).toBe('Findings 101–120 of 120');
    expect(await page.locator('#findings tbody tr').count()).toBe(20);
    expect(await page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await screenshot(page, 'report-findings-only');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('has no serious or critical accessibility violation (axe-core)', async () => {
    for (const file of ['report.html', 'audit.html', 'many.html']) {
      const { page } = await open(file);
      expect(await seriousA11yViolations(page), file).toEqual([]);
      await page.close();
    }
  });

  it('the checks can fail: a tampered script is refused by the CSP, and axe-core sees an unlabeled field', async () => {
    const html = readFileSync(path.join(dir, 'report.html'), 'utf8');
    writeFileSync(path.join(dir, 'tampered.html'), html.replace(/<script>/, '<script>/* tampered */').replace('<main id="main">', '<main id="main"><img alt="" src="https://example.com/beacon.png">'));
    const url = pathToFileURL(path.join(dir, 'tampered.html')).href;
    const { page, errors, offsite } = await watchedPage(browser, (u) => u === url);
    await page.goto(url);
    await page.waitForLoadState('load');
    expect(errors.join('\n')).toMatch(/Content Security Policy/);
    // The policy blocked the image before any request was made, and the refused script drew no table.
    expect(offsite).toEqual([]);
    expect(await page.locator('#findings tbody tr').count()).toBe(0);
    await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { body: { insertAdjacentHTML(where: string, html: string): void } } }).document;
      doc.body.insertAdjacentHTML('beforeend', '<select id="unlabeled"><option>x</option></select>');
    });
    expect((await seriousA11yViolations(page)).join('\n')).toMatch(/select-name \(critical\)/);
    await page.close();
  });

  it('audit --html writes the same views, from the run itself', async () => {
    const { page, errors, offsite } = await open('audit.html');
    await screenshot(page, 'audit-html');
    expect(await page.locator('h1').textContent()).toBe(`reaper audit ${doc.runId}`);
    expect(Number(await page.locator('.card[data-metric="orphaned"]').getAttribute('data-value'))).toBe(doc.summary.orphaned);
    expect(await page.locator('#findings tbody tr').count()).toBe(findings.length);
    expect(errors).toEqual([]);
    expect(offsite).toEqual([]);
    await page.close();
  });
});
