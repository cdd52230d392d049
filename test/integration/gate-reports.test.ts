/**
 * A CI leak gate with a baseline (or against an earlier run) names the new leak: the
 * Markdown summary and the JUnit report lead with what is new, and the failing JUnit
 * testcase is the resource type that breaks the gate, its failure text naming the new
 * findings. Through the built CLI, on files.
 */
import { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { markdownText } from '../../src/report/markdown.js';
import { reaperSync } from './support/cli.js';

const OLD = new Date(Date.now() - 3 * 3_600_000);

function put(dir: string, file: string): void {
  const full = path.join(dir, file);
  mkdirSync(path.dirname(full), { recursive: true });
  writeFileSync(full, 'data');
  utimesSync(full, OLD, OLD);
}

/** 25 known orphans sorted before the one that will leak next (the first 20 findings are all known ones). */
function sandbox(): { dir: string; manifest: string } {
  const dir = testTempDir('reaper-gate-');
  put(dir, 'scratch/alice/live.part');
  for (let i = 0; i < 25; i++) put(dir, `scratch/bob/old-${String(i).padStart(2, '0')}.part`);
  put(dir, 'exports/bob/report.csv');
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(
    manifest,
    [
      'version: 1',
      'defaults: { minAge: 1m }',
      'owners: [{ static: [alice] }]',
      'resources:',
      '  - name: scratch',
      '    fs: { path: ./scratch }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '  - name: exports',
      '    fs: { path: ./exports }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '',
    ].join('\n'),
  );
  return { dir, manifest };
}

interface Case {
  name: string;
  body: string;
}

function testcases(xml: string): Case[] {
  return [...xml.matchAll(/<testcase classname="[^"]*" name="([^"]*)"[^>]*>([\s\S]*?)<\/testcase>/g)].map((m) => ({ name: m[1]!, body: m[2]! }));
}

const NEW_ID = 'zed/new.part';

function expectReportsLeadWithTheNewLeak(dir: string, against: string): void {
  const md = readFileSync(path.join(dir, 's.md'), 'utf8');
  const newAt = md.indexOf(`### New since ${markdownText(against)} (1)`);
  const resolvedAt = md.indexOf(`### Resolved since ${markdownText(against)} (0)`);
  const persistingAt = md.indexOf('26 findings persisting');
  const typesAt = md.indexOf('### Resource types');
  expect(newAt).toBeGreaterThan(0);
  expect(md.indexOf(markdownText(NEW_ID))).toBeGreaterThan(newAt);
  expect(md.indexOf(markdownText(NEW_ID))).toBeLessThan(resolvedAt);
  expect(resolvedAt).toBeLessThan(persistingAt);
  expect(persistingAt).toBeLessThan(typesAt);
  // The known orphans are counted, not listed.
  expect(md).not.toContain(markdownText('bob/old-00.part'));

  const xml = readFileSync(path.join(dir, 'j.xml'), 'utf8');
  const cases = testcases(xml);
  const scratch = cases.find((c) => c.name === 'scratch')!;
  expect(scratch.body).toMatch(/<failure message="[^"]*orphaned&gt;[^"]* failed: [^"]*" type="reaper.gate">/);
  expect(scratch.body).toContain(`new since ${against}:\n  scratch · ${NEW_ID} · orphaned (owner-dead)`);
  expect(scratch.body).not.toContain('old-00.part');
  expect(cases.find((c) => c.name === '(all resources)')?.body ?? '').not.toContain('<failure');
}

describe('a leak gate against a baseline or an earlier run', () => {
  it('with --baseline: fails the type that leaks and names the new orphan first in both reports', () => {
    const { dir, manifest } = sandbox();
    const before = reaperSync(['audit', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(before.code).toBe(0);
    writeFileSync(path.join(dir, 'b.json'), before.stdout);
    put(dir, `scratch/${NEW_ID}`);

    const r = reaperSync(['audit', '-c', manifest, '--baseline', 'b.json', '--fail-on', 'orphaned>0', '--junit', 'j.xml', '--summary', 's.md', '--output', 'json'], { cwd: dir });
    expect(r.stderr).toContain('gate orphaned>0 failed: 1 orphaned not in the baseline (scratch 1)');
    expect(r.code).toBe(1);
    expectReportsLeadWithTheNewLeak(dir, 'baseline b.json');
    // exports' orphan is in the baseline: its testcase passes.
    const exports = testcases(readFileSync(path.join(dir, 'j.xml'), 'utf8')).find((c) => c.name === 'exports')!;
    expect(exports.body).not.toContain('<failure');
    const doc = JSON.parse(r.stdout) as { baseline: { new: { count: number; samples: { id: string }[] }; persisting: { count: number }; resolved: { count: number } } };
    expect(doc.baseline.new.samples.map((f) => f.id)).toEqual([NEW_ID]);
    expect(doc.baseline).toMatchObject({ new: { count: 1 }, resolved: { count: 0 }, persisting: { count: 26 } });
  });

  it('a finding resolved since a --baseline file keeps its reason, owner, age and bytes, as it does --since the same run', () => {
    const { dir, manifest } = sandbox();
    const before = reaperSync(['audit', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(before.code).toBe(0);
    writeFileSync(path.join(dir, 'b.json'), before.stdout);
    const runId = (JSON.parse(before.stdout) as { runId: string }).runId;
    rmSync(path.join(dir, 'exports/bob/report.csv'));

    type Resolved = { resolved: { count: number; samples: Record<string, unknown>[] } };
    const compare = (flags: string[], summary: string) => {
      const r = reaperSync(['audit', '-c', manifest, ...flags, '--summary', summary, '--output', 'json'], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      const resolvedAt = (text: string) => text.slice(text.indexOf('### Resolved since'), text.indexOf('persisting (already in'));
      return { doc: JSON.parse(r.stdout) as { baseline?: Resolved; since?: Resolved }, md: resolvedAt(readFileSync(path.join(dir, summary), 'utf8')) };
    };
    const baseline = compare(['--baseline', 'b.json'], 'b.md');
    const since = compare(['--since', runId], 'r.md');
    expect(baseline.doc.baseline!.resolved.count).toBe(1);
    expect(baseline.doc.baseline!.resolved.samples).toEqual([
      { resource: 'exports', backend: 'fs', id: 'bob/report.csv', status: 'orphaned', reason: expect.any(String), owner: 'bob', ageSeconds: expect.any(Number), bytes: 4 },
    ]);
    expect(baseline.doc.baseline!.resolved.samples).toEqual(since.doc.since!.resolved.samples);
    expect(baseline.md).toContain(`| exports | \`bob/report.csv\` | orphaned | ${String(baseline.doc.baseline!.resolved.samples[0]!.reason)} | \`bob\` |`);
    expect(baseline.md.replace('baseline b.json', 'the earlier audit')).toBe(since.md.replace(`run ${runId}`, 'the earlier audit'));
  });

  it('with --since: the reports lead with what is new since that run', () => {
    const { dir, manifest } = sandbox();
    const first = reaperSync(['audit', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(first.code).toBe(0);
    const runId = (JSON.parse(first.stdout) as { runId: string }).runId;
    put(dir, `scratch/${NEW_ID}`);

    const r = reaperSync(['audit', '-c', manifest, '--since', runId, '--fail-on', 'scratch:orphaned>25', '--junit', 'j.xml', '--summary', 's.md', '--output', 'table'], { cwd: dir });
    expect(r.code).toBe(1);
    expectReportsLeadWithTheNewLeak(dir, `run ${runId}`);
    // The terminal shows the new finding, not the first 20 known ones.
    expect(r.stdout).toContain(`new since run ${runId}: 1`);
    expect(r.stdout).toContain(NEW_ID);
    expect(r.stdout).not.toContain('old-00.part');
  });

  it('in a state store shared by two manifests, --since and report keep to each manifest: its own runs and types', () => {
    const { dir, manifest } = sandbox();
    // A second manifest in the same directory: the same default state store, other types.
    put(dir, 'other/carol/x.part');
    const other = path.join(dir, 'other.yaml');
    writeFileSync(other, ['version: 1', 'defaults: { minAge: 1m }', 'owners: [{ static: [alice] }]', 'resources:', '  - name: other', '    fs: { path: ./other }', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }', ''].join('\n'));
    const json = (args: string[]) => {
      const r = reaperSync(args, { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { runId: string; since?: { new: { count: number }; resolved: { count: number; byResource: Record<string, number> }; persisting: { count: number } } };
    };
    const mine = json(['audit', '-c', manifest, '--output', 'json']).runId;
    const theirs = json(['audit', '-c', other, '--output', 'json']).runId;

    // An earlier run of the other manifest is nothing to compare with.
    const crossed = reaperSync(['audit', '-c', manifest, '--since', theirs, '--output', 'json'], { cwd: dir });
    expect(crossed.code).toBe(2);
    expect(crossed.stderr).toContain(`--since: run ${theirs} audited other, none of the types this audit reads (scratch, exports); it was made with another manifest`);
    // A narrower audit than the run it compares with: the types it did not read are not "resolved".
    const narrow = json(['audit', '-c', manifest, '--resource', 'exports', '--since', mine, '--output', 'json']);
    expect(narrow.since).toMatchObject({ new: { count: 0 }, resolved: { count: 0 }, persisting: { count: 1 } });

    // The report of a manifest shows its own newest audit and trend, not the other manifest's newer run.
    const report = reaperSync(['report', '-c', manifest, '--out', 'mine.html'], { cwd: dir });
    expect(report.code, report.stderr).toBe(0);
    const html = readFileSync(path.join(dir, 'mine.html'), 'utf8');
    expect(html).toContain(mine);
    expect(html).not.toContain(theirs);
    const named = reaperSync(['report', '-c', manifest, '--run', theirs, '--out', 'x.html'], { cwd: dir });
    expect(named.code).toBe(2);
    expect(named.stderr).toContain(`run ${theirs} audited other, not the manifest's types (scratch, exports)`);
  });
});
