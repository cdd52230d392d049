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
import { UsageError } from '../errors.js';
import type { Manifest } from '../manifest/types.js';
import { closestWord } from '../util/suggest.js';

export interface SplitPointsReport {
  resource: string;
  scope: string;
  /** Ranges asked for; the points are one fewer, or fewer still when there are fewer resources. */
  ranges: number;
  /** Resources counted in scope (the type's `where` or prefix). */
  counted: number;
  splitPoints: string[];
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
    return { resource: type, scope: backend.scope, ranges, counted, splitPoints: points };
  } finally {
    await connections.close();
  }
}

/** The report in words, then the lines to put under the type in the manifest (YAML; each point a JSON string). */
export function splitPointsText(r: SplitPointsReport): string {
  const made = r.splitPoints.length + 1;
  const n = (x: number) => x.toLocaleString('en-US');
  const head =
    r.counted === 0
      ? `${r.resource} (${r.scope}): no resources in scope, so no split points`
      : `${r.resource} (${r.scope}): ${n(r.counted)} resources in ${made} range${made === 1 ? '' : 's'} of about ${n(Math.ceil(r.counted / made))}` +
        (made < r.ranges ? ` (fewer than the ${r.ranges} asked: fewer resources than ranges)` : '');
  if (r.splitPoints.length === 0) return head;
  return [head, '', `# under resources: - name: ${r.resource}`, 'shard:', '  splitPoints:', ...r.splitPoints.map((p) => `    - ${JSON.stringify(p)}`)].join('\n');
}
