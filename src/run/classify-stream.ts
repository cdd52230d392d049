/**
 * Scan one resource type page by page and classify every record: the shared first half
 * of audit and reap (so dry run, execute and audit judge with the same code).
 * Owner look-ups are batched per page; memory is bounded by the page size.
 */
import type { Backend } from '../backends/types.js';
import { classify, ownerKeysOf, type LivenessAnswers } from '../engine/classify.js';
import type { ShardPart } from '../engine/shard.js';
import type { Finding, Liveness, ResourceRecord } from '../engine/types.js';
import type { LivenessView } from '../liveness/liveness.js';
import type { ResourceSpec } from '../manifest/types.js';

export interface ClassifiedPage {
  records: ResourceRecord[];
  findings: Finding[];
  cursor: string | null;
  /** Liveness sources that failed for this page (their keys were judged unknown). */
  errors: string[];
  /** Entries the backend could not read (ScanPage.unreadable). */
  unreadable?: { id: string; why: string }[];
  /** The records are a snapshot of this moment (ScanPage.snapshotAtMs). */
  snapshotAtMs?: number;
}

/** Answer owner and ref questions for a batch of records. */
export async function judgeRecords(
  records: readonly ResourceRecord[],
  spec: ResourceSpec,
  liveness: LivenessView,
  signal?: AbortSignal,
): Promise<{ answers: LivenessAnswers; errors: string[] }> {
  const { keys, refs } = ownerKeysOf(records, spec);
  const [judged, referenced] = await Promise.all([liveness.judge(keys, signal), liveness.judgeRefs(refs, signal)]);
  return {
    answers: {
      key: (k: string): Liveness => judged.answers.get(k) ?? 'unknown',
      ref: referenced.answer,
    },
    errors: [...judged.errors, ...referenced.errors],
  };
}

export async function* classifyResource(
  backend: Backend,
  spec: ResourceSpec,
  liveness: LivenessView,
  nowMs: number,
  options: { cursor?: string | null; signal?: AbortSignal; part?: ShardPart } = {},
): AsyncGenerator<ClassifiedPage> {
  for await (const page of backend.scan({ cursor: options.cursor, pageSize: spec.batchSize, signal: options.signal, ...(options.part ? { part: options.part } : {}) })) {
    const { answers, errors } = await judgeRecords(page.records, spec, liveness, options.signal);
    const findings = page.records.map((record) => classify(record, spec, answers, nowMs));
    yield {
      records: page.records,
      findings,
      cursor: page.cursor,
      errors,
      ...(page.unreadable ? { unreadable: page.unreadable } : {}),
      ...(page.snapshotAtMs !== undefined ? { snapshotAtMs: page.snapshotAtMs } : {}),
    };
  }
}
