/**
 * `reaper explain` of a resource that is not there: one reaper deleted is answered from the
 * ledger (the run that deleted it, when, its tombstone's state and note, and whether restore
 * can bring it back); an id reaper never saw is `not found`. Ids are escaped as every other
 * command escapes them for a terminal (src/report/table.ts `printable`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

/**
 * Three files types, each holding gone/a.part of a dead owner, grace 0s; `kept` keeps swept
 * files for restore a week, `brief` for a second.
 */
function sandbox(): string {
  const dir = tmp();
  for (const type of ['scratch', 'kept', 'brief']) {
    mkdirSync(path.join(dir, type, 'gone'), { recursive: true });
    writeFileSync(path.join(dir, type, 'gone/a.part'), 'x');
  }
  writeFileSync(
    path.join(dir, 'reaper.yaml'),
    [
      'version: 1',
      'state: sqlite:state.db',
      'defaults: { minAge: 0s, grace: 0s, maxDeleteFraction: 1 }',
      'owners: [{ static: ["alive"] }]',
      'resources:',
      '  - name: scratch',
      '    fs: { path: ./scratch }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '  - name: kept',
      '    fs: { path: ./kept }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '    quarantine: ./trash',
      '    retain: 7d',
      '  - name: brief',
      '    fs: { path: ./brief }',
      '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
      '    quarantine: ./trash-brief',
      '    retain: 1s',
      '',
    ].join('\n'),
  );
  return dir;
}

interface Ledger {
  state: string;
  markedRunId: string;
  outcomeRunId: string | null;
  updatedAt: string;
  restoreHandle: string | null;
}

describe('reaper explain of a resource that is not there', () => {
  const dir = sandbox();
  let markRun = '';
  let sweepRun = '';

  it('names the run that deleted it, when, and whether restore can bring it back', () => {
    const marked = reaper(['reap', '--execute', '--output', 'json'], { cwd: dir });
    expect(marked.code, marked.stderr).toBe(0);
    markRun = (JSON.parse(marked.stdout) as { runId: string }).runId;
    const swept = reaper(['reap', '--execute', '--output', 'json'], { cwd: dir });
    expect(swept.code, swept.stderr).toBe(0);
    sweepRun = (JSON.parse(swept.stdout) as { runId: string }).runId;

    const plain = reaper(['explain', 'scratch', 'gone/a.part', '--output', 'table'], { cwd: dir });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`^scratch "gone/a\\.part": not found: deleted by reaper, run ${sweepRun} at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\n`));
    expect(plain.stdout).toContain(`marked by run ${markRun}`);
    expect(plain.stdout).toContain('tombstone deleted');
    expect(plain.stdout).toMatch(/no copy kept: restore cannot bring it back/);

    const kept = reaper(['explain', 'kept', 'gone/a.part', '--output', 'table'], { cwd: dir });
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toContain(`deleted by reaper, run ${sweepRun}`);
    expect(kept.stdout).toMatch(/kept for restore until \d{4}-\d\d-\d\dT[\d:.]+Z \(handle .+\): reaper restore --resource kept --id gone\/a\.part/);

    const json = reaper(['explain', 'kept', 'gone/a.part', '--output', 'json'], { cwd: dir });
    const x = JSON.parse(json.stdout) as { found: boolean; ledger: Ledger | null };
    expect(x.found).toBe(false);
    expect(x.ledger).toMatchObject({ state: 'deleted', markedRunId: markRun, outcomeRunId: sweepRun });
    expect(x.ledger!.restoreHandle).toEqual(expect.any(String));
  });

  it('says when the kept copy is gone: retain passed and a reap purged it', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const purging = reaper(['reap', '--execute', '--output', 'json'], { cwd: dir });
    expect(purging.code, purging.stderr).toBe(0);
    const r = reaper(['explain', 'brief', 'gone/a.part', '--output', 'table'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`deleted by reaper, run ${sweepRun}`);
    expect(r.stdout).toMatch(/its kept copy is gone \(retained until \d{4}-\d\d-\d\dT[\d:.]+Z\): restore cannot bring it back/);
    expect(r.stdout).not.toContain('kept for restore');
    const json = JSON.parse(reaper(['explain', 'brief', 'gone/a.part', '--output', 'json'], { cwd: dir }).stdout) as { ledger: { copy: string } };
    expect(json.ledger.copy).toBe('purged');
    const kept = JSON.parse(reaper(['explain', 'kept', 'gone/a.part', '--output', 'json'], { cwd: dir }).stdout) as { ledger: { copy: string; keptUntil: string } };
    expect(kept.ledger.copy).toBe('kept');
    expect(Date.parse(kept.ledger.keptUntil) - Date.now()).toBeGreaterThan(6 * 86_400_000);
  });

  it('an id reaper never saw is not found, and nothing more', () => {
    const r = reaper(['explain', 'scratch', 'gone/never.part', '--output', 'table'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('scratch "gone/never.part": not found\n');
    const json = JSON.parse(reaper(['explain', 'scratch', 'gone/never.part', '--output', 'json'], { cwd: dir }).stdout) as { found: boolean; ledger: unknown };
    expect(json).toMatchObject({ found: false, ledger: null });
  });

  it('escapes C1 controls and bidi overrides in the id, as the tables do', () => {
    const id = 'gone/\u202egnp.exe\u009b31m';
    const r = reaper(['explain', 'scratch', id, '--output', 'table'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('scratch "gone/\\u202egnp.exe\\u009b31m": not found\n');
  });
});
