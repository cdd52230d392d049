/**
 * `reaper lease` and `reaper daemon` refuse, before the state store is contacted (exit
 * 2, the allowed range in the message), what a store would not honour exactly: a ttl
 * outside 1s–7d (a store used to round it up or cap it silently), a lease id that is
 * not a UUID. Spawns the built binary with a minimal environment (run `npm run build`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStateStore } from '../../src/state/sqlite/sqlite-state-store.js';

const BIN = path.resolve(__dirname, '../../bin/reaper');

describe('reaper lease: input the store would not honour', () => {
  let dir: string;
  let state: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'reaper-lease-cli-'));
    state = path.join(dir, 'state.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function reaper(...args: string[]) {
    const r = spawnSync(process.execPath, [BIN, ...args, '--state', `sqlite:${state}`], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', REAPER_TOKEN: 'lease-cli-test-token-0123456789' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('refuses a ttl outside 1s–7d with exit 2, names the range, and creates nothing', () => {
    for (const ttl of ['0s', '999ms', '500ms', '8d', '169h']) {
      const r = reaper('lease', 'acquire', 'session:1', '--ttl', ttl, '--output', 'json');
      expect(r.code, `--ttl ${ttl}: ${r.stderr}`).toBe(2);
      // The ttl as it was typed, not as reaper formats it (0s, not 0ms).
      expect(r.stderr.trim()).toBe(`reaper: --ttl: a lease ttl must be from 1s to 7d, got ${ttl}`);
      expect(existsSync(state), `--ttl ${ttl}`).toBe(false);
    }
    const daemon = reaper('daemon', '--lease', 'session:1', '--ttl', '0s', '--listen', '127.0.0.1:0');
    expect(daemon.code).toBe(2);
    expect(daemon.stderr).toContain('--ttl: a lease ttl must be from 1s to 7d, got 0s\n');
    expect(existsSync(state)).toBe(false);

    // The bounds themselves are granted exactly.
    for (const [ttl, seconds] of [
      ['1s', 1],
      ['7d', 7 * 86_400],
    ] as const) {
      const ok = reaper('lease', 'acquire', 'session:1', '--ttl', ttl, '--output', 'json');
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ key: 'session:1', ttlSeconds: seconds });
    }
  });

  it('refuses a lease id that is not a UUID, and a renewal ttl out of range, with exit 2', async () => {
    const acquired = reaper('lease', 'acquire', 'session:2', '--ttl', '60s', '--output', 'json');
    expect(acquired.code, acquired.stderr).toBe(0);
    const lease = JSON.parse(acquired.stdout) as { leaseId: string; expiresAt: string };

    for (const command of ['renew', 'release']) {
      const r = reaper('lease', command, 'not-a-lease-id');
      expect(r.code, `${command}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/"not-a-lease-id" is not a lease id/);
    }
    // A well-formed id the store does not know is a usage error too, said in words.
    const unknown = '00000000-0000-4000-8000-000000000000';
    for (const command of ['renew', 'release']) {
      const r = reaper('lease', command, unknown);
      expect(r.code, `${command}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim()).toBe(`reaper: no lease ${unknown} in the state store (\`reaper lease list --all\` lists them)`);
    }
    // An operator's typo is not a holder losing its lease: it leaves the renewal-failure rate alone.
    const store = await SqliteStateStore.open(state);
    try {
      expect((await store.leaseStats(3_600_000)).renewalFailures).toBe(0);
    } finally {
      await store.close();
    }
    // A released lease cannot be renewed: exit 3, and what to do instead.
    const gone = JSON.parse(reaper('lease', 'acquire', 'session:9', '--ttl', '60s', '--output', 'json').stdout) as { leaseId: string };
    expect(reaper('lease', 'release', gone.leaseId).code).toBe(0);
    const renewed = reaper('lease', 'renew', gone.leaseId);
    expect(renewed.code).toBe(3);
    expect(renewed.stderr.trim()).toBe(`reaper: lease ${gone.leaseId} was released; a renewal never revives a lease: acquire a new one (\`reaper lease acquire session:9 --ttl D\`)`);
    const long = reaper('lease', 'renew', lease.leaseId, '--ttl', '30d');
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/from 1s to 7d, got 30d/);

    const list = reaper('lease', 'list', '--key', 'session:2', '--output', 'json');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ leaseId: lease.leaseId, expiresAt: lease.expiresAt, releasedAt: null }]);
  });

  it('lists a lease that ran out unreleased as expired, by the store clock', async () => {
    const acquired = reaper('lease', 'acquire', 'session:3', '--ttl', '1s', '--output', 'json');
    expect(acquired.code, acquired.stderr).toBe(0);
    const released = JSON.parse(reaper('lease', 'acquire', 'session:4', '--ttl', '60s', '--output', 'json').stdout) as { leaseId: string };
    expect(reaper('lease', 'release', released.leaseId).code).toBe(0);
    const held = reaper('lease', 'acquire', 'session:5', '--ttl', '60s', '--output', 'table');
    expect(held.stdout).toMatch(/session:5 .*│ held /);
    // Wait until the store no longer counts session:3 as live (its own judgement, not ours).
    for (let i = 0; i < 100; i++) {
      const live = reaper('lease', 'list', '--key', 'session:3', '--output', 'json');
      if ((JSON.parse(live.stdout) as unknown[]).length === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const table = reaper('lease', 'list', '--all', '--output', 'table');
    expect(table.code, table.stderr).toBe(0);
    const state = (key: string) => table.stdout.split('\n').find((line) => line.includes(` ${key} `))?.split('│')[6]?.trim();
    expect(state('session:3')).toBe('expired');
    expect(state('session:4')).toBe('released');
    expect(state('session:5')).toBe('held');
  });
});
