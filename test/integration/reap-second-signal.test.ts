/**
 * A second SIGINT/SIGTERM ends `reaper reap --execute` at once (exit 130) — and its run is
 * recorded `interrupted` on the way out, not left `running` until a later run finds its
 * heartbeat lapsed (docs/safety.md §11).
 *
 * The built CLI reaps a `command` type whose handler's `mark` never answers: the run is
 * inside a batch, which the first signal does not cut short ("finishing the current
 * batch"); the second signal is sent once the first one's notice is on stderr.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, reaperSync } from './support/cli.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) {
    // The hung handler outlives the reaper it served: end it (it wrote its own pid).
    const pidFile = path.join(dir, 'mark.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

const HANDLER = `
import { writeFileSync } from 'node:fs';
const op = process.argv[2];
if (op === 'list') {
  process.stdout.write(JSON.stringify({ id: 'orphan-1', fingerprint: 'v1', createdAt: '2020-01-01T00:00:00Z', attributes: { owner: 'gone' } }) + '\\n');
  process.stdout.write(JSON.stringify({ next: null }) + '\\n');
} else if (op === 'mark') {
  writeFileSync('mark.pid', String(process.pid));
  setInterval(() => {}, 1000); // never answers
} else {
  process.exit(1);
}
`;

function fixture(): { dir: string; manifest: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-sig2-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'handler.mjs'), HANDLER);
  const call = (op: string) => JSON.stringify([process.execPath, path.join(dir, 'handler.mjs'), op]);
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(
    manifest,
    [
      'version: 1',
      'resources:',
      '  - name: things',
      '    command:',
      `      list: ${call('list')}`,
      `      delete: ${call('delete')}`,
      `      mark: ${call('mark')}`,
      `      unmark: ${call('unmark')}`,
      '      timeout: 10m',
      '    owner: { attribute: owner, key: "session:{value}" }',
      '    minAge: 0s',
      '    maxDeleteFraction: 1',
      '',
    ].join('\n'),
  );
  return { dir, manifest };
}

interface RunRow {
  kind: string;
  status: string;
  error: string | null;
}

describe('a second signal during reap --execute', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`exits 130 at once on a second ${signal} and records the run as interrupted`, async () => {
      const { dir, manifest } = fixture();
      const child = spawn(process.execPath, [BIN, 'reap', '--execute', '--allow-liveness-drop', '-c', manifest, '--output', 'json'], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      let noticed!: () => void;
      const notice = new Promise<void>((resolve) => (noticed = resolve));
      child.stderr.setEncoding('utf8').on('data', (s: string) => {
        stderr += s;
        if (stderr.includes(`${signal} received`)) noticed();
      });
      let exited = false;
      const exit = new Promise<number | null>((resolve) => child.once('close', (code) => ((exited = true), resolve(code))));
      // The handler's mark is running (it wrote its pid): the run is inside a batch.
      while (!existsSync(path.join(dir, 'mark.pid'))) {
        if (exited) throw new Error(`reaper ended before marking: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      child.kill(signal);
      await notice;
      child.kill(signal);
      expect(await exit).toBe(130);
      const runs = JSON.parse(reaperSync(['runs', '-c', manifest, '--output', 'json'], { cwd: dir }).stdout) as RunRow[];
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ kind: 'reap', status: 'interrupted' });
      expect(runs[0]!.error).toMatch(/second signal/);
    });
  }
});
