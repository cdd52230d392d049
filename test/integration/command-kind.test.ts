/**
 * The `command` kind through the built CLI (docs/resource-protocol.md): a handler over a
 * directory is audited and reaped through the whole pipeline (tombstone, grace, conditional
 * delete); a handler that declares `conditional: false` is refused without the per-type
 * opt-in and every plan says so; and handler output is hostile input — invalid JSON, a cut
 * answer, duplicate ids, a hang, a non-zero exit, gigabytes, a line too long, a delete answer
 * with ids it was not asked, twice or not at all — each a clear error for that type, nothing
 * deleted, the other type still reported (exit 3). Every handler is a real child process.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

const HANDLER = path.resolve(__dirname, 'support/handlers/dir-handler.mjs');
const OLD = new Date(Date.now() - 3 * 3_600_000).toISOString();

/** A directory `data/NAME` of JSON resources: `owner` → file. */
function seed(dir: string, name: string, files: Record<string, { owner?: string; protected?: boolean; createdAt?: string }>): void {
  const root = path.join(dir, 'data', name);
  mkdirSync(root, { recursive: true });
  for (const [id, doc] of Object.entries(files)) writeFileSync(path.join(root, id), JSON.stringify({ createdAt: OLD, ...doc }));
}

const good = (name: string, extra: string[] = []) => [
  `  - name: ${name}`,
  '    command:',
  `      list: [node, ${JSON.stringify(HANDLER)}, ./data/${name}]`,
  `      delete: [node, ${JSON.stringify(HANDLER)}, ./data/${name}]`,
  ...extra,
  '    owner: { attribute: owner, key: "session:{value}" }',
  '    protect: [{ attribute: { protected: "yes" } }]',
];

function manifest(dir: string, resources: string[][]): string {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(file, ['version: 1', 'defaults: { minAge: 1m, grace: 1s, maxDeleteFraction: 1 }', 'owners: [{ static: ["session:alice"] }]', 'resources:', ...resources.flat(), ''].join('\n'));
  return file;
}

const json = (stdout: string) => JSON.parse(stdout) as { resources: { name: string; status?: string; error?: string | null; scanned: number; orphaned?: number; deleteMode?: string; outcomes?: Record<string, number> }[]; errors?: string[] };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('command kind: the reap pipeline through a handler', () => {
  it('audits and reaps through the handler: only the orphan, after its grace; live and protected untouched', async () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' }, p1: { protected: true }, s1: {} });
    const m = manifest(dir, [good('things')]);
    const audit = reaper(['audit', '-c', m, '-o', 'json'], { cwd: dir });
    expect(audit.code, audit.stderr).toBe(0);
    const t = json(audit.stdout).resources[0]!;
    expect(t).toMatchObject({ name: 'things', status: 'ok', scanned: 4, orphaned: 2 });

    const mark = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
    expect(mark.code, mark.stderr).toBe(0);
    expect(json(mark.stdout).resources[0]).toMatchObject({ deleteMode: 'handler-conditional', outcomes: { marked: 2, deleted: 0 } });
    expect(readdirSync(path.join(dir, 'data/things')).sort()).toEqual(['a1', 'b1', 'p1', 's1']);
    // b1 changes after it was judged: its delete must come back `changed`, and it stays.
    writeFileSync(path.join(dir, 'data/things/b1'), JSON.stringify({ createdAt: OLD, owner: 'bob', more: 1 }));
    await sleep(1_200);
    const sweep = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(json(sweep.stdout).resources[0]!.outcomes).toMatchObject({ deleted: 1 });
    expect(readdirSync(path.join(dir, 'data/things')).sort()).toEqual(['a1', 'b1', 'p1']);
  });

  it('refuses to reap a handler that declares conditional: false unless the type opts in, and every plan says so', () => {
    const dir = tmp();
    seed(dir, 'things', { b1: { owner: 'bob' } });
    const m = manifest(dir, [good('things', ['      conditional: false'])]);
    const refused = reaper(['reap', '-c', m, '--execute'], { cwd: dir });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('things: the handler declares conditional: false');
    expect(refused.stderr).toContain('allowUnconditional: true');
    expect(readdirSync(path.join(dir, 'data/things'))).toEqual(['b1']);

    const allowed = manifest(dir, [good('things', ['      conditional: false', '      allowUnconditional: true'])]);
    const plan = reaper(['reap', '-c', allowed, '-o', 'json'], { cwd: dir });
    expect(plan.code, plan.stderr).toBe(0);
    expect(json(plan.stdout).resources[0]!.deleteMode).toBe('handler-UNCONDITIONAL (allowUnconditional)');
    const table = reaper(['reap', '-c', allowed, '-o', 'table'], { cwd: dir });
    expect(table.stdout).toContain('handler-UNCONDITIONAL');
    const validate = reaper(['validate', '-c', allowed], { cwd: dir });
    expect(validate.stdout + validate.stderr).toContain('deletes are NOT conditional');
  });
});

describe('command kind: a handler with a visible marker', () => {
  const marked = (dir: string, id: string) => (JSON.parse(readFileSync(path.join(dir, 'data/things', id), 'utf8')) as { reaperMark?: string }).reaperMark;
  const withMarks = (dir: string, live: string[]) => {
    const file = manifest(dir, [good('things', [`      mark: [node, ${JSON.stringify(HANDLER)}, ./data/things]`, `      unmark: [node, ${JSON.stringify(HANDLER)}, ./data/things]`])]);
    writeFileSync(file, readFileSync(file, 'utf8').replace('owners: [{ static: ["session:alice"] }]', `owners: [{ static: ${JSON.stringify(live)} }]`));
    return file;
  };

  it('marks a tombstoned resource, unmarks it when its owner comes back, and deletes on the fingerprint the mark answered', async () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const first = reaper(['reap', '-c', withMarks(dir, ['session:alice']), '--execute', '-o', 'json'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(json(first.stdout).resources[0]!.outcomes).toMatchObject({ marked: 1 });
    expect(marked(dir, 'b1')).toMatch(/\S/);
    expect(marked(dir, 'a1')).toBeUndefined();

    // bob is back by the time the tombstone is due: it is lifted and the marker removed.
    await sleep(1_200);
    const lifted = reaper(['reap', '-c', withMarks(dir, ['session:alice', 'session:bob']), '--execute', '-o', 'json'], { cwd: dir });
    expect(lifted.code, lifted.stderr).toBe(0);
    expect(json(lifted.stdout).resources[0]!.outcomes).toMatchObject({ lifted: 1 });
    expect(marked(dir, 'b1')).toBeUndefined();

    // bob is gone again: marked afresh, then swept — the delete carries the fingerprint after marking.
    expect(reaper(['reap', '-c', withMarks(dir, ['session:alice']), '--execute'], { cwd: dir }).code).toBe(0);
    expect(marked(dir, 'b1')).toMatch(/\S/);
    await sleep(1_200);
    const sweep = reaper(['reap', '-c', withMarks(dir, ['session:alice']), '--execute', '-o', 'json'], { cwd: dir });
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(json(sweep.stdout).resources[0]!.outcomes).toMatchObject({ deleted: 1 });
    expect(readdirSync(path.join(dir, 'data/things'))).toEqual(['a1']);
  });

  it('a reap that lifts a tombstone whose mark will not come off still lifts it; restore takes the mark off later', async () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    expect(reaper(['reap', '-c', withMarks(dir, ['session:alice']), '--execute'], { cwd: dir }).code).toBe(0);
    expect(marked(dir, 'b1')).toMatch(/\S/);

    // bob is back by the time the tombstone is due, but the handler's unmark fails.
    await sleep(1_200);
    const m = withMarks(dir, ['session:alice', 'session:bob']);
    const working = readFileSync(m, 'utf8');
    writeFileSync(m, working.replace(/( {6}unmark: ).*/, '$1[node, -e, "process.exit(5)"]'));
    const lifted = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
    expect(lifted.code, lifted.stderr).toBe(0);
    expect(json(lifted.stdout).resources[0]!.outcomes).toMatchObject({ lifted: 1, deleted: 0 });
    expect(marked(dir, 'b1')).toMatch(/\S/);

    writeFileSync(m, working);
    const restored = reaper(['restore', '-c', m, '--resource', 'things', '-o', 'table'], { cwd: dir });
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/^unmarked +things b1\n$/);
    expect(marked(dir, 'b1')).toBeUndefined();
  });

  /** Makes the run's tombstone writes fail (a store refusing the INSERT), or lets them through again. */
  const refuseTombstones = (dir: string, refuse: boolean) => {
    const db = new Database(path.join(dir, '.reaper/state.db'));
    db.exec(refuse ? `CREATE TRIGGER refuse_tombstones BEFORE INSERT ON tombstones BEGIN SELECT RAISE(ABORT, 'tombstones refused by the test'); END` : 'DROP TRIGGER refuse_tombstones');
    db.close();
  };

  it('a tombstone write that fails marks nothing, and the run fails as before', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' }, c1: { owner: 'carol' } });
    expect(reaper(['reap', '-c', withMarks(dir, ['session:alice', 'session:bob', 'session:carol']), '--execute'], { cwd: dir }).code).toBe(0);
    refuseTombstones(dir, true);
    const failed = reaper(['reap', '-c', withMarks(dir, ['session:alice']), '--execute', '--allow-liveness-drop'], { cwd: dir });
    expect(failed.code, failed.stderr).toBe(3);
    expect(failed.stderr).toContain('tombstones refused by the test');
    expect([marked(dir, 'b1'), marked(dir, 'c1')]).toEqual([undefined, undefined]);

    // With the store writing again, the orphans are marked and tombstoned as usual.
    refuseTombstones(dir, false);
    const again = reaper(['reap', '-c', withMarks(dir, ['session:alice']), '--execute', '--allow-liveness-drop', '-o', 'json'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(json(again.stdout).resources[0]!.outcomes).toMatchObject({ marked: 2 });
    expect(marked(dir, 'b1')).toMatch(/\S/);
  });

  /** The type's mark command made to mark as asked and then fail (exit 5): a mark that went on and threw. */
  const markThenFail = (file: string) =>
    writeFileSync(file, readFileSync(file, 'utf8').replace(/( {6}mark: )\[node, (.*), \.\/data\/things\]/, `$1[sh, -c, 'node $2 ./data/things >/dev/null; exit 5']`));
  const tombstonesOf = (dir: string, id: string) => {
    const db = new Database(path.join(dir, '.reaper/state.db'), { readonly: true });
    try {
      return db.prepare('SELECT state, note FROM tombstones WHERE resource_id = ? ORDER BY tombstone_id').all(id) as { state: string; note: string | null }[];
    } finally {
      db.close();
    }
  };

  // guard (applyMarks writes the tombstones before the mark, and a mark that fails lifts them and takes its marks off):
  // neither a tombstone nor a mark stays behind the failure.
  it('a mark that fails lifts the tombstones written before it and takes off the marks that went on; the run fails', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const m = withMarks(dir, ['session:alice']);
    const working = readFileSync(m, 'utf8');
    markThenFail(m);
    const failed = reaper(['reap', '-c', m, '--execute'], { cwd: dir });
    expect(failed.code, failed.stderr).toBe(3);
    expect(failed.stderr).toMatch(/mark command .* exited with status 5/);
    expect(marked(dir, 'b1')).toBeUndefined();
    expect(tombstonesOf(dir, 'b1')).toEqual([{ state: 'lifted', note: 'the mark failed' }]);

    writeFileSync(m, working);
    const again = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(json(again.stdout).resources[0]!.outcomes).toMatchObject({ marked: 1 });
    expect(marked(dir, 'b1')).toMatch(/\S/);
  });

  // guard (applyMarks reads back what the mark did not answer): a resource the mark refuses (here the
  // handler answers `error`) is not left as if it had changed: the run says so (exit 3), its fresh
  // tombstone is lifted as refused, and the next run tries again.
  it('a mark refused for one resource: the run says which (exit 3), the others are marked, and nothing passes for a change', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' }, c1: { owner: 'carol' } });
    const m = withMarks(dir, ['session:alice']);
    writeFileSync(path.join(dir, 'data/things/.refuse-marks'), 'b1\n');
    const first = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
    expect(first.code, first.stderr).toBe(3);
    expect(json(first.stdout).resources[0]!.outcomes).toMatchObject({ marked: 1, lifted: 0 });
    expect(first.stderr).toMatch(/things: 1 resource\(s\) could not be marked \(b1\)/);
    expect(marked(dir, 'b1')).toBeUndefined();
    expect(marked(dir, 'c1')).toMatch(/\S/);
    expect(tombstonesOf(dir, 'b1')).toEqual([{ state: 'lifted', note: 'the mark was refused' }]);

    rmSync(path.join(dir, 'data/things/.refuse-marks'));
    const again = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(json(again.stdout).resources[0]!.outcomes).toMatchObject({ marked: 1 });
    expect(marked(dir, 'b1')).toMatch(/\S/);
  });

  it('a mark that fails, with marks that will not come off: the error names them, and restore takes them off', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const m = withMarks(dir, ['session:alice']);
    const working = readFileSync(m, 'utf8');
    markThenFail(m);
    writeFileSync(m, readFileSync(m, 'utf8').replace(/( {6}unmark: ).*/, '$1[node, -e, "process.exit(5)"]'));
    const failed = reaper(['reap', '-c', m, '--execute'], { cwd: dir });
    expect(failed.code, failed.stderr).toBe(3);
    expect(failed.stderr).toMatch(/a visible mark may stay on 1 resource\(s\) of things \(b1\): .*; reaper restore --run \S+ takes it off/);
    expect(marked(dir, 'b1')).toMatch(/\S/);
    expect(tombstonesOf(dir, 'b1')).toEqual([{ state: 'lifted', note: 'the mark failed; its tombstone mark is still on it' }]);

    writeFileSync(m, working);
    const restored = reaper(['restore', '-c', m, '--resource', 'things', '-o', 'table'], { cwd: dir });
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/^unmarked +things b1\n$/);
    expect(marked(dir, 'b1')).toBeUndefined();
  });

  it('restore lifts a tombstone whose mark will not come off, says so (exit 3), and a rerun takes the mark off', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const m = withMarks(dir, ['session:alice']);
    const first = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(marked(dir, 'b1')).toMatch(/\S/);

    // The handler's unmark fails for now.
    const working = readFileSync(m, 'utf8');
    writeFileSync(m, working.replace(/( {6}unmark: ).*/, '$1[node, -e, "process.exit(5)"]'));
    const failed = reaper(['restore', '-c', m, '--id', 'b1', '-o', 'table'], { cwd: dir });
    expect(failed.code, failed.stdout + failed.stderr).toBe(3);
    expect(failed.stdout).toMatch(/^failed +things b1: lifted, but its tombstone mark is still on it: /m);
    expect(marked(dir, 'b1')).toMatch(/\S/);

    // Once the handler works again, a restore of the first run leaves the mark a later run put on
    // (bob is still gone): that one is meant to be there.
    writeFileSync(m, working);
    expect(reaper(['reap', '-c', m, '--execute'], { cwd: dir }).code).toBe(0);
    const remarked = marked(dir, 'b1');
    expect(remarked).toMatch(/\S/);
    const ofFirst = reaper(['restore', '-c', m, '--run', (JSON.parse(first.stdout) as { runId: string }).runId, '-o', 'table'], { cwd: dir });
    expect(ofFirst.code, ofFirst.stdout + ofFirst.stderr).toBe(0);
    expect(ofFirst.stdout).toBe('nothing to restore\n');
    expect(marked(dir, 'b1')).toBe(remarked);

    // Restored by id, the later tombstone is lifted and the earlier one's mark retried; a third has nothing left to do.
    const retried = reaper(['restore', '-c', m, '--id', 'b1', '-o', 'table'], { cwd: dir });
    expect(retried.code, retried.stdout + retried.stderr).toBe(0);
    expect(retried.stdout).toMatch(/^lifted +things b1\n(.*\n)?unmarked +things b1\n$/);
    expect(marked(dir, 'b1')).toBeUndefined();
    const again = reaper(['restore', '-c', m, '--id', 'b1', '-o', 'table'], { cwd: dir });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toBe('nothing to restore\n');
    expect(readdirSync(path.join(dir, 'data/things')).sort()).toEqual(['a1', 'b1']);
  });
});

/** A shell handler for `list` whose output is hostile; its pid goes to DIR/pid. */
function bad(name: string, script: string, extra: string[] = []): string[] {
  return [
    `  - name: ${name}`,
    '    command:',
    `      list: ${JSON.stringify(`echo $$ > pid.${name}; ${script}`)}`,
    '      delete: "cat >/dev/null"',
    ...extra,
    '    owner: { attribute: owner }',
  ];
}

const record = (id: string) => JSON.stringify({ id, fingerprint: 'f', createdAt: OLD, attributes: { owner: 'x' } });

describe('command kind: hostile list output fails that type alone', () => {
  const cases: { name: string; script: string; extra?: string[]; error: RegExp }[] = [
    { name: 'not-json', script: `echo '${record('a')}'; echo '{"id": "b", '; echo '{"next": null}'`, error: /list answer line 2: not JSON: / },
    { name: 'not-a-record', script: `echo '{"id": "a", "fingerprint": "f"}'; echo '{"next": null}'`, error: /list answer line 1: createdAt: / },
    { name: 'cut-short', script: `echo '${record('a')}'`, error: /list answer line 1 is not the end line \{"next": …\}: the answer is incomplete/ },
    { name: 'duplicate', script: `echo '${record('a')}'; echo '${record('a')}'; echo '{"next": null}'`, error: /list answer line 2: the id "a" again/ },
    {
      name: 'duplicate-across-pages',
      script: `if [ -z "$REAPER_CURSOR" ]; then echo '${record('a')}'; echo '{"next": "p2"}'; else echo '${record('a')}'; echo '{"next": null}'; fi`,
      error: /list answered the id "a" twice in one scan/,
    },
    { name: 'stuck-cursor', script: `echo '${record('a')}'; echo '{"next": "same"}'`, error: /(twice in one scan|the scan would never end)/ },
    { name: 'exits-non-zero', script: `echo '${record('a')}'; echo 'the registry is down' >&2; exit 7`, error: /list command \(.*\) exited with status 7: the registry is down/ },
    { name: 'hangs', script: 'sleep 600', extra: ['      timeout: 1s'], error: /list command \(.*\) did not finish within 1000 ms \(timeout\); killed/ },
    { name: 'gigabytes', script: 'yes', extra: ['      maxOutputBytes: 1048576'], error: /wrote more than 1048576 bytes \(maxOutputBytes\); killed/ },
    { name: 'long-line', script: "head -c 3000000 /dev/zero | tr '\\000' a", error: /wrote a line longer than 1048576 bytes \(maxLineBytes\); killed/ },
  ];

  // One audit and one reap plan over a manifest with every hostile type beside the good one (each CLI run
  // costs about half a second of CPU): each hostile type must fail alone, whatever the others do.
  let audit: ReturnType<typeof reaper>;
  let auditMs: number;
  let reap: ReturnType<typeof reaper>;
  let dir: string;
  beforeAll(() => {
    dir = tmp();
    seed(dir, 'fine', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const m = manifest(dir, [good('fine'), ...cases.map(({ name, script, extra }) => bad(name, script, extra))]);
    const started = Date.now();
    audit = reaper(['audit', '-c', m, '-o', 'json'], { cwd: dir, timeoutMs: 60_000 });
    auditMs = Date.now() - started;
    reap = reaper(['reap', '-c', m, '-o', 'json'], { cwd: dir });
  });

  it.each(cases)('$name: an error naming the handler and the fault; the good type is still reported; exit 3', ({ name, error }) => {
    expect(audit.timedOut).toBe(false);
    expect(audit.code, audit.stderr).toBe(3);
    const doc = json(audit.stdout);
    expect(doc.resources.find((r) => r.name === 'fine')).toMatchObject({ status: 'ok', scanned: 2, orphaned: 1 });
    const broken = doc.resources.find((r) => r.name === name)!;
    expect(broken.status).toBe('error');
    expect(broken.error).toMatch(error);
    expect(broken.error).toContain(`command echo $$ > pid.${name}`);
    if (name === 'hangs') {
      // Killed with its process group: the shell (and its sleep) are gone.
      const pid = Number(readFileSync(path.join(dir, `pid.${name}`), 'utf8'));
      expect(() => process.kill(pid, 0)).toThrow();
      expect(auditMs).toBeLessThan(30_000);
    }
    // Reap refuses the broken type and deletes nothing of it; the good one is still planned.
    expect(reap.code).toBe(3);
    const planned = json(reap.stdout).resources;
    expect(planned.find((r) => r.name === 'fine')).toMatchObject({ scanned: 2 });
    expect(planned.find((r) => r.name === name)!.error).toMatch(error);
  });
});

describe('command kind: a process that leaves the handler\'s process group does not hold the call', () => {
  // Each handler starts a process of a session of its own (`setsid`), out of reach of the group kill,
  // which keeps the handler's stdout and stderr open for 30 s; it adds its pid to DIR/escaped.NAME.
  const escape = (name: string) => `setsid sh -c 'echo $$ >> escaped.${name}; exec sleep 30' &`;
  let dir: string;
  afterAll(() => {
    for (const name of ['timeout', 'exited', 'unterminated']) {
      const file = path.join(dir, `escaped.${name}`);
      for (const pid of existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('a timeout ends the call with the timeout error; a handler that exited ends it with its answer; conformance too', () => {
    dir = tmp();
    seed(dir, 'fine', { a1: { owner: 'alice' } });
    const m = manifest(dir, [
      good('fine'),
      bad('timeout', `${escape('timeout')} sleep 20`, ['      timeout: 1s']),
      bad('exited', `echo '{"next": null}'; ${escape('exited')}`, ['      timeout: 20s']),
      // Its answer's last line without a newline, stdout closed at its exit, stderr held by what it left.
      bad('unterminated', `printf '{"next": null}'; ${escape('unterminated').replace(' &', ' >/dev/null &')}`, ['      timeout: 20s']),
    ]);
    let started = Date.now();
    const audit = reaper(['audit', '-c', m, '-o', 'json'], { cwd: dir, timeoutMs: 60_000 });
    const auditMs = Date.now() - started;
    expect(audit.code, audit.stderr).toBe(3);
    expect(auditMs).toBeLessThan(8_000);
    const doc = json(audit.stdout);
    expect(doc.resources.find((r) => r.name === 'fine')).toMatchObject({ status: 'ok', scanned: 1 });
    const timedOut = doc.resources.find((r) => r.name === 'timeout')!;
    expect(timedOut.status).toBe('error');
    expect(timedOut.error).toMatch(/list command \(.*\) did not finish within 1000 ms \(timeout\); killed/);
    // The handler exited after its whole answer: its output is complete, whatever it left running.
    expect(doc.resources.find((r) => r.name === 'exited')).toMatchObject({ status: 'ok', scanned: 0 });
    // Its stdout ended: its last line counts, newline or not, whatever holds its stderr.
    expect(doc.resources.find((r) => r.name === 'unterminated')).toMatchObject({ status: 'ok', scanned: 0 });

    started = Date.now();
    const check = reaper(['conformance', '-c', m, '--type', 'timeout', '-o', 'table'], { cwd: dir, timeoutMs: 60_000 });
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(check.code, check.stdout + check.stderr).toBe(1);
    expect(check.stdout).toMatch(/^FAIL list: .*did not finish within 1000 ms \(timeout\); killed/m);
  }, 120_000);
});

describe('command kind: a delete answer that cannot be trusted deletes nothing on reaper\'s side', () => {
  const answers: { name: string; answer: string; error: RegExp }[] = [
    { name: 'unknown-id', answer: `while read l; do echo "$l" | sed 's/"fingerprint":"[^"]*"/"result":"deleted"/'; done; echo '{"id":"elsewhere","result":"deleted"}'`, error: /delete answer line 2: the id "elsewhere" was not asked for/ },
    { name: 'duplicate-id', answer: `while read l; do a=$(echo "$l" | sed 's/"fingerprint":"[^"]*"/"result":"deleted"/'); echo "$a"; echo "$a"; done`, error: /delete answer line 2: the id "b1" again/ },
    { name: 'missing-id', answer: 'cat >/dev/null', error: /delete answered 0 of 1 ids; none for "b1"/ },
    { name: 'garbage', answer: 'cat >/dev/null; echo deleted', error: /delete answer line 1: not JSON/ },
    { name: 'non-zero', answer: `while read l; do echo "$l" | sed 's/"fingerprint":"[^"]*"/"result":"deleted"/'; done; exit 1`, error: /delete command \(.*\) exited with status 1/ },
  ];

  // One marking run and one sweep over a manifest with a type for each answer (each CLI run costs about half
  // a second of CPU, and the grace is waited out once): each type's delete must fail on its own answer.
  let dir: string;
  let sweep: ReturnType<typeof reaper>;
  beforeAll(async () => {
    dir = tmp();
    for (const { name } of answers) seed(dir, name, { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const m = manifest(
      dir,
      answers.map(({ name, answer }) => [
        `  - name: ${name}`,
        '    command:',
        `      list: [node, ${JSON.stringify(HANDLER)}, ./data/${name}]`,
        `      delete: ${JSON.stringify(answer)}`,
        '    owner: { attribute: owner, key: "session:{value}" }',
      ]),
    );
    const mark = reaper(['reap', '-c', m, '--execute'], { cwd: dir });
    expect(mark.code, mark.stderr).toBe(0);
    await sleep(1_200);
    sweep = reaper(['reap', '-c', m, '--execute', '-o', 'json'], { cwd: dir });
  });

  it.each(answers)('$name: the delete is failed (read back: still there), the error says why, exit 3', ({ name, error }) => {
    expect(sweep.code).toBe(3);
    const doc = json(sweep.stdout);
    expect(doc.resources.find((r) => r.name === name)!.outcomes).toMatchObject({ deleted: 0, failed: 1 });
    expect(doc.errors!.filter((e) => e.startsWith(`${name}: `)).join('\n')).toMatch(error);
    expect(existsSync(path.join(dir, 'data', name, 'b1'))).toBe(true);
  });
});

describe('reaper conformance --type T', () => {
  it('passes the reference handler without deleting anything; --destructive deletes the one --id names', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const m = manifest(dir, [good('things')]);
    const run = reaper(['conformance', '-c', m, '--type', 'things', '-o', 'table'], { cwd: dir });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain('resource protocol v1: nothing is deleted');
    expect(run.stdout).toMatch(/^PASS list: 2 record\(s\) in 1 page\(s\)/m);
    expect(run.stdout).toMatch(/^PASS delete with a fingerprint that does not match answers changed and deletes nothing: changed; "a1" still there, unchanged$/m);
    expect(readdirSync(path.join(dir, 'data/things')).sort()).toEqual(['a1', 'b1']);
    const destructive = reaper(['conformance', '-c', m, '--type', 'things', '--destructive', '--id', 'b1', '-o', 'json'], { cwd: dir });
    expect(destructive.code, destructive.stdout).toBe(0);
    expect(JSON.parse(destructive.stdout).checks.at(-1)).toMatchObject({ ok: true, detail: 'deleted, gone, and a second delete answers absent' });
    expect(readdirSync(path.join(dir, 'data/things'))).toEqual(['a1']);
  });

  it('checks mark, unmark and restore where the handler declares them, without marking or restoring anything', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' }, b1: { owner: 'bob' } });
    const before = Object.fromEntries(['a1', 'b1'].map((f) => [f, readFileSync(path.join(dir, 'data/things', f), 'utf8')]));
    const call = (extra = '') => `[node, ${JSON.stringify(HANDLER)}, ./data/things${extra}]`;
    const ops = ['mark', 'unmark', 'restore'].map((op) => `      ${op}: ${call(', --trash')}`);
    const m = manifest(dir, [good('things', ops)]);
    const run = reaper(['conformance', '-c', m, '--type', 'things', '-o', 'json'], { cwd: dir });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const checks = (JSON.parse(run.stdout) as { checks: { name: string; ok: boolean; detail: string }[] }).checks;
    expect(checks.filter((c) => /^(mark|unmark|restore) /.test(c.name)).map((c) => [c.name, c.ok])).toEqual([
      ['mark of an id that does not exist answers absent', true],
      ['mark with a fingerprint that does not match answers changed and marks nothing', true],
      ['unmark of an id that does not exist answers absent', true],
      ['restore of a handle that does not exist answers error and restores nothing', true],
    ]);
    // Nothing was marked (the reference handler's marker is in the file), restored or deleted.
    expect(readdirSync(path.join(dir, 'data/things')).sort()).toEqual(['a1', 'b1']);
    for (const [f, text] of Object.entries(before)) expect(readFileSync(path.join(dir, 'data/things', f), 'utf8')).toBe(text);

    // A type without mark or restore gets none of these checks.
    const plain = reaper(['conformance', '-c', manifest(dir, [good('things')]), '--type', 'things', '-o', 'json'], { cwd: dir });
    expect(plain.code).toBe(0);
    expect((JSON.parse(plain.stdout) as { checks: { name: string }[] }).checks.some((c) => /^(mark|unmark|restore) /.test(c.name))).toBe(false);
  });

  it('fails a handler that marks whatever fingerprint it is given, or answers restored for a handle that cannot exist (exit 1)', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' } });
    // Marks every id that exists, whatever the fingerprint; restores whatever it is asked.
    const careless = path.join(dir, 'careless.mjs');
    writeFileSync(
      careless,
      [
        "import { appendFileSync, existsSync, readFileSync } from 'node:fs';",
        "const op = process.env.REAPER_OP;",
        "for (const line of readFileSync(0, 'utf8').split('\\n').filter(Boolean)) {",
        '  const { id } = JSON.parse(line);',
        "  appendFileSync('ops.log', op + ' ' + id + '\\n');",
        "  const there = existsSync('data/things/' + id);",
        "  const answer = op === 'restore' ? { id, result: 'restored' } : !there ? { id, result: 'absent' } : op === 'mark' ? { id, result: 'marked', fingerprint: 'x' } : { id, result: 'unmarked' };",
        "  process.stdout.write(JSON.stringify(answer) + '\\n');",
        '}',
        '',
      ].join('\n'),
    );
    const call = `[node, ${JSON.stringify(careless)}]`;
    const m = manifest(dir, [good('things', [`      mark: ${call}`, `      unmark: ${call}`, `      restore: ${call}`])]);
    const run = reaper(['conformance', '-c', m, '--type', 'things', '-o', 'table'], { cwd: dir });
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stdout).toMatch(/^PASS mark of an id that does not exist answers absent: absent$/m);
    expect(run.stdout).toMatch(/^FAIL mark with a fingerprint that does not match answers changed and marks nothing: answered marked; expected changed$/m);
    expect(run.stdout).toMatch(/^FAIL restore of a handle that does not exist answers error and restores nothing: answered restored; expected error$/m);
    // The mark it should have refused is taken back: conformance leaves nothing marked.
    const ops = readFileSync(path.join(dir, 'ops.log'), 'utf8').split('\n');
    expect(ops.indexOf('unmark a1')).toBeGreaterThan(ops.indexOf('mark a1'));
    expect(ops.indexOf('mark a1')).toBeGreaterThanOrEqual(0);
  });

  it('never passes a check that had nothing to check: SKIP with why when the list fails or the scope is empty', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' } });
    const call = `[node, ${JSON.stringify(HANDLER)}, ./data/things]`;
    const ops = ['mark', 'unmark'].map((op) => `      ${op}: ${call}`);
    // The list cannot run (an unreachable handler); the deletes and marks can.
    const broken = manifest(dir, [['  - name: things', '    command:', '      list: [node, -e, "process.exit(7)"]', `      delete: ${call}`, ...ops, '    owner: { attribute: owner }']]);
    const run = reaper(['conformance', '-c', broken, '--type', 'things', '-o', 'table'], { cwd: dir });
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stdout).toMatch(/^FAIL list: /m);
    expect(run.stdout).not.toMatch(/^PASS read by id/m);
    expect(run.stdout).toMatch(/^SKIP read by id: the list failed: no listed id to read back$/m);
    expect(run.stdout).toMatch(/^PASS delete of an id that does not exist answers absent: absent$/m);
    expect(run.stdout).toMatch(/^SKIP delete with a fingerprint that does not match answers changed and deletes nothing: the list failed: no listed resource to try it on$/m);
    expect(run.stdout).toMatch(/^SKIP mark with a fingerprint that does not match answers changed and marks nothing: the list failed: no listed resource to try it on$/m);
    expect(run.stdout).toMatch(/^1 check\(s\) failed, 3 skipped$/m);
    const doc = JSON.parse(reaper(['conformance', '-c', broken, '--type', 'things', '-o', 'json'], { cwd: dir }).stdout) as { ok: boolean; checks: { name: string; status: string; ok: boolean }[] };
    expect(doc.ok).toBe(false);
    expect(doc.checks.find((c) => c.name === 'read by id')).toMatchObject({ status: 'skip', ok: false });

    // An empty scope lists fine, but gives nothing to read back or to try a wrong fingerprint on.
    const empty = tmp();
    seed(empty, 'things', {});
    const none = reaper(['conformance', '-c', manifest(empty, [good('things', ops)]), '--type', 'things', '-o', 'table'], { cwd: empty });
    expect(none.code, none.stdout + none.stderr).toBe(0);
    expect(none.stdout).toMatch(/^PASS list: 0 record\(s\)/m);
    expect(none.stdout).toMatch(/^SKIP read by id: the scope is empty: no listed id to read back$/m);
    expect(none.stdout).toMatch(/^SKIP delete with a fingerprint that does not match answers changed and deletes nothing: the scope is empty: no listed resource to try it on$/m);
    expect(none.stdout).not.toMatch(/all checks passed/);
    expect(none.stdout).toMatch(/^no check failed, 3 skipped: put a resource in the scope to run them$/m);
  });

  it('fails a handler whose deletes are not conditional (exit 1), and a type that is not a handler is a usage error (exit 2)', () => {
    const dir = tmp();
    seed(dir, 'things', { a1: { owner: 'alice' } });
    // Deletes whatever it is asked, fingerprint or not.
    const careless = `while read l; do id=$(echo "$l" | sed 's/.*"id":"\\([^"]*\\)".*/\\1/'); if [ -e "data/things/$id" ]; then rm "data/things/$id"; echo "{\\"id\\":\\"$id\\",\\"result\\":\\"deleted\\"}"; else echo "{\\"id\\":\\"$id\\",\\"result\\":\\"absent\\"}"; fi; done`;
    const m = manifest(dir, [
      ['  - name: things', '    command:', `      list: [node, ${JSON.stringify(HANDLER)}, ./data/things]`, `      delete: ${JSON.stringify(careless)}`, '    owner: { attribute: owner }'],
      ['  - name: files', '    fs: { path: ./data/things }', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }'],
    ]);
    const run = reaper(['conformance', '-c', m, '--type', 'things', '-o', 'table'], { cwd: dir });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^FAIL delete with a fingerprint that does not match answers changed and deletes nothing: "a1" is GONE after a delete with a wrong fingerprint \(answered deleted\): the handler's deletes are not conditional$/m);
    const other = reaper(['conformance', '-c', m, '--type', 'files'], { cwd: dir });
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('files is an fs resource; conformance checks command and http handlers');
  });
});
