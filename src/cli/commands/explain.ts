/** `reaper explain -c FILE TYPE ID` and `reaper graph -c FILE`. */
import { UsageError } from '../../errors.js';
import type { ResourceSpec } from '../../manifest/types.js';
import { graphDot, graphMermaid, graphText } from '../../report/graph.js';
import { printable } from '../../report/table.js';
import { explanationText, runExplain, type Explanation } from '../../run/explain.js';
import type { ManifestFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { manifestFrom, outputFormat } from '../options.js';

export async function explainCommand(io: CliIO, args: unknown[], options: ManifestFlags & OutputFlags): Promise<number> {
  const manifest = await manifestFrom(io, options);
  const x = await runExplain(manifest, String(args[0]), String(args[1]), { signal: io.signal, cwd: io.cwd });
  if (outputFormat(io, options) === 'json') writeJson(io, x);
  else {
    const spec = manifest.resources.find((r) => r.name === x.resource);
    const hint = spec ? idHint(spec, x) : null;
    io.stdout.write(`${explanationText(x)}\n${hint ? `  ${hint}\n` : ''}`);
  }
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

/**
 * What the ids of the type look like, when the id given was not one (a path pasted from `ls`, an
 * s3:// URL): the id it was read as, or the ids it may have meant (src/run/explain.ts `idForm`).
 * Null otherwise: an id that is merely unknown is "not found" and nothing more.
 */
function idHint(spec: ResourceSpec, x: Explanation): string | null {
  const l = spec.location;
  const form = l.kind === 'fs' ? `paths relative to ${l.path}` : l.kind === 's3' ? `whole keys in bucket ${l.bucket}` : null;
  if (form === null) return null;
  if (x.given !== undefined) return `(given as "${printable(x.given)}"; ids of ${spec.name} are ${form})`;
  const meant = x.suggestions ?? [];
  return meant.length === 0 ? null : `ids of ${spec.name} are ${form} (did you mean ${meant.map(printable).join(' or ')}?)`;
}
