/**
 * `restore`: lift tombstones (by run, type or id) so their resources are never swept,
 * and bring back deleted resources whose backend kept them (files in quarantine with
 * `retain`, delete markers in versioned S3 buckets, archived SQL rows).
 */
import { SafetyError, UsageError } from '../errors.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';
import type { StateStore, Tombstone } from '../state/types.js';
import { openRunContext, type RunContext } from './context.js';
import { recordedRun } from './recorded-run.js';

export interface RestoreOptions {
  runId?: string;
  resource?: string;
  id?: string;
  store?: StateStore;
  signal?: AbortSignal;
}

export interface RestoreItem {
  resource: string;
  id: string;
  /** `refused`: a safety rail stopped it (an id that leaves the resource's scope); nothing was written. */
  /** `unmarked`: an earlier restore lifted it but could not take its visible mark off; this one did. */
  action: 'lifted' | 'restored' | 'unmarked' | 'not-restorable' | 'refused' | 'failed';
  detail?: string;
}

export async function runRestore(manifest: Manifest, options: RestoreOptions): Promise<RestoreItem[]> {
  if (options.runId === undefined && options.resource === undefined && options.id === undefined) {
    throw new UsageError('restore needs --run, --resource or --id');
  }
  if (options.resource !== undefined && !manifest.resources.some((r) => r.name === options.resource)) {
    throw new UsageError(`no resource type "${options.resource}" in ${manifest.file}`);
  }
  const context = await openRunContext(manifest, { store: options.store });
  const recording = { kind: 'reap' as const, manifestDigest: manifest.digest, execute: true, signal: options.signal };
  try {
    await checkSelectors(context.store, options);
    return await recordedRun(context, { ...recording, stopped: 'interrupted: the restore stopped before it finished (run it again for the rest)' }, async (run) => {
      const out: RestoreItem[] = [];
      const selected = { runId: options.runId, resource: options.resource, resourceId: options.id };
      const tombstones = await context.store.findTombstones({ ...selected, states: ['marked', 'deleted'] });
      const handled = new Set<number>();
      for (const t of tombstones) {
        const spec = manifest.resources.find((r) => r.name === t.resource);
        if (!spec) continue;
        if (t.state === 'marked') {
          handled.add(t.tombstoneId);
          // Restore takes no lock: a reap may have moved the tombstone on since it was read.
          if ((await context.store.liftTombstones(run.runId, [t.tombstoneId], 'restored by operator')) === 0) {
            out.push({ resource: t.resource, id: t.resourceId, action: 'failed', detail: 'no longer marked when the restore reached it (a reap run moved it on); run the restore again' });
            continue;
          }
          out.push(await takeMarkOff(context, spec, { ...t, state: 'lifted', note: 'restored by operator' }, 'lifted', options.signal));
          continue;
        }
        const backend = await context.backend(spec);
        if (!t.restoreHandle || !backend.restore) {
          out.push({ resource: t.resource, id: t.resourceId, action: 'not-restorable', detail: notRestorableDetail(spec, t.restoreHandle, backend.restore !== undefined) });
          continue;
        }
        try {
          await backend.restore(t.resourceId, t.restoreHandle, options.signal);
          await context.store.setTombstoneState(t.tombstoneId, 'restored', `restored by run ${run.runId}`, 'deleted');
        } catch (error) {
          out.push({ resource: t.resource, id: t.resourceId, action: error instanceof SafetyError ? 'refused' : 'failed', detail: (error as Error).message });
          continue;
        }
        // What comes back is what was deleted, visible mark and all (an S3 version keeps its tags, a
        // handler's copy its marker): a restore lifts the tombstone, so the mark goes as a lift's does.
        handled.add(t.tombstoneId);
        out.push(await takeMarkOff(context, spec, { ...t, state: 'restored', note: `restored by run ${run.runId}` }, 'restored', options.signal));
      }
      // Marks an earlier restore could not take off: tried again, unless a later mark of the same
      // resource stands (that one is meant to be there).
      for (const t of await context.store.findTombstones({ ...selected, states: ['lifted', 'restored'], noteEndsWith: MARK_LEFT })) {
        const spec = manifest.resources.find((r) => r.name === t.resource);
        if (!spec || handled.has(t.tombstoneId) || !t.note?.endsWith(MARK_LEFT)) continue;
        const later = await context.store.findTombstones({ resource: t.resource, resourceId: t.resourceId, states: ['marked', 'deleting'] });
        if (later.some((l) => l.resourceId === t.resourceId && l.tombstoneId > t.tombstoneId)) continue;
        out.push(await takeMarkOff(context, spec, { ...t, note: t.note.slice(0, -MARK_LEFT.length - 2) }, 'unmarked', options.signal));
      }
      const status = out.some((o) => o.action === 'refused') ? 'refused' : out.some((o) => o.action === 'failed') ? 'failed' : 'ok';
      return { result: out, end: { status, summary: { restore: out.length } } };
    });
  } finally {
    await context.close();
  }
}

/**
 * Why a deleted resource cannot be brought back, and what its type needs so that later deletes
 * can be, by the keys of docs/manifest.md: files `quarantine` and `retain`, SQL `archive`, S3 a
 * versioned bucket, a handler a `restore` operation and a delete that answers a `restoreHandle`.
 */
export function notRestorableDetail(spec: ResourceSpec, handle: string | null, canRestore: boolean): string {
  const location = spec.location;
  const handlerNeeds = location.kind === 'http' ? 'set restore: true on the http type (the webhook serves restore)' : 'give the type a restore command';
  if (handle !== null) {
    return `the ${location.kind === 'command' || location.kind === 'http' ? 'handler' : 'backend'} kept a copy, but the type cannot restore it${
      location.kind === 'command' || location.kind === 'http' ? `: ${handlerNeeds}` : ''
    }`;
  }
  const none = 'the backend kept no copy';
  const set = (what: string, keys: string[]) => `${none}; to keep the ${what} later runs delete, set ${keys.join(' and ')} on the type`;
  const before = `${none}: it was deleted before the type kept copies`;
  switch (location.kind) {
    case 'fs': {
      const missing = [...(spec.quarantine === undefined ? ['quarantine'] : []), ...(spec.retainMs === undefined ? ['retain'] : [])];
      return missing.length ? set('files', missing) : before;
    }
    case 'postgres':
    case 'mysql':
      return spec.archive === undefined ? set('rows', ['archive']) : before;
    case 's3':
      return `${none}; to keep the objects later runs delete, enable versioning on the bucket (and set requireVersioning on the type)`;
    case 'command':
    case 'http':
      return canRestore ? `${none}: the handler's delete answered no restoreHandle` : `${none}; to restore what later runs delete, ${handlerNeeds}, and have its delete answer a restoreHandle`;
  }
}

/** How a lifted or restored tombstone's note ends while its visible mark is still on the resource. */
const MARK_LEFT = 'its tombstone mark is still on it';

/** A lifted or restored tombstone's note, once its mark would not come off. */
export const markLeft = (note: string | null): string => `${note ?? 'lifted'}; ${MARK_LEFT}`;

/**
 * Takes a lifted or restored tombstone's visible mark off its resource. One item's mark that
 * will not come off fails that item, not the restore of the others; its note then says so, and
 * the next restore that selects it tries again.
 */
async function takeMarkOff(context: RunContext, spec: ResourceSpec, t: Tombstone, done: RestoreItem['action'], signal?: AbortSignal): Promise<RestoreItem> {
  const item = { resource: t.resource, id: t.resourceId };
  try {
    const backend = await context.backend(spec);
    if (backend.unmark) await backend.unmark([{ id: t.resourceId, fingerprint: t.fingerprint }], signal);
  } catch (error) {
    await context.store.setTombstoneState(t.tombstoneId, t.state, markLeft(t.note), t.state);
    return { ...item, action: 'failed', detail: `${done === 'unmarked' ? '' : `${done}, but `}${MARK_LEFT}: ${(error as Error).message}` };
  }
  if (done === 'unmarked') await context.store.setTombstoneState(t.tombstoneId, t.state, t.note, t.state);
  return { ...item, action: done };
}

/**
 * A run or a resource id the state store has never heard of is a mistake in the command, not
 * an empty answer (exit 2, before a restore run is recorded). A known run or id with nothing
 * left to restore (lifted or restored before) is an empty answer.
 */
async function checkSelectors(store: StateStore, options: RestoreOptions): Promise<void> {
  const where = store.description ? ` (${store.description})` : '';
  if (options.runId !== undefined && !(await store.getRun(options.runId))) {
    throw new UsageError(`no run ${JSON.stringify(options.runId)} in the state store${where}; \`reaper runs\` lists the runs`);
  }
  if (options.id !== undefined && (await store.findTombstones({ resource: options.resource, resourceId: options.id, limit: 1 })).length === 0) {
    const of = options.resource === undefined ? '' : ` of type "${options.resource}"`;
    throw new UsageError(`no tombstone for id ${JSON.stringify(options.id)}${of} in the state store${where}: reaper never marked it`);
  }
}
