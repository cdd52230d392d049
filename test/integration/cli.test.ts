/**
 * The published CLI contract, tested by spawning the built binary with a minimal
 * environment: exit codes, stdout/stderr, and the JSON document of `audit`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

describe('reaper CLI', () => {
  it('prints help and exits 0', () => {
    const r = reaper(['--help']);
    expect(r.code).toBe(0);
    for (const command of ['demo', 'validate', 'audit', 'lease', 'runs']) expect(r.stdout).toContain(command);
  });

  it('exits 2 on an unknown flag', () => {
    const r = reaper(['audit', '--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option/);
  });

  it('exits 2 when there is no manifest', () => {
    const r = reaper(['audit']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no manifest/);
  });

  it('names a manifest file that is not there in words, not an errno code', () => {
    const dir = tmp();
    const r = reaper(['audit', '-c', 'missing.yaml'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${path.join(dir, 'missing.yaml')}: cannot read the manifest: no such file`);
  });

  it('names file, line 6 and key for an unknown key, exits 2 and touches nothing', () => {
    const dir = tmp();
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(
      manifest,
      ['version: 1', 'resources:', '  - name: scratch', '    fs: { path: ./scratch }', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }', '    tll: 6h', ''].join('\n'),
    );
    const r = reaper(['audit', '-c', manifest], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${manifest}:6: resources[0].tll: unknown key "tll" (did you mean ttl?)`);
    expect(existsSync(path.join(dir, '.reaper'))).toBe(false);
  });

  it('refuses a --lock-ttl under 1s (a lock that lapses at once guards nothing), exits 2 and touches nothing', () => {
    const dir = tmp();
    const manifest = path.join(dir, 'reaper.yaml');
    mkdirSync(path.join(dir, 'scratch'));
    writeFileSync(manifest, 'version: 1\nowners: [{ static: [platform] }]\nresources:\n  - name: scratch\n    fs: { path: ./scratch }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n');
    for (const ttl of ['0s', '500ms']) {
      const r = reaper(['reap', '-c', manifest, '--execute', '--lock-ttl', ttl], { cwd: dir });
      expect(r.code, ttl).toBe(2);
      expect(r.stderr.trim()).toBe(`reaper: --lock-ttl: a lock ttl must be at least 1s, got ${ttl}`);
    }
    expect(existsSync(path.join(dir, '.reaper'))).toBe(false);
    expect(reaper(['reap', '-c', manifest, '--lock-ttl', '1s', '--output', 'json'], { cwd: dir }).code).toBe(0);
  });

  it('runs and lease list read a state store that is not there as empty, say so, and create nothing', () => {
    const dir = tmp();
    const url = `sqlite:${path.join(dir, 'nx', 'state.db')}`;
    for (const args of [['runs'], ['lease', 'list']]) {
      const r = reaper([...args, '--state', url, '--output', 'json'], { cwd: dir });
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout.trim()).toBe('[]');
      expect(r.stderr.trim()).toBe(`reaper: no state store at ${url} yet (the first audit, reap or lease acquire creates it)`);
    }
    const show = reaper(['runs', 'show', 'r-1', '--state', url], { cwd: dir });
    expect(show.code).toBe(2);
    expect(show.stderr.trim()).toBe(`reaper: no run r-1: no state store at ${url} yet (the first audit, reap or lease acquire creates it)`);
    expect(existsSync(path.join(dir, 'nx'))).toBe(false);
  });

  it('names the environment variable a bad output or log format came from', () => {
    const dir = tmp();
    let r = reaper(['runs', '--state', `sqlite:${path.join(dir, 's.db')}`], { cwd: dir, env: { REAPER_OUTPUT: 'yaml' } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('reaper: $REAPER_OUTPUT: table or json (got "yaml")');
    r = reaper(['runs', '--state', `sqlite:${path.join(dir, 's.db')}`, '--output', 'json'], { cwd: dir, env: { REAPER_OUTPUT: 'json' } });
    expect(r.code).toBe(0);
    r = reaper(['audit', '--state', `sqlite:${path.join(dir, 's.db')}`], { cwd: dir, env: { REAPER_LOG_FORMAT: 'xml' } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('reaper: $REAPER_LOG_FORMAT: text or json (got "xml")');
  });

  it('exits 3 with a clear message when a backend cannot be read', () => {
    const dir = tmp();
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(manifest, 'version: 1\nresources:\n  - name: gone\n    fs: { path: ./missing }\n    owner: { pathPattern: "^(?<owner>[^/]+)/" }\n');
    const r = reaper(['audit', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`cannot read the directory ${path.join(dir, 'missing')}: it does not exist (ENOENT): create it, or point the type's \`fs: { path }\` at the directory to audit`);
    writeFileSync(path.join(dir, 'missing'), 'a file');
    const file = reaper(['audit', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(file.code).toBe(3);
    expect(file.stderr).toContain('it is not a directory (ENOTDIR)');
  });

  it('demo prints a table with live and orphaned resources', () => {
    const dir = tmp();
    const r = reaper(['demo'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/scratch-uploads\s*│\s*fs\s*│\s*10\s*│\s*2\s*│\s*5\s*│/);
    expect(r.stdout).toContain('owner-dead');
    expect(r.stdout).toContain('no-owner');
    expect(existsSync(path.join(dir, 'reaper-demo', '.reaper', 'state.db'))).toBe(true);
  });

  it('audit --output json on the demo follows the audit document format', () => {
    const dir = tmp();
    expect(reaper(['demo'], { cwd: dir }).code).toBe(0);
    const findings = path.join(dir, 'findings.ndjson');
    const r = reaper(['audit', '-c', 'reaper-demo/reaper.yaml', '--output', 'json', '--findings', findings], { cwd: dir });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ version: 1, runId: expect.any(String) });
    expect(doc.summary).toMatchObject({ scanned: 13, live: 3, orphaned: 6, expired: 2, protected: 1, young: 1 });
    const scratch = doc.resources.find((x: { name: string }) => x.name === 'scratch-uploads');
    expect(scratch).toMatchObject({ backend: 'fs', scanned: 10, live: 2, orphaned: 5, expired: 1, protected: 1, young: 1, backlog: 0 });
    for (const key of ['orphanBytes', 'avgAgeBeyondTtlSeconds', 'backlog']) expect(scratch).toHaveProperty(key);
    expect(scratch.orphanBytes).toBe(65_536 * 2 + 12_000 + 300_000 + 777);
    expect(doc.leases).toMatchObject({ active: 3, renewalFailureRate: 0 });
    expect(doc.findings).toHaveLength(10);
    for (const f of doc.findings) {
      for (const key of ['resource', 'id', 'status', 'reason', 'owner', 'ageSeconds', 'bytes']) expect(f).toHaveProperty(key);
      expect(f.status).not.toBe('live');
    }
    expect(doc.findings).toContainEqual(expect.objectContaining({ id: 'bob/chunk-1.part', status: 'orphaned', reason: 'owner-dead', owner: 'session:bob' }));
    expect(doc.findings).toContainEqual(expect.objectContaining({ id: 'stray.part', status: 'orphaned', reason: 'no-owner', owner: null }));
    const lines = readFileSync(findings, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(10);
  });

  it('lease acquire / list / renew / release round trip in JSON', () => {
    const dir = tmp();
    const state = `sqlite:${path.join(dir, 'state.db')}`;
    const acquired = reaper(['lease', 'acquire', 'session:x', '--ttl', '60s', '--holder', 'svc', '--state', state, '--output', 'json'], { cwd: dir });
    expect(acquired.code).toBe(0);
    const lease = JSON.parse(acquired.stdout);
    expect(lease).toMatchObject({ key: 'session:x', holder: 'svc', generation: 1, leaseId: expect.any(String), expiresAt: expect.any(String) });
    const listed = JSON.parse(reaper(['lease', 'list', '--state', state, '--output', 'json'], { cwd: dir }).stdout);
    expect(listed.map((l: { leaseId: string }) => l.leaseId)).toEqual([lease.leaseId]);
    const renewed = reaper(['lease', 'renew', lease.leaseId, '--ttl', '120s', '--state', state, '--output', 'json'], { cwd: dir });
    expect(renewed.code).toBe(0);
    expect(JSON.parse(renewed.stdout).ttlSeconds).toBe(120);
    expect(reaper(['lease', 'release', lease.leaseId, '--state', state, '--output', 'json'], { cwd: dir }).code).toBe(0);
    const late = reaper(['lease', 'renew', lease.leaseId, '--state', state], { cwd: dir });
    expect(late.code).toBe(3);
    expect(late.stderr).toContain('released');
    expect(JSON.parse(reaper(['lease', 'list', '--state', state, '--output', 'json'], { cwd: dir }).stdout)).toEqual([]);

    // The released lease is history: `lease list --all` shows it until it is pruned.
    expect(JSON.parse(reaper(['lease', 'list', '--all', '--state', state, '--output', 'json'], { cwd: dir }).stdout)).toHaveLength(1);
    expect(JSON.parse(reaper(['lease', 'prune', '--state', state, '--output', 'json'], { cwd: dir }).stdout)).toEqual({ pruned: 0, olderThanSeconds: 604_800 });
    const pruned = reaper(['lease', 'prune', '--older-than', '0s', '--state', state, '--output', 'table'], { cwd: dir });
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toContain('pruned 1 lease that ended more than 0s ago');
    expect(JSON.parse(reaper(['lease', 'list', '--all', '--state', state, '--output', 'json'], { cwd: dir }).stdout)).toEqual([]);
    const bad = reaper(['lease', 'prune', '--older-than', 'soon', '--state', state], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--older-than');
  });

  /** A files type holding one file, gone/a.part, owned by a dead owner; `grace` as given. */
  function restoreSandbox(grace: string): string {
    const dir = tmp();
    mkdirSync(path.join(dir, 'scratch/gone'), { recursive: true });
    writeFileSync(path.join(dir, 'scratch/gone/a.part'), 'x');
    writeFileSync(
      path.join(dir, 'reaper.yaml'),
      [
        'version: 1',
        'state: sqlite:state.db',
        `defaults: { minAge: 0s, grace: ${grace}, maxDeleteFraction: 1 }`,
        'owners: [{ static: ["alive"] }]',
        'resources:',
        '  - name: scratch',
        '    fs: { path: ./scratch }',
        '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
        '',
      ].join('\n'),
    );
    return dir;
  }

  it('restore says of a deleted file the backend kept no copy of why, in one line without nested parentheses', () => {
    const dir = restoreSandbox('0s');
    expect(reaper(['reap', '--execute', '--output', 'json'], { cwd: dir }).code).toBe(0);
    const swept = reaper(['reap', '--execute', '--output', 'json'], { cwd: dir });
    expect((JSON.parse(swept.stdout) as { outcomes: { deleted: number } }).outcomes.deleted).toBe(1);
    const r = reaper(['restore', '--run', (JSON.parse(swept.stdout) as { runId: string }).runId, '--output', 'table'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    // What the files backend needs to keep a copy, by its keys in docs/manifest.md: quarantine and retain.
    expect(r.stdout).toBe('not-restorable scratch gone/a.part: the backend kept no copy; to keep the files later runs delete, set quarantine and retain on the type\n');
  });

  it('restore: a run or an id the state store does not know is a usage error (exit 2) naming it', () => {
    const dir = restoreSandbox('1h');
    const reap = reaper(['reap', '--execute', '--output', 'json'], { cwd: dir });
    expect(reap.code, reap.stderr).toBe(0);
    const runId = (JSON.parse(reap.stdout) as { runId: string }).runId;

    const run = reaper(['restore', '--run', 'bogus-run', '--output', 'json'], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/no run "bogus-run" in the state store/);
    const id = reaper(['restore', '--id', 'gone/nothing.part', '--output', 'json'], { cwd: dir });
    expect(id.code).toBe(2);
    expect(id.stderr).toMatch(/no tombstone for id "gone\/nothing\.part"/);
    const typed = reaper(['restore', '--resource', 'scratch', '--id', 'gone/a.part', '--run', 'bogus-run'], { cwd: dir });
    expect(typed.code).toBe(2);
    // Nothing was recorded for the refused restores: the reap is still the only run.
    expect((JSON.parse(reaper(['runs', '--output', 'json'], { cwd: dir }).stdout) as unknown[]).length).toBe(1);

    // A known run and id restore, and a second time there is nothing left to restore: exit 0.
    const lifted = reaper(['restore', '--run', runId, '--id', 'gone/a.part', '--output', 'json'], { cwd: dir });
    expect(lifted.code, lifted.stderr).toBe(0);
    expect(JSON.parse(lifted.stdout)).toEqual({ items: [{ resource: 'scratch', id: 'gone/a.part', action: 'lifted' }] });
    const again = reaper(['restore', '--run', runId, '--output', 'json'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ items: [] });
  });
});
