/** `reaper restore --run R | --resource T | --id ID`: lift tombstones, bring back kept data. */
import { ExitCode } from '../../errors.js';
import { printable } from '../../report/table.js';
import { runRestore } from '../../run/restore.js';
import type { ManifestFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { manifestFrom, outputFormat } from '../options.js';

export interface RestoreFlags extends ManifestFlags, OutputFlags {
  run?: string;
  resource?: string;
  id?: string;
}

export async function restoreCommand(io: CliIO, _args: unknown[], options: RestoreFlags): Promise<number> {
  const manifest = await manifestFrom(io, options);
  const items = await runRestore(manifest, {
    runId: options.run,
    resource: options.resource,
    id: options.id,
    signal: io.signal,
  });
  if (outputFormat(io, options) === 'json') writeJson(io, { items });
  else {
    if (items.length === 0) io.stdout.write('nothing to restore\n');
    for (const i of items) io.stdout.write(`${i.action.padEnd(14)} ${i.resource} ${printable(i.id)}${i.detail ? `: ${i.detail}` : ''}\n`);
  }
  // A refusal is a safety rail (exit 4); it outranks a failure (exit 3) as a refused reap does.
  if (items.some((i) => i.action === 'refused')) return ExitCode.safety;
  return items.some((i) => i.action === 'failed') ? ExitCode.runtime : ExitCode.ok;
}
