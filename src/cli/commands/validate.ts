/**
 * `reaper validate`: check the manifest (exit 2 on any issue, nothing contacted), then
 * reach each connection read-only: the first page of every resource type and a count
 * from every liveness source. Changes nothing; the state store is not opened.
 */
import { Connections } from '../../backends/connections.js';
import { openBackend } from '../../backends/open.js';
import { ExitCode, redact } from '../../errors.js';
import { openLiveness } from '../../liveness/open.js';
import type { CliIO } from '../io.js';
import { manifestFrom, outputFormat } from '../options.js';
import { warnShortGrace } from './validate-grace.js';

interface Check {
  what: string;
  ok: boolean;
  detail: string;
}

export async function validateCommand(io: CliIO, _args: unknown[], options: Record<string, unknown>): Promise<number> {
  const manifest = await manifestFrom(io, options);
  const checks: Check[] = [{ what: 'manifest', ok: true, detail: `${manifest.resources.length} resource type(s), state ${redact(manifest.state)}` }];
  if (!options.offline) {
    const connections = new Connections(manifest.connections);
    try {
      for (const spec of manifest.resources) {
        try {
          const backend = await openBackend(spec, { connections, exclude: [] });
          try {
            for await (const page of backend.scan({ pageSize: 1, signal: io.signal })) {
              void page;
              break;
            }
            checks.push({ what: spec.name, ok: true, detail: `${backend.scope} is readable` });
          } finally {
            await backend.close();
          }
        } catch (error) {
          checks.push({ what: spec.name, ok: false, detail: redact((error as Error).message) });
        }
      }
      // Lease sources live in the state store, which validate does not open.
      const counts = await (await openLiveness(manifest, null, connections)).counts(io.signal);
      for (const [name, n] of Object.entries(counts.counts)) checks.push({ what: name, ok: true, detail: `${n} live key(s)` });
      for (const [name, e] of Object.entries(counts.errors)) checks.push({ what: name, ok: false, detail: redact(e) });
    } finally {
      await connections.close();
    }
  }
  // Each type's grace against the lease cadences the state store shows (docs/strategies.md).
  if (!options.offline) await warnShortGrace(io, manifest);
  const ok = checks.every((c) => c.ok);
  if (outputFormat(io, options) === 'json') {
    io.stdout.write(`${JSON.stringify({ ok, manifest: manifest.file, checks }, null, 2)}\n`);
  } else {
    for (const c of checks) io.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: ${c.detail}\n`);
  }
  return ok ? ExitCode.ok : ExitCode.runtime;
}
