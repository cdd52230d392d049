/** `reaper split-points -c FILE --type T [--ranges M]`: shard.splitPoints for an S3 or SQL type. */
import { UsageError } from '../../errors.js';
import { runSplitPoints, splitPointsText } from '../../run/split-points.js';
import type { ConfigFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { manifestFrom, outputFormat } from '../options.js';

export interface SplitPointsFlags extends ConfigFlags, OutputFlags {
  type: string;
  ranges: string;
}

export async function splitPointsCommand(io: CliIO, _args: unknown[], options: SplitPointsFlags): Promise<number> {
  if (!/^\d+$/.test(options.ranges)) throw new UsageError(`--ranges: a whole number (got "${options.ranges}")`);
  // The type's own connection: no state store, no liveness source.
  const manifest = await manifestFrom(io, options, { state: false, owners: false, resources: [options.type] });
  const report = await runSplitPoints(manifest, options.type, Number(options.ranges), io.signal);
  if (outputFormat(io, options) === 'json') writeJson(io, report);
  else io.stdout.write(`${splitPointsText(report)}\n`);
  return 0;
}
