/**
 * Everything one run needs, opened once and closed together: the state store, the
 * manifest's connections, the liveness view and a backend per resource type.
 */
import path from 'node:path';
import { Connections } from '../backends/connections.js';
import { openBackend } from '../backends/open.js';
import type { Backend } from '../backends/types.js';
import type { LivenessView } from '../liveness/liveness.js';
import { openLiveness } from '../liveness/open.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';
import { openStateStore } from '../state/open.js';
import type { StateStore } from '../state/types.js';
import { Releasers } from '../util/releasers.js';
import { RefResolver } from './ref-resolver.js';

export interface RunContext {
  readonly manifest: Manifest;
  readonly store: StateStore;
  readonly connections: Connections;
  readonly liveness: LivenessView;
  backend(spec: ResourceSpec): Promise<Backend>;
  close(): Promise<void>;
}

export interface OpenRunContextOptions {
  /** An already open store (library use); it is left open on close. */
  store?: StateStore;
  /** More files a files backend must never treat as resources (a plan being written). */
  exclude?: readonly string[];
  /** The run's stop signal, for what opening a backend costs. */
  signal?: AbortSignal;
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
    const context: RunContext = {
      manifest,
      store,
      connections,
      liveness,
      backend(spec) {
        let backend = backends.get(spec.name);
        if (!backend) {
          backend = openBackend(spec, { connections, exclude, signal: options.signal }).then((b) => {
            releasers.add(() => b.close());
            return b;
          });
          backends.set(spec.name, backend);
        }
        return backend;
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
