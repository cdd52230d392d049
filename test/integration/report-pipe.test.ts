/**
 * `reaper report` given a pipe instead of a file (`… | reaper report /dev/stdin`, a process
 * substitution): a report input is read more than once (its first line tells a document
 * from findings NDJSON, then it is read whole or streamed), and a pipe gives its bytes only
 * once. The pipe is refused, naming it and what to do, as a manifest that is not a regular
 * file is; the same document as a file is read.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, reaperSync, removeTempDirs, tmp } from './support/cli.js';

afterAll(() => removeTempDirs());

const run = (dir: string, args: string[]) => reaperSync(args, { cwd: dir, env: { HOME: dir } });

describe('reaper report from a pipe', () => {
  it('refuses /dev/stdin as a pipe, saying to save the document to a file; reads the same document from a file', () => {
    const dir = tmp('reaper-report-pipe-');
    writeFileSync(path.join(dir, 'a.txt'), 'x');
    writeFileSync(
      path.join(dir, 'reaper.yaml'),
      ['version: 1', 'owners: [{ static: [alive] }]', 'resources:', '  - name: files', '    fs: { path: . }', '    owner: { pathPattern: "^(?<owner>[^/]+)/" }', ''].join('\n'),
    );
    const audit = run(dir, ['audit', '-c', 'reaper.yaml', '--output', 'json']);
    expect(audit.code, audit.stderr).toBe(0);
    writeFileSync(path.join(dir, 'audit.json'), audit.stdout);

    // Through a shell pipeline, as users write it: stdin is a pipe (a FIFO).
    const piped = spawnSync('sh', ['-c', `cat audit.json | "${process.execPath}" "${BIN}" report /dev/stdin --out piped.html -c reaper.yaml`], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(piped.status).toBe(2);
    expect(piped.stderr).toContain('/dev/stdin: not a regular file (a pipe gives its bytes once, and a report input is read twice); save it to a file and name that');

    const file = run(dir, ['report', 'audit.json', '--out', 'file.html', '-c', 'reaper.yaml']);
    expect(file.code, file.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'file.html'), 'utf8')).toContain('<html');
  });
});
