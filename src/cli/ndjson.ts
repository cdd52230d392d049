/** Streamed NDJSON output to a file, honouring back-pressure; written atomically on close. */
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { once } from 'node:events';

export class NdjsonFile {
  private readonly stream: WriteStream;
  private readonly temp: string;
  constructor(private readonly file: string) {
    this.temp = `${file}.${process.pid}.tmp`;
    this.stream = createWriteStream(this.temp, { encoding: 'utf8' });
  }
  async write(value: unknown): Promise<void> {
    if (!this.stream.write(`${JSON.stringify(value)}\n`)) await once(this.stream, 'drain');
  }
  async close(): Promise<void> {
    this.stream.end();
    await once(this.stream, 'finish');
    await rename(this.temp, this.file);
  }
  async abort(): Promise<void> {
    this.stream.destroy();
  }
}
