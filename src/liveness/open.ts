/** Build the liveness sources a manifest names (`owners:`; leases only when omitted). */
import type { Connections } from '../backends/connections.js';
import type { Manifest } from '../manifest/types.js';
import type { LeaseStore } from '../state/types.js';
import { LeaseSource } from './lease-source.js';
import { LivenessView } from './liveness.js';
import { StaticSource } from './static-source.js';
import type { LivenessSource } from './types.js';

/** With `store` null (validate, which opens no store), lease sources are left out. */
export async function openLiveness(manifest: Pick<Manifest, 'owners'>, store: LeaseStore | null, connections: Connections): Promise<LivenessView> {
  const sources: LivenessSource[] = [];
  for (const [index, spec] of manifest.owners.entries()) {
    if (spec.kind === 'leases') {
      if (store) sources.push(new LeaseSource(store));
    }
    else if (spec.kind === 'static') sources.push(new StaticSource(spec.keys, `static#${index}`));
    else {
      const { openSqlSource } = await import('./sql-source.js');
      sources.push(await openSqlSource(spec, connections, index));
    }
  }
  return new LivenessView(sources);
}
