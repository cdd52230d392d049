// Regenerates config/manifest.schema.json and the resource protocol's JSON Schemas in
// docs/schemas/ from their zod schemas (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { manifestJsonSchemaText } from '../dist/manifest/json-schema.js';
import { PROTOCOL_SCHEMAS, protocolSchemaText } from '../dist/backends/handler/protocol.js';

const target = new URL('../config/manifest.schema.json', import.meta.url);
writeFileSync(target, manifestJsonSchemaText());
console.log(`wrote ${target.pathname}`);
for (const name of Object.keys(PROTOCOL_SCHEMAS)) {
  const file = new URL(`../docs/schemas/${name}.json`, import.meta.url);
  writeFileSync(file, protocolSchemaText(name));
  console.log(`wrote ${file.pathname}`);
}
