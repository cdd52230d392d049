import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { manifestJsonSchema, manifestJsonSchemaText } from '../../src/manifest/json-schema.js';

describe('config/manifest.schema.json', () => {
  it('is what the zod schema generates (run `npm run build && npm run schema` when this fails)', () => {
    const committed = readFileSync(new URL('../../config/manifest.schema.json', import.meta.url), 'utf8');
    expect(committed).toBe(manifestJsonSchemaText());
  });

  it('rejects unknown keys and names every backend kind', () => {
    const schema = manifestJsonSchema() as { additionalProperties?: unknown; properties: Record<string, unknown> };
    expect(schema.additionalProperties).toBe(false);
    const text = JSON.stringify(schema);
    for (const kind of ['"s3"', '"postgres"', '"mysql"', '"fs"']) expect(text).toContain(kind);
  });
});
