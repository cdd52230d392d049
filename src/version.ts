/** reaper's own version, read once from package.json (one level above src/ and dist/). */
import { readFileSync } from 'node:fs';
import { MYSQL_MIGRATIONS } from './state/mysql/migrations.js';
import { POSTGRES_MIGRATIONS } from './state/postgres/migrations.js';
import { SQLITE_MIGRATIONS } from './state/sqlite/migrations.js';

let cached: { name: string; version: string } | undefined;
function packageJson(): { name: string; version: string } {
  cached ??= JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
  return cached;
}

export function reaperVersion(): string {
  return packageJson().version;
}

/** The schema version each state store migrates to (the number of its last migration). */
export function stateSchemaVersions(): { sqlite: number; postgres: number; mysql: number } {
  const last = (list: readonly { version: number }[]) => list[list.length - 1]!.version;
  return { sqlite: last(SQLITE_MIGRATIONS), postgres: last(POSTGRES_MIGRATIONS), mysql: last(MYSQL_MIGRATIONS) };
}

/** What `reaper --version` prints: reaper's version and package, Node.js's, and the state-store schema. */
export function versionReport(version = reaperVersion()): string {
  const schema = stateSchemaVersions();
  const same = schema.sqlite === schema.postgres && schema.postgres === schema.mysql;
  const schemaText = same ? String(schema.sqlite) : `sqlite ${schema.sqlite}, postgres ${schema.postgres}, mysql ${schema.mysql}`;
  return [`reaper ${version} (npm package ${packageJson().name})`, `Node.js ${process.version}`, `state-store schema ${schemaText}`].join('\n');
}
