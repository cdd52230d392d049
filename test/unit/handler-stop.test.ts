/**
 * A handler call cut short by the run's stop signal rejects with the stop's own reason, not as
 * a handler failure: the run then ends interrupted (exit 130), not failed (exit 3).
 */
import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { CommandTransport, HttpTransport } from '../../src/backends/handler/transport.js';
import type { CommandLocation, HttpLocation } from '../../src/manifest/types.js';

const policy = { conditional: true, allowUnconditional: false, timeoutMs: 30_000, maxLineBytes: 1 << 16, maxOutputBytes: 1 << 20 };

describe('a handler call stopped by the caller', () => {
  it('command: rejects with the stop reason and kills the command', async () => {
    const location: CommandLocation = { ...policy, kind: 'command', list: { argv: ['sleep', '20'] }, delete: { argv: ['true'] }, cwd: process.cwd(), env: {} };
    const stop = new AbortController();
    const call = new CommandTransport(location, 'items').call('list', '{}', {}, stop.signal);
    setTimeout(() => stop.abort(), 100);
    const error = await call.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBe(stop.signal.reason);
    expect((error as Error).name).toBe('AbortError');
  });

  it('http: rejects with the stop reason, not as a failed request', async () => {
    const server = createServer(() => undefined); // never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as { port: number };
      const location = { ...policy, kind: 'http', url: `http://127.0.0.1:${port}` } as HttpLocation;
      const stop = new AbortController();
      const call = (await HttpTransport.open(location, 'items')).call('list', '{}', {}, stop.signal);
      setTimeout(() => stop.abort(), 100);
      const error = await call.then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBe(stop.signal.reason);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
