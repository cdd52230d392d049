/**
 * The cleanup backlog a reap records (its report's summary and per-type telemetry, the run
 * record's summary, the Prometheus `reaper_backlog_tombstones`) is what is left to clean
 * after the run: the tombstones it marked are in it, the ones it swept are not.
 *
 * The built CLI reaps orphaned files: a first run marks them (grace 0s), a second sweeps them.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reaperSync } from './support/cli.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const ORPHANS = 7;

function fixture(): { dir: string; manifest: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-backlog-'));
  dirs.push(dir);
  for (let i = 0; i < ORPHANS; i++) {
    mkdirSync(path.join(dir, 'scratch', `gone-${i}`), { recursive: true });
    writeFileSync(path.join(dir, 'scratch', `gone-${i}`, 'x.part'), 'x');
  }
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(
    manifest,
    [
      'version: 1',
      'resources:',
      '  - name: scratch',
      '    fs: { path: ./scratch }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '    minAge: 0s',
      '    grace: 0s',
      '    maxDeleteFraction: 1',
      '',
    ].join('\n'),
  );
  return { dir, manifest };
}

interface Reap {
  summary: { backlog: number };
  resources: { name: string; outcomes: { marked: number; deleted: number }; telemetry: { backlog: number; backlogOldestAgeSeconds: number | null } }[];
}

function reap(dir: string, manifest: string, metrics: string): Reap {
  const r = reaperSync(['reap', '--execute', '--allow-liveness-drop', '-c', manifest, '--output', 'json', '--metrics-file', metrics], { cwd: dir });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Reap;
}

function recorded(dir: string, manifest: string): { summary: { summary: { backlog: number }; resources: { backlog: number }[] } }[] {
  return JSON.parse(reaperSync(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as ReturnType<typeof recorded>;
}

const promBacklog = (file: string) => Number(/^reaper_backlog_tombstones\{[^}]*resource="scratch"[^}]*\} (\d+)$/m.exec(readFileSync(file, 'utf8'))?.[1]);

describe('the backlog a reap records', () => {
  it('counts the tombstones the run marked, and not those it swept', () => {
    const { dir, manifest } = fixture();
    const metrics = path.join(dir, 'reap.prom');

    const first = reap(dir, manifest, metrics);
    expect(first.resources[0]!.outcomes.marked).toBe(ORPHANS);
    expect(first.summary.backlog).toBe(ORPHANS);
    expect(first.resources[0]!.telemetry.backlog).toBe(ORPHANS);
    expect(first.resources[0]!.telemetry.backlogOldestAgeSeconds).not.toBeNull();
    expect(recorded(dir, manifest)[0]!.summary.summary.backlog).toBe(ORPHANS);
    expect(recorded(dir, manifest)[0]!.summary.resources[0]!.backlog).toBe(ORPHANS);
    expect(promBacklog(metrics)).toBe(ORPHANS);

    const second = reap(dir, manifest, metrics);
    expect(second.resources[0]!.outcomes.deleted).toBe(ORPHANS);
    expect(second.summary.backlog).toBe(0);
    expect(second.resources[0]!.telemetry).toMatchObject({ backlog: 0, backlogOldestAgeSeconds: null });
    expect(recorded(dir, manifest)[0]!.summary.summary.backlog).toBe(0);
    expect(promBacklog(metrics)).toBe(0);
  });

  it('in a dry run, is the backlog that stands (nothing was marked)', () => {
    const { dir, manifest } = fixture();
    const r = reaperSync(['reap', '--allow-liveness-drop', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as Reap).summary.backlog).toBe(0);
    const first = reap(dir, manifest, path.join(dir, 'reap.prom'));
    expect(first.summary.backlog).toBe(ORPHANS);
    const dry = reaperSync(['reap', '--allow-liveness-drop', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect((JSON.parse(dry.stdout) as Reap).summary.backlog).toBe(ORPHANS);
  });
});
