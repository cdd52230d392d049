/**
 * `reaper completion bash|zsh|fish` and `reaper --version`, through the built binary.
 * Each completion script is loaded into its real shell, which is asked to complete a
 * subcommand, a nested subcommand, an option and an option's choices. Outside CI a
 * missing zsh or fish skips its test with a hint; under CI=true it fails.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { stateSchemaVersions } from '../../src/version.js';
import { reaper } from './support/cli.js';

const inCI = process.env.CI === 'true';
const have = (shell: string) => spawnSync(shell, ['-c', 'exit 0']).status === 0;
const shells = { bash: have('bash'), zsh: have('zsh'), fish: have('fish') };
for (const [shell, found] of Object.entries(shells)) {
  if (!found && !inCI) console.warn(`${shell} not found: skipping its completion test (Debian/Ubuntu: apt-get install ${shell})`);
}

/** Write `reaper completion SHELL` to a file and return its path. */
function script(shell: 'bash' | 'zsh' | 'fish'): string {
  const r = reaper(['completion', shell]);
  expect(r.code, r.stderr).toBe(0);
  const file = path.join(testTempDir('reaper-completion-'), `reaper.${shell}`);
  writeFileSync(file, r.stdout);
  return file;
}

function runShell(shell: string, args: string[]) {
  const r = spawnSync(shell, args, { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: tmpdir() }, timeout: 30_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('reaper completion', () => {
  it.skipIf(!shells.bash && !inCI)('bash: the script registers with complete and completes subcommands, options and choices', () => {
    const file = script('bash');
    // Each case prints the words bash would offer for the line (COMP_WORDS), one case per line.
    const out = runShell('bash', [
      '--norc',
      '--noprofile',
      '-c',
      `source ${JSON.stringify(file)}
complete -p reaper
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _reaper; echo "\${COMPREPLY[*]}"; }
t reaper le
t reaper lease ''
t reaper -c x.yaml lease acquire --h
t reaper audit -c reaper.yaml --output ''
t reaper graph --format m
t reaper completion ''`,
    ]);
    expect(out.split('\n')).toEqual([
      'complete -o default -F _reaper reaper',
      'lease',
      'acquire renew release list prune help',
      '--holder --help',
      'table json',
      'mermaid',
      'bash zsh fish',
      '',
    ]);
  });

  it.skipIf(!shells.fish && !inCI)('fish: complete -C offers subcommands with descriptions, nested ones and choices', () => {
    expect(shells.fish, 'fish is missing: apt-get install fish').toBe(true);
    const file = script('fish');
    const out = runShell('fish', ['--no-config', '-c', `source ${JSON.stringify(file)}; complete -C 'reaper le'; complete -C 'reaper runs '; complete -C 'reaper audit -o '`]);
    expect(out.split('\n')).toEqual(['lease\tlease operations against the state store', 'show\twhat one run marked, deleted, lifted and failed', 'json\ttable or json (default: table on a TTY, json otherwise)', 'table\ttable or json (default: table on a TTY, json otherwise)', '']);
  });

  it.skipIf(!shells.zsh && !inCI)('zsh: the script parses, registers with compdef and hands _describe the candidates', () => {
    expect(shells.zsh, 'zsh is missing: apt-get install zsh').toBe(true);
    const file = script('zsh');
    // zsh's completion widgets need a terminal; the builtins they call are stood in for
    // by functions that print what they were given.
    const out = runShell('zsh', [
      '-f',
      '-c',
      `compdef() { print "compdef $*"; }
source ${JSON.stringify(file)}
_describe() { print -r -- "$3: \${(j:, :)\${(@P)\${@[-1]}}}"; }
compadd() { print -r -- "values: \${(j:, :)\${(@P)\${@[-1]}}}"; }
_files() { print files; }
t() { words=("$@"); CURRENT=$#words; PREFIX=\${words[-1]}; _reaper; }
t reaper runs ''
t reaper audit -o ''
t reaper audit --junit ''
t reaper lease release -`,
    ]);
    expect(out.split('\n')).toEqual([
      'compdef _reaper reaper',
      'command: show:what one run marked, deleted, lifted and failed',
      'values: table, json',
      'files',
      expect.stringMatching(/^option: -c:the manifest .*, --state:state store URL .*, -h:display help for command, --help:display help for command$/),
      '',
    ]);
  });

  it('refuses a shell it has no script for, exit 2', () => {
    const r = reaper(['completion', 'ksh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Allowed choices are bash, zsh, fish/);
    expect(r.stdout).toBe('');
  });
});

describe('reaper --version', () => {
  it('names reaper and its package, the Node.js running it and the state-store schema', () => {
    const r = reaper(['--version']);
    expect(r.code).toBe(0);
    const schema = stateSchemaVersions();
    // One schema number for all three stores: a migration added to one dialect alone shows here.
    expect(schema.postgres).toBe(schema.sqlite);
    expect(schema.mysql).toBe(schema.sqlite);
    expect(r.stdout).toBe(`reaper 0.1.0 (npm package orphan-reaper)\nNode.js ${process.version}\nstate-store schema ${schema.sqlite}\n`);
  });
});
