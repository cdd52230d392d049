/**
 * Named connections of a manifest, created lazily on first use and shared by every
 * backend and liveness source that names them; closed together, last-in-first-out.
 */
import type { ConnectionSpec } from '../manifest/types.js';
import { Releasers } from '../util/releasers.js';

export class Connections {
  private readonly clients = new Map<string, Promise<unknown>>();
  private readonly releasers = new Releasers();

  constructor(private readonly specs: Readonly<Record<string, ConnectionSpec>>) {}

  spec(name: string): ConnectionSpec {
    const spec = this.specs[name];
    if (!spec) throw new Error(`no connection named "${name}"`);
    return spec;
  }

  /**
   * The client for a connection, created once by `create` (which loads its driver) and
   * closed by `close` at the end. Callers of one connection must agree on the client type.
   */
  client<T>(name: string, create: (spec: ConnectionSpec) => Promise<T>, close: (client: T) => Promise<void> | void): Promise<T> {
    let client = this.clients.get(name) as Promise<T> | undefined;
    if (!client) {
      client = create(this.spec(name)).then(
        (c) => {
          this.releasers.add(() => close(c));
          return c;
        },
        (error: unknown) => {
          // A failed first use must not poison the connection for the rest of the run.
          this.clients.delete(name);
          throw error;
        },
      );
      this.clients.set(name, client);
    }
    return client;
  }

  close(): Promise<void> {
    return this.releasers.releaseAll();
  }
}
