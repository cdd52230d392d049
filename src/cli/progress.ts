/**
 * An ora spinner with live counts, on an interactive terminal only; nothing decorative
 * reaches logs or pipes. Progress must never stop or slow the work (docs/safety.md §19):
 * where the terminal cannot be trusted to draw it — no width (a pseudo-terminal that
 * reports 0 columns once made the spinner erase lines forever), TERM=dumb, NO_COLOR, CI —
 * there is none, and a terminal that shrinks below a usable width or fails a write
 * stops it for good.
 */
import type { CliIO, OutputStream } from './io.js';

export interface Progress {
  update(text: string): void;
  stop(): void;
}

const silent: Progress = { update() {}, stop() {} };

/** Narrower than this, a one-line spinner cannot be drawn without wrapping. */
export const MIN_SPINNER_COLUMNS = 20;

interface TerminalStream extends OutputStream {
  columns?: number;
  on?(event: string, listener: (...args: unknown[]) => void): unknown;
  off?(event: string, listener: (...args: unknown[]) => void): unknown;
}

const usableWidth = (stream: TerminalStream) => Number.isFinite(stream.columns) && (stream.columns ?? 0) >= MIN_SPINNER_COLUMNS;

/** Whether a spinner may be drawn on the CLI's stderr. */
export function spinnerAllowed(io: CliIO): boolean {
  const stream = io.stderr as TerminalStream;
  const env = io.env;
  if (!stream.isTTY || !usableWidth(stream)) return false;
  // stderr carries a JSON log (--log-format json): nothing else is written there.
  if (io.log) return false;
  if (env.TERM === 'dumb' || (env.NO_COLOR ?? '') !== '' || env.CI === 'true' || env.CI === '1') return false;
  return true;
}

export async function startProgress(io: CliIO, text: string): Promise<Progress> {
  if (!spinnerAllowed(io)) return silent;
  const stream = io.stderr as TerminalStream;
  const { default: ora } = await import('ora');
  // One line, always: the text is cut to the width so no redraw has more than one line to erase.
  const fit = (t: string) => (t.length < (stream.columns ?? 0) - 2 ? t : `${t.slice(0, Math.max(0, (stream.columns ?? 0) - 4))}…`);
  const spinner = ora({ text: fit(text), stream: stream as NodeJS.WritableStream, discardStdin: false, isEnabled: true });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    stream.off?.('resize', onResize);
    stream.off?.('error', stop);
    try {
      spinner.stop();
    } catch {
      // A terminal that fails a write has nothing more to show.
    }
  };
  // Stopped before the next frame is drawn at a width it cannot count lines for.
  const onResize = () => {
    if (!usableWidth(stream)) stop();
  };
  stream.on?.('resize', onResize);
  stream.on?.('error', stop);
  spinner.start();
  return {
    update: (t) => {
      if (stopped) return;
      if (!usableWidth(stream)) return stop();
      spinner.text = fit(t);
    },
    stop,
  };
}
