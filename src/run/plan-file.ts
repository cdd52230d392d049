/**
 * Reap plans on disk, as NDJSON: one line per item, then a trailer with the header, the
 * item count and a sha256 digest over the item lines and the header (whose counts the
 * caps are checked against). Written while planning (so memory stays bounded), read back
 * to apply; `--plan FILE --execute` refuses a file whose digest or manifest does not match.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants, createReadStream, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { createInterface } from 'node:readline';
import type { FindingFilter } from '../engine/filters.js';
import type { PlanItem } from '../engine/reap-plan.js';
import { SafetyError, UsageError } from '../errors.js';
import { spoolFile } from '../util/spool.js';
import type { ResourceTelemetry } from '../report/telemetry.js';

/** How many characters of item lines PlanWriter gathers before one write. */
const PENDING_CHARS = 64 * 1024;

/** 2: the digest covers the header (and its counts) too; a format-1 plan is refused as such, not as tampered. */
export const PLAN_FORMAT_VERSION = 2;

export interface PlanHeader {
  kind: 'reaper-plan';
  version: number;
  runId: string;
  createdAt: string;
  manifestDigest: string;
  /**
   * Per resource type: what was scanned and planned, and the leak telemetry of the scan the plan
   * was made from (what a run applying the plan reports and records; absent in older plans).
   */
  resources: { name: string; scanned: number; toMark: number; toSweep: number; toLift: number; telemetry?: ResourceTelemetry | null }[];
  /** The filters the plan was made with (--older-than, --owner); absent when none. */
  filters?: FindingFilter;
  /** The types the plan was made for when they were chosen (--resource, --exclude-resource); absent for the whole manifest. */
  selected?: string[];
  /** The shard the plan was made by (`i/N`, docs/scale-out.md); absent unsharded. It is applied by the same shard only. */
  shard?: string;
}

/** Where a plan stood before a resource type's items: `PlanWriter.rollback` returns to it. */
export interface PlanSegment {
  readonly bytes: number;
  readonly count: number;
  readonly hash: Hash;
}

/**
 * Writes a plan in one pass. Each resource type's items are a segment: appended while its
 * scan runs and rolled back (the file truncated, the digest and count restored) when the
 * scan fails, so a plan never holds items of a type that was not read whole, and each item
 * is written once.
 */
export class PlanWriter {
  private readonly stream: WriteStream;
  private hash = createHash('sha256');
  private count = 0;
  private bytes = 0;

  constructor(readonly file: string) {
    // O_APPEND: after a rollback truncates the file, the next item lands at its new end.
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND, 0o600);
    this.stream = createWriteStream(file, { fd, encoding: 'utf8' });
    // A failed write surfaces through `errored`, `once` and `finished` at the next step; unheard, it would end the process.
    this.stream.on('error', () => undefined);
  }

  /** Lines not yet hashed, counted in bytes nor written: one write (and one digest update) per ~64 KiB, not per item. */
  private pending = '';

  async add(item: PlanItem): Promise<void> {
    this.pending += `${JSON.stringify(item)}\n`;
    this.count++;
    if (this.pending.length >= PENDING_CHARS && !this.push()) await this.drained();
  }

  /** Until the stream takes more; a write that failed (a full disk) rejects, now or when it fails. */
  private async drained(): Promise<void> {
    this.failed();
    await once(this.stream, 'drain');
  }

  /** A failed write destroys the stream, which then neither drains nor finishes: its error, thrown. */
  private failed(): void {
    if (this.stream.errored) throw this.stream.errored;
  }

  /** Hand the pending lines to the digest and the file; false when the stream asks to wait for 'drain'. */
  private push(): boolean {
    this.failed();
    if (this.pending === '') return true;
    const chunk = this.pending;
    this.pending = '';
    this.hash.update(chunk);
    this.bytes += Buffer.byteLength(chunk);
    return this.stream.write(chunk);
  }

  /** The point a type's items start from. */
  segment(): PlanSegment {
    this.push();
    return { bytes: this.bytes, count: this.count, hash: this.hash.copy() };
  }

  /** Drop every item added since `segment`: written out first, then cut off the file. */
  async rollback(segment: PlanSegment): Promise<void> {
    this.push();
    await new Promise<void>((resolve, reject) => this.stream.write('', (error) => (error ? reject(error) : resolve())));
    await truncate(this.file, segment.bytes);
    this.bytes = segment.bytes;
    this.count = segment.count;
    this.hash = segment.hash.copy();
  }

  /** Finish: the header goes last as the trailer too, so the file is written in one pass. */
  async close(header: PlanHeader): Promise<{ digest: string; items: number }> {
    this.push();
    const digest = this.hash.update(digestedHeader(header)).digest('hex');
    this.stream.end(`${JSON.stringify({ ...header, trailer: true, items: this.count, digest })}\n`);
    await finished(this.stream);
    return { digest, items: this.count };
  }

  /** Close without a trailer (the plan failed): the file is left incomplete, which openPlan refuses. */
  async abandon(): Promise<void> {
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end(this.pending);
    this.pending = '';
    await finished(this.stream).catch(() => undefined);
  }
}

/** A plan read and checked by `openPlan`: its header, and its items from the private copy that was checked. */
export interface OpenedPlan {
  header: PlanHeader;
  items: () => AsyncGenerator<PlanItem>;
  /** Remove the private copy. */
  dispose(): Promise<void>;
}

/**
 * Read and check a plan file. The file is read once: its lines are checked as they are copied
 * into a private file (mode 0600, in a directory of its own), and the items are applied from
 * that copy, lazily. So what is applied is what was checked, even if the file is changed after
 * the check, and a plan can come through a pipe (`--plan /dev/stdin`). The copy is a spool
 * (util/spool.ts): a run killed while applying it leaves no copy behind.
 */
export async function openPlan(file: string, manifestDigest: string): Promise<OpenedPlan> {
  const copy = await spoolFile('reaper-plan-', 'plan.ndjson');
  try {
    const header = await checkedCopy(file, copy.path, manifestDigest);
    return { header, items: () => planItems(copy.path), dispose: () => copy.dispose() };
  } catch (error) {
    await copy.dispose();
    throw error;
  }
}

async function checkedCopy(file: string, copy: string, manifestDigest: string): Promise<PlanHeader> {
  let header: (PlanHeader & { trailer: true; items: number; digest: string }) | null = null;
  const hash = createHash('sha256');
  let count = 0;
  /** Items per `resource\0op`: the caps are checked on the header's counts, so they must be the items' own. */
  const tally = new Map<string, number>();
  // The spool made the file, private: written from its start.
  const out = createWriteStream(copy, { flags: 'w', encoding: 'utf8' }).on('error', () => undefined);
  let pending = '';
  try {
    for await (const line of lines(file)) {
      if (line === '') continue;
      const value = JSON.parse(line) as { trailer?: boolean; resource?: string; op?: string };
      if (value.trailer) {
        header = value as PlanHeader & { trailer: true; items: number; digest: string };
        pending += `${line}\n`;
        break;
      }
      hash.update(line).update('\n');
      pending += `${line}\n`;
      if (pending.length >= PENDING_CHARS) {
        if (out.errored) throw out.errored;
        if (!out.write(pending)) await once(out, 'drain');
        pending = '';
      }
      count++;
      const key = `${value.resource}\0${value.op}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    out.end(pending);
    await finished(out);
  } catch (error) {
    out.destroy();
    throw new UsageError(`cannot read the plan ${file}: ${(error as Error).message}`);
  }
  if (!header || header.kind !== 'reaper-plan') throw new UsageError(`${file} is not a complete reaper plan (no trailer)`);
  if (header.version !== PLAN_FORMAT_VERSION) throw new UsageError(`${file} has plan format ${header.version}; this reaper reads ${PLAN_FORMAT_VERSION}`);
  let headerText: string | null = null;
  try {
    headerText = digestedHeader(header);
  } catch {
    // a header too mangled to encode cannot match the digest
  }
  if (headerText === null || header.items !== count || header.digest !== hash.update(headerText).digest('hex')) {
    throw new SafetyError(`the plan ${file} does not match its digest; it was changed or truncated after it was written`);
  }
  const itemsOf = (name: string, op: PlanItem['op']) => tally.get(`${name}\0${op}`) ?? 0;
  const counted = header.resources.reduce((n, r) => n + r.toMark + r.toSweep + r.toLift, 0);
  const mismatch = header.resources.some((r) => itemsOf(r.name, 'mark') !== r.toMark || itemsOf(r.name, 'sweep') !== r.toSweep || itemsOf(r.name, 'lift') !== r.toLift);
  if (mismatch || counted !== count) {
    throw new SafetyError(`the plan ${file} counts other items than it holds; its caps cannot be trusted — plan again`);
  }
  if (header.manifestDigest !== manifestDigest) {
    throw new SafetyError(`the plan ${file} was made from a different manifest; plan again with this manifest`);
  }
  return header;
}

/** The items of a plan file, read lazily up to its trailer: unchecked, so only for a plan this very run wrote (or `openPlan`'s checked copy). */
export async function* planItems(file: string): AsyncGenerator<PlanItem> {
  for await (const line of lines(file)) {
    if (line === '') continue;
    const value = JSON.parse(line) as PlanItem & { trailer?: boolean };
    if (value.trailer) return;
    yield value;
  }
}

/** The header as the digest covers it: every field, in a fixed order, so an edited count or manifest digest is caught. */
function digestedHeader(h: PlanHeader): string {
  return JSON.stringify({
    kind: h.kind,
    version: h.version,
    runId: h.runId,
    createdAt: h.createdAt,
    manifestDigest: h.manifestDigest,
    // The telemetry too (absent in older plans): a run applying the plan records it, and a later
    // --sweep-only run judges maxDeleteFraction against what it says was scanned.
    resources: h.resources.map((r) => ({ name: r.name, scanned: r.scanned, toMark: r.toMark, toSweep: r.toSweep, toLift: r.toLift, ...(r.telemetry !== undefined ? { telemetry: r.telemetry } : {}) })),
    // Absent in plans made without filters, so their digests are unchanged.
    ...(h.filters ? { filters: { olderThanSeconds: h.filters.olderThanSeconds, owners: h.filters.owners } } : {}),
    // Likewise absent unsharded: an edited shard would apply a plan under another shard's lock.
    ...(h.shard !== undefined ? { shard: h.shard } : {}),
    ...(h.selected !== undefined ? { selected: h.selected } : {}),
  });
}

function lines(file: string): AsyncIterable<string> {
  // This process's stdin as it is (a pipe, or a socket, which cannot be opened by that name).
  const input = file === '/dev/stdin' ? process.stdin.setEncoding('utf8') : createReadStream(file, { encoding: 'utf8' });
  return createInterface({ input, crlfDelay: Infinity });
}
