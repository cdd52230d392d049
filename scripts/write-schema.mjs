// Regenerates config/manifest.schema.json from the zod schema (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { manifestJsonSchemaText } from '../dist/manifest/json-schema.js';

const target = new URL('../config/manifest.schema.json', import.meta.url);
writeFileSync(target, manifestJsonSchemaText());
console.log(`wrote ${target.pathname}`);
