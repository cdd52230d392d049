/** `reaper explain -c FILE TYPE ID` and `reaper graph -c FILE`. */
import { UsageError } from '../../errors.js';
import { graphDot, graphMermaid, graphText } from '../../report/graph.js';
import { explanationText, runExplain } from '../../run/explain.js';
import type { ManifestFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { manifestFrom, outputFormat } from '../options.js';

export async function explainCommand(io: CliIO, args: unknown[], options: ManifestFlags & OutputFlags): Promise<number> {
  const manifest = await manifestFrom(io, options);
  const x = await runExplain(manifest, String(args[0]), String(args[1]), { signal: io.signal });
  if (outputFormat(io, options) === 'json') writeJson(io, x);
  else io.stdout.write(`${explanationText(x)}\n`);
  return 0;
}

export async function graphCommand(io: CliIO, _args: unknown[], options: ManifestFlags & { format?: string }): Promise<number> {
  // The graph is drawn from the manifest alone: no state store, no connection.
  const manifest = await manifestFrom(io, options, { state: false, owners: false, connections: false });
  const format = options.format ?? 'text';
  const render = { text: graphText, dot: graphDot, mermaid: graphMermaid }[format];
  if (!render) throw new UsageError(`--format: text, dot or mermaid (got "${format}")`);
  io.stdout.write(`${render(manifest)}\n`);
  return 0;
}
