/**
 * `reaper conformance`: the resource protocol's checks against a user's handler
 * (docs/resource-protocol.md, "Checking a handler"). By default nothing is deleted: the
 * whole scope is listed (every answer checked, ids unique, cursors moving), a sample is
 * read back by id, and deletes are sent that must not delete — an id that does not exist
 * (`absent`) and a real id with a fingerprint that cannot match (`changed`, and the resource
 * still there, unchanged). With `destructive`, one named resource is deleted conditionally
 * and must then be gone.
 */
import { randomBytes } from 'node:crypto';
import { Connections } from '../backends/connections.js';
import { HandlerBackend } from '../backends/handler/handler-backend.js';
import { openBackend } from '../backends/open.js';
import type { Backend } from '../backends/types.js';
import type { ResourceRecord } from '../engine/types.js';
import { UsageError } from '../errors.js';
import type { Manifest } from '../manifest/types.js';

/**
 * One check: `pass` when it ran and the handler passed it, `fail` when it ran and the handler
 * failed it, `skip` when there was nothing to run it on (the detail says why). `ok` is true for
 * a pass only: a check that checked nothing never reads as passed.
 */
export interface ConformanceCheck {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  ok: boolean;
  detail: string;
}

export interface ConformanceReport {
  resource: string;
  kind: string;
  scope: string;
  destructive: boolean;
  checks: ConformanceCheck[];
  /** No check failed (some may have been skipped). */
  ok: boolean;
  /** How many checks were skipped. */
  skipped: number;
}

export interface ConformanceOptions {
  /** Also delete this id (conditionally, on the fingerprint just listed) and check it is gone. */
  destructiveId?: string;
  /** Ids read back by id (default 20). */
  sample?: number;
  signal?: AbortSignal;
}

export async function runConformance(manifest: Manifest, type: string, options: ConformanceOptions = {}): Promise<ConformanceReport> {
  const spec = manifest.resources.find((r) => r.name === type);
  if (!spec) throw new UsageError(`no resource type named "${type}" in ${manifest.file}`);
  if (spec.location.kind !== 'command' && spec.location.kind !== 'http') {
    throw new UsageError(`${type} is ${spec.location.kind === 'fs' ? 'an' : 'a'} ${spec.location.kind} resource; conformance checks command and http handlers`);
  }
  const conditional = spec.location.conditional;
  const backend = await openBackend(spec, { connections: new Connections({}), exclude: [], signal: options.signal });
  const checks: ConformanceCheck[] = [];
  const check = async (name: string, body: () => Promise<string>): Promise<void> => {
    try {
      checks.push({ name, status: 'pass', ok: true, detail: await body() });
    } catch (error) {
      checks.push({ name, status: 'fail', ok: false, detail: (error as Error).message });
    }
  };
  const skip = (name: string, why: string): void => {
    checks.push({ name, status: 'skip', ok: false, detail: why });
  };
  try {
    const listed = new Map<string, ResourceRecord>();
    let listFailed = false;
    await check('list', async () => {
      listFailed = true;
      let pages = 0;
      for await (const page of backend.scan({ pageSize: spec.batchSize, signal: options.signal })) {
        pages++;
        for (const r of page.records) listed.set(r.id, r);
      }
      listFailed = false;
      const unknownAge = [...listed.values()].filter((r) => r.createdAtMs === null).length;
      return `${listed.size} record(s) in ${pages} page(s); every line valid, ids unique, the answer complete${unknownAge ? `; ${unknownAge} without createdAt (judged unknown)` : ''}`;
    });
    const sample = [...listed.values()].slice(0, options.sample ?? 20);
    // Why a check that needs a listed resource has none (docs/resource-protocol.md: never a vacuous PASS).
    const nothingListed = listFailed ? 'the list failed' : 'the scope is empty';
    if (sample.length === 0) skip('read by id', `${nothingListed}: no listed id to read back`);
    else await check('read by id', async () => {
      const read = await backend.read(sample.map((r) => r.id), options.signal);
      const missing = sample.filter((r) => !read.has(r.id));
      const moved = sample.filter((r) => read.has(r.id) && read.get(r.id)!.fingerprint !== r.fingerprint);
      if (missing.length) throw new Error(`${missing.length} listed id(s) not found when read by id, e.g. ${JSON.stringify(missing[0]!.id)}`);
      if (moved.length) throw new Error(`${moved.length} fingerprint(s) differ between list and read, e.g. ${JSON.stringify(moved[0]!.id)} (a fingerprint must be stable while the resource is unchanged)`);
      return `${sample.length} id(s) read back with the fingerprints listed`;
    });
    await check('delete of an id that does not exist answers absent', async () => {
      const id = `reaper-conformance-absent-${randomBytes(6).toString('hex')}`;
      const [result] = await backend.delete([{ id, fingerprint: 'reaper-conformance' }], options.signal);
      if (result!.outcome !== 'absent') throw new Error(`answered ${result!.outcome}${result!.error ? `: ${result!.error}` : ''}; expected absent`);
      return 'absent';
    });
    const victim = sample[0];
    const noVictim = `${nothingListed}: no listed resource to try it on`;
    if (!victim) skip('delete with a fingerprint that does not match answers changed and deletes nothing', noVictim);
    else {
      await check('delete with a fingerprint that does not match answers changed and deletes nothing', async () => {
        const [result] = await backend.delete([{ id: victim.id, fingerprint: `reaper-conformance-mismatch-${randomBytes(6).toString('hex')}` }], options.signal);
        const after = (await backend.read([victim.id], options.signal)).get(victim.id);
        if (!after) throw new Error(`${JSON.stringify(victim.id)} is GONE after a delete with a wrong fingerprint (answered ${result!.outcome}): the handler's deletes are not conditional`);
        if (result!.outcome !== 'changed') {
          if (!conditional && result!.outcome === 'deleted') throw new Error('answered deleted (the handler declares conditional: false)');
          throw new Error(`answered ${result!.outcome}${result!.error ? `: ${result!.error}` : ''}; expected changed`);
        }
        if (after.fingerprint !== victim.fingerprint) throw new Error(`${JSON.stringify(victim.id)} changed fingerprint after a refused delete`);
        return `changed; ${JSON.stringify(victim.id)} still there, unchanged`;
      });
    }
    if (backend instanceof HandlerBackend) await markAndRestoreChecks(backend, victim, noVictim, check, skip, options.signal);
    if (options.destructiveId !== undefined) {
      const id = options.destructiveId;
      await check(`delete of ${JSON.stringify(id)} with its fingerprint answers deleted, and it is gone`, async () => {
        const record = listed.get(id) ?? (await backend.read([id], options.signal)).get(id);
        if (!record) throw new Error(`${JSON.stringify(id)} is not in the scope`);
        const [result] = await backend.delete([{ id, fingerprint: record.fingerprint }], options.signal);
        if (result!.outcome !== 'deleted') throw new Error(`answered ${result!.outcome}${result!.error ? `: ${result!.error}` : ''}; expected deleted`);
        if ((await backend.read([id], options.signal)).has(id)) throw new Error('answered deleted, but it is still listed');
        const [again] = await backend.delete([{ id, fingerprint: record.fingerprint }], options.signal);
        if (again!.outcome !== 'absent') throw new Error(`a second delete answered ${again!.outcome}; expected absent`);
        return 'deleted, gone, and a second delete answers absent';
      });
    }
    return {
      resource: spec.name,
      kind: spec.location.kind,
      scope: backend.scope,
      destructive: options.destructiveId !== undefined,
      checks,
      ok: checks.every((c) => c.status !== 'fail'),
      skipped: checks.filter((c) => c.status === 'skip').length,
    };
  } finally {
    await closeQuietly(backend);
  }
}

/**
 * For a handler that declares mark/unmark or restore: requests that must change nothing — a
 * mark and an unmark of an id that does not exist (`absent`), a mark of a real resource with a
 * fingerprint that cannot match (`changed`, the resource unchanged: marks are conditional like
 * deletes, docs/safety.md §3), a restore from a handle that cannot exist (`error`, nothing
 * brought back).
 */
async function markAndRestoreChecks(
  backend: HandlerBackend,
  victim: ResourceRecord | undefined,
  noVictim: string,
  check: (name: string, body: () => Promise<string>) => Promise<void>,
  skip: (name: string, why: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const nowhere = () => `reaper-conformance-absent-${randomBytes(6).toString('hex')}`;
  const run = `reaper-conformance-${randomBytes(6).toString('hex')}`;
  const answered = (a: { result: string; message?: string } | undefined, expected: string) =>
    new Error(`answered ${a?.result ?? 'nothing'}${a?.message ? `: ${a.message}` : ''}; expected ${expected}`);
  if (backend.mark) {
    await check('mark of an id that does not exist answers absent', async () => {
      const id = nowhere();
      const a = (await backend.answers('mark', [{ id, fingerprint: 'reaper-conformance', run }], signal)).get(id);
      if (a?.result !== 'absent') throw answered(a, 'absent');
      return 'absent';
    });
    if (!victim) skip('mark with a fingerprint that does not match answers changed and marks nothing', noVictim);
    else {
      await check('mark with a fingerprint that does not match answers changed and marks nothing', async () => {
        const fingerprint = `reaper-conformance-mismatch-${randomBytes(6).toString('hex')}`;
        const a = (await backend.answers('mark', [{ id: victim.id, fingerprint, run }], signal)).get(victim.id);
        // A handler that marked it anyway is failing this check; it must not also leave the mark.
        if (a?.result !== 'changed' && a?.result !== 'absent') await backend.answers('unmark', [{ id: victim.id, fingerprint: '' }], signal).catch(() => undefined);
        const after = (await backend.read([victim.id], signal)).get(victim.id);
        if (a?.result !== 'changed') throw answered(a, 'changed');
        if (!after) throw new Error(`${JSON.stringify(victim.id)} is gone after a refused mark`);
        if (after.fingerprint !== victim.fingerprint) throw new Error(`${JSON.stringify(victim.id)} changed fingerprint after a refused mark`);
        return `changed; ${JSON.stringify(victim.id)} still there, unchanged`;
      });
    }
    await check('unmark of an id that does not exist answers absent', async () => {
      const id = nowhere();
      const a = (await backend.answers('unmark', [{ id, fingerprint: 'reaper-conformance' }], signal)).get(id);
      if (a?.result !== 'absent') throw answered(a, 'absent');
      return 'absent';
    });
  }
  if (backend.restore) {
    await check('restore of a handle that does not exist answers error and restores nothing', async () => {
      const id = nowhere();
      const a = (await backend.answers('restore', [{ id, handle: `reaper-conformance-no-such-handle-${randomBytes(6).toString('hex')}` }], signal)).get(id);
      if (a?.result !== 'error') throw answered(a, 'error');
      if ((await backend.read([id], signal)).has(id)) throw new Error(`answered error, but ${JSON.stringify(id)} is listed now`);
      return `error (${a.message ?? 'no message'})`;
    });
  }
}

async function closeQuietly(backend: Backend): Promise<void> {
  await backend.close().catch(() => undefined);
}

export function conformanceText(report: ConformanceReport): string {
  const lines = [
    `conformance of ${report.resource} (${report.scope}), resource protocol v1${report.destructive ? ', destructive' : ': nothing is deleted'}`,
    ...report.checks.map((c) => `${c.status.toUpperCase()} ${c.name}: ${c.detail}`),
  ];
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  const skipped = report.skipped ? `, ${report.skipped} skipped` : '';
  if (failed) lines.push(`${failed} check(s) failed${skipped}`);
  else lines.push(report.skipped ? `no check failed${skipped}: put a resource in the scope to run them` : 'all checks passed');
  return lines.join('\n');
}
