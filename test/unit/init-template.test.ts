import { describe, expect, it } from 'vitest';
import { STARTER_MANIFEST } from '../../src/cli/commands/init.js';
import { parseManifest } from '../../src/manifest/load.js';

const load = (text: string, env: Record<string, string> = {}) => parseManifest(text, { file: 'reaper.yaml', baseDir: '/srv/app', env });

describe('the manifest reaper init writes', () => {
  it('loads as written: one files type, leases as the only source', () => {
    const m = load(STARTER_MANIFEST);
    expect(m.resources.map((r) => r.name)).toEqual(['scratch']);
  });

  it('loads with every commented-out connection, source and type uncommented, so none of them has rotted', () => {
    const body = STARTER_MANIFEST.slice(STARTER_MANIFEST.indexOf('version: 1'));
    // Commented YAML is `# ` before a key, a list item or a continuation; prose starts with a capital.
    const uncommented = body.replace(/^(\s*)# (?=[a-z-]+:|- | {2})/gm, '$1');
    expect(uncommented).not.toMatch(/^\s*# -/m);
    const m = load(uncommented, { S3_ENDPOINT: 'http://127.0.0.1:9000', DATABASE_URL: 'postgres://u@127.0.0.1/app', LEGACY_DATABASE_URL: 'mysql://u@127.0.0.1/app' });
    expect(m.resources.map((r) => r.name)).toEqual(['scratch', 'upload-blobs', 'image-rows', 'cart-rows']);
    expect(m.owners).toHaveLength(3);
  });
});
