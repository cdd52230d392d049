// The HTML report's client files (its script and style sheet) are not TypeScript, so tsc
// does not emit them: copy them beside the built renderer (dist/report/html/client/),
// where src/report/html/assets.ts reads them at run time, from the sources and the build alike.
import { cpSync } from 'node:fs';

const from = new URL('../src/report/html/client/', import.meta.url);
const to = new URL('../dist/report/html/client/', import.meta.url);
cpSync(from, to, { recursive: true });
