/**
 * An HTTP proxy in front of a real S3 server that answers some requests itself with the
 * errors S3 gives under load: `503 SlowDown` (throttling) or `500 InternalError`. A rule
 * sees each request (method, path and query) and decides:
 * - `forward`: pass it on and its answer back;
 * - `{ status, code }`: never send it on; answer this S3 error instead;
 * - `{ status, code, after: true }`: send it on (the server acts on it), then drop the
 *   server's answer and give this error instead, as when the answer is lost on the way.
 * Every request is counted in `seen` (method and path?query), including those it answered.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
}

export interface FaultError {
  status: number;
  code: string;
  after?: boolean;
}
export type FaultAnswer = 'forward' | FaultError;
export type FaultRule = (req: FaultRequest) => FaultAnswer;

export const slowDown: FaultError = { status: 503, code: 'SlowDown' };
export const internalError: FaultError = { status: 500, code: 'InternalError' };

export class HttpFaultProxy {
  readonly seen: FaultRequest[] = [];
  /** Requests the proxy answered with an error (sent on or not). */
  faults = 0;
  rule: FaultRule = () => 'forward';

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(upstream: string): Promise<HttpFaultProxy> {
    const target = new URL(upstream);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new HttpFaultProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('request', (req, res) => {
      const body: Buffer[] = [];
      req.on('data', (d: Buffer) => body.push(d));
      req.on('end', () => {
        const seen = { method: req.method ?? 'GET', url: req.url ?? '/' };
        proxy.seen.push(seen);
        const answer = proxy.rule(seen);
        const fail = (status: number, code: string) => {
          proxy.faults++;
          const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>`;
          res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
          res.end(req.method === 'HEAD' ? undefined : xml);
        };
        if (answer !== 'forward' && !answer.after) return fail(answer.status, answer.code);
        const headers = { ...req.headers, host: target.host };
        const out = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (up: IncomingMessage) => {
          if (answer !== 'forward') {
            up.resume();
            up.on('end', () => fail(answer.status, answer.code));
            return;
          }
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        out.on('error', () => res.destroy());
        out.end(Buffer.concat(body));
      });
    });
    return proxy;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
