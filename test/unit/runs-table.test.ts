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

describe('numbers line up on the right, as in the audit table', () => {
  // A cell's text against its column's width: right-aligned when the padding is before it.
  const rightAligned = (line: string, column: number) => {
    const cell = line.split('│')[column]!;
    return /^ +\S+ $/.test(cell) && cell.startsWith('  ');
  };

  it('runs: scanned and orphaned counts', () => {
    const long = { ...run('big', 8), summary: { summary: { scanned: 123_456, orphaned: 7 } } };
    const lines = runsTable([long, run('small', 8)], { width: 200 }).split('\n');
    const small = lines.find((line) => line.includes(' small '))!;
    expect(rightAligned(small, 6), small).toBe(true);
  });
});
