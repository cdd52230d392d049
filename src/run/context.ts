/**
 * Everything one run needs, opened once and closed together: the state store, the
 * manifest's connections, the liveness view and a backend per resource type.
 */
import path from 'node:path';
import { Connections } from '../backends/connections.js';
import { openBackend } from '../backends/open.js';
import type { Backend, BackendFailpoint } from '../backends/types.js';
import type { LivenessView } from '../liveness/liveness.js';
import { openLiveness } from '../liveness/open.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';
import { openStateStore } from '../state/open.js';
import { DEFAULT_RUN_TTL_MS, type RunKind, type RunRecord, type StateStore } from '../state/types.js';
import { Releasers } from '../util/releasers.js';
import { RefResolver } from './ref-resolver.js';

export interface RunContext {
  readonly manifest: Manifest;
  readonly store: StateStore;
  readonly connections: Connections;
  readonly liveness: LivenessView;
  backend(spec: ResourceSpec): Promise<Backend>;
  /**
   * Record the run in the store and keep it alive there until the context closes: a heartbeat
   * every ttl/3, so that a process killed -9 is recorded `abandoned` by the first run a ttl after
   * its last beat (the store's clock judges). A failed beat is tried again at the next one; the
   * run goes on (the per-type locks, not this record, keep two reaps apart).
   */
  startRun(input: { kind: RunKind; manifestDigest: string; execute: boolean; job?: string | null; shard?: string | null }, ttlMs?: number): Promise<RunRecord>;
  /** More to keep alive at each of the run's heartbeats (a reap's per-type locks, through a scan longer than their ttl). */
  keepAlive(beat: () => Promise<unknown>): void;
  close(): Promise<void>;
}

export interface OpenRunContextOptions {
  /** An already open store (library use); it is left open on close. */
  store?: StateStore;
  /** More files a files backend must never treat as resources (a plan being written). */
  exclude?: readonly string[];
  /** The run's stop signal, for what opening a backend costs. */
  signal?: AbortSignal;
  /** Crash tests' failpoints inside the backends' deletes. */
  failpoint?: (name: BackendFailpoint) => void;
}

export async function openRunContext(manifest: Manifest, options: OpenRunContextOptions = {}): Promise<RunContext> {
  const releasers = new Releasers();
  try {
    const store = options.store ?? (await openStateStore(manifest.state));
    if (!options.store) releasers.add(() => store.close());
    const connections = new Connections(manifest.connections);
    releasers.add(() => connections.close());
    const liveness = await openLiveness(manifest, store, connections);
    // reaper's own files are never resources, even inside a scanned directory.
    const exclude = [...stateFiles(manifest.state), path.resolve(manifest.file), ...(options.exclude ?? []).map((f) => path.resolve(f))];
    const backends = new Map<string, Promise<Backend>>();
    const beats: (() => Promise<unknown>)[] = [];
    const registries = manifest.owners.flatMap((source) => (source.kind === 'sql' ? [{ connection: source.connection, query: source.query }] : []));
    const context: RunContext = {
      manifest,
      store,
      connections,
      liveness,
      backend(spec) {
        let backend = backends.get(spec.name);
        if (!backend) {
          backend = openBackend(spec, { connections, exclude, signal: options.signal, failpoint: options.failpoint, registries }).then((b) => {
            releasers.add(() => b.close());
            return b;
          });
          backends.set(spec.name, backend);
        }
        return backend;
      },
      async startRun(input, ttlMs = DEFAULT_RUN_TTL_MS) {
        const run = await store.startRun({ ...input, ttlMs });
        const heartbeat = beatEvery(() => Promise.allSettled([store.heartbeatRun(run.runId, ttlMs), ...beats.map((beat) => beat())]), ttlMs / 3);
        releasers.add(() => heartbeat.stop());
        return run;
      },
      keepAlive(beat) {
        beats.push(beat);
      },
      close: () => releasers.releaseAll(),
    };
    if (manifest.resources.some((r) => r.owners.some((o) => o.ref !== undefined))) {
      liveness.attachGraph(new RefResolver(manifest.resources, (spec) => context.backend(spec), liveness, () => store.now()));
    }
    return context;
  } catch (error) {
    await releasers.releaseAll().catch(() => undefined);
    throw error;
  }
}

/** The files of a SQLite state store, which a files backend must never scan as resources. */
function stateFiles(url: string): string[] {
  if (!url.startsWith('sqlite:') || url === 'sqlite::memory:') return [];
  const file = path.resolve(url.slice('sqlite:'.length));
  return [file, `${file}-wal`, `${file}-shm`, `${file}-journal`];
}

/** Call `beat` every `everyMs` (never two at once) until stopped; a failed beat waits for the next. The timer keeps no process alive. */
function beatEvery(beat: () => Promise<unknown>, everyMs: number): { stop(): Promise<void> } {
  let stopped = false;
  let inFlight: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      inFlight = beat()
        .catch(() => undefined)
        .finally(() => {
          if (!stopped) schedule();
        });
    }, everyMs);
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
