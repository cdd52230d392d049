/**
 * The `command` and `http` kinds: a resource type whose resources a handler lists and
 * deletes over the resource protocol (docs/resource-protocol.md). Reaper keeps everything
 * else — tombstones, grace, re-verification, the journal, caps — exactly as for its own
 * backends; the handler only answers.
 *
 * Everything a handler sends is checked (protocol.ts) before it is believed: a list answer
 * must end with its end line, hold no duplicate id and no line that is not a valid record;
 * a batch answer must hold exactly one line per id asked. A violation fails the call whole:
 * a scan throws (the type's audit is an error, the other types go on), a delete answers
 * `failed` for every item (read back, never retried: docs/safety.md §12).
 */
import { BackendError } from '../../errors.js';
import type { ShardPart } from '../../engine/shard.js';
import type { ResourceRecord } from '../../engine/types.js';
import type { CommandLocation, HttpLocation, ResourceSpec } from '../../manifest/types.js';
import type { Backend, BackendCapabilities, DeleteItem, DeleteResult, ScanOptions, ScanPage } from '../types.js';
import {
  BATCH_OPS,
  listEnd,
  listRecord,
  parseLine,
  PROTOCOL_VERSION,
  ProtocolViolation,
  type BatchAnswer,
  type BatchOp,
  type BatchRequest,
  type ListRecord,
  type ListRequest,
} from './protocol.js';
import { CommandTransport, HttpTransport, type Transport } from './transport.js';

type HandlerSpec = ResourceSpec & { location: CommandLocation | HttpLocation };

export class HandlerBackend implements Backend {
  readonly kind: 'command' | 'http';
  readonly scope: string;
  mark?: (items: readonly DeleteItem[], runId: string, signal?: AbortSignal) => Promise<Map<string, string>>;
  unmark?: (items: readonly DeleteItem[], signal?: AbortSignal) => Promise<void>;
  restore?: (id: string, handle: string, signal?: AbortSignal) => Promise<void>;

  private constructor(
    private readonly spec: HandlerSpec,
    private readonly transport: Transport,
  ) {
    this.kind = spec.location.kind;
    this.scope = transport.scope;
    const location = spec.location;
    const marks = location.kind === 'command' ? location.mark !== undefined : location.mark;
    const restores = location.kind === 'command' ? location.restore !== undefined : location.restore;
    if (marks) {
      this.mark = (items, runId, signal) => this.markItems(items, runId, signal);
      this.unmark = (items, signal) => this.unmarkItems(items, signal);
    }
    if (restores) this.restore = (id, handle, signal) => this.restoreItem(id, handle, signal);
  }

  static async open(spec: HandlerSpec): Promise<HandlerBackend> {
    const location = spec.location;
    try {
      const transport = location.kind === 'command' ? new CommandTransport(location, spec.name) : await HttpTransport.open(location, spec.name);
      return new HandlerBackend(spec, transport);
    } catch (error) {
      throw wrap(error, location.kind === 'http' ? `http ${location.url}` : 'command');
    }
  }

  /** How deletes are made, known from the manifest without a request; every plan shows it. */
  plannedDeleteMode(): string {
    return this.spec.location.conditional ? 'handler-conditional' : 'handler-UNCONDITIONAL (allowUnconditional)';
  }

  async capabilities(): Promise<BackendCapabilities> {
    return { deleteMode: this.plannedDeleteMode() };
  }

  reapRefusal(): string | null {
    const location = this.spec.location;
    if (location.conditional || location.allowUnconditional) return null;
    return `the handler declares conditional: false (it cannot check fingerprints, so a resource changed since it was judged would be deleted anyway); set ${location.kind}.allowUnconditional: true to reap it regardless`;
  }

  reapNotes(): string[] {
    const location = this.spec.location;
    const notes = [`resources come from a ${location.kind} handler (resource protocol v${PROTOCOL_VERSION}, ${this.scope})`];
    if (!location.conditional) {
      notes.push(`deletes are NOT conditional: the handler declares conditional: false${location.allowUnconditional ? '; reaping is allowed by allowUnconditional: true' : '; reap is refused without allowUnconditional: true'}`);
    }
    return notes;
  }

  /** The whole type is one shard's part or none of it. */
  async inPart(ids: readonly string[], part: ShardPart): Promise<Set<string>> {
    if (part.kind === 'all') return new Set(ids);
    if (part.kind === 'none') return new Set();
    throw new BackendError(`${this.scope}: a handler's type is not split between shards; it goes whole to one shard`);
  }

  /** A handler's type is not split: a shard scans all of it or none (docs/scale-out.md). */
  async *scan(options: ScanOptions): AsyncIterable<ScanPage> {
    const part = options.part ?? { kind: 'all' };
    if (part.kind === 'none') {
      yield { records: [], cursor: null };
      return;
    }
    if (part.kind !== 'all') throw new BackendError(`${this.scope}: a handler's type is not split between shards; it goes whole to one shard`);
    const seen = new Set<string>();
    let cursor = options.cursor ?? null;
    for (;;) {
      const { records, next } = await this.listPage({ cursor, limit: options.pageSize }, options.signal);
      for (const r of records) {
        if (seen.has(r.id)) throw this.error(`list answered the id ${JSON.stringify(r.id)} twice in one scan`);
        seen.add(r.id);
      }
      if (next !== null && next === cursor) throw this.error(`list answered the cursor it was given (${JSON.stringify(next)}) as the next one; the scan would never end`);
      const unreadable = records.filter((r) => r.unreadable !== undefined).map((r) => ({ id: r.id, why: r.unreadable! }));
      yield { records: records.map(toRecord), cursor: next, ...(unreadable.length ? { unreadable } : {}) };
      if (next === null) return;
      cursor = next;
    }
  }

  /** Read ids again: a list request naming them (a handler may ignore the ids; only those asked are kept). */
  async read(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, ResourceRecord>> {
    const out = new Map<string, ResourceRecord>();
    if (ids.length === 0) return out;
    const wanted = new Set(ids);
    let cursor: string | null = null;
    for (;;) {
      const { records, next }: { records: ListRecord[]; next: string | null } = await this.listPage({ cursor, limit: ids.length, ids: [...ids] }, signal);
      for (const r of records) {
        if (!wanted.has(r.id)) continue;
        if (out.has(r.id)) throw this.error(`list answered the id ${JSON.stringify(r.id)} twice`);
        out.set(r.id, toRecord(r));
      }
      if (next === null || next === cursor) return out;
      cursor = next;
    }
  }

  async delete(items: readonly DeleteItem[], signal?: AbortSignal): Promise<DeleteResult[]> {
    if (items.length === 0) return [];
    let answers: Map<string, BatchAnswer<'delete'>>;
    try {
      answers = await this.batch('delete', items.map((i) => ({ id: i.id, fingerprint: i.fingerprint })), signal);
    } catch (error) {
      // Whatever the handler did is unknown: each item is failed, and read back (docs/safety.md §12).
      const message = wrap(error, this.scope).message;
      return items.map((i) => ({ id: i.id, outcome: 'failed', error: message }));
    }
    return items.map((i): DeleteResult => {
      const a = answers.get(i.id)!;
      if (a.result === 'error') return { id: i.id, outcome: 'failed', error: `handler: ${a.message}` };
      if (a.result === 'deleted') return { id: i.id, outcome: 'deleted', ...(a.restoreHandle !== undefined ? { restoreHandle: a.restoreHandle } : {}) };
      return { id: i.id, outcome: a.result };
    });
  }

  private async markItems(items: readonly DeleteItem[], runId: string, signal?: AbortSignal): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (items.length === 0) return out;
    const answers = await this.batchOrThrow('mark', items.map((i) => ({ id: i.id, fingerprint: i.fingerprint, run: runId })), signal);
    for (const [id, a] of answers) if (a.result === 'marked') out.set(id, a.fingerprint!);
    return out;
  }

  private async unmarkItems(items: readonly DeleteItem[], signal?: AbortSignal): Promise<void> {
    if (items.length === 0) return;
    const answers = await this.batchOrThrow('unmark', items.map((i) => ({ id: i.id, fingerprint: i.fingerprint })), signal);
    const errors = [...answers.values()].filter((a) => a.result === 'error');
    if (errors.length) throw this.error(`unmark failed for ${errors.length} resource(s): ${errors[0]!.message}`);
  }

  private async restoreItem(id: string, handle: string, signal?: AbortSignal): Promise<void> {
    const answers = await this.batchOrThrow('restore', [{ id, handle }], signal);
    const a = answers.get(id)!;
    if (a.result === 'error') throw this.error(`restore of ${JSON.stringify(id)} failed: ${a.message}`);
  }

  /**
   * The handler's answers to a `mark`, `unmark` or `restore` request, checked against the
   * protocol but not interpreted: for `reaper conformance`, which sends requests that must
   * change nothing and looks at each answer.
   */
  answers<Op extends 'mark' | 'unmark' | 'restore'>(op: Op, requests: BatchRequest<Op>[], signal?: AbortSignal): Promise<Map<string, BatchAnswer<Op>>> {
    return this.batchOrThrow(op, requests, signal);
  }

  async close(): Promise<void> {}

  /** One page of a list answer, every line checked; the end line must come last. */
  private async listPage(request: Pick<ListRequest, 'cursor' | 'limit' | 'ids'>, signal?: AbortSignal): Promise<{ records: ListRecord[]; next: string | null }> {
    const body: ListRequest = { protocol: PROTOCOL_VERSION, op: 'list', resource: this.spec.name, limit: request.limit, cursor: request.cursor, ...(request.ids ? { ids: request.ids } : {}) };
    const env = { REAPER_CURSOR: request.cursor ?? '', REAPER_LIMIT: String(request.limit) };
    try {
      const lines = await this.transport.call('list', `${JSON.stringify(body)}\n`, env, signal);
      if (lines.length === 0) throw new ProtocolViolation('list answered nothing; an answer ends with its end line {"next": …}');
      const records: ListRecord[] = [];
      const page = new Set<string>();
      lines.slice(0, -1).forEach((text, i) => {
        const r = parseLine(listRecord, text, `list answer line ${i + 1}`);
        if (page.has(r.id)) throw new ProtocolViolation(`list answer line ${i + 1}: the id ${JSON.stringify(r.id)} again`);
        page.add(r.id);
        records.push(r);
      });
      const last = lines[lines.length - 1]!;
      const end = lastLine(last, lines.length);
      return { records, next: end.next };
    } catch (error) {
      throw wrap(error, this.scope);
    }
  }

  /** Send a batch and check the answer: one valid line per id asked, no other id, none twice. */
  private async batch<Op extends BatchOp>(op: Op, requests: BatchRequest<Op>[], signal?: AbortSignal): Promise<Map<string, BatchAnswer<Op>>> {
    const { request, answer } = BATCH_OPS[op];
    for (const r of requests) request.parse(r); // ours: a bug here is not the handler's
    const body = requests.map((r) => `${JSON.stringify(r)}\n`).join('');
    const lines = await this.transport.call(op, body, { REAPER_COUNT: String(requests.length) }, signal);
    const asked = new Set(requests.map((r) => r.id));
    const out = new Map<string, BatchAnswer<Op>>();
    lines.forEach((text, i) => {
      const a = parseLine(answer, text, `${op} answer line ${i + 1}`) as BatchAnswer<Op>;
      if (!asked.has(a.id)) throw new ProtocolViolation(`${op} answer line ${i + 1}: the id ${JSON.stringify(a.id)} was not asked for`);
      if (out.has(a.id)) throw new ProtocolViolation(`${op} answer line ${i + 1}: the id ${JSON.stringify(a.id)} again`);
      out.set(a.id, a);
    });
    const missing = requests.filter((r) => !out.has(r.id));
    if (missing.length) throw new ProtocolViolation(`${op} answered ${out.size} of ${requests.length} ids; none for ${JSON.stringify(missing[0]!.id)}${missing.length > 1 ? ` and ${missing.length - 1} more` : ''}`);
    return out;
  }

  private async batchOrThrow<Op extends BatchOp>(op: Op, requests: BatchRequest<Op>[], signal?: AbortSignal): Promise<Map<string, BatchAnswer<Op>>> {
    try {
      return await this.batch(op, requests, signal);
    } catch (error) {
      throw wrap(error, this.scope);
    }
  }

  private error(message: string): BackendError {
    return new BackendError(`${this.scope}: ${message}`);
  }
}

function lastLine(text: string, n: number): { next: string | null } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return parseLine(listEnd, text, `list answer line ${n}`);
  }
  if (value === null || typeof value !== 'object' || !('next' in value)) {
    // A record where the end line should be: the answer was cut short (or the handler forgot it).
    throw new ProtocolViolation(`list answer line ${n} is not the end line {"next": …}: the answer is incomplete`);
  }
  return parseLine(listEnd, text, `list answer line ${n}`);
}

function toRecord(r: ListRecord): ResourceRecord {
  const createdAtMs = r.createdAt === null ? null : Date.parse(r.createdAt);
  return {
    id: r.id,
    createdAtMs: createdAtMs === null || Number.isNaN(createdAtMs) ? null : createdAtMs,
    bytes: r.bytes ?? null,
    fingerprint: r.fingerprint,
    attributes: r.attributes ?? {},
    ...(r.unreadable !== undefined ? { unreadable: r.unreadable } : {}),
  };
}

function wrap(error: unknown, scope: string): Error {
  if (error instanceof ProtocolViolation) return new BackendError(`${scope}: ${error.message}`, { cause: error });
  return error as Error;
}
