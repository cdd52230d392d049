/** An ora spinner with live counts, on a TTY only; nothing decorative reaches logs or pipes. */
import type { CliIO } from './io.js';

export interface Progress {
  update(text: string): void;
  stop(): void;
}

const silent: Progress = { update() {}, stop() {} };

export async function startProgress(io: CliIO, text: string): Promise<Progress> {
  if (!io.stderr.isTTY || io.env.CI === 'true') return silent;
  const { default: ora } = await import('ora');
  const spinner = ora({ text, stream: io.stderr as NodeJS.WritableStream }).start();
  return {
    update: (t) => {
      spinner.text = t;
    },
    stop: () => spinner.stop(),
  };
}
