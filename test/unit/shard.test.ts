/**
 * Shards (src/engine/shard.ts, docs/scale-out.md): every key lies in exactly one shard's part,
 * a key equal to a split point closes its range, bad `i/N` is a usage error naming its key,
 * and split points the manifest can judge are checked at load.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareUtf8, fnv1a, lockName, overlappingLocks, parseShard, partHoldsBytes, shardCaps, shardPart, type ShardPart } from '../../src/engine/shard.js';
import { capViolation } from '../../src/engine/reap-plan.js';
import { ManifestError, UsageError } from '../../src/errors.js';
import { parseManifest } from '../../src/manifest/load.js';
import type { ResourceSpec } from '../../src/manifest/types.js';

const s3 = (splitPoints?: string[]): Pick<ResourceSpec, 'name' | 'location' | 'splitPoints'> => ({
  name: 'blobs',
  location: { kind: 's3', connection: 'c', bucket: 'b', prefix: '' },
  ...(splitPoints ? { splitPoints } : {}),
});

describe('parseShard', () => {
  it('reads i/N counted from 0', () => {
    expect(parseShard('0/4', '--shard')).toEqual({ index: 0, count: 4 });
    expect(parseShard(' 3/4 ', '--shard')).toEqual({ index: 3, count: 4 });
  });

  it.each([['4/4'], ['-1/4'], ['1/0'], ['a/b'], ['1'], ['1/4/2'], ['0/5000'], ['']])('refuses %j naming the key', (text) => {
    let error: unknown;
    try {
      parseShard(text, '--shard');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(2);
    expect((error as Error).message).toMatch(/^--shard: /);
  });
});

describe('shardPart', () => {
  it('gives a key equal to a split point to the range it closes', () => {
    const points = ['k1', 'k2', 'k3'];
    const parts = [0, 1, 2, 3].map((index) => shardPart(s3(points), { index, count: 4 }));
    expect(parts).toEqual([
      { kind: 'range', after: null, through: 'k1' },
      { kind: 'range', after: 'k1', through: 'k2' },
      { kind: 'range', after: 'k2', through: 'k3' },
      { kind: 'range', after: 'k3', through: null },
    ]);
    expect(parts.map((p) => partHoldsBytes(p, 'k1'))).toEqual([true, false, false, false]);
    expect(parts.map((p) => partHoldsBytes(p, 'k1\0'))).toEqual([false, true, false, false]);
  });

  it('leaves shards without ranges empty, and puts an unsplit type whole on one shard', () => {
    expect([0, 1, 2, 3].map((index) => shardPart(s3(['m']), { index, count: 4 }).kind)).toEqual(['none', 'range', 'none', 'range']);
    const unsplit = [0, 1, 2, 3].map((index) => shardPart(s3(), { index, count: 4 }).kind);
    expect(unsplit.filter((k) => k === 'all')).toHaveLength(1);
    expect(unsplit[fnv1a('blobs') % 4]).toBe('all');
    expect(shardPart(s3(['m']), null)).toEqual({ kind: 'all' });
    expect(shardPart(s3(['m']), { index: 0, count: 1 })).toEqual({ kind: 'all' });
  });

  it('puts every key in exactly one shard, for any split points and shard count', () => {
    const key = fc.string({ unit: 'binary', maxLength: 6 });
    fc.assert(
      fc.property(fc.uniqueArray(key, { maxLength: 12 }), fc.array(key, { maxLength: 30 }), fc.integer({ min: 1, max: 20 }), (raw, keys, count) => {
        const points = [...raw].sort(compareUtf8).filter((p, i, a) => i === 0 || compareUtf8(a[i - 1]!, p) < 0);
        const parts: ShardPart[] = Array.from({ length: count }, (_, index) => shardPart(s3(points), { index, count }));
        return [...keys, ...points].every((k) => parts.filter((p) => partHoldsBytes(p, k)).length === 1);
      }),
    );
  });

  it('splits fs types by top-level entry: a whole subtree on one shard', () => {
    const fs: Pick<ResourceSpec, 'name' | 'location'> = { name: 'scratch', location: { kind: 'fs', path: '/srv/x' } };
    const parts = [0, 1, 2].map((index) => shardPart(fs, { index, count: 3 }));
    for (const top of ['a', 'b', 'ç', 'deep']) {
      const owners = parts.filter((p) => partHoldsBytes(p, top));
      expect(owners).toHaveLength(1);
      expect(partHoldsBytes(owners[0]!, `${top}/x/y`)).toBe(true);
    }
  });

  it('gives each shard its share of maxDeletesPerRun, so that N shards together stay within it', () => {
    const spec = { maxDeletesPerRun: 10, maxDeleteFraction: 0.5 };
    expect(shardCaps(spec, null)).toBe(spec);
    expect(shardCaps(spec, { index: 0, count: 1 })).toBe(spec);
    expect(shardCaps(spec, { index: 2, count: 4 })).toEqual({ maxDeletesPerRun: 2, maxDeleteFraction: 0.5 });
    for (let count = 1; count <= 12; count++) expect(shardCaps(spec, { index: 0, count }).maxDeletesPerRun * count).toBeLessThanOrEqual(10);
  });

  it('maxDeleteFraction kept by every shard of its own scan is kept by the job of its whole scan, and is stricter', () => {
    const parts = fc.array(fc.record({ scanned: fc.nat(10_000), share: fc.double({ min: 0, max: 1, noNaN: true }) }), { minLength: 1, maxLength: 16 });
    fc.assert(
      fc.property(parts, fc.double({ min: 0, max: 1, noNaN: true }), (shards, fraction) => {
        const spec = { maxDeletesPerRun: Number.MAX_SAFE_INTEGER, maxDeleteFraction: fraction };
        // Each shard condemns as much as its own check lets it (or a share of that).
        const condemned = shards.map((s) => Math.floor(s.share * Math.floor(fraction * s.scanned)));
        shards.forEach((s, i) => expect(capViolation(spec, { resource: 't', scanned: s.scanned, toMark: condemned[i]!, toSweep: 0 })).toBeNull());
        const scanned = shards.reduce((n, s) => n + s.scanned, 0);
        const total = condemned.reduce((n, c) => n + c, 0);
        expect(capViolation(spec, { resource: 't', scanned, toMark: total, toSweep: 0 })).toBeNull();
      }),
    );
    // Stricter than the job's own check: orphans gathered in one shard's range refuse that shard.
    const spec = { maxDeletesPerRun: 100, maxDeleteFraction: 0.5 };
    expect(capViolation(spec, { resource: 't', scanned: 20, toMark: 0, toSweep: 15 })).toMatch(/exceeds maxDeleteFraction/);
    expect(capViolation(spec, { resource: 't', scanned: 40, toMark: 15, toSweep: 0 })).toBeNull();
  });

  it('names one lock per shard, and the type itself unsharded', () => {
    expect(lockName('blobs', null)).toBe('blobs');
    expect(lockName('blobs', { index: 0, count: 1 })).toBe('blobs');
    expect(lockName('blobs', { index: 2, count: 4 })).toBe('blobs@2/4');
  });

  it('sees an overlap between the type whole and any shard, and between shard layouts of different counts, never within one layout', () => {
    const held = (...names: string[]) => names.map((resource) => ({ resource, runId: `run-${resource}` }));
    const all = held('blobs', 'blobs@0/4', 'blobs@1/4', 'blobs@0/2', 'blobs-old', 'blobs-old@0/2', 'blobsx@1/4');
    expect(overlappingLocks('blobs', 'blobs@1/4', all.filter((l) => l.resource !== 'blobs@1/4'), 'me')).toEqual(['blobs', 'blobs@0/2']);
    expect(overlappingLocks('blobs', 'blobs', all.filter((l) => l.resource !== 'blobs'), 'me')).toEqual(['blobs@0/4', 'blobs@1/4', 'blobs@0/2']);
    expect(overlappingLocks('blobs', 'blobs@0/2', held('blobs@1/2', 'blobs-old'), 'me')).toEqual([]);
    // Its own lock, by name or by run, is no overlap.
    expect(overlappingLocks('blobs', 'blobs@0/2', [{ resource: 'blobs@0/2', runId: 'me' }, { resource: 'blobs', runId: 'me' }], 'me')).toEqual([]);
  });
});

describe('shard.splitPoints in the manifest', () => {
  const manifest = (kind: string, points: string) =>
    parseManifest(
      `version: 1
connections:
  c: { kind: ${kind === 's3' ? 's3' : 'postgres'}${kind === 's3' ? '' : ', url: "postgres://x@localhost/db"'} }
resources:
  - name: r
${kind === 'command' ? '    command: { list: ./h.sh, delete: [./h.sh, delete] }\n    owner: { attribute: owner }' : kind === 's3' ? '    s3: { connection: c, bucket: bucket-one, prefix: p/ }\n    owner: { keyPattern: "(?<owner>.*)" }' : kind === 'fs' ? '    fs: { path: /srv/scratch }\n    owner: { pathPattern: "(?<owner>.*)" }' : '    postgres: { connection: c, table: t, id: id, createdAt: c }\n    owner: { column: o }'}
    shard: { splitPoints: ${points} }
`,
      { file: 'm.yaml', baseDir: '/tmp' },
    );
  const issue = (kind: string, points: string) => {
    try {
      manifest(kind, points);
    } catch (error) {
      expect(error).toBeInstanceOf(ManifestError);
      return (error as ManifestError).issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    }
    return null;
  };

  it('keeps them as text', () => {
    expect(manifest('s3', '[p/a, p/b]').resources[0]!.splitPoints).toEqual(['p/a', 'p/b']);
    expect(manifest('postgres', '[10, "20"]').resources[0]!.splitPoints).toEqual(['10', '20']);
  });

  it('refuses S3 keys out of byte order, integers out of order, repeats, and fs split points, naming the key', () => {
    expect(issue('s3', '[p/b, p/a]')).toMatch(/resources\[0\]\.shard\.splitPoints\[1\]: split points must ascend in S3's key order/);
    expect(issue('s3', '[p/a, 7]')).toMatch(/splitPoints\[1\]: an S3 split point is a key/);
    expect(issue('postgres', '[20, 10]')).toMatch(/splitPoints\[1\]: split points must ascend: 10 is not above 20/);
    expect(issue('postgres', '[a, b, a]')).toMatch(/splitPoints\[2\]: split point "a" is repeated/);
    expect(issue('postgres', '[9007199254740993]')).toMatch(/splitPoints\[0\]: .*write it as a string/);
    expect(issue('fs', '[a]')).toMatch(/shard\.splitPoints: fs resources are split by top-level entry/);
    expect(issue('command', '[a]')).toMatch(/shard\.splitPoints: command resources are not split between shards/);
  });
});
