/**
 * The plan a reap writes for itself, and the private copy it makes of a saved plan
 * (`--plan`), leave nothing in the temporary directory — not even when the process is
 * killed (SIGKILL) with the plan in hand: a cron job killed again and again must not fill
 * `/tmp` with plans. The CLI runs with TMPDIR pointing at a directory of the test's own.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reaper } from './support/cli.js';
import { testTempDir } from './support/temp-dir.js';

/** A files manifest with 30 orphans (grace 0s, so a second run sweeps), a SQLite store, and an empty TMPDIR beside it. */
function sandbox(): { dir: string; env: Record<string, string> } {
  const dir = testTempDir('reaper-spool-');
  mkdirSync(path.join(dir, 'scratch', 'gone'), { recursive: true });
  for (let i = 0; i < 30; i++) writeFileSync(path.join(dir, 'scratch', 'gone', `${i}.part`), 'x');
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
      '',
    ].join('\n'),
  );
  mkdirSync(path.join(dir, 'tmp'));
  return { dir, env: { TMPDIR: path.join(dir, 'tmp') } };
}

const left = (dir: string) => readdirSync(path.join(dir, 'tmp'));
/** The killed run's lock (taken for 1s) runs out. */
const lockLapses = () => new Promise((resolve) => setTimeout(resolve, 1_500));

// The guarantee is Linux's (/proc/self/fd); elsewhere the spool is a named file, removed on every ordinary end.
describe.runIf(process.platform === 'linux')('the plan spool', () => {
  it('a reap killed with its own plan written leaves no plan behind', async () => {
    const { dir, env } = sandbox();
    const killed = reaper(['reap', '--execute', '--lock-ttl', '1s'], { cwd: dir, env: { ...env, REAPER_FAILPOINT: 'after-plan' } });
    expect(killed.code, killed.stderr).toBeNull();
    expect(left(dir)).toEqual([]);
    await lockLapses();
    // Nothing lost: the next run plans again and marks the orphans.
    const next = reaper(['reap', '--execute', '--output', 'json'], { cwd: dir, env });
    expect(next.code, next.stderr).toBe(0);
    expect((JSON.parse(next.stdout) as { outcomes: { marked: number } }).outcomes.marked).toBe(30);
    expect(left(dir)).toEqual([]);
  });

  it('a reap killed while applying a saved plan leaves no private copy behind', async () => {
    const { dir, env } = sandbox();
    const made = reaper(['reap', '--plan-out', 'plan.ndjson'], { cwd: dir, env });
    expect(made.code, made.stderr).toBe(0);
    const killed = reaper(['reap', '--execute', '--plan', 'plan.ndjson', '--lock-ttl', '1s'], { cwd: dir, env: { ...env, REAPER_FAILPOINT: 'after-plan' } });
    expect(killed.code, killed.stderr).toBeNull();
    expect(left(dir)).toEqual([]);
    await lockLapses();
    const applied = reaper(['reap', '--execute', '--plan', 'plan.ndjson', '--output', 'json'], { cwd: dir, env });
    expect(applied.code, applied.stderr).toBe(0);
    expect((JSON.parse(applied.stdout) as { outcomes: { marked: number } }).outcomes.marked).toBe(30);
    expect(left(dir)).toEqual([]);
  });
});
