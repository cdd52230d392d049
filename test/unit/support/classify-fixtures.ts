/** Builders for classifier tests: a resource spec, a record and liveness answers, with safe defaults. */
import type { LivenessAnswers } from '../../../src/engine/classify.js';
import type { Liveness, ResourceRecord } from '../../../src/engine/types.js';
import type { ResourceSpec } from '../../../src/manifest/types.js';

export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
export const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

/** An s3 resource type owned by the `owner` tag, minAge 10m, no ttl, no protect rules. */
export function spec(overrides: Partial<ResourceSpec> = {}): ResourceSpec {
  return {
    name: 'uploads',
    location: { kind: 's3', connection: 'blobs', bucket: 'uploads', prefix: 'tmp/' },
    owners: [{ extractor: { from: 'tag', name: 'owner' } }],
    minAgeMs: 10 * MINUTE,
    graceMs: HOUR,
    batchSize: 500,
    maxDeletesPerRun: 10_000,
    maxDeleteFraction: 0.5,
    onExpired: 'report',
    protect: [],
    ageFrom: 'mtime',
    line: null,
    ...overrides,
  };
}

/** A record one hour old, tagged with owner `alice`. */
export function record(overrides: Partial<ResourceRecord> = {}): ResourceRecord {
  return { id: 'tmp/alice/a.bin', createdAtMs: NOW - HOUR, bytes: 1024, fingerprint: '"etag-1"', tags: { owner: 'alice' }, ...overrides };
}

/** Answers from tables (`TYPE/ID` for refs); anything not listed is dead. Records every question asked. */
export function answers(keys: Record<string, Liveness> = {}, refs: Record<string, Liveness> = {}): LivenessAnswers & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    key(key) {
      asked.push(key);
      return Object.hasOwn(keys, key) ? keys[key]! : 'dead';
    },
    ref(type, id) {
      asked.push(`${type}/${id}`);
      const k = `${type}/${id}`;
      return Object.hasOwn(refs, k) ? refs[k]! : 'dead';
    },
  };
}
