/**
 * `reaper report` and `reap --html` as users run them (the built binary): reports from the
 * state store alone, from a reap's JSON report, with the pending tombstones' earliest sweep;
 * bad input refused with file, line and key (exit 2) and nothing written; and no state
 * store ever created by a report. Needs `npm run build`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo } from '../../src/cli/commands/demo.js';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

/** The text of the elements matching a simple pattern, tags removed. */
const texts = (html: string, pattern: RegExp) => [...html.matchAll(pattern)].map((m) => m[1]!.replace(/<[^>]+>/g, ''));

describe('reaper report', () => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(tmp('reaper-report-cli-'), 'demo');
    await buildDemo(dir);
  });

  it('refuses to report from nothing, and creates no state store', () => {
    const empty = tmp('reaper-report-empty-');
    const r = reaper(['report'], { cwd: empty });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^reaper: nothing to report: no run is recorded in sqlite:.*\.reaper\/state\.db yet/);
    expect(existsSync(path.join(empty, '.reaper'))).toBe(false);
    expect(existsSync(path.join(empty, 'reaper-report.html'))).toBe(false);
  });

  it('refuses a findings line that is not a finding with its file, line and key, and writes nothing', () => {
    const file = path.join(dir, 'bad.ndjson');
    writeFileSync(file, `${JSON.stringify({ resource: 'a', backend: 'fs', id: '1', status: 'orphaned' })}\n{"resource":"a","id":"2","status":"orphaned","ageSeconds":"old"}\n`);
    const r = reaper(['report', 'bad.ndjson', '--out', 'bad.html'], { cwd: dir });
    expect(r.stderr).toBe(`reaper: ${file}:2: ageSeconds: Invalid input: expected number, received string\n`);
    expect(r.code).toBe(2);
    expect(existsSync(path.join(dir, 'bad.html'))).toBe(false);
  });

  it('reports from the state store alone: its newest audit, the trend and the pending tombstones with their earliest sweep', async () => {
    const reap = reaper(['reap', '-c', 'reaper.yaml', '--execute', '--html', 'reap.html', '--output', 'json'], { cwd: dir });
    expect(reap.code).toBe(0);
    writeFileSync(path.join(dir, 'reap.json'), reap.stdout);
    const audit = reaper(['audit', '-c', 'reaper.yaml', '--output', 'json'], { cwd: dir });
    expect(audit.code).toBe(0);
    const runId = (JSON.parse(audit.stdout) as { runId: string }).runId;

    const r = reaper(['report', '-c', 'reaper.yaml', '--out', '-'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const html = r.stdout;
    expect(html).toContain(`<h1>reaper audit ${runId}</h1>`);
    // The trend's numbers, newest first: this audit, then the reap.
    const reapId = (JSON.parse(reap.stdout) as { runId: string }).runId;
    expect(texts(html, /<tr><th scope="row"><code>([^<]*)<\/code>/g)).toEqual([runId, reapId]);
    const store = await SqliteStateStore.open(path.join(dir, '.reaper', 'state.db'));
    try {
      const pending = await store.countTombstones('scratch-uploads');
      expect(pending.marked).toBeGreaterThan(0);
      // The earliest sweep: the oldest mark plus the demo's grace, 2d.
      const sweep = new Date(pending.oldestMarkedAt! + 2 * 86_400_000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
      const row = /<section id="pending"[\s\S]*?<tr><th scope="row">scratch-uploads<\/th><td>(\d+)<\/td><td>0<\/td><td>[^<]*<\/td><td>([^<]*)<\/td><\/tr>/.exec(html)!;
      expect([Number(row[1]), row[2]]).toEqual([pending.marked, sweep]);
    } finally {
      await store.close();
    }
  });

  it('reap --html and a reap JSON report show what the reap did', () => {
    const fromRun = readFileSync(path.join(dir, 'reap.html'), 'utf8');
    const r = reaper(['report', 'reap.json', '--out', 'from-json.html'], { cwd: dir });
    expect(r.code).toBe(0);
    const fromJson = readFileSync(path.join(dir, 'from-json.html'), 'utf8');
    const reap = JSON.parse(readFileSync(path.join(dir, 'reap.json'), 'utf8')) as { runId: string; outcomes: { marked: number } };
    for (const html of [fromRun, fromJson]) {
      expect(html).toContain(`<h1>reaper reap ${reap.runId}</h1>`);
      const marked = texts(html, /<section id="reap"[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/g)[0]!;
      expect(marked).toContain('scratch-uploads');
    }
    const outcomes = (html: string) => [...html.matchAll(/<tr><th scope="row">([\w-]+)<\/th><td>\d+<\/td><td>\d+<\/td><td>\d+<\/td><td>(\d+)<\/td>/g)].reduce((s, m) => s + Number(m[2]), 0);
    expect(outcomes(fromRun)).toBe(reap.outcomes.marked);
    expect(outcomes(fromJson)).toBe(reap.outcomes.marked);
    // Only the run's own report read its findings; a JSON report has none.
    expect(fromRun).toContain('id="reaper-findings">{"rows":[[');
    expect(fromJson).toContain('No findings were read');
  });

  it('refuses --run of a run that is not there', () => {
    const r = reaper(['report', '-c', 'reaper.yaml', '--run', 'nope'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^reaper: --run: no audit run nope with recorded numbers in sqlite:/);
  });
});
