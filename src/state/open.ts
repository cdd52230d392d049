/** Open the state store named by a URL: `sqlite:PATH` (default), `postgres://…`, `mysql://…`. */
import { UsageError } from '../errors.js';
import type { LeaseBounds, StateStore } from './types.js';

export interface OpenStateStoreOptions {
  leaseBounds?: LeaseBounds;
}

export async function openStateStore(url: string, options: OpenStateStoreOptions = {}): Promise<StateStore> {
  if (url.startsWith('sqlite:')) {
    const { SqliteStateStore } = await import('./sqlite/sqlite-state-store.js');
    return SqliteStateStore.open(url.slice('sqlite:'.length), options);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresStateStore } = await import('./postgres/postgres-state-store.js');
    return PostgresStateStore.open(url, options);
  }
  if (url.startsWith('mysql://')) {
    const { MysqlStateStore } = await import('./mysql/mysql-state-store.js');
    return MysqlStateStore.open(url, options);
  }
  throw new UsageError(`unsupported state store URL (expected sqlite:PATH, postgres://… or mysql://…)`);
}
