/**
 * Names chosen by whoever can write a file or an S3 key, against the real filesystem and
 * moto (docs/safety.md §6, §19): a name built to make a nested-quantifier pattern backtrack is judged
 * promptly and correctly (a backtracking engine takes minutes on 34 a's and a c, longer
 * than this suite's timeout by orders of magnitude), and an `fs` scope that a symlink
 * turns into the filesystem root after the manifest was loaded is not walked.
 */
import { mkdirSync, renameSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { testTempDir } from './support/temp-dir.js';
import { ExitCode, SafetyError } from '../../src/errors.js';
import { parseManifest } from '../../src/manifest/load.js';
import { runAudit } from '../../src/run/audit.js';
import { freshBucket } from './support/s3-bucket.js';
import { runCleanups, s3Settings, serviceAvailable } from './support/services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const EVIL = `${'a'.repeat(40)}c`;
const OWNED = `${'a'.repeat(40)}b`;

/** The findings of an audit, as `id: status/reason`. */
async function audit(yaml: string, dir: string): Promise<string[]> {
  const doc = await runAudit(parseManifest(yaml, { file: 'reaper.yaml', baseDir: dir }));
  return doc.findings.map((f) => `${f.id}: ${f.status}/${f.reason}`).sort();
}

describe('a nested-quantifier pattern against a name built to make it backtrack', () => {
  it('files: the audit finishes and classifies every file', async () => {
    const dir = testTempDir('reaper-redos-');
    const old = new Date(Date.now() - 3_600_000);
    for (const name of [EVIL, `${OWNED}-1.part`]) {
      mkdirSync(path.join(dir, 'scratch'), { recursive: true });
      writeFileSync(path.join(dir, 'scratch', name), 'x');
      utimesSync(path.join(dir, 'scratch', name), old, old);
    }
    const yaml = `version: 1
defaults: { minAge: 0s }
resources:
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>(a+)+)b", key: "session:{value}" }
    protect: [{ pathPattern: "^(a|a)*$" }]
`;
    expect(await audit(yaml, dir)).toEqual([`${OWNED}-1.part: orphaned/owner-dead`, `${EVIL}: orphaned/no-owner`]);
  });

  it.skipIf(!serviceAvailable('s3'))('S3: the audit finishes and classifies every key', async () => {
    const cfg = s3Settings();
    const { s3, bucket } = await freshBucket(cleanups);
    for (const key of [`tmp/${EVIL}`, `tmp/${OWNED}/x.bin`]) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
    const dir = testTempDir('reaper-redos-s3-');
    const yaml = `version: 1
defaults: { minAge: 0s }
connections:
  blobs: { kind: s3, endpoint: "${cfg.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }
resources:
  - name: blobs
    s3: { connection: blobs, bucket: ${bucket}, prefix: tmp/ }
    owner: { keyPattern: "^tmp/(?<owner>(a+)+)b" }
`;
    expect(await audit(yaml, dir)).toEqual([`tmp/${OWNED}/x.bin: orphaned/owner-dead`, `tmp/${EVIL}: orphaned/no-owner`]);
  });
});

describe('an fs scope that becomes the filesystem root after the manifest was loaded', () => {
  it('is not walked: the audit stops with exit 4 before reading anything', async () => {
    const dir = testTempDir('reaper-rootswap-');
    mkdirSync(path.join(dir, 'scratch'));
    const manifest = parseManifest(
      `version: 1
resources:
  - name: scratch
    fs: { path: ./scratch }
    owner: { pathPattern: "^(?<owner>[^/]+)/" }
`,
      { file: 'reaper.yaml', baseDir: dir },
    );
    // Swapped for a symlink to / between validation and the run.
    renameSync(path.join(dir, 'scratch'), path.join(dir, 'scratch.old'));
    symlinkSync('/', path.join(dir, 'scratch'));
    const error = await runAudit(manifest).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetyError);
    expect((error as SafetyError).exitCode).toBe(ExitCode.safety);
    expect((error as Error).message).toContain(`${path.join(dir, 'scratch')} resolves to the filesystem root /; not scanned (allowRoot: true in the manifest if that is meant)`);
  });
});
