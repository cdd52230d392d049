/**
 * Progress never stops or slows the work (docs/safety.md §19: no terminal can stall a
 * run). The built CLI runs in a real pseudo-terminal; what it writes is inspected byte by
 * byte. A terminal that reports 0 columns once made the spinner erase lines forever.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasScript, reaper, reaperInPty, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

const ESC = String.fromCharCode(27);

/** What a run wrote, in numbers small enough for a failure message. */
function written(output: string) {
  const sequences = output.match(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g')) ?? [];
  return { bytes: output.length, anyEscape: output.includes(ESC), cursorUps: sequences.filter((s) => s.endsWith('A')).length, escapes: sequences.length, firstEscapes: [...new Set(sequences)].slice(0, 5) };
}
const available = hasScript();
if (!available && process.env.CI === 'true') throw new Error('util-linux `script` is needed for the terminal tests (apt-get install bsdutils)');

describe.skipIf(!available)('progress in a pseudo-terminal', () => {
  let dir: string;
  const manifest = () => path.join(dir, 'reaper-demo', 'reaper.yaml');

  beforeAll(() => {
    dir = tmp();
    expect(reaper(['demo'], { cwd: dir }).code).toBe(0);
  });

  it('a terminal of 0 columns: the audit ends, prints its table, and writes no spinner', () => {
    const r = reaperInPty(['audit', '-c', manifest()], { cwd: dir, cols: 0, timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(0);
    expect(written(r.output)).toMatchObject({ anyEscape: false, cursorUps: 0, escapes: 0 });
    expect(r.output.length).toBeLessThan(64 * 1024);
    expect(r.output).toContain('scratch-uploads');
  });

  it('a reap dry run on a terminal of 0 columns ends too', () => {
    const r = reaperInPty(['reap', '-c', manifest()], { cwd: dir, cols: 0, timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(0);
    expect(written(r.output)).toMatchObject({ anyEscape: false });
    expect(r.output).toContain('DRY RUN');
  });

  it('an 80-column terminal shows the spinner (the control for the cases below)', () => {
    const r = reaperInPty(['audit', '-c', manifest()], { cwd: dir, cols: 80 });
    expect(r.code).toBe(0);
    expect(r.output).toContain('auditing');
    expect(written(r.output).escapes).toBeGreaterThan(0);
  });

  for (const [what, env] of [
    ['TERM=dumb', { TERM: 'dumb' }],
    ['NO_COLOR', { NO_COLOR: '1' }],
    ['CI=true', { CI: 'true' }],
  ] as const) {
    it(`${what}: no spinner and no colour, not a single escape sequence`, () => {
      const r = reaperInPty(['audit', '-c', manifest()], { cwd: dir, cols: 80, env });
      expect(r.code).toBe(0);
      expect(written(r.output)).toMatchObject({ anyEscape: false, firstEscapes: [] });
      expect(r.output).toContain('scratch-uploads');
    });
  }
});
