import { describe, expect, it } from 'vitest';
import { runsTable } from '../../src/report/table.js';
import type { RunRecord } from '../../src/state/types.js';

const run = (runId: string, ms: number | null): RunRecord => ({
  runId,
  kind: 'audit',
  status: ms === null ? 'running' : 'ok',
  startedAt: Date.UTC(2026, 11, 7, 5, 0, 0),
  finishedAt: ms === null ? null : Date.UTC(2026, 11, 7, 5, 0, 0) + ms,
  manifestDigest: 'd',
  execute: false,
  summary: { summary: { scanned: 3, orphaned: 1 } },
  sourceCounts: null,
  error: null,
  heartbeatAt: null,
  aliveUntil: null,
  job: null,
  shard: null,
});

describe('runsTable', () => {
  it('shows a run shorter than a second in milliseconds, tenths under ten seconds, and a run still going as -', () => {
    const table = runsTable([run('fast', 8), run('short', 2_340), run('long', 95_000), run('going', null)], { width: 200 });
    const duration = (id: string) => table.split('\n').find((line) => line.includes(` ${id} `))!.split('│')[5]!.trim();
    expect(duration('fast')).toBe('8ms');
    expect(duration('short')).toBe('2.3s');
    expect(duration('long')).toBe('1.6m');
    expect(duration('going')).toBe('-');
  });
});
