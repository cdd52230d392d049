/**
 * Usage mistakes a new user makes, answered with what to type instead (exit 2) rather than
 * the argument parser's own words.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

describe('a duration written as two words', () => {
  it.each([
    [['audit', '--older-than', '3', 'days'], '--older-than', '3d', '3 days'],
    [['reap', '--older-than=12', 'hours'], '--older-than', '12h', '12 hours'],
    [['reap', '--lock-ttl', '90', 's'], '--lock-ttl', '90s', '90 s'],
    [['lease', 'prune', '--older-than', '2', 'weeks'], '--older-than', '14d', '2 weeks'],
    [['lease', 'acquire', 'svc:a', '--ttl', '30', 'seconds'], '--ttl', '30s', '30 seconds'],
    [['daemon', '--ttl', '1', 'minute'], '--ttl', '1m', '1 minute'],
  ])('%j is a usage error that says the duration is one word', (args, flag, word, typed) => {
    const r = reaper(args, { cwd: tmp() });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`reaper: ${flag}: a duration is one word: write ${word}, not "${typed}"\n`);
  });

  it('leaves other extra arguments to the usual message', () => {
    const r = reaper(['audit', '--older-than', '3d', 'extra'], { cwd: tmp() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/too many arguments/);
  });
});
