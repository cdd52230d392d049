/**
 * Filters (as cloud-nuke and aws-nuke users expect them): --exclude-resource, --older-than
 * and --owner, on audit and reap. For reap they narrow what is marked, swept and lifted,
 * never widen it; dry run and execute share them; a saved plan records them. On the
 * demo's real files.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

type Json = Record<string, unknown>;

function demo(grace?: string): { dir: string; manifest: string; sandbox: string } {
  const dir = tmp();
  expect(reaper(['demo'], { cwd: dir }).code).toBe(0);
  const sandbox = path.join(dir, 'reaper-demo');
  const manifest = path.join(sandbox, 'reaper.yaml');
  if (grace) writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('grace: 2d', `grace: ${grace}`));
  return { dir, manifest, sandbox };
}

const json = (r: { code: number | null; stdout: string; stderr: string }): Json => {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Json;
};
const byName = (doc: Json) => Object.fromEntries((doc.resources as (Json & { name: string })[]).map((r) => [r.name, r]));

describe('audit filters', () => {
  const d = demo();
  const audit = (...flags: string[]) => json(reaper(['audit', '-c', d.manifest, '--output', 'json', ...flags], { cwd: d.dir }));

  it('--exclude-resource drops types (and an unknown name lists the valid ones)', () => {
    expect(Object.keys(byName(audit('--exclude-resource', 'report-exports')))).toEqual(['scratch-uploads']);
    expect(Object.keys(byName(audit('--resource', 'scratch-uploads', 'report-exports', '--exclude-resource', 'scratch-uploads')))).toEqual(['report-exports']);
    const bad = reaper(['audit', '-c', d.manifest, '--exclude-resource', 'exports'], { cwd: d.dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--exclude-resource: no resource type "exports"');
    expect(bad.stderr).toContain('scratch-uploads, report-exports');
  });

  it('--older-than counts only resources at least that old', () => {
    const doc = audit('--older-than', '1d');
    expect(doc.summary).toMatchObject({ scanned: 4, live: 0, orphaned: 1, expired: 2, protected: 1, young: 0 });
    expect((doc.findings as Json[]).map((f) => f.id).sort()).toEqual(['carol/big.part', 'erin/abandoned.part', 'keep-fixtures/golden.part', 'weekly-47.csv']);
    const bad = reaper(['audit', '-c', d.manifest, '--older-than', 'soon'], { cwd: d.dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--older-than');
  });

  it('--owner counts only the resources of those owner keys; filters combine', () => {
    const doc = audit('--owner', 'session:bob');
    expect(doc.summary).toMatchObject({ scanned: 3, orphaned: 3 });
    expect(byName(doc)['report-exports']).toMatchObject({ scanned: 0 });
    expect(audit('--owner', 'session:bob', '--owner', 'job:adhoc').summary).toMatchObject({ scanned: 4, orphaned: 4 });
    expect(audit('--owner', 'session:bob', '--older-than', '1d').summary).toMatchObject({ scanned: 0 });
  });
});

describe('reap filters', () => {
  it('narrow the dry run and the marks of an execute alike', () => {
    const d = demo();
    const reap = (...flags: string[]) => json(reaper(['reap', '-c', d.manifest, '--output', 'json', ...flags], { cwd: d.dir }));
    const plan = (doc: Json) => Object.fromEntries(Object.entries(byName(doc)).map(([name, r]) => [name, (r as unknown as { toMark: number }).toMark]));

    expect(plan(reap())).toEqual({ 'scratch-uploads': 5, 'report-exports': 1 });
    expect(plan(reap('--owner', 'session:bob'))).toEqual({ 'scratch-uploads': 3, 'report-exports': 0 });
    expect(plan(reap('--older-than', '1d'))).toEqual({ 'scratch-uploads': 1, 'report-exports': 0 });
    expect(plan(reap('--exclude-resource', 'scratch-uploads'))).toEqual({ 'report-exports': 1 });
    // The filters are in the report, and the caps still count the whole type.
    const filtered = reap('--owner', 'session:bob');
    expect(filtered.filters).toEqual({ owners: ['session:bob'] });
    expect(byName(filtered)['scratch-uploads']).toMatchObject({ scanned: 10 });

    const executed = reap('--owner', 'session:bob', '--execute');
    expect(byName(executed)['scratch-uploads']).toMatchObject({ outcomes: expect.objectContaining({ marked: 3 }) });
    // Unfiltered, the rest is still to mark: the filter marked nothing outside it.
    expect(plan(reap())).toEqual({ 'scratch-uploads': 2, 'report-exports': 1 });
  });

  it('narrow the sweep: only the filtered owner\'s due tombstones are deleted, the others stay marked', () => {
    const d = demo('0s');
    const reap = (...flags: string[]) => json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--execute', ...flags], { cwd: d.dir }));
    expect(reap().outcomes).toMatchObject({ marked: 6, deleted: 0 });
    const swept = reap('--owner', 'session:bob');
    expect(swept.outcomes).toMatchObject({ marked: 0, deleted: 3, lifted: 0 });
    for (const n of [1, 2, 3]) expect(existsSync(path.join(d.sandbox, 'scratch', 'bob', `chunk-${n}.part`))).toBe(false);
    expect(existsSync(path.join(d.sandbox, 'scratch', 'erin', 'abandoned.part'))).toBe(true);
    expect(existsSync(path.join(d.sandbox, 'exports', 'adhoc-1234.csv'))).toBe(true);
    expect(byName(swept)['scratch-uploads']).toMatchObject({ pending: { count: 2 } });
    expect(reap().outcomes).toMatchObject({ deleted: 3 });
    expect(existsSync(path.join(d.sandbox, 'scratch', 'erin', 'abandoned.part'))).toBe(false);
  });

  it('a saved plan records its filters; applying it with other filters is refused (exit 2)', () => {
    const d = demo();
    const planFile = path.join(d.dir, 'plan.ndjson');
    json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--owner', 'session:bob', '--older-than', '1h', '--plan-out', planFile], { cwd: d.dir }));
    const trailer = JSON.parse(readFileSync(planFile, 'utf8').trim().split('\n').at(-1)!);
    expect(trailer.filters).toEqual({ olderThanSeconds: 3600, owners: ['session:bob'] });
    const other = reaper(['reap', '-c', d.manifest, '--plan', planFile, '--execute', '--owner', 'session:erin'], { cwd: d.dir });
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/filters/);
    const applied = json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--plan', planFile, '--execute'], { cwd: d.dir }));
    expect(applied.filters).toEqual({ olderThanSeconds: 3600, owners: ['session:bob'] });
    expect(applied.outcomes).toMatchObject({ marked: 3 });
    // A tampered filter breaks the plan's digest.
    writeFileSync(planFile, readFileSync(planFile, 'utf8').replace('"session:bob"]', '"session:erin"]'));
    expect(reaper(['reap', '-c', d.manifest, '--plan', planFile, '--execute'], { cwd: d.dir }).code).toBe(4);
  });

  it('a saved plan comes through a pipe: read once, checked, applied from the checked copy', () => {
    const d = demo();
    const planFile = path.join(d.dir, 'plan.ndjson');
    json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--owner', 'session:bob', '--plan-out', planFile], { cwd: d.dir }));
    const plan = readFileSync(planFile, 'utf8');
    // Through a pipe: read once, checked, applied.
    const piped = json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--plan', '/dev/stdin', '--execute'], { cwd: d.dir, input: plan }));
    expect(piped.outcomes).toMatchObject({ marked: 3 });
    expect(reaper(['reap', '-c', d.manifest, '--plan', planFile, '--execute'], { cwd: d.dir }).code).toBe(4);
  });

  it('a dry run over the caps shows its plan, says --execute would refuse it and how to narrow it, and exits 4', () => {
    const d = demo();
    writeFileSync(d.manifest, readFileSync(d.manifest, 'utf8').replace('maxDeleteFraction: 1 }', 'maxDeleteFraction: 1, maxDeletesPerRun: 2 }'));
    const dry = reaper(['reap', '-c', d.manifest, '--output', 'json'], { cwd: d.dir });
    expect(dry.code).toBe(4);
    expect(dry.stderr).toContain('caps exceeded: --execute would refuse this plan (dry run: nothing was marked or deleted)');
    expect(dry.stderr).toContain('narrow the run with --resource, --owner or --older-than, or raise the cap in the manifest');
    const plan = JSON.parse(dry.stdout) as Json;
    expect(byName(plan)['scratch-uploads']).toMatchObject({ toMark: 5 });
    // Recorded as the refusal --execute would meet.
    const [recorded] = JSON.parse(reaper(['runs', '-c', d.manifest, '--output', 'json'], { cwd: d.dir }).stdout) as { status: string; error: string }[];
    expect(recorded).toMatchObject({ status: 'refused', error: expect.stringContaining('maxDeletesPerRun') });
    // Narrowed within the cap, the same dry run passes.
    expect(json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--owner', 'session:erin', '--resource', 'scratch-uploads'], { cwd: d.dir })).execute).toBe(false);
    const wet = reaper(['reap', '-c', d.manifest, '--output', 'json', '--execute'], { cwd: d.dir });
    expect(wet.code).toBe(4);
    expect(wet.stderr).toContain('caps exceeded; nothing was marked or deleted');
    expect(wet.stdout).toBe('');
  });

  it('a saved plan reaps the types it was made for, reports the scan it was made from, and is applied to the end once', () => {
    const d = demo();
    const planFile = path.join(d.dir, 'plan.ndjson');
    const planned = json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--resource', 'scratch-uploads', '--plan-out', planFile], { cwd: d.dir }));
    // Other types than the plan's: refused before anything is read.
    const other = reaper(['reap', '-c', d.manifest, '--plan', planFile, '--execute', '--resource', 'report-exports'], { cwd: d.dir });
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('was made for scratch-uploads, not report-exports; apply it without --resource and --exclude-resource');
    const excluded = reaper(['reap', '-c', d.manifest, '--plan', planFile, '--execute', '--exclude-resource', 'scratch-uploads'], { cwd: d.dir });
    expect(excluded.code).toBe(2);
    // Without --resource it reaps the plan's types only, and reports the scan the plan was made from.
    const table = reaper(['reap', '-c', d.manifest, '--output', 'table', '--plan', planFile, '--execute'], { cwd: d.dir, env: { COLUMNS: '200' } });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain(`plan applied: ${planFile}`);
    expect(table.stdout).not.toContain('plan saved to');
    expect(table.stdout).not.toContain('report-exports');
    const runs = json(reaper(['runs', '-c', d.manifest, '--output', 'json'], { cwd: d.dir })) as unknown as { runId: string; execute: boolean; summary: Json }[];
    const applied = runs.find((r) => r.execute)!;
    expect((applied.summary.summary as Json).scanned).toBe((planned.summary as Json).scanned);
    expect((applied.summary.summary as Json).scanned).toBeGreaterThan(0);
    expect((applied.summary.resources as Json[]).map((r) => [r.name, r.orphaned])).toEqual([['scratch-uploads', byName(planned)['scratch-uploads']!.telemetry ? (byName(planned)['scratch-uploads']!.telemetry as Json).orphaned : -1]]);
    expect((applied.summary.outcomes as Json).marked).toBe(5);
    // Applied to the end once: a second apply is refused as stale (exit 4), naming the run.
    const again = reaper(['reap', '-c', d.manifest, '--plan', planFile, '--execute'], { cwd: d.dir });
    expect(again.code).toBe(4);
    expect(again.stderr).toContain(`was applied to the end by run ${applied.runId}; plan again to reap what is left`);
    // So is a plan written and applied by one `--execute --plan-out` run.
    const both = path.join(d.dir, 'both.ndjson');
    expect(reaper(['reap', '-c', d.manifest, '--execute', '--plan-out', both], { cwd: d.dir }).code).toBe(0);
    expect(reaper(['reap', '-c', d.manifest, '--plan', both, '--execute'], { cwd: d.dir }).code).toBe(4);
  });

  it('a plan of an older reaper (no recorded choice of types, no telemetry) is applied with --resource naming the types it holds', () => {
    const d = demo();
    const planFile = path.join(d.dir, 'plan.ndjson');
    expect(reaper(['reap', '-c', d.manifest, '--resource', 'scratch-uploads', '--plan-out', planFile], { cwd: d.dir }).code).toBe(0);
    // As an older reaper wrote it: the trailer without `selected` and `telemetry`, its digest over what is left.
    const lines = readFileSync(planFile, 'utf8').trimEnd().split('\n');
    const trailer = JSON.parse(lines.at(-1)!) as Json & { resources: Json[] };
    delete trailer.selected;
    for (const r of trailer.resources) delete r.telemetry;
    const digest = createHash('sha256');
    for (const line of lines.slice(0, -1)) digest.update(line).update('\n');
    const { kind, version, runId, createdAt, manifestDigest, resources } = trailer;
    digest.update(JSON.stringify({ kind, version, runId, createdAt, manifestDigest, resources }));
    const older = path.join(d.dir, 'older.ndjson');
    writeFileSync(older, [...lines.slice(0, -1), JSON.stringify({ ...trailer, digest: digest.digest('hex') })].join('\n') + '\n');
    const wrong = reaper(['reap', '-c', d.manifest, '--plan', older, '--execute', '--resource', 'report-exports'], { cwd: d.dir });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('was made for scratch-uploads, not report-exports');
    const applied = json(reaper(['reap', '-c', d.manifest, '--output', 'json', '--plan', older, '--execute', '--resource', 'scratch-uploads'], { cwd: d.dir }));
    expect(applied.outcomes).toMatchObject({ marked: 5 });
  });
});
