/**
 * `reaper validate`: check the manifest (exit 2 on any issue, nothing contacted), then,
 * read-only, every part an audit and a reap will touch: the state store (reachable, and
 * its schema — or that the first run will create or migrate it), each resource type's
 * first page (and for S3 the bucket's versioning and how deletes will be made
 * conditional), and every liveness source, leases included. Exit 3 if any part fails; a part
 * that works but that a reap would refuse (a source below the breaker's minLiveKeys) is a
 * warning (`WARN`, status `warn`), which does not fail validate.
 */
import { Connections } from '../../backends/connections.js';
import { openBackend } from '../../backends/open.js';
import { ExitCode, redact } from '../../errors.js';
import { LeaseSource } from '../../liveness/lease-source.js';
import { openLiveness } from '../../liveness/open.js';
import type { Manifest } from '../../manifest/types.js';
import { inspectStateStore, type StateStoreInspection } from '../../state/inspect.js';
import { quoted } from '../../report/telemetry.js';
import { keyShapeWarnings } from '../../run/key-shapes.js';
import type { ManifestFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { manifestFrom, outputFormat } from '../options.js';
import { writeJson } from '../print.js';
import { warnShortGrace } from './validate-grace.js';

interface Check {
  what: string;
  /** False only for a failure (exit 3); a warning is ok. */
  ok: boolean;
  /** `warn`: works, but a reap would refuse on it (the registry-outage breaker). */
  status: 'ok' | 'warn' | 'fail';
  detail: string;
}

const passed = (what: string, detail: string): Check => ({ what, ok: true, status: 'ok', detail });
const failed = (what: string, detail: string): Check => ({ what, ok: false, status: 'fail', detail });
const LABEL: Record<Check['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };

export async function validateCommand(io: CliIO, _args: unknown[], options: ManifestFlags & OutputFlags & { offline?: boolean }): Promise<number> {
  const manifest = await manifestFrom(io, options);
  const checks: Check[] = [passed('manifest', `${manifest.resources.length} resource type(s), state ${redact(manifest.state)}`)];
  const warnings: string[] = [];
  if (!options.offline) {
    const state = await checkStateStore(manifest);
    checks.push(state.check);
    const connections = new Connections(manifest.connections);
    try {
      for (const spec of manifest.resources) checks.push(await checkResource(spec, connections, io.signal));
      checks.push(...(await checkSources(manifest, connections, state.inspection, warnings, io.signal)));
    } finally {
      await connections.close();
    }
    // Each type's grace against the lease cadences the state store shows (docs/strategies.md).
    await warnShortGrace(io, manifest, state.inspection);
  }
  const ok = checks.every((c) => c.ok);
  if (outputFormat(io, options) === 'json') {
    writeJson(io, { ok, manifest: manifest.file, checks, ...(warnings.length ? { warnings } : {}) });
  } else {
    for (const c of checks) io.stdout.write(`${LABEL[c.status]} ${c.what}: ${c.detail}\n`);
    for (const w of warnings) io.stdout.write(`WARN ${w}\n`);
  }
  return ok ? ExitCode.ok : ExitCode.runtime;
}

/** The state store, read-only: nothing is created or migrated here. */
async function checkStateStore(manifest: Manifest): Promise<{ check: Check; inspection: StateStoreInspection | null }> {
  const what = 'state store';
  try {
    const inspection = await inspectStateStore(manifest.state);
    const details: Record<StateStoreInspection['state'], string> = {
      current: `reachable, schema version ${inspection.version}`,
      missing: 'does not exist yet; the first audit or reap creates it',
      empty: 'reachable, without reaper\'s tables yet; the first audit or reap creates them',
      behind: `reachable, schema version ${inspection.version} of ${inspection.latest}; the first audit or reap migrates it`,
    };
    return { check: passed(what, `${redact(manifest.state)}: ${details[inspection.state]}`), inspection };
  } catch (error) {
    return { check: failed(what, redact((error as Error).message)), inspection: null };
  }
}

/** One resource type: its backend opens (S3: the bucket's versioning is read) and its first page is read. */
async function checkResource(spec: Manifest['resources'][number], connections: Connections, signal: AbortSignal): Promise<Check> {
  try {
    const backend = await openBackend(spec, { connections, exclude: [], signal });
    try {
      let unreadable: { id: string; why: string }[] = [];
      for await (const page of backend.scan({ pageSize: 1, signal })) {
        unreadable = page.unreadable ?? [];
        break;
      }
      const notes = backend.reapNotes?.() ?? [];
      const refusal = backend.reapRefusal?.() ?? null;
      if (refusal !== null) return failed(spec.name, refusal);
      if (unreadable.length > 0) return failed(spec.name, `${backend.scope}: cannot read ${quoted(unreadable[0]!.id)}: ${redact(unreadable[0]!.why)}`);
      return passed(spec.name, [`${backend.scope} is readable`, ...notes].join('; '));
    } finally {
      await backend.close();
    }
  } catch (error) {
    return failed(spec.name, redact((error as Error).message));
  }
}

/** Every liveness source counted; the leases source through the state store when its schema is current. */
async function checkSources(manifest: Manifest, connections: Connections, state: StateStoreInspection | null, warnings: string[], signal: AbortSignal): Promise<Check[]> {
  const checks: Check[] = [];
  const liveness = await openLiveness(manifest, null, connections);
  const counts = await liveness.counts(signal);
  // Owner keys that can never match a source's keys (a template against bare ids) are said here.
  warnings.push(...(await keyShapeWarnings(manifest, connections, liveness, signal)));
  if (manifest.owners.some((o) => o.kind === 'leases')) checks.push(await checkLeases(manifest, state, signal));
  for (const [name, n] of Object.entries(counts.counts)) checks.push(liveKeys(manifest, name, n));
  for (const [name, e] of Object.entries(counts.errors)) checks.push(failed(name, redact(e)));
  return checks;
}

async function checkLeases(manifest: Manifest, state: StateStoreInspection | null, signal: AbortSignal): Promise<Check> {
  const what = 'leases';
  if (state === null) return failed(what, 'cannot be read: the state store cannot be reached (see above)');
  if (state.state !== 'current') return liveKeys(manifest, what, 0, 'the state store holds no leases yet');
  // The schema is current, so opening the store as a run does migrates nothing.
  const { openStateStore } = await import('../../state/open.js');
  try {
    const store = await openStateStore(manifest.state);
    try {
      signal.throwIfAborted();
      return liveKeys(manifest, what, await new LeaseSource(store).count());
    } finally {
      await store.close();
    }
  } catch (error) {
    return failed(what, redact((error as Error).message));
  }
}

/**
 * A source's live-key count, and what the registry-outage breaker will make of it (docs/safety.md
 * §8): below minLiveKeys a reap refuses, a warning.
 */
function liveKeys(manifest: Manifest, what: string, n: number, why?: string): Check {
  const min = manifest.breaker.minLiveKeys;
  const count = `${n} live key(s)${why ? `: ${why}` : ''}`;
  if (n >= min) return passed(what, count);
  return { what, ok: true, status: 'warn', detail: `${count}; fewer than minLiveKeys (${min}): a reap refuses until more are live (the registry-outage breaker; --allow-liveness-drop for a deliberate run)` };
}
