/** `reaper conformance -c FILE --type T`: the resource protocol's checks against a handler (docs/resource-protocol.md). */
import { UsageError } from '../../errors.js';
import { conformanceText, runConformance } from '../../run/conformance.js';
import type { ConfigFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { manifestFrom, outputFormat } from '../options.js';

export interface ConformanceFlags extends ConfigFlags, OutputFlags {
  type: string;
  /** --destructive --id ID */
  destructive?: boolean;
  id?: string;
}

export async function conformanceCommand(io: CliIO, _args: unknown[], options: ConformanceFlags): Promise<number> {
  if (options.destructive && options.id === undefined) throw new UsageError('--destructive deletes one resource: name it with --id ID');
  if (!options.destructive && options.id !== undefined) throw new UsageError('--id names the resource --destructive deletes; add --destructive, or drop --id');
  // The handler alone: no state store, no liveness source.
  const manifest = await manifestFrom(io, options, { state: false, owners: false, connections: false, resources: [options.type] });
  const report = await runConformance(manifest, options.type, { destructiveId: options.id, signal: io.signal });
  if (outputFormat(io, options) === 'json') writeJson(io, report);
  else io.stdout.write(`${conformanceText(report)}\n`);
  return report.ok ? 0 : 1;
}
