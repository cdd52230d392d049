/** The editor JSON Schema for manifests, generated from the zod schema that validates them. */
import { z } from 'zod';
import { manifestSchema } from './schema.js';

export function manifestJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(manifestSchema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    $id: 'https://reaper.dev/schemas/manifest-v1.json',
    title: 'reaper manifest (version 1)',
    description: 'Ownership manifest for reaper: resource types, owners, TTLs and reap policy. Generated from src/manifest/schema.ts; do not edit.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}

export function manifestJsonSchemaText(): string {
  return `${JSON.stringify(manifestJsonSchema(), null, 2)}\n`;
}
