/**
 * Flags other tools use (`--json`, `--table`, `--dry-run`) are answered with reaper's own
 * spelling — unless a command defines the flag itself, which then is that command's, and an
 * option's value that happens to read like one is a value.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { familiarFlag } from '../../src/cli/main.js';

const program = () => {
  const p = new Command('reaper');
  p.command('audit').option('--owner <key>');
  return p;
};

describe('familiarFlag', () => {
  it('answers --json with reaper\'s spelling', () => {
    expect(familiarFlag(program(), ['audit', '--json'])?.message).toMatch(/^--json: .*--output json/);
  });

  it('leaves a value that reads like a flag to its option', () => {
    expect(familiarFlag(program(), ['audit', '--owner', '--json'])).toBeNull();
  });

  it('leaves a flag a command defines to that command', () => {
    const p = program();
    p.command('export').option('--json');
    expect(familiarFlag(p, ['export', '--json'])).toBeNull();
  });
});
