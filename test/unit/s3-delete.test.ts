/**
 * The pure parts of S3 deletes: the delete mode a manifest's `deleteMode` asserts, and
 * how a DeleteObjects answer maps to one result per item (restore handles included).
 */
import { describe, expect, it } from 'vitest';
import { assertedDeleteMode, batchOutcomes } from '../../src/backends/s3/s3-delete.js';

describe('assertedDeleteMode', () => {
  it('maps each explicit deleteMode and bucket versioning to a delete mode, and auto to null (probe)', () => {
    const versionings = [null, 'Suspended', 'Enabled'] as const;
    expect(versionings.map((v) => assertedDeleteMode('auto', v))).toEqual([null, null, null]);
    expect(versionings.map((v) => assertedDeleteMode('batch-if-match', v))).toEqual([
      's3-batch-if-match',
      's3-batch-if-match',
      's3-versioned-batch-delete-marker',
    ]);
    expect(versionings.map((v) => assertedDeleteMode('per-object-if-match', v))).toEqual([
      's3-per-object-if-match',
      's3-per-object-if-match',
      's3-versioned-delete-marker',
    ]);
  });
});

describe('batchOutcomes with versioning enabled', () => {
  const items = ['tmp/a', 'tmp/b', 'tmp/c', 'tmp/d', 'tmp/e'].map((id) => ({ id, fingerprint: '"e"#v1' }));
  const output = {
    Deleted: [
      { Key: 'tmp/a', DeleteMarker: true, DeleteMarkerVersionId: 'marker-a' },
      // A server that does not say it added a marker, or names no marker: deleted, nothing to restore from.
      { Key: 'tmp/b', DeleteMarker: false, DeleteMarkerVersionId: 'marker-b' },
      { Key: 'tmp/c', DeleteMarker: true },
      // A version removed (the request named its VersionId): no delete marker was added.
      { Key: 'tmp/d', VersionId: 'v1', DeleteMarker: true, DeleteMarkerVersionId: 'v1' },
    ],
    Errors: [{ Key: 'tmp/e', Code: 'PreconditionFailed', Message: 'At least one of the pre-conditions you specified did not hold' }],
  };

  it('gives each delete marker it added as the restore handle', () => {
    expect(batchOutcomes(items, output, true)).toEqual([
      { id: 'tmp/a', outcome: 'deleted', restoreHandle: 'marker-a' },
      { id: 'tmp/b', outcome: 'deleted' },
      { id: 'tmp/c', outcome: 'deleted' },
      { id: 'tmp/d', outcome: 'deleted' },
      { id: 'tmp/e', outcome: 'changed' },
    ]);
  });

  it('gives no restore handle when the bucket does not keep versions', () => {
    const results = batchOutcomes(items, output);
    expect(results.map((r) => r.outcome)).toEqual(['deleted', 'deleted', 'deleted', 'deleted', 'changed']);
    expect(results.every((r) => r.restoreHandle === undefined)).toBe(true);
    expect(batchOutcomes(items, output, false)).toEqual(results);
  });
});
