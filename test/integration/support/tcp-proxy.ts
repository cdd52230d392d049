/**
 * A TCP proxy in front of a real server, for partition tests: it forwards bytes both
 * ways until told to fail, and then fails the way networks do.
 *
 * - `hang()`: stop forwarding without closing anything. Sockets stay open, bytes sent
 *   either way wait in the proxy, new connections are accepted and never answered: what a
 *   client sees of a frozen server or a partition that drops packets (no RST, no FIN).
 * - `hangWhen(match)`: forward until a client→server chunk contains `match`, then hang
 *   with that chunk held back (the server never sees it): a partition at an exact
 *   statement.
 * - `refuse()`: reset every open connection and stop listening: new connections are
 *   refused (ECONNREFUSED), as when the server is down.
 * - `resume()`: forward again; what was held back is delivered in order (a hang that
 *   heals), or, after `refuse()`, listen again on the same port.
 */
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket | null;
  /** Bytes held back while hung, per direction, in arrival order. */
  toUpstream: Buffer[];
  toClient: Buffer[];
  /** An end (FIN) that arrived while hung, delivered on resume. */
  clientEnded: boolean;
  upstreamEnded: boolean;
}

export class TcpProxy {
  private server: Server;
  private readonly pairs = new Set<Pair>();
  private hung = false;
  private refusing = false;
  private match: Buffer | null = null;
  /** Connections accepted so far (a client that reconnects shows here). */
  accepted = 0;

  private constructor(
    private readonly target: { host: string; port: number },
    readonly port: number,
    server: Server,
  ) {
    this.server = server;
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new TcpProxy(target, (server.address() as AddressInfo).port, server);
    proxy.attach(server);
    return proxy;
  }

  /** Start a proxy for the server of `url` and return both; `url` with the proxy's host and port. */
  static async forUrl(url: string): Promise<{ proxy: TcpProxy; url: string }> {
    const u = new URL(url);
    const proxy = await TcpProxy.start({ host: u.hostname || '127.0.0.1', port: Number(u.port) || (u.protocol === 'mysql:' ? 3306 : 5432) });
    u.hostname = '127.0.0.1';
    u.port = String(proxy.port);
    return { proxy, url: u.toString() };
  }

  get isHung(): boolean {
    return this.hung;
  }

  hang(): void {
    this.hung = true;
    for (const pair of this.pairs) {
      pair.client.pause();
      pair.upstream?.pause();
    }
  }

  /** Hang as soon as a client→server chunk contains `text`; that chunk is held back. */
  hangWhen(text: string): void {
    this.match = Buffer.from(text, 'utf8');
  }

  refuse(): Promise<void> {
    this.refusing = true;
    this.hung = false;
    this.match = null;
    for (const pair of this.pairs) {
      pair.client.resetAndDestroy();
      pair.upstream?.destroy();
    }
    this.pairs.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  async resume(): Promise<void> {
    this.match = null;
    if (this.refusing) {
      this.refusing = false;
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.port, '127.0.0.1', () => resolve());
      });
      this.server = server;
      this.attach(server);
      return;
    }
    this.hung = false;
    for (const pair of [...this.pairs]) {
      if (!pair.upstream) this.connectUpstream(pair);
      this.flush(pair);
      pair.client.resume();
      pair.upstream?.resume();
    }
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    this.pairs.clear();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private attach(server: Server): void {
    server.on('connection', (client) => {
      this.accepted++;
      const pair: Pair = { client, upstream: null, toUpstream: [], toClient: [], clientEnded: false, upstreamEnded: false };
      this.pairs.add(pair);
      client.on('error', () => this.drop(pair));
      client.on('close', () => {
        if (!this.hung) this.drop(pair);
      });
      client.on('data', (chunk: Buffer) => {
        if (!this.hung && this.match && chunk.includes(this.match)) this.hang();
        if (this.hung || !pair.upstream) pair.toUpstream.push(chunk);
        else pair.upstream.write(chunk);
      });
      client.on('end', () => {
        if (this.hung || !pair.upstream) pair.clientEnded = true;
        else pair.upstream.end();
      });
      if (this.hung) client.pause();
      else this.connectUpstream(pair);
    });
  }

  private connectUpstream(pair: Pair): void {
    const upstream = new Socket();
    pair.upstream = upstream;
    upstream.on('error', () => this.drop(pair));
    upstream.on('close', () => {
      if (!this.hung) this.drop(pair);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.hung) pair.toClient.push(chunk);
      else pair.client.write(chunk);
    });
    upstream.on('end', () => {
      if (this.hung) pair.upstreamEnded = true;
      else pair.client.end();
    });
    upstream.connect(this.target.port, this.target.host, () => {
      if (this.hung) upstream.pause();
      else this.flush(pair);
    });
  }

  private flush(pair: Pair): void {
    const upstream = pair.upstream;
    if (!upstream || upstream.connecting) return;
    for (const chunk of pair.toUpstream.splice(0)) upstream.write(chunk);
    for (const chunk of pair.toClient.splice(0)) pair.client.write(chunk);
    if (pair.clientEnded) upstream.end();
    if (pair.upstreamEnded) pair.client.end();
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
