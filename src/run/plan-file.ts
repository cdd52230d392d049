/**
 * Reap plans on disk, as NDJSON: a header line, one line per item, and a trailer with
 * the item count and a sha256 digest over the item lines. Written while planning (so
 * memory stays bounded), read back to apply; `--plan FILE --execute` refuses a file
 * whose digest or manifest does not match.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { PlanItem } from '../engine/reap-plan.js';
import { SafetyError, UsageError } from '../errors.js';

export const PLAN_FORMAT_VERSION = 1;

export interface PlanHeader {
  kind: 'reaper-plan';
  version: number;
  runId: string;
  createdAt: string;
  manifestDigest: string;
  /** Per resource type: what was scanned and planned. */
  resources: { name: string; scanned: number; toMark: number; toSweep: number; toLift: number }[];
}

export class PlanWriter {
  private readonly stream: WriteStream;
  private readonly hash = createHash('sha256');
  private count = 0;

  constructor(readonly file: string) {
    this.stream = createWriteStream(file, { encoding: 'utf8', mode: 0o600 });
  }

  async add(item: PlanItem): Promise<void> {
    const line = JSON.stringify(item);
    this.hash.update(line).update('\n');
    this.count++;
    if (!this.stream.write(`${line}\n`)) await once(this.stream, 'drain');
  }

  /** Finish: the header goes last as the trailer too, so the file is written in one pass. */
  async close(header: PlanHeader): Promise<{ digest: string; items: number }> {
    const digest = this.hash.digest('hex');
    this.stream.write(`${JSON.stringify({ ...header, trailer: true, items: this.count, digest })}\n`);
    this.stream.end();
    await once(this.stream, 'finish');
    return { digest, items: this.count };
  }
}

/** Read and check a plan file; returns its header and an item iterator (items are re-read lazily). */
export async function openPlan(file: string, manifestDigest: string): Promise<{ header: PlanHeader; items: () => AsyncGenerator<PlanItem> }> {
  let header: (PlanHeader & { trailer: true; items: number; digest: string }) | null = null;
  const hash = createHash('sha256');
  let count = 0;
  try {
    for await (const line of lines(file)) {
      if (line === '') continue;
      const value = JSON.parse(line) as { trailer?: boolean };
      if (value.trailer) {
        header = value as PlanHeader & { trailer: true; items: number; digest: string };
        break;
      }
      hash.update(line).update('\n');
      count++;
    }
  } catch (error) {
    throw new UsageError(`cannot read the plan ${file}: ${(error as Error).message}`);
  }
  if (!header || header.kind !== 'reaper-plan') throw new UsageError(`${file} is not a complete reaper plan (no trailer)`);
  if (header.version !== PLAN_FORMAT_VERSION) throw new UsageError(`${file} has plan format ${header.version}; this reaper reads ${PLAN_FORMAT_VERSION}`);
  if (header.items !== count || header.digest !== hash.digest('hex')) {
    throw new SafetyError(`the plan ${file} does not match its digest; it was changed or truncated after it was written`);
  }
  if (header.manifestDigest !== manifestDigest) {
    throw new SafetyError(`the plan ${file} was made from a different manifest; plan again with this manifest`);
  }
  return {
    header,
    async *items() {
      for await (const line of lines(file)) {
        if (line === '') continue;
        const value = JSON.parse(line) as PlanItem & { trailer?: boolean };
        if (value.trailer) return;
        yield value;
      }
    },
  };
}

function lines(file: string): AsyncIterable<string> {
  return createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
}
