/**
 * The commands that only look at a server state store (`runs`, `lease list`; `validate` too) read
 * its schema version first, read-only. That look keeps the store's deadline: a server that
 * accepts the connection and then never answers (a frozen server, a partition that drops
 * packets; here a TCP proxy that holds back the first query) ends the command with exit 3
 * and a message that names the timeout, within the URL's `?timeout=` — it does not hang. The
 * URL's parameters are reaper's to read: `timeout` never reaches the driver.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { reaperSpawn, type CliRun } from './support/cli.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { freshMysqlDatabase, freshPgDatabase, runCleanups, serviceAvailable } from './support/services.js';
import { testTempDir } from './support/temp-dir.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(() => runCleanups(cleanups));

/** The CLI, bounded: killed after `boundMs` (then `code` is null and `signal` SIGKILL). */
async function bounded(args: string[], dir: string, boundMs: number): Promise<CliRun> {
  const run = reaperSpawn(args, { cwd: dir, env: { HOME: dir } });
  const timer = setTimeout(() => run.kill('SIGKILL'), boundMs);
  try {
    return await run.done;
  } finally {
    clearTimeout(timer);
  }
}

const dialects = [
  { name: 'postgres', fresh: freshPgDatabase, firstQuery: 'to_regclass' },
  { name: 'mysql', fresh: freshMysqlDatabase, firstQuery: 'information_schema' },
] as const;

describe.each(dialects)('a $name state store that stops answering after the connection', ({ name, fresh, firstQuery }) => {
  it.runIf(serviceAvailable(name) || process.env.CI === 'true')('runs and lease list end within the URL timeout, exit 3, naming the deadline', async () => {
    const dir = testTempDir('reaper-inspect-hang-');
    const url = await fresh(cleanups);
    // A store that exists, so that the look goes on to its queries.
    const created = await bounded(['lease', 'acquire', 'session:x', '--ttl', '1m', '--state', url, '--output', 'json'], dir, 60_000);
    expect(created.code, created.stderr).toBe(0);

    const { proxy, url: proxied } = await TcpProxy.forUrl(url);
    cleanups.push(() => proxy.close());
    proxy.hangWhen(firstQuery);
    const state = `${proxied}${proxied.includes('?') ? '&' : '?'}timeout=2s`;
    for (const args of [['runs'], ['lease', 'list']]) {
      const r = await bounded([...args, '--state', state, '--output', 'json'], dir, 30_000);
      expect(r.signal, `${args.join(' ')} did not end: ${r.stderr}`).toBeNull();
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/timeout|did not answer|no answer/i);
      expect(r.stderr).not.toMatch(/Ignoring invalid configuration option/);
    }
  });
});
