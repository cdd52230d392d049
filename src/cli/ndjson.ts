/** Streamed NDJSON output to a file, honouring back-pressure; written atomically on close (util/atomic-write.ts). */
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { BackendError } from '../errors.js';
import { publish, tempPathFor } from '../util/atomic-write.js';

/**
 * A file that cannot be written (a missing directory, a full disk) does not stop the run:
 * further lines are dropped and `close` throws, naming the file, once the run is done.
 */
export class NdjsonFile {
  private readonly stream: WriteStream;
  private readonly temp: string;
  private failure: NodeJS.ErrnoException | null = null;
  constructor(private readonly file: string) {
    this.temp = tempPathFor(file);
    this.stream = createWriteStream(this.temp, { encoding: 'utf8', flags: 'wx' });
    this.stream.on('error', (error: NodeJS.ErrnoException) => (this.failure ??= error));
  }
  async write(value: unknown): Promise<void> {
    if (this.failure) return;
    if (!this.stream.write(`${JSON.stringify(value)}\n`)) await once(this.stream, 'drain').catch(() => undefined);
  }
  async close(): Promise<void> {
    try {
      if (!this.failure) {
        this.stream.end();
        await once(this.stream, 'finish');
      }
      if (this.failure) throw this.failure;
      await publish(this.temp, this.file);
    } catch (error) {
      await this.abort();
      throw new BackendError(`cannot write the findings file ${this.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
    }
  }
  async abort(): Promise<void> {
    this.stream.destroy();
    await rm(this.temp, { force: true });
  }
}
