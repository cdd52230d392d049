/**
 * Daily use, as a terminal user, a cron job and a CI gate see it: each test spawns the built
 * CLI and asserts what it prints, writes and how it exits.
 */
import { mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

/** A files type in `dir`: `files` (relative path → age in seconds) under ./scratch, owners from the first directory, no leases. */
function filesManifest(dir: string, files: Record<string, number>, head: string[] = []): string {
  for (const [rel, age] of Object.entries(files)) {
    const file = path.join(dir, 'scratch', rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, 'x');
    const t = (Date.now() - age * 1000) / 1000;
    utimesSync(file, t, t);
  }
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(manifest, ['version: 1', ...head, 'resources:', '  - name: scratch', '    fs: { path: ./scratch }', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }', ''].join('\n'));
  return manifest;
}

describe('the findings listed are the ones that matter', () => {
  it('the terminal table and the Markdown summary lead with the orphans, even past the findings the JSON document keeps', () => {
    const dir = tmp();
    // Scanned in name order: five young files first, the orphan last.
    const files: Record<string, number> = { 'z/abandoned.part': 2 * 86_400 };
    for (let i = 1; i <= 5; i++) files[`a/young-${i}.part`] = 10;
    const manifest = filesManifest(dir, files);
    const r = reaper(['audit', '-c', manifest, '--output', 'table', '--max-findings', '2', '--summary', 'summary.md'], { cwd: dir });
    expect(r.code).toBe(0);
    const table = r.stdout.slice(r.stdout.indexOf('│ id'));
    expect(table).toContain('z/abandoned.part');
    expect(table.indexOf('z/abandoned.part')).toBeLessThan(table.indexOf('a/young-'));
    const md = readFileSync(path.join(dir, 'summary.md'), 'utf8');
    expect(md).toContain('### Findings (6)');
    expect(md.indexOf('z/abandoned.part')).toBeGreaterThan(0);
    expect(md.indexOf('z/abandoned.part')).toBeLessThan(md.indexOf('a/young-'));
  });

  it('the JSON document past --max-findings keeps the most pressing, in scan order', () => {
    const dir = tmp();
    const files: Record<string, number> = { 'y/older.part': 3 * 86_400, 'z/abandoned.part': 2 * 86_400 };
    for (let i = 1; i <= 5; i++) files[`a/young-${i}.part`] = 10;
    const manifest = filesManifest(dir, files);
    const r = reaper(['audit', '-c', manifest, '--output', 'json', '--max-findings', '3'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { findings: { id: string; status: string }[]; findingsTotal: number; findingsTruncated: boolean };
    expect(doc).toMatchObject({ findingsTotal: 7, findingsTruncated: true });
    // Both orphans, then the oldest of the young ones (a tie: the first scanned), listed as scanned.
    expect(doc.findings.map((f) => f.id)).toEqual(['a/young-1.part', 'y/older.part', 'z/abandoned.part']);
  });
});

describe('an output file that cannot be one is a usage error, before anything is scanned', () => {
  // `--summary "$GITHUB_STEP_SUMMARY"` run outside GitHub Actions gives an empty name, which resolves to the working directory.
  const cases: [string, string[]][] = [
    ['--summary', ['audit', '--summary', '']],
    ['--junit', ['audit', '--junit', '']],
    ['--metrics-file', ['audit', '--metrics-file', '']],
    ['--findings', ['audit', '--findings', '']],
    ['--html', ['audit', '--html', '']],
    ['--plan-out', ['reap', '--plan-out', '']],
    ['--summary', ['reap', '--summary', ' ']],
  ];
  for (const [flag, args] of cases) {
    it(`${args[0]} ${flag} "${args[2]}": exit 2, naming the flag, no state store created`, () => {
      const dir = tmp();
      const manifest = filesManifest(dir, { 'z/old.part': 86_400 });
      const r = reaper([...args, '-c', manifest], { cwd: dir });
      expect(r.stderr).toContain(`reaper: ${flag}: the file name is empty`);
      expect(r.code).toBe(2);
      expect(() => readFileSync(path.join(dir, '.reaper', 'state.db'))).toThrow(/ENOENT/);
    });
  }

  // `-` is stdout to many tools; here stdout carries the run's own output, and a file named "-" would be a surprise.
  for (const [command, flag] of [['audit', '--findings'], ['audit', '--html'], ['audit', '--junit'], ['audit', '--summary'], ['reap', '--metrics-file'], ['reap', '--plan-out'], ['reap', '--html']]) {
    it(`${command} ${flag} -: exit 2, no file named "-", nothing contacted`, () => {
      const dir = tmp();
      const manifest = filesManifest(dir, { 'z/old.part': 86_400 });
      const r = reaper([command!, flag!, '-', '-c', manifest], { cwd: dir });
      expect(r.stderr).toContain(`reaper: ${flag}: "-" is not stdout here`);
      expect(r.code).toBe(2);
      expect(() => readFileSync(path.join(dir, '-'))).toThrow(/ENOENT/);
      expect(() => readFileSync(path.join(dir, '.reaper', 'state.db'))).toThrow(/ENOENT/);
    });
  }

  it('reap --plan-out into a directory that does not exist: exit 2 naming the flag and the directory, before the scan', () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 86_400 });
    const r = reaper(['reap', '-c', manifest, '--plan-out', 'plans/today.plan'], { cwd: dir });
    expect(r.stderr).toContain(`reaper: --plan-out: the directory ${path.join(dir, 'plans')} does not exist`);
    expect(r.code).toBe(2);
    expect(() => readFileSync(path.join(dir, '.reaper', 'state.db'))).toThrow(/ENOENT/);
  });
});

describe('runs in JSON: times as ISO-8601 strings, as in the audit and reap documents and lease list', () => {
  const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
  it('runs and runs show give startedAt, finishedAt, heartbeatAt and aliveUntil (and journal times) as the audit document does', () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 2 * 86_400 }, ['defaults: { grace: 0s, maxDeleteFraction: 1 }', 'owners:', '  - static: ["someone-else"]']);
    const audit = JSON.parse(reaper(['audit', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as { runId: string; startedAt: string; finishedAt: string };
    for (let i = 0; i < 2; i++) expect(reaper(['reap', '-c', manifest, '--execute'], { cwd: dir }).code).toBe(0);
    type Row = { runId: string; startedAt: unknown; finishedAt: unknown; heartbeatAt: unknown; aliveUntil: unknown };
    const runs = JSON.parse(reaper(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as Row[];
    expect(runs).toHaveLength(3);
    for (const run of runs) for (const field of ['startedAt', 'finishedAt', 'heartbeatAt', 'aliveUntil'] as const) expect(run[field], `${run.runId} ${field}`).toMatch(ISO);
    // The same instant the audit's own document gave.
    expect(runs.find((r) => r.runId === audit.runId)!.startedAt).toBe(audit.startedAt);
    const sweep = runs[0]!;
    const show = JSON.parse(reaper(['runs', 'show', sweep.runId, '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as { run: Row; counts: Record<string, number>; journal: { outcome: string; at: unknown }[] };
    expect(show.run).toMatchObject({ runId: sweep.runId, startedAt: sweep.startedAt, finishedAt: sweep.finishedAt });
    expect(show.counts).toEqual({ deleted: 1 });
    expect(show.journal.map((j) => j.outcome)).toEqual(['deleted']);
    expect(show.journal[0]!.at).toMatch(ISO);
  });
});

describe('a run refused by a held lock says whose it is and until when', () => {
  it('after a run was killed (kill -9, an OOM kill), the next one names that run and when its lock lapses', () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 2 * 86_400 }, ['owners:', '  - static: ["someone-else"]']);
    // Killed with SIGKILL once its plan is written: the lock it took stays until its ttl runs out.
    const killed = reaper(['reap', '-c', manifest, '--execute', '--lock-ttl', '10m'], { cwd: dir, env: { REAPER_FAILPOINT: 'after-plan' } });
    expect(killed.code).toBe(null);
    const runs = JSON.parse(reaper(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as { runId: string; status: string }[];
    const holder = runs.find((r) => r.status === 'running')!.runId;
    const r = reaper(['reap', '-c', manifest, '--execute'], { cwd: dir });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`holds the lock on scratch \\(run ${holder}, until \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ by the store's clock\\)`));
    expect(r.stderr).toContain('a run killed without releasing it');
  });

  it('after a run stopped at once by a second signal, the next one says so and why its lock is kept until it lapses', async () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 2 * 86_400 }, ['owners:', '  - static: ["someone-else"]']);
    expect(reaper(['reap', '-c', manifest, '--execute', '--lock-ttl', '10m'], { cwd: dir, env: { REAPER_FAILPOINT: 'after-plan' } }).code).toBe(null);
    const runs = JSON.parse(reaper(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as { runId: string; status: string }[];
    const holder = runs.find((r) => r.status === 'running')!.runId;
    // What a second signal records on its way out: the run interrupted, its lock left to lapse.
    const { openStateStore } = await import('../../src/state/open.js');
    const { HARD_STOP_ERROR } = await import('../../src/run/recorded-run.js');
    const store = await openStateStore(`sqlite:${path.join(dir, '.reaper', 'state.db')}`);
    await store.finishRun(holder, { status: 'interrupted', error: HARD_STOP_ERROR });
    await store.close();
    const r = reaper(['reap', '-c', manifest, '--execute'], { cwd: dir });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`run ${holder} ended interrupted (stopped at once by a second signal) without releasing it`);
    expect(r.stderr).toContain('kept until then so that what it had in flight settles first');
    expect(r.stderr).not.toContain('kill -9');
  });
});

describe('reaper init: a starting manifest', () => {
  it('writes ./reaper.yaml that validates as written and audits its directory, and never overwrites one', () => {
    const dir = tmp();
    const r = reaper(['init'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${path.join(dir, 'reaper.yaml')}`);
    expect(r.stdout).toContain('then `reaper validate`\n');
    const text = readFileSync(path.join(dir, 'reaper.yaml'), 'utf8');
    // The other kinds are there to uncomment, each as docs/manifest.md writes it.
    expect(text).toMatch(/#\s+s3: \{/);
    expect(text).toMatch(/#\s+postgres: \{/);
    // Its files type's directory is made beside it (empty), so the next steps work as written.
    expect(r.stdout).toContain('and an empty ./scratch for its files type');
    expect(readdirSync(path.join(dir, 'scratch'))).toEqual([]);
    expect(reaper(['validate', '--offline', '--output', 'table'], { cwd: dir }).code).toBe(0);
    expect(reaper(['validate', '--output', 'table'], { cwd: dir }).code).toBe(0);
    expect(reaper(['audit', '--output', 'json'], { cwd: dir }).code).toBe(0);

    const again = reaper(['init'], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${path.join(dir, 'reaper.yaml')} exists; init never overwrites a manifest`);
    expect(readFileSync(path.join(dir, 'reaper.yaml'), 'utf8')).toBe(text);
  });

  it('prints the manifest with - and writes another file name when given one', () => {
    const dir = tmp();
    const out = reaper(['init', '-'], { cwd: dir });
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^# reaper manifest/);
    expect(reaper(['init', 'ci/reaper.yaml'], { cwd: dir }).stderr).toContain('init: the directory');
    const other = reaper(['init', 'other.yaml'], { cwd: dir });
    expect(other.code).toBe(0);
    // The next step it names finds that file.
    expect(other.stdout).toContain('then `reaper validate -c other.yaml`');
    expect(reaper(['validate', '--offline', '-c', 'other.yaml'], { cwd: dir }).code).toBe(0);
  });

  it('the error for a missing manifest points at it', () => {
    const r = reaper(['audit'], { cwd: tmp() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('`reaper init` writes one to start from');
  });
});

describe('cron: stdout to /dev/null leaves nothing when all went well', () => {
  it('a clean audit and reap --execute write nothing on stderr; a failing one does', () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 2 * 86_400, 'a/new.part': 10 }, ['owners:', '  - static: ["session:a"]']);
    for (const args of [['audit'], ['reap', '--execute'], ['reap', '--execute', '--quiet']]) {
      const r = reaper([...args, '-c', manifest], { cwd: dir });
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stderr, args.join(' ')).toBe('');
    }
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('./scratch', './gone'));
    const failed = reaper(['reap', '-c', manifest, '--execute'], { cwd: dir });
    expect(failed.code).toBe(3);
    expect(failed.stderr).toContain('gone');
  });
});

describe('explain of an id that is not one', () => {
  it('a path pasted from the manifest\'s directory is named in the form the type\'s ids take, in the table and in the JSON document', () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 2 * 86_400 });
    const r = reaper(['explain', '-c', manifest, 'scratch', 'scratch/z/old.part', '--output', 'table'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('not found');
    expect(r.stdout).toContain(`ids of scratch are paths relative to ${path.join(dir, 'scratch')} (did you mean z/old.part?)`);
    // Not found keeps its exit code (0); JSON is what a script reads, and it gets the suggestion too.
    const json = reaper(['explain', '-c', manifest, 'scratch', 'scratch/z/old.part', '--output', 'json'], { cwd: dir });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: 'scratch/z/old.part', found: false, suggestions: ['z/old.part'] });
    // A real id says nothing of the kind, and suggests nothing.
    const found = reaper(['explain', '-c', manifest, 'scratch', 'z/old.part', '--output', 'table'], { cwd: dir });
    expect(found.stdout).not.toContain('ids of scratch');
    const plain = JSON.parse(reaper(['explain', '-c', manifest, 'scratch', 'z/old.part', '--output', 'json'], { cwd: dir }).stdout) as { id: string; found: boolean; suggestions: string[]; given?: string };
    expect(plain).toMatchObject({ id: 'z/old.part', found: true, suggestions: [] });
    expect(plain.given).toBeUndefined();
  });

  it('a path no files id can be (absolute inside the root, or with ./ or .. in it) is explained as the id it names', () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 2 * 86_400, 'stray.part': 2 * 86_400 });
    mkdirSync(path.join(dir, 'elsewhere'));
    const cases: [string, string, string][] = [
      // given, from where, the id it names
      [path.join(dir, 'scratch', 'z', 'old.part'), dir, 'z/old.part'],
      ['./stray.part', dir, 'stray.part'],
      ['./z/../stray.part', dir, 'stray.part'],
      // From inside the root, as a shell would read it: relative to where the command runs.
      ['./old.part', path.join(dir, 'scratch', 'z'), 'z/old.part'],
      ['../stray.part', path.join(dir, 'scratch', 'z'), 'stray.part'],
    ];
    for (const [given, cwd, id] of cases) {
      const json = reaper(['explain', '-c', manifest, 'scratch', given, '--output', 'json'], { cwd });
      expect(json.code, `${given}: ${json.stderr}`).toBe(0);
      expect(JSON.parse(json.stdout), given).toMatchObject({ id, given, found: true, finding: { status: 'orphaned' } });
      const table = reaper(['explain', '-c', manifest, 'scratch', given, '--output', 'table'], { cwd });
      expect(table.stdout, given).toMatch(new RegExp(`^scratch "${id.replace(/[./]/g, '\\$&')}": orphaned`));
      expect(table.stdout, given).toContain(`(given as "${given}"; ids of scratch are paths relative to ${path.join(dir, 'scratch')})`);
    }
    // Written from here and naming a file here, outside the root: that file is meant, not the
    // type's file at the same path inside the root (only a suggestion).
    mkdirSync(path.join(dir, 'z'));
    writeFileSync(path.join(dir, 'z', 'old.part'), 'mine, not the type\'s');
    const mine = reaper(['explain', '-c', manifest, 'scratch', './z/old.part', '--output', 'json'], { cwd: dir });
    expect(JSON.parse(mine.stdout)).toMatchObject({ id: './z/old.part', found: false, suggestions: ['z/old.part'] });
    // A path outside the root names no id of the type: not found, and said why.
    const outside = reaper(['explain', '-c', manifest, 'scratch', path.join(dir, 'elsewhere', 'x.part'), '--output', 'json'], { cwd: dir });
    expect(outside.code).toBe(0);
    expect(JSON.parse(outside.stdout)).toMatchObject({ found: false, suggestions: [] });
  });
});

describe('flags other tools have', () => {
  it('--json and --dry-run say what reaper calls them, not "did you mean --job?"', () => {
    const dir = tmp();
    const manifest = filesManifest(dir, { 'z/old.part': 86_400 });
    const json = reaper(['audit', '-c', manifest, '--json'], { cwd: dir });
    expect(json.code).toBe(2);
    expect(json.stderr).toBe('reaper: --json: write --output json (or -o json)\n');
    const table = reaper(['runs', '--table', '-c', manifest], { cwd: dir });
    expect(table.stderr).toBe('reaper: --table: write --output table (or -o table)\n');
    const dry = reaper(['reap', '--dry-run', '-c', manifest], { cwd: dir });
    expect(dry.code).toBe(2);
    expect(dry.stderr).toBe('reaper: --dry-run: reap is a dry run unless --execute is given; leave --dry-run out\n');
    // Past `--`, or as an option's value, they are not flags.
    expect(reaper(['audit', '-c', manifest, '--owner', '--json', '--output', 'json'], { cwd: dir }).code).toBe(0);
  });
});
