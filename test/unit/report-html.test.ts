/**
 * The HTML report's data and renderer, without a browser: aggregates that count what they
 * say, a page whose Content-Security-Policy allows exactly its own style and script and
 * which names nothing to load, charts that carry the audit's numbers, hostile text kept text,
 * and input files refused with their line and key. (The browser tests load the page.)
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FindingOutput } from '../../src/report/document.js';
import { FindingsAggregate, OwnerCounter } from '../../src/report/html/aggregate.js';
import { clientAssets } from '../../src/report/html/assets.js';
import { buildReportData } from '../../src/report/html/build.js';
import { readReportFile, streamFindings } from '../../src/report/html/inputs.js';
import { REPORT_LIMITS } from '../../src/report/html/model.js';
import { renderReport } from '../../src/report/html/page.js';
import { auditOf, findings } from './support/html-report.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempFile(name: string, text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-html-'));
  dirs.push(dir);
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

const orphan = (id: string, ageSeconds: number | null, owner: string | null = 'session:a', bytes = 10): FindingOutput => ({
  resource: 'uploads',
  backend: 's3',
  id,
  status: 'orphaned',
  reason: owner === null ? 'no-owner' : 'owner-dead',
  owner,
  ageSeconds,
  bytes,
});

describe('the findings aggregate', () => {
  it('puts every orphan in its age bucket, and counts those of unknown age apart', () => {
    const agg = new FindingsAggregate();
    const ages = [0, 3_599, 3_600, 6 * 3600 - 1, 86_400, 7 * 86_400, 30 * 86_400, 90 * 86_400, 400 * 86_400, null];
    ages.forEach((a, i) => agg.add(orphan(`o${i}`, a)));
    agg.add({ ...orphan('expired-one', 10), status: 'expired', reason: 'ttl' });
    const view = agg.ageView();
    expect(Object.fromEntries(view.buckets.map((b) => [b.label, b.count]))).toEqual({ '< 1h': 2, '1–6h': 2, '6–24h': 0, '1–7d': 1, '7–30d': 1, '30–90d': 1, '≥ 90d': 2 });
    expect(view.unknown).toBe(1);
    expect(view.total).toBe(10);
  });

  it('counts owners exactly while they fit, no-owner orphans under null, with their bytes', () => {
    const agg = new FindingsAggregate();
    for (let i = 0; i < 5; i++) agg.add(orphan(`a${i}`, 100, 'session:a', 100));
    for (let i = 0; i < 3; i++) agg.add(orphan(`n${i}`, 100, null, 7));
    agg.add(orphan('b', 100, 'session:b', 1));
    agg.add({ ...orphan('live-owner-expired', 100, 'session:c'), status: 'expired', reason: 'ttl' });
    expect(agg.ownersView()).toEqual({
      rows: [
        { owner: 'session:a', orphans: 5, bytes: 500 },
        { owner: null, orphans: 3, bytes: 21 },
        { owner: 'session:b', orphans: 1, bytes: 1 },
      ],
      errorBound: 0,
    });
  });

  it('beyond its capacity keeps a heavy owner, with a count low by at most the bound it reports', () => {
    const counter = new OwnerCounter(10);
    let n = 0;
    for (let i = 0; i < 2_000; i++) {
      counter.add(`one-off:${i}`, 1);
      n++;
      if (i % 4 === 0) {
        counter.add('session:heavy', 1);
        n++;
      }
    }
    const { rows, errorBound } = counter.top(3);
    expect(errorBound).toBeGreaterThan(0);
    expect(errorBound).toBeLessThanOrEqual(n / 11);
    expect(rows[0]!.owner).toBe('session:heavy');
    expect(rows[0]!.orphans).toBeLessThanOrEqual(500);
    expect(rows[0]!.orphans).toBeGreaterThanOrEqual(500 - errorBound);
  });

  it('keeps the highest-priority rows for the table: orphans first, oldest first, within the row cap', () => {
    const agg = new FindingsAggregate();
    for (let i = 0; i < REPORT_LIMITS.findingsRows; i++) agg.add({ ...orphan(`young-${i}`, 5), status: 'young', reason: 'min-age' });
    for (let i = 0; i < 10; i++) agg.add(orphan(`old-${i}`, 1_000 * i));
    const view = agg.findingsView();
    expect(view.total).toBe(REPORT_LIMITS.findingsRows + 10);
    expect(view.rows).toHaveLength(REPORT_LIMITS.findingsRows);
    expect(view.omitted).toBe(10);
    expect(view.rows.slice(0, 10).map((r) => r[1])).toEqual(['old-9', 'old-8', 'old-7', 'old-6', 'old-5', 'old-4', 'old-3', 'old-2', 'old-1', 'old-0']);
    expect(view.rows.slice(10).every((r) => r[2] === 'young')).toBe(true);
  });
});

describe('the rendered report', () => {
  const all = [...findings(400, { types: 3 })];
  const audit = auditOf(all, 100);
  const data = buildReportData({ generatedAt: '2026-11-22T03:00:00.000Z', reaper: '0.1.0', sources: ['audit document a.json'], audit, history: null });

  it('allows by its CSP exactly its own inline style and script, and loads nothing', async () => {
    const assets = await clientAssets();
    const html = renderReport(data, assets);
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)![1]!.replace(/&#39;/g, "'");
    const hash = (t: string) => `'sha256-${createHash('sha256').update(t).digest('base64')}'`;
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
    expect(scripts).toHaveLength(1);
    expect(csp.split('; ')).toEqual([`default-src 'none'`, `style-src ${hash(style)}`, `script-src ${hash(scripts[0]!)}`, `img-src data:`, `base-uri 'none'`, `form-action 'none'`]);
    // Nothing to fetch: no src attribute, links to the page's own anchors only, no url() in the style.
    expect(html).not.toMatch(/\ssrc=/);
    expect([...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]!).every((h) => h.startsWith('#'))).toBe(true);
    expect(style).not.toMatch(/url\(|@import/);
  });

  it("says when the audit was one shard of a job: its figures cover that shard's part only", async () => {
    const assets = await clientAssets();
    expect(renderReport(data, assets)).not.toContain('<dt>Part</dt>');
    const { auditFromRun } = await import('../../src/report/html/history.js');
    const run = { runId: 'r-9', kind: 'audit', status: 'ok', startedAt: 1, finishedAt: 2, job: 'aud-1', shard: '0/2', summary: { resources: audit.resources, findings: [] } };
    const fromStore = auditFromRun(run as unknown as Parameters<typeof auditFromRun>[0])!;
    expect(fromStore.part).toEqual({ shard: '0/2', job: 'aud-1' });
    const html = renderReport(buildReportData({ generatedAt: '2026-11-22T03:00:00.000Z', reaper: '0.1.0', sources: ['run r-9'], audit: fromStore, history: null }), assets);
    expect(html).toContain("<dt>Part</dt><dd><strong class=\"bad\">shard 0/2 of job <code>aud-1</code>: these figures cover that shard's part of each type only</strong></dd>");
    // From a shard's audit document too.
    const dir = mkdtempSync(path.join(tmpdir(), 'reaper-html-'));
    try {
      const file = path.join(dir, 'a.json');
      writeFileSync(file, JSON.stringify({ ...audit, kind: 'audit', job: { id: null, shard: '1/2' } }));
      const read = await readReportFile(file);
      expect(read.kind === 'audit' && read.audit.part).toEqual({ shard: '1/2', job: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('draws the status bars, the summary and the age chart from the audit numbers', async () => {
    const html = renderReport(data, await clientAssets());
    for (const r of audit.resources) {
      const bar = new RegExp(`<svg class="stacked"[^>]*aria-label="${r.name}: [^"]*"[^>]*>(.*?)</svg>`).exec(html)![1]!;
      const values = Object.fromEntries([...bar.matchAll(/data-key="(\w+)" data-value="(\d+)"/g)].map((m) => [m[1], Number(m[2])]));
      const expected = Object.fromEntries((['live', 'orphaned', 'expired', 'protected', 'young', 'unknown'] as const).filter((s) => r[s] > 0).map((s) => [s, r[s]]));
      expect(values).toEqual(expected);
    }
    const card = (metric: string) => Number(new RegExp(`data-metric="${metric}" data-value="(\\d+)"`).exec(html)![1]);
    expect(card('scanned')).toBe(400);
    expect(card('orphaned')).toBe(audit.resources.reduce((s, r) => s + r.orphaned, 0));
    const columns = [...html.matchAll(/<g class="column" data-label="([^"]+)" data-value="(\d+)">/g)].map((m) => Number(m[2]));
    expect(columns).toEqual(data.ages!.buckets.map((b) => b.count));
    // From the 100 listed findings of the document, and said so.
    expect(columns.reduce((a, b) => a + b, 0) + data.ages!.unknown).toBe(audit.findings.filter((f) => f.status === 'orphaned').length);
    expect(html).toContain('come from the 100 findings the audit listed, of 350');
  });

  it('keeps hostile names and ids as text: nothing closes the data block or opens an element', async () => {
    const evil = '</script><script>alert(1)</script><img src=x onerror=alert(2)>\u202e';
    const hostile = buildReportData({
      generatedAt: '2026-11-22T03:00:00.000Z',
      reaper: '0.1.0',
      sources: [evil],
      audit: auditOf([{ ...orphan(evil, 10, evil), resource: evil }]),
      history: null,
    });
    const html = renderReport(hostile, await clientAssets());
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('\u202e');
    const block = /<script type="application\/json" id="reaper-findings">([\s\S]*?)<\/script>/.exec(html)![1]!;
    expect(block).not.toMatch(/</);
    expect(JSON.parse(block).rows[0][1]).toBe('</script><script>alert(1)</script><img src=x onerror=alert(2)>\\u202e');
  });
});

describe('input files', () => {
  it('refuses an NDJSON line that is not a finding, naming the file, the line and the key', async () => {
    const ok = JSON.stringify(orphan('a', 1));
    const file = tempFile('f.ndjson', `${ok}\n${ok}\n${JSON.stringify({ ...orphan('b', 1), status: 'gone' })}\n`);
    expect((await readReportFile(file)).kind).toBe('findings');
    await expect(streamFindings(file, () => {})).rejects.toThrow(new RegExp(`^${file}:3: status: Invalid option`));
  });

  it('refuses a document with a bad key at that key\'s line', async () => {
    const doc = { ...auditOf([...findings(20)]), kind: 'audit' };
    (doc.resources[1] as unknown as Record<string, unknown>).scanned = 'many';
    const text = JSON.stringify(doc, null, 2);
    const line = text.split('\n').findIndex((l, i, lines) => l.includes('"scanned": "many"') && lines.slice(0, i).join('\n').split('"name"').length === 3) + 1;
    const file = tempFile('a.json', text);
    await expect(readReportFile(file)).rejects.toThrow(`${file}:${line}: resources[1].scanned: Invalid input: expected number, received string`);
  });

  it('refuses a manifest given as a report input, and says how to report from its state store', async () => {
    const manifest = tempFile('reaper.yaml', 'version: 1\nresources:\n  - name: scratch\n    fs: { path: ./scratch }\n');
    await expect(readReportFile(manifest)).rejects.toThrow(
      `${manifest}:1: this is a reaper manifest, not an audit document, a reap report or findings NDJSON; \`reaper report -c ${manifest}\` reports the newest audit its state store recorded`,
    );
  });

  it('refuses the one-line summary of --quiet, and says to write the document without it', async () => {
    const quiet = tempFile('q.json', `${JSON.stringify({ kind: 'audit', runId: 'r-1', summary: { scanned: 1 } })}\n`);
    await expect(readReportFile(quiet)).rejects.toThrow(
      `${quiet}:1: this is the one-line summary of \`reaper audit --quiet --output json\`, not an audit document; write the document without --quiet`,
    );
  });

  it('refuses a file that is neither, and JSON that does not parse, with its line', async () => {
    const other = tempFile('o.json', '{\n  "kind": "plan"\n}\n');
    await expect(readReportFile(other)).rejects.toThrow(`${other}:2: kind: expected a reaper audit document`);
    const broken = tempFile('b.json', '{\n  "kind": "audit",\n  "runId": \n}\n');
    await expect(readReportFile(broken)).rejects.toThrow(new RegExp(`^${broken}:4: not JSON`));
  });
});
