// A reaper lease daemon in its own process (startDaemon from dist/), for the lease
// benchmarks and the soak test. Holds `keys` leases through its heartbeat (ttl `ttlMs`)
// and serves the HTTP API with `token`. Prints one JSON line {url, pid, startSeconds}
// once ready; on SIGTERM (or stdin closing) it prints {metrics} (the /metrics text) and stops.
import { performance } from 'node:perf_hooks';
import { startDaemon } from '../../dist/daemon/daemon.js';
import { openStateStore } from '../../dist/state/open.js';

const { url, keys = 0, ttlMs = 30_000, intervalMs, token } = JSON.parse(process.argv[2]);
const store = await openStateStore(url);
const t = performance.now();
const daemon = await startDaemon({
  store,
  leases: Array.from({ length: keys }, (_, i) => `daemon-key-${i}`),
  ttlMs: keys > 0 ? ttlMs : undefined,
  intervalMs,
  holder: `bench-daemon-${process.pid}`,
  token,
  listen: { host: '127.0.0.1', port: 0 },
  releaseOnExit: false,
});
console.log(JSON.stringify({ url: daemon.url, pid: process.pid, startSeconds: (performance.now() - t) / 1000, held: daemon.leases().length }));
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  const metrics = await daemon.metrics();
  await daemon.stop();
  await store.close();
  console.log(JSON.stringify({ metrics }));
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
