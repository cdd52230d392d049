/** reaper's own version, read once from package.json (one level above src/ and dist/). */
import { readFileSync } from 'node:fs';

let cached: string | undefined;
export function reaperVersion(): string {
  cached ??= (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cached;
}
