/**
 * The AWS SDK's Node-version advisory (a NodeVersionSupportWarning on Node < 22: SDK releases
 * after January 2027 will need Node 22; reaper supports Node 20 with the SDK it pins) is kept
 * out of a CLI run's stderr through the SDK's own switch,
 * AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true — only while reaper creates its
 * client: a user who sets the variable decides, and a handler process reaper starts gets the
 * user's environment, not reaper's switch.
 *
 * The built CLI, on the Node running the tests, audits a bucket on moto together with a
 * `command` type whose handler reports the variable as it sees it. The advisory exists only
 * below Node 22: there, a user's own setting brings it back; on every line, reaper prints none
 * and its handlers do not inherit its switch.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { itWhere } from '../support/matrix.js';
import { reaperSync } from './support/cli.js';
import { freshBucket, runCleanups, s3BlobsYaml, s3Settings, serviceAvailable } from './support/services.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

const VARIABLE = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';
const nodeMajor = Number(process.versions.node.split('.')[0]);

const HANDLER = `
import { writeFileSync } from 'node:fs';
writeFileSync('handler-env.json', JSON.stringify({ value: process.env.${VARIABLE} ?? null }));
process.stdout.write(JSON.stringify({ next: null }) + '\\n');
`;

async function fixture(): Promise<{ dir: string; manifest: string }> {
  const { bucket } = await freshBucket(cleanups, 'nodewarn');
  const dir = mkdtempSync(path.join(tmpdir(), 'reaper-nodewarn-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'handler.mjs'), HANDLER);
  const call = JSON.stringify([process.execPath, path.join(dir, 'handler.mjs')]);
  const manifest = path.join(dir, 'reaper.yaml');
  writeFileSync(
    manifest,
    [
      'version: 1',
      ...s3BlobsYaml(bucket),
      '  - name: things',
      `    command: { list: ${call}, delete: ${call} }`,
      '    owner: { attribute: owner }',
      '',
    ].join('\n'),
  );
  return { dir, manifest };
}

const handlerSaw = (dir: string) => (JSON.parse(readFileSync(path.join(dir, 'handler-env.json'), 'utf8')) as { value: string | null }).value;

describe.skipIf(!serviceAvailable('s3'))(`the AWS SDK's Node-version advisory on Node ${process.versions.node}`, () => {
  it('is not on stderr, and a handler started after the S3 client does not inherit the switch', async () => {
    const { dir, manifest } = await fixture();
    const r = reaperSync(['audit', '-c', manifest, '--output', 'json'], { cwd: dir, env: { AWS_EC2_METADATA_DISABLED: 'true' } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { resources: { name: string; status: string }[] }).resources.map((t) => [t.name, t.status])).toEqual([
      ['blobs', 'ok'],
      ['things', 'ok'],
    ]);
    expect(handlerSaw(dir)).toBeNull();
  });

  it('stays off for the clients the SDK creates later itself (web identity credentials through STS)', async () => {
    const { dir } = await fixture();
    const manifest = path.join(dir, 'reaper.yaml');
    // No keys in the connection: the SDK's default chain assumes a role with a web identity token, its STS client created at the first request.
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(/, accessKeyId: [^,]+, secretAccessKey: [^ ]+ \}/, ' }'));
    expect(readFileSync(manifest, 'utf8')).not.toContain('accessKeyId');
    writeFileSync(path.join(dir, 'token'), 'a-web-identity-token');
    const env = {
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_WEB_IDENTITY_TOKEN_FILE: path.join(dir, 'token'),
      AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/reaper',
      AWS_ENDPOINT_URL_STS: s3Settings().endpoint,
      AWS_REGION: 'us-east-1',
    };
    const r = reaperSync(['audit', '-c', manifest, '--output', 'json'], { cwd: dir, env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  itWhere(nodeMajor < 22)('is printed when the user sets the switch to something else than "true" (their choice stands)', async () => {
    const { dir, manifest } = await fixture();
    const r = reaperSync(['audit', '-c', manifest, '--output', 'json'], { cwd: dir, env: { AWS_EC2_METADATA_DISABLED: 'true', [VARIABLE]: 'false' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('NodeVersionSupportWarning');
    expect(handlerSaw(dir)).toBe('false');
  });
});
