/**
 * §17: a password in a store or backend URL never reaches what reaper prints or records —
 * the error message on stderr, the JSON log line, the run record's error in the state store,
 * the JSON document. Each check below also finds the URL itself with its password masked, so
 * it fails if `redact` (src/errors.ts) is disabled, not merely if the URL is left out.
 *
 * The built CLI runs with its state store on PostgreSQL, the URL carrying a password (the
 * server trusts loopback, so it is accepted and ignored), and audits and reaps a bucket that
 * does not exist on moto, through an endpoint URL that carries a password.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reaperSync } from './support/cli.js';
import { freshPgDatabase, runCleanups, s3BlobsYaml, s3Settings, serviceAvailable, uniqueName } from './support/services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

function withPassword(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString().replace(/\/$/, '');
}

describe.skipIf(!serviceAvailable('postgres') || !serviceAvailable('s3'))('§17 no secret in output', () => {
  it('a password in the state store URL and in an S3 endpoint URL reaches no error, log line, run record or JSON document', async () => {
    const secret = `pw${randomBytes(8).toString('hex')}`;
    const pgUrl = await freshPgDatabase(cleanups);
    const pgUser = new URL(pgUrl).username || 'postgres';
    const stateUrl = withPassword(pgUrl, pgUser, secret);
    const endpoint = withPassword(s3Settings().endpoint, 'admin', secret);
    const dir = mkdtempSync(path.join(tmpdir(), 'reaper-redact-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const bucket = uniqueName('absent').toLowerCase().replace(/_/g, '-');
    const manifest = path.join(dir, 'reaper.yaml');
    writeFileSync(
      manifest,
      [
        'version: 1',
        `state: "${stateUrl}"`,
        ...s3BlobsYaml(bucket, endpoint),
        '',
      ].join('\n'),
    );
    const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', AWS_EC2_METADATA_DISABLED: 'true' };
    const masked = `admin:***@`;

    // The JSON document (its `state` and the type's error) and the error message on stderr.
    const audit = reaperSync(['audit', '-c', manifest, '--output', 'json'], { cwd: dir, env });
    expect(audit.code).toBe(3);
    const doc = JSON.parse(audit.stdout) as { state: string; resources: { error: string | null }[] };
    expect(doc.state).toContain(`${pgUser}:***@`);
    expect(doc.resources[0]!.error).toContain(masked);
    expect(audit.stderr).toContain(masked);

    // The JSON log's lines.
    const reap = reaperSync(['reap', '--execute', '--allow-liveness-drop', '-c', manifest, '--output', 'json', '--log-format', 'json'], { cwd: dir, env });
    expect(reap.code).toBe(3);
    const failed = reap.stderr
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { event: string; message?: string })
      .find((e) => e.event === 'run-failed');
    expect(failed?.message).toContain(masked);

    // The run records' errors, as the state store holds them.
    const runs = reaperSync(['runs', '-c', manifest, '--output', 'json'], { cwd: dir, env });
    const records = JSON.parse(runs.stdout) as { kind: string; error: string | null }[];
    expect(records.map((r) => r.kind).sort()).toEqual(['audit', 'reap']);
    for (const r of records) expect(r.error).toContain(masked);

    for (const out of [audit.stdout, audit.stderr, reap.stdout, reap.stderr, runs.stdout, runs.stderr]) expect(out).not.toContain(secret);
  });
});
