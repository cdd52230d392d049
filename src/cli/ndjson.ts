/** Streamed NDJSON output to a file, honouring back-pressure; written atomically on close (util/atomic-write.ts). */
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { publish, tempPathFor } from '../util/atomic-write.js';

export class NdjsonFile {
  private readonly stream: WriteStream;
  private readonly temp: string;
  constructor(private readonly file: string) {
    this.temp = tempPathFor(file);
    this.stream = createWriteStream(this.temp, { encoding: 'utf8', flags: 'wx' });
  }
  async write(value: unknown): Promise<void> {
    if (!this.stream.write(`${JSON.stringify(value)}\n`)) await once(this.stream, 'drain');
  }
  async close(): Promise<void> {
    this.stream.end();
    await once(this.stream, 'finish');
    await publish(this.temp, this.file);
  }
  async abort(): Promise<void> {
    this.stream.destroy();
    await rm(this.temp, { force: true });
  }
}
