/**
 * Daily use without surprises (the smaller items of issue 14): each test spawns the built
 * CLI the way a user would and asserts what it prints and how it exits.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredUnderCI } from './support/ci.js';
import { BIN, hasScript, reaper, reaperInPty, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

const ESC = String.fromCharCode(27);
/**
 * The lines a terminal shows, decoded as UTF-8: on each line, what follows the last return
 * to its first column (the spinner is erased that way before anything else is printed),
 * escape sequences removed.
 */
const visibleLines = (output: string) =>
  Buffer.from(output, 'latin1')
    .toString('utf8')
    .split('\n')
    .map((line) => line.replace(/\r$/, '').split(new RegExp(`\r|${ESC}\\[1G`)).pop()!.replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g'), ''));

const SCRATCH = ['  - name: scratch', '    fs: { path: ./scratch }', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }'];

/** reaper.yaml in `dir` (which gets an empty ./scratch): `head` lines, then `resources:` and the `resources` lines. */
function writeManifest(dir: string, head: string[], resources: string[] = SCRATCH): string {
  mkdirSync(path.join(dir, 'scratch'), { recursive: true });
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(manifest, ['version: 1', ...head, 'resources:', ...resources, ''].join('\n'));
  return manifest;
}

function demo(): { dir: string; manifest: string } {
  const dir = tmp();
  expect(reaper(['demo'], { cwd: dir }).code).toBe(0);
  return { dir, manifest: path.join(dir, 'reaper-demo', 'reaper.yaml') };
}

const haveScript = hasScript();
requiredUnderCI('the terminal-width tests', { script: { have: haveScript, hint: 'apt-get install bsdutils (util-linux `script` gives the CLI a pseudo-terminal)' } });

describe.skipIf(!haveScript)('tables fit the terminal', () => {
  let d: { dir: string; manifest: string };
  beforeAll(() => {
    d = demo();
  });

  for (const cols of [80, 50]) {
    it(`audit and a reap dry run on a ${cols}-column terminal: no line is wider`, () => {
      for (const args of [['audit', '-c', d.manifest], ['reap', '-c', d.manifest]]) {
        const r = reaperInPty(args, { cwd: d.dir, cols });
        expect(r.code).toBe(0);
        const lines = visibleLines(r.output);
        const widest = Math.max(...lines.map((l) => [...l].length));
        expect(widest, `${args[0]}: ${lines.find((l) => [...l].length > cols)}`).toBeLessThanOrEqual(cols);
        // Still every number: the two types and their orphan counts.
        expect(r.output).toContain('scratch-uploads');
        expect(r.output).toContain('report-exports');
      }
    });
  }
});

describe('reap --execute says what is pending', () => {
  it('after marking: how many tombstones wait, and the earliest sweep by the store clock plus grace', () => {
    const d = demo();
    const r = reaper(['reap', '-c', d.manifest, '--execute', '--output', 'table'], { cwd: d.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/scratch-uploads: 5 pending, earliest sweep at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    expect(r.stdout).toMatch(/report-exports: 1 pending, earliest sweep at \d{4}-\d\d-\d\dT/);
    const json = JSON.parse(reaper(['reap', '-c', d.manifest, '--execute', '--output', 'json'], { cwd: d.dir }).stdout);
    const scratch = json.resources.find((x: { name: string }) => x.name === 'scratch-uploads');
    expect(scratch.outcomes).toMatchObject({ marked: 0, deleted: 0 });
    expect(scratch.pending.count).toBe(5);
    // The grace is 2d: the earliest sweep is about two days after the first run's marks.
    const due = Date.parse(scratch.pending.earliestSweepAt) - Date.now();
    expect(due).toBeGreaterThan(47 * 3_600_000);
    expect(due).toBeLessThanOrEqual(48 * 3_600_000);
  });
});

describe('messages', () => {
  it('a failed liveness source is named once', () => {
    const dir = tmp();
    const manifest = writeManifest(dir, [
      'connections:',
      '  main-db: { kind: postgres, url: "postgres://postgres@127.0.0.1:9/none" }',
      'owners:',
      '  - leases: {}',
      '  - sql: { connection: main-db, query: "SELECT 1::text" }',
    ]);
    const audit = reaper(['audit', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(audit.code).toBe(3);
    expect(audit.stderr).toMatch(/sql:main-db#1 failed .*: connect ECONNREFUSED/);
    expect(audit.stderr).not.toContain('sql:main-db#1: sql:main-db#1');
    const validate = reaper(['validate', '-c', manifest, '--output', 'table'], { cwd: dir });
    expect(validate.stdout).toMatch(/FAIL sql:main-db#1: connect ECONNREFUSED/);
    expect(validate.stdout).not.toContain('sql:main-db#1: sql:main-db#1');
  });

  it('a run about to create the SQLite store --state or $REAPER_STATE names says so: a mistyped path would judge lease owners against no leases', () => {
    const d = demo();
    const typo = path.join(d.dir, 'reaper-demo', '.reaper', 'stat.db');
    for (const command of ['audit', 'reap']) {
      const fresh = reaper([command, '-c', d.manifest, '--state', `sqlite:${typo}`, '--output', 'json'], { cwd: d.dir });
      // The audit judges against no leases; the reap is stopped by the outage breaker (no live lease keys).
      expect(fresh.code, command).toBe(command === 'audit' ? 0 : 4);
      expect(fresh.stderr, command).toContain(`reaper: warning: no state store at ${typo} yet (--state): this run creates it, with no leases`);
      // The store it names now exists: the next run says nothing.
      const again = reaper([command, '-c', d.manifest, '--state', `sqlite:${typo}`, '--output', 'json'], { cwd: d.dir });
      expect(again.stderr, command).not.toContain('warning: no state store');
      rmSync(typo, { force: true });
      for (const tail of ['-wal', '-shm']) rmSync(`${typo}${tail}`, { force: true });
    }
    // $REAPER_STATE alike.
    const viaEnv = reaper(['audit', '-c', d.manifest, '--output', 'json'], { cwd: d.dir, env: { REAPER_STATE: `sqlite:${typo}` } });
    expect(viaEnv.stderr).toContain(`reaper: warning: no state store at ${typo} yet ($REAPER_STATE)`);
    // The demo's own store exists, and a manifest's own new store is the usual first run: no warning.
    expect(reaper(['audit', '-c', d.manifest, '--output', 'json'], { cwd: d.dir }).stderr).not.toContain('warning: no state store');
    const first = tmp();
    const manifest = writeManifest(first, ['state: sqlite:.reaper/state.db']);
    expect(reaper(['audit', '-c', manifest, '--output', 'json'], { cwd: first }).stderr).toBe('');
  });

  it('a reap whose plan spool cannot go in TMPDIR says so and exits 2 before it starts a run', () => {
    const d = demo();
    const runs = () => JSON.parse(reaper(['runs', '-c', d.manifest, '--output', 'json'], { cwd: d.dir }).stdout).length;
    const before = runs();
    const missing = path.join(d.dir, 'no-such-tmp');
    const file = path.join(d.dir, 'reaper.yaml.tmp-is-a-file');
    writeFileSync(file, '');
    for (const [dir, why] of [
      [missing, 'ENOENT'],
      [file, 'is not a directory'],
    ] as const) {
      for (const args of [['reap'], ['reap', '--execute']]) {
        const r = reaper([...args, '-c', d.manifest], { cwd: d.dir, env: { TMPDIR: dir } });
        expect(r.code, `${args.join(' ')} TMPDIR=${dir}`).toBe(2);
        expect(r.stderr).toContain(`the reap plan is spooled in the temporary directory (TMPDIR), and ${dir}`);
        expect(r.stderr).toContain(why);
        expect(r.stderr).toContain('--plan-out FILE');
      }
    }
    // With --plan-out the spool is not used: the dry run goes ahead.
    expect(reaper(['reap', '-c', d.manifest, '--plan-out', path.join(d.dir, 'plan.ndjson')], { cwd: d.dir, env: { TMPDIR: missing } }).code).toBe(0);
    expect(runs()).toBe(before + 1);
  });

  it('an unknown --resource lists the valid names, for audit and reap alike, and exits 2', () => {
    const d = demo();
    for (const command of ['audit', 'reap']) {
      const r = reaper([command, '-c', d.manifest, '--resource', 'scratch-upload'], { cwd: d.dir });
      expect(r.code, command).toBe(2);
      expect(r.stderr).toContain('no resource type "scratch-upload"');
      expect(r.stderr).toContain('scratch-uploads, report-exports');
    }
  });

  it('-c DIR is a usage error (exit 2) naming the directory, like a missing file', () => {
    const d = demo();
    const dirArg = path.dirname(d.manifest);
    const r = reaper(['audit', '-c', dirArg], { cwd: d.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(dirArg);
    expect(r.stderr).toMatch(/is a directory/);
    expect(r.stderr).not.toContain('EISDIR: illegal operation');
    expect(reaper(['audit', '-c', path.join(dirArg, 'missing.yaml')], { cwd: d.dir }).code).toBe(2);
  });

  it('a typo in a connection or state URL scheme is a manifest error (exit 2) with file, line and key; nothing is contacted', () => {
    const dir = tmp();
    const write = (lines: string[]) => writeManifest(dir, lines);
    const manifest = path.join(dir, 'reaper.yaml');
    write(['connections:', '  main-db: { kind: postgres, url: "postgress://postgres@127.0.0.1/x" }', 'owners:', '  - sql: { connection: main-db, query: "SELECT 1::text" }']);
    let r = reaper(['audit', '-c', manifest], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${manifest}:3: connections.main-db.url:`);
    expect(r.stderr).toContain('postgress://');
    write(['connections:', '  legacy: { kind: mysql, url: "mariadb://root@127.0.0.1/x" }']);
    r = reaper(['validate', '-c', manifest], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${manifest}:3: connections.legacy.url:`);
    write(['connections:', '  blobs: { kind: s3, endpoint: "htp://127.0.0.1:9000" }']);
    r = reaper(['validate', '-c', manifest], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${manifest}:3: connections.blobs.endpoint:`);
    write(['state: "postgress://postgres@127.0.0.1/x"']);
    r = reaper(['audit', '-c', manifest], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${manifest}:2: state:`);
    write([]);
    r = reaper(['audit', '-c', manifest, '--state', 'postgress://postgres@127.0.0.1/x'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('postgress://');
    expect(r.stderr).toMatch(/--state/);
  });

  it('--help and the code agree: --state, then $REAPER_STATE, then the manifest\'s state:', () => {
    const help = reaper(['audit', '--help']).stdout.replace(/\s+/g, ' ');
    expect(help).toContain("--state, then $REAPER_STATE, then the manifest's state:");
    const d = demo();
    const other = path.join(d.dir, 'other.db');
    // $REAPER_STATE wins over the manifest's state: the run is recorded there, not in the demo's store.
    expect(reaper(['audit', '-c', d.manifest, '--output', 'json'], { cwd: d.dir, env: { REAPER_STATE: `sqlite:${other}` } }).code).toBe(0);
    const runs = JSON.parse(reaper(['runs', '--state', `sqlite:${other}`, '--output', 'json'], { cwd: d.dir }).stdout);
    expect(runs.map((x: { kind: string }) => x.kind)).toEqual(['audit']);
  });

  it('the demo\'s "try next" lines work as printed, from a directory outside the clone it runs from', () => {
    // npx there would not find the clone's reaper, and would offer the npm registry's unrelated
    // `reaper` package: the lines call the clone's bin by its path instead.
    const dir = tmp();
    const r = reaper(['demo'], { cwd: dir });
    const tryNext = r.stdout.slice(r.stdout.indexOf('Try next:')).split('\n').slice(1).filter((l) => l.trim());
    expect(tryNext.length).toBeGreaterThan(3);
    for (const line of tryNext) {
      expect(line.trim().startsWith(`${BIN} `), line).toBe(true);
      const run = spawnSync('bash', ['-c', line.trim()], { cwd: dir, encoding: 'utf8', env: { PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '/tmp' } });
      expect(run.status, `${line}\n${run.stderr}`).toBe(0);
    }
  });
});

describe('${VAR}s are resolved where they are used', () => {
  const FULL = path.resolve(__dirname, '../../config/examples/full-manifest.yaml');

  it('lease and runs read only the state store: S3_ENDPOINT and DATABASE_URL need not be set', () => {
    const dir = tmp();
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(manifest, readFileSync(FULL, 'utf8'));
    const acquired = reaper(['lease', 'acquire', 'session:1', '--ttl', '1h', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(acquired.stderr).toBe('');
    expect(acquired.code).toBe(0);
    const listed = reaper(['lease', 'list', '-c', manifest, '--output', 'json'], { cwd: dir });
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).map((l: { key: string }) => l.key)).toEqual(['session:1']);
    expect(reaper(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).code).toBe(0);
    expect(reaper(['graph', '-c', manifest], { cwd: dir }).code).toBe(0);

    // audit uses the connections: each unset variable is named with file, line and key; exit 2, nothing contacted.
    const audit = reaper(['audit', '-c', manifest], { cwd: dir });
    expect(audit.code).toBe(2);
    const lineOf = (text: string) => readFileSync(FULL, 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;
    expect(audit.stderr).toContain(`${manifest}:${lineOf('blobs:')}: connections.blobs.endpoint: environment variable S3_ENDPOINT is not set`);
    expect(audit.stderr).toContain(`${manifest}:${lineOf('main-db:')}: connections.main-db.url: environment variable DATABASE_URL is not set`);
  });

  it('a command that uses the state store still needs its variable, named with file, line and key', () => {
    const dir = tmp();
    const manifest = writeManifest(dir, ['state: "${STATE_URL}"']);
    const r = reaper(['lease', 'list', '-c', manifest], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${manifest}:2: state: environment variable STATE_URL is not set`);
    // --state replaces the manifest's: its variable is not used then.
    expect(reaper(['lease', 'list', '-c', manifest, '--state', `sqlite:${path.join(dir, 's.db')}`, '--output', 'json'], { cwd: dir }).code).toBe(0);
  });

  it('audit --resource needs the variables of that type, its liveness sources and the state store only', () => {
    const dir = tmp();
    const manifest = writeManifest(
      dir,
      ['connections:', '  blobs: { kind: s3, endpoint: "${S3_ENDPOINT}", forcePathStyle: true }'],
      ['  - name: uploads', '    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }', '    owner: { metadata: owner }', ...SCRATCH],
    );
    const scratch = reaper(['audit', '-c', manifest, '--resource', 'scratch', '--output', 'json'], { cwd: dir });
    expect(scratch.stderr).toBe('');
    expect(scratch.code).toBe(0);
    expect(JSON.parse(scratch.stdout).resources.map((r: { name: string }) => r.name)).toEqual(['scratch']);
    const uploads = reaper(['reap', '-c', manifest, '--resource', 'uploads'], { cwd: dir });
    expect(uploads.code).toBe(2);
    expect(uploads.stderr.trim()).toBe(`${manifest}:3: connections.blobs.endpoint: environment variable S3_ENDPOINT is not set`);
  });
});

describe('every command prints the same way', () => {
  it('validate and simulate: JSON through a pipe is one compact line, as audit and reap print it', () => {
    const d = demo();
    const validate = reaper(['validate', '-c', d.manifest, '--offline', '--output', 'json'], { cwd: d.dir });
    expect(validate.code).toBe(0);
    expect(validate.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(validate.stdout)).toMatchObject({ ok: true });
    const scenario = path.join(d.dir, 's.yaml');
    writeFileSync(scenario, ['version: 1', 'duration: 5m', 'services: 2', 'workload:', '  creations: 20', '  lifetime: { dist: fixed, value: 1m }', ''].join('\n'));
    const simulate = reaper(['simulate', scenario, '--strategy', 'leases', '--output', 'json'], { cwd: d.dir });
    expect(simulate.code).toBe(0);
    expect(simulate.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(simulate.stdout)).toMatchObject({ kind: 'simulate' });
  });

  it('explain gives an age as every other command does (5.0h), not in seconds', () => {
    const d = demo();
    const r = reaper(['explain', '-c', d.manifest, 'scratch-uploads', 'bob/chunk-1.part', '--output', 'table'], { cwd: d.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^scratch-uploads "bob\/chunk-1\.part": orphaned \(owner-dead\), age 5\.\dh\n/);
  });

  it('at 60 columns each block of the summary wraps between fields, never inside one, and has no blank line', () => {
    const d = demo();
    const r = reaper(['audit', '-c', d.manifest, '--output', 'table'], { cwd: d.dir, env: { COLUMNS: '60' } });
    expect(r.code).toBe(0);
    const summary = r.stdout.slice(0, r.stdout.indexOf('\nleases: '));
    const lines = summary.split('\n');
    expect(lines.filter((l) => l.trim() === '')).toEqual([]);
    expect(lines.filter((l) => !l.startsWith('  '))).toEqual(['scratch-uploads  fs', 'report-exports  fs', 'total']);
    const field = /^(scanned|live|orphaned|expired|protected|young|unknown|backlog) \d+$|^orphan bytes \d+(\.\d)? (B|KiB|MiB)$|^beyond ttl \(avg\) [\d.]+[smhd]$/;
    for (const line of lines.filter((l) => l.startsWith('  '))) {
      expect([...line].length).toBeLessThanOrEqual(60);
      for (const part of line.slice(2).split(' · ')) expect(part, line).toMatch(field);
    }
    expect(summary).toContain('scanned 13');
  });

  it('runs --help says when a killed run shows abandoned: once a later audit or reap starts on that store', () => {
    const help = reaper(['runs', '--help']).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('shows `abandoned` once a later audit or reap on the same state store finds its heartbeat lapsed');
  });
});
