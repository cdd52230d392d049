/** JSON on stdout: indented for a person at a terminal, one compact line for a pipe or a log collector. */
import type { CliIO } from './io.js';

export function writeJson(io: CliIO, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, io.stdout.isTTY ? 2 : undefined)}\n`);
}
