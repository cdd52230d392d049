/** `reaper explain -c FILE TYPE ID` and `reaper graph -c FILE`. */
import path from 'node:path';
import { UsageError } from '../../errors.js';
import type { ResourceSpec } from '../../manifest/types.js';
import { graphDot, graphMermaid, graphText } from '../../report/graph.js';
import { printable } from '../../report/table.js';
import { explanationText, runExplain } from '../../run/explain.js';
import type { ManifestFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { manifestFrom, outputFormat } from '../options.js';

export async function explainCommand(io: CliIO, args: unknown[], options: ManifestFlags & OutputFlags): Promise<number> {
  const manifest = await manifestFrom(io, options);
  const x = await runExplain(manifest, String(args[0]), String(args[1]), { signal: io.signal });
  if (outputFormat(io, options) === 'json') writeJson(io, x);
  else {
    const spec = manifest.resources.find((r) => r.name === x.resource);
    // An id reaper never saw: say what this type's ids look like (a path pasted from `ls` is not one).
    const hint = !x.found && x.ledger === null && x.tombstone === null && spec ? idHint(io, manifest.file, spec, x.id) : null;
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
 * When the id given is a whole path (absolute, or from where the command runs or the manifest
 * is) or an s3:// URL of a resource in the type's scope: the form its ids take, and the id meant.
 * Null otherwise: an id that is merely unknown is "not found" and nothing more.
 */
function idHint(io: CliIO, manifestFile: string, spec: ResourceSpec, id: string): string | null {
  const l = spec.location;
  const meant = (candidate: string | undefined) => (candidate === undefined || candidate === '' || candidate === id ? null : printable(candidate));
  if (l.kind === 'fs') {
    const inside = [path.resolve(io.cwd, id), path.resolve(path.dirname(manifestFile), id)]
      .map((full) => path.relative(l.path, full))
      .find((rel) => rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel));
    const m = meant(inside);
    return m === null ? null : `ids of ${spec.name} are paths relative to ${l.path} (did you mean ${m}?)`;
  }
  if (l.kind === 's3') {
    const url = `s3://${l.bucket}/`;
    const m = meant(id.startsWith(url) ? id.slice(url.length) : undefined);
    return m === null ? null : `ids of ${spec.name} are whole keys in bucket ${l.bucket} (did you mean ${m}?)`;
  }
  return null;
}
