/**
 * The sockets a server dialect's driver opens, kept so that `close()` can end them when
 * the server no longer answers. A driver's own end (a goodbye message, then FIN) waits
 * for the server; behind a partition it waits forever and keeps the process alive. The
 * stores hand `connect` to the driver as its socket factory, end the pool gracefully
 * within the store's deadline, then destroy what is left (docs/safety.md §19).
 */
import { connect, Socket } from 'node:net';
import { settlesWithin } from '../util/deadline.js';

export class StoreSockets {
  private readonly open = new Set<Socket>();

  constructor(
    /** TCP keepalive: first probe after this much idle time. */
    private readonly keepAliveMs: number,
  ) {}

  /** An unconnected socket (for pg, which connects it itself). */
  readonly socket = (): Socket => this.track(new Socket());

  /** A connecting socket (for mysql2, whose factory must return one). */
  readonly connect = (options: { config: { host?: string; port?: number; socketPath?: string } }): Socket => {
    const { host, port, socketPath } = options.config;
    const socket = this.track(socketPath ? connect(socketPath) : connect(port ?? 3306, host ?? 'localhost'));
    socket.setNoDelay(true);
    socket.once('connect', () => socket.setKeepAlive(true, this.keepAliveMs));
    return socket;
  };

  private track(socket: Socket): Socket {
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    return socket;
  }

  /** End the pool within `timeoutMs`; then destroy every socket still open. Never throws. */
  async close(end: () => Promise<void>, timeoutMs: number): Promise<void> {
    await settlesWithin(
      end().catch(() => undefined),
      timeoutMs,
    );
    for (const socket of this.open) socket.destroy();
    this.open.clear();
  }
}
