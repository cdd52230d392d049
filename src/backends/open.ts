/** Open the backend adapter for a resource type; drivers load only when their kind is used. */
import type { ResourceSpec } from '../manifest/types.js';
import type { Connections } from './connections.js';
import { FsBackend } from './fs/fs-backend.js';
import type { Backend, BackendFailpoint, LiveRegistry } from './types.js';

export interface BackendContext {
  connections: Connections;
  /** Absolute paths a files backend must never treat as resources (the state store file). */
  exclude: readonly string[];
  /** Stops what opening costs a request (S3 reads the bucket's versioning). */
  signal?: AbortSignal;
  /** Crash tests' failpoints inside a backend's delete. */
  failpoint?: (name: BackendFailpoint) => void;
  /** The manifest's SQL liveness sources: a SQL resource on the same connection checks them inside its delete. */
  registries?: readonly LiveRegistry[];
}

export async function openBackend(spec: ResourceSpec, context: BackendContext): Promise<Backend> {
  const location = spec.location;
  switch (location.kind) {
    case 'fs':
      return new FsBackend({ ...spec, location }, { exclude: context.exclude, failpoint: context.failpoint });
    case 's3': {
      const { S3Backend } = await import('./s3/s3-backend.js');
      return S3Backend.open({ ...spec, location }, context.connections, { signal: context.signal });
    }
    case 'postgres': {
      const { PostgresBackend } = await import('./postgres/postgres-backend.js');
      return PostgresBackend.open({ ...spec, location }, context.connections, context.registries ?? []);
    }
    case 'mysql': {
      const { MysqlBackend } = await import('./mysql/mysql-backend.js');
      return MysqlBackend.open({ ...spec, location }, context.connections);
    }
    case 'command':
    case 'http': {
      const { HandlerBackend } = await import('./handler/handler-backend.js');
      return HandlerBackend.open({ ...spec, location });
    }
  }
}

/** The scope as the manifest declares it, for messages about a type whose backend could not be opened. */
export function declaredScope(spec: ResourceSpec): string {
  const location = spec.location;
  switch (location.kind) {
    case 'fs':
      return location.path;
    case 's3':
      return `s3://${location.bucket}/${location.prefix}`;
    case 'postgres':
    case 'mysql':
      return `${location.kind} ${location.table}`;
    case 'command':
      return `command ${'shell' in location.list ? location.list.shell : location.list.argv.join(' ')}`;
    case 'http':
      return `http ${location.url}`;
  }
}
