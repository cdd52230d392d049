/**
 * The key-shape check of `validate` and of an audit's first lines: for each resource type,
 * the owner keys read from a sample (the first page) against a few keys of each liveness
 * source that can list some (leases, SQL queries; a static list names special keys by
 * hand and is left out). Costs one small read per source per run and one liveness look-up
 * per type; a source that cannot be sampled is left out, never an error.
 */
import type { Connections } from '../backends/connections.js';
import { openBackend } from '../backends/open.js';
import { ownerKeysOf } from '../engine/classify.js';
import { keyShapeMismatch, type KeySample } from '../engine/key-shapes.js';
import type { ResourceRecord } from '../engine/types.js';
import type { LivenessView } from '../liveness/liveness.js';
import type { Manifest, ResourceSpec } from '../manifest/types.js';

/** Owner keys compared per type, and keys read per source. */
export const OWNER_SAMPLE = 50;
export const SOURCE_SAMPLE = 20;

export class KeyShapeCheck {
  private samples: Promise<KeySample[]> | null = null;

  constructor(
    private readonly liveness: LivenessView,
    private readonly signal?: AbortSignal,
  ) {}

  private sourceSamples(): Promise<KeySample[]> {
    this.samples ??= (async () => {
      const samples: KeySample[] = [];
      for (const source of this.liveness.sources) {
        if (!source.sample) continue;
        try {
          samples.push({ name: source.name, keys: await source.sample(SOURCE_SAMPLE, this.signal) });
        } catch {
          // an unreadable source is reported where it is counted
        }
      }
      return samples;
    })();
    return this.samples;
  }

  /** The warning for one type, from records of its first page; null when its keys can match. */
  async check(spec: ResourceSpec, records: readonly ResourceRecord[]): Promise<string | null> {
    const ownerKeys = [...ownerKeysOf(records, spec).keys].slice(0, OWNER_SAMPLE);
    if (ownerKeys.length === 0) return null;
    const sources = await this.sourceSamples();
    if (sources.length === 0) return null;
    const judged = await this.liveness.judge(ownerKeys, this.signal);
    if (judged.errors.length > 0) return null;
    const anyLive = [...judged.answers.values()].some((a) => a === 'live');
    return keyShapeMismatch({ resource: spec.name, ownerKeys, anyLive, sources });
  }
}

/** For `validate`: the warnings of every resource type, each read from a first page of OWNER_SAMPLE records. */
export async function keyShapeWarnings(manifest: Manifest, connections: Connections, liveness: LivenessView, signal?: AbortSignal): Promise<string[]> {
  const check = new KeyShapeCheck(liveness, signal);
  const warnings: string[] = [];
  for (const spec of manifest.resources) {
    try {
      const backend = await openBackend(spec, { connections, exclude: [] });
      try {
        for await (const page of backend.scan({ pageSize: OWNER_SAMPLE, signal })) {
          const warning = await check.check(spec, page.records);
          if (warning) warnings.push(warning);
          break;
        }
      } finally {
        await backend.close();
      }
    } catch {
      // a type that cannot be read is reported by validate's own check
    }
  }
  return warnings;
}
