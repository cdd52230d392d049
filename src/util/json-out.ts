/** JSON on stdout: indented for a person at a terminal, one compact line for a pipe or a log collector. */

export interface JsonStdout {
  stdout: { write(chunk: string): unknown; isTTY?: boolean };
}

export function writeJson(io: JsonStdout, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, io.stdout.isTTY ? 2 : undefined)}\n`);
}
