/**
 * The files backend on a full filesystem, which is when reaping is wanted most. A sweep
 * renames each file into the quarantine directory before it checks and unlinks it (§3); on a
 * full ext4 an unprivileged user cannot create that directory (a new directory needs a block),
 * though renaming into one that exists needs none. So:
 * - the first sweep on a full disk deletes nothing, exits 3, and says what happened and what
 *   to do (Node's recursive mkdir reports a full disk as ENOENT: the real cause is named);
 * - with the quarantine directory made ahead, as the message says, the sweep frees the space.
 * Needs root (to loop-mount a small ext4 image) and setpriv (to run the CLI as nobody: root
 * may use the blocks ext4 reserves); skipped otherwise, but under CI=true a failing test.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { requiredUnderCI } from './support/ci.js';
import { reaperSync, type CliOptions } from './support/cli.js';
import { runCleanups } from './support/services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const NOBODY = { uid: 65534, gid: 65534, user: 'nobody', group: 'nogroup' };
const ok = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });
const needs = {
  root: { have: process.getuid?.() === 0, hint: 'run the tests as root (to loop-mount a small ext4 image)' },
  setpriv: { have: ok('setpriv', ['--version']).status === 0, hint: 'apt-get install util-linux (setpriv runs the CLI as nobody)' },
  'mkfs.ext4': { have: ok('mkfs.ext4', ['-V']).status === 0, hint: 'apt-get install e2fsprogs' },
  losetup: { have: ok('losetup', ['--version']).status === 0, hint: 'apt-get install mount (losetup)' },
};
const canMount = Object.values(needs).every((n) => n.have);
requiredUnderCI('the full-disk tests', needs);
const asNobody = (...argv: string[]) => ok('setpriv', [`--reuid=${NOBODY.user}`, `--regid=${NOBODY.group}`, '--clear-groups', ...argv]);

/** A 4 MiB ext4 filesystem, loop-mounted at a fresh directory; unmounted and removed afterwards. */
function smallExt4(): string {
  const base = mkdtempSync(path.join(tmpdir(), 'reaper-fulldisk-'));
  chmodSync(base, 0o755);
  const image = path.join(base, 'fs.img');
  const mnt = path.join(base, 'mnt');
  mkdirSync(mnt);
  expect(ok('truncate', ['-s', '4M', image]).status).toBe(0);
  expect(ok('mkfs.ext4', ['-q', '-F', image]).status).toBe(0);
  const mounted = ok('mount', ['-o', 'loop', image, mnt]);
  expect(mounted.status, mounted.stderr).toBe(0);
  cleanups.push(async () => {
    ok('umount', [mnt]);
    rmSync(base, { recursive: true, force: true });
  });
  return mnt;
}

/** Fill the filesystem at `dir` as nobody, to its last byte. */
function fill(dir: string): void {
  asNobody('dd', 'if=/dev/zero', `of=${path.join(dir, 'filler')}`, 'bs=4k');
  asNobody('dd', 'if=/dev/zero', `of=${path.join(dir, 'filler-tail')}`, 'bs=1');
}

const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();

describe.skipIf(!canMount)('the files backend on a full filesystem', () => {
  it('a sweep that cannot make its quarantine says why and how to get past it; with the quarantine made ahead it frees the space', () => {
    const mnt = smallExt4();
    const work = path.join(mnt, 'work');
    const scope = path.join(work, 'files');
    const old = new Date(Date.now() - 3 * 3_600_000);
    for (const owner of ['a', 'b']) {
      mkdirSync(path.join(scope, owner), { recursive: true });
      for (let i = 0; i < 10; i++) {
        const file = path.join(scope, owner, `f${i}`);
        writeFileSync(file, Buffer.alloc(8_000, 0x61));
        utimesSync(file, old, old);
      }
    }
    const expected = files(scope);
    const stateDir = mkdtempSync(path.join(tmpdir(), 'reaper-fulldisk-state-'));
    cleanups.push(async () => rmSync(stateDir, { recursive: true, force: true }));
    writeFileSync(
      path.join(work, 'reaper.yaml'),
      [
        'version: 1',
        `state: "sqlite:${stateDir}/state.db"`,
        'defaults: { minAge: 30m, grace: 1s, maxDeleteFraction: 1 }',
        'owners: [{ static: [nobody-alive] }]',
        'resources:',
        '  - name: files',
        // Two levels to make: the first missing one is what tells the truth about the disk.
        '    fs: { path: ./files }',
        '    quarantine: ./trash/swept',
        '    owner: { pathPattern: "^(?<owner>[^/]+)/" }',
        '',
      ].join('\n'),
    );
    for (const dir of [work, scope, stateDir, path.join(scope, 'a'), path.join(scope, 'b')]) chownSync(dir, NOBODY.uid, NOBODY.gid);
    for (const f of expected) chownSync(path.join(scope, f), NOBODY.uid, NOBODY.gid);
    const as: CliOptions = { cwd: work, env: { HOME: work }, user: { user: NOBODY.user, group: NOBODY.group } };
    const reap = () => reaperSync(['reap', '--execute', '-c', path.join(work, 'reaper.yaml'), '--output', 'json'], as);

    const mark = reap();
    expect(mark.code, mark.stderr).toBe(0);
    spawnSync('sleep', ['1.2']);
    fill(work);

    const full = reap();
    expect(full.code).toBe(3);
    const quarantine = path.join(work, 'trash', 'swept');
    expect(full.stderr).toContain(`cannot create the quarantine directory ${quarantine}: ENOSPC`);
    expect(full.stderr).toContain(`mkdir -p -m 700 ${quarantine}`);
    expect(files(scope)).toEqual(expected);

    // As the message says: a little room, the quarantine made, the disk full again.
    rmSync(path.join(work, 'filler-tail'));
    rmSync(path.join(work, 'filler'));
    expect(asNobody('mkdir', '-p', '-m', '700', quarantine).status).toBe(0);
    fill(work);
    const freed = reap();
    expect(freed.code, freed.stderr).toBe(0);
    expect(files(scope)).toEqual([]);
  });
});
