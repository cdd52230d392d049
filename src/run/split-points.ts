/**
 * `reaper split-points`: `shard.splitPoints` for an S3 or SQL type, read from the resources as
 * they are now (docs/scale-out.md, "Choosing N and split points"). SQL counts rows in the id
 * column's order in one statement; S3 lists the prefix once and samples keys by position. A
 * configuration step, run now and then: every shard of a job must read the same points, so they
 * go into the manifest, never computed by each shard at run time.
 */
import { Connections } from '../backends/connections.js';
import { openBackend } from '../backends/open.js';
import { MAX_RANGES } from '../engine/split-points.js';
import { InterruptedError, ReaperError, UsageError } from '../errors.js';
import type { Manifest } from '../manifest/types.js';
import { closestWord } from '../util/suggest.js';

export interface SplitPointsReport {
  resource: string;
  scope: string;
  /** Ranges asked for; the points are one fewer, or fewer still (fewer resources, points left out). */
  ranges: number;
  /** Resources counted in scope (the type's `where` or prefix). */
  counted: number;
  splitPoints: string[];
  /** Keys that would have been points but cannot be written in a manifest; their ranges join the next. */
  leftOut: { key: string; why: string }[];
}

/** Why a key cannot be a split point in a manifest, or null. */
function unwritable(key: string): string | null {
  if (key === '') return 'the manifest takes no empty split point';
  // The manifest loader reads ${NAME} in every string as an environment variable, with no escape.
  if (key.includes('${')) return 'it holds "${", which the manifest would read as an environment variable';
  return null;
}

export async function runSplitPoints(manifest: Manifest, type: string, ranges: number, signal?: AbortSignal): Promise<SplitPointsReport> {
  const spec = manifest.resources.find((r) => r.name === type);
  if (!spec) {
    const near = closestWord(type, manifest.resources.map((r) => r.name));
    throw new UsageError(`no resource type named "${type}" in ${manifest.file}${near ? ` (did you mean ${near}?)` : ''}`);
  }
  const kind = spec.location.kind;
  if (kind === 'fs') throw new UsageError(`${type} is an fs resource: fs types are split by top-level entry and take no split points`);
  if (kind === 'command' || kind === 'http') throw new UsageError(`${type} is a ${kind} resource: ${kind} types go whole to one shard and take no split points`);
  if (!Number.isInteger(ranges) || ranges < 2 || ranges > MAX_RANGES) throw new UsageError(`--ranges: a whole number from 2 to ${MAX_RANGES} (got ${ranges})`);
  const connections = new Connections(manifest.connections);
  try {
    const backend = await openBackend(spec, { connections, exclude: [], signal });
    const { points, counted } = await backend.splitPoints!(ranges, signal);
    // A statement that ran to its end while the stop was asked for: the stop still wins.
    signal?.throwIfAborted();
    const leftOut = points.flatMap((key) => {
      const why = unwritable(key);
      return why === null ? [] : [{ key, why }];
    });
    return { resource: type, scope: backend.scope, ranges, counted, splitPoints: points.filter((key) => unwritable(key) === null), leftOut };
  } catch (error) {
    // A stop mid-way surfaces as whatever the call threw (the signal's reason, an AbortError).
    if (signal?.aborted && !(error instanceof ReaperError)) throw new InterruptedError('stopped before the split points were read; nothing was written', { cause: error });
    throw error;
  } finally {
    await connections.close();
  }
}

/** A key as a YAML double-quoted scalar: JSON's escapes, and \u escapes for what JSON leaves raw but a terminal or a strict reader may not keep. */
export const yamlQuoted = (key: string): string => JSON.stringify(key).replace(/[\u007f-\u009f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** The report in words, then the lines to put under the type in the manifest. */
export function splitPointsText(r: SplitPointsReport): string {
  const made = r.splitPoints.length + 1;
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    r.counted === 0
      ? `${r.resource} (${r.scope}): no resources in scope, so no split points`
      : `${r.resource} (${r.scope}): ${n(r.counted)} resource${r.counted === 1 ? '' : 's'} in ${made} range${made === 1 ? '' : 's'} of about ${n(Math.ceil(r.counted / made))}` +
        (made < r.ranges && r.leftOut.length === 0 ? ` (fewer than the ${r.ranges} asked: fewer resources than ranges)` : ''),
  ];
  for (const l of r.leftOut) lines.push(`  left out ${yamlQuoted(l.key)}: ${l.why}; its range joins the next`);
  if (r.splitPoints.length > 0) lines.push('', `# under resources: - name: ${r.resource}`, 'shard:', '  splitPoints:', ...r.splitPoints.map((p) => `    - ${yamlQuoted(p)}`));
  return lines.join('\n');
}
