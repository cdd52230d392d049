/**
 * `reaper simulate --live` against the built binary: real files, a SQLite state store, two
 * `reaper daemon` processes and `reaper reap --execute` every few seconds, beside the
 * simulator on the same seed. One service is stopped (SIGSTOP) well past ttl + grace + two
 * runs, so both sides must delete its files under it; the counts must agree closely.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LiveOutcome } from '../../src/sim/live/live.js';

const BIN = path.resolve(__dirname, '../../bin/reaper');
const dir = mkdtempSync(path.join(tmpdir(), 'reaper-sim-live-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCENARIO = `version: 1
name: live-test
seed: 4
duration: 20s
drain: 40s
services: 2
workload:
  creations: 20
  lifetime: { dist: uniform, min: 5s, max: 15s }
faults:
  - { kind: pause, service: 1, at: 6s, duration: 20s }
strategies:
  leases: { ttl: 3s, interval: 1s, grace: 4s, sweepEvery: 3s, minAge: 1s, lockTtl: 3s, maxDeleteFraction: 1, breaker: { maxDrop: 1, minLiveKeys: 1 } }
`;

function live(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'simulate', file, '--live', '-o', 'json'], { env: { PATH: process.env.PATH ?? '', HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('reaper simulate --live', () => {
  it('real daemons and reap runs delete what the simulator deletes, early ones included, within a couple of resources', async () => {
    const file = path.join(dir, 'live.yaml');
    writeFileSync(file, SCENARIO);
    const out = await live(file);
    expect(out.stderr).toMatch(/live run of live-test \(seed 4\)/);
    expect(out.code, out.stderr).toBe(0);
    const doc = JSON.parse(out.stdout) as { kind: string; simulator: LiveOutcome; live: LiveOutcome };
    expect(doc.kind).toBe('simulate-live');
    const { simulator: sim, live: real } = doc;
    expect(real.resources).toBe(sim.resources);
    // The stopped service's files go under it on both sides.
    expect(sim.premature).toBeGreaterThan(0);
    expect(real.premature).toBeGreaterThan(0);
    expect(Math.abs(real.premature - sim.premature)).toBeLessThanOrEqual(2);
    expect(Math.abs(real.reclaimed - sim.reclaimed)).toBeLessThanOrEqual(2);
    expect(Math.abs(real.leaked - sim.leaked)).toBeLessThanOrEqual(2);
    expect(Math.abs((real.latencyP50Seconds ?? 0) - (sim.latencyP50Seconds ?? 0))).toBeLessThan(4);
  });

  it('refuses what real processes cannot reproduce, naming it (exit 2)', async () => {
    const file = path.join(dir, 'lossy.yaml');
    writeFileSync(file, SCENARIO.replace('faults:', 'network: { loss: 0.1 }\nfaults:'));
    const out = await live(file);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('--live cannot reproduce: network loss, duplication and jitter');
  });
});
