/** The spinner's guards, on a fake terminal whose width the test changes. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { spinnerAllowed, startProgress } from '../../src/cli/progress.js';

/** A terminal stream that counts what is drawn and throws past a bound instead of looping forever. */
class FakeTerminal extends EventEmitter {
  isTTY = true;
  columns = 80;
  calls = 0;
  private readonly drawn = (): boolean => {
    if (++this.calls > 10_000) throw new Error('the spinner did not stop drawing');
    return true;
  };
  write: (chunk?: unknown) => boolean = this.drawn;
  cursorTo = this.drawn;
  moveCursor = this.drawn;
  clearLine = this.drawn;
}

const ioWith = (stderr: FakeTerminal, env: Record<string, string> = { TERM: 'xterm' }): CliIO =>
  ({ stdout: { write: () => true }, stderr, env, cwd: '/', signal: new AbortController().signal, version: () => '0' }) as unknown as CliIO;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('progress', () => {
  it('is allowed only on a terminal with a usable width and no TERM=dumb, NO_COLOR or CI', () => {
    const t = new FakeTerminal();
    expect(spinnerAllowed(ioWith(t))).toBe(true);
    expect(spinnerAllowed(ioWith(Object.assign(new FakeTerminal(), { columns: 0 })))).toBe(false);
    expect(spinnerAllowed(ioWith(Object.assign(new FakeTerminal(), { columns: undefined })))).toBe(false);
    expect(spinnerAllowed(ioWith(Object.assign(new FakeTerminal(), { isTTY: false })))).toBe(false);
    expect(spinnerAllowed(ioWith(t, { TERM: 'dumb' }))).toBe(false);
    expect(spinnerAllowed(ioWith(t, { TERM: 'xterm', NO_COLOR: '1' }))).toBe(false);
    expect(spinnerAllowed(ioWith(t, { TERM: 'xterm', NO_COLOR: '' }))).toBe(true);
    expect(spinnerAllowed(ioWith(t, { TERM: 'xterm', CI: 'true' }))).toBe(false);
  });

  it('stops for good when the terminal shrinks to 0 columns mid-run', async () => {
    const t = new FakeTerminal();
    const progress = await startProgress(ioWith(t), 'auditing…');
    await sleep(100);
    expect(t.calls).toBeGreaterThan(0);
    t.columns = 0;
    t.emit('resize');
    const after = t.calls;
    await sleep(250); // three frames of ora's 80 ms interval, had it kept drawing
    progress.update('auditing x: 10 scanned');
    expect(t.calls).toBe(after);
    progress.stop();
  });

  it('keeps every frame on one line: long text is cut to the width', async () => {
    const t = new FakeTerminal();
    t.columns = 30;
    const frames: string[] = [];
    t.write = (chunk?: unknown) => {
      frames.push(String(chunk));
      return true;
    };
    const progress = await startProgress(ioWith(t), 'x'.repeat(200));
    progress.update('y'.repeat(200));
    await sleep(100);
    progress.stop();
    const drawn = frames.filter((f) => /[xy]/.test(f)).map((f) => f.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), ''));
    expect(drawn.length).toBeGreaterThan(0);
    for (const f of drawn) expect([...f].length).toBeLessThanOrEqual(30);
  });
});
