// Lease renewals straight on a state store, in this process: acquire `leases` leases,
// then for `seconds` each: `renewLeases` over all of them in batches of `batch` (the
// daemon's heartbeat path), single `renewLease` calls one at a time, and `concurrency`
// single calls in flight. For SQLite also the floor: the same UPDATE through a prepared
// better-sqlite3 statement, one autocommit statement per renewal.
// Prints {acquire, batch, single, concurrent, floor} with renewals/s and p50/p99 ms per call.
import { performance } from 'node:perf_hooks';
import { openStateStore } from '../../dist/state/open.js';

const { url, leases: count, batch, seconds, concurrency = 8, keep = false } = JSON.parse(process.argv[2]);
const store = await openStateStore(url);
const ms = (list) => {
  const s = [...list].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? null;
  return { p50: at(50), p99: at(99), calls: s.length };
};
const result = { url: url.replace(/\/\/[^@]*@/, '//'), leases: count };

let t = performance.now();
const ids = [];
for (let i = 0; i < count; i++) ids.push((await store.acquireLease({ key: `bench-key-${i}`, holder: 'bench', ttlMs: 600_000 })).leaseId);
result.acquire = { seconds: (performance.now() - t) / 1000, perSec: count / ((performance.now() - t) / 1000) };

// renewLeases in batches: what the daemon's heartbeat sends each tick.
{
  const lat = [];
  let renewed = 0;
  const end = performance.now() + seconds * 1000;
  t = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < ids.length && performance.now() < end; i += batch) {
      const part = ids.slice(i, i + batch);
      const s = performance.now();
      const outcomes = await store.renewLeases(part, { ttlMs: 600_000 });
      lat.push(performance.now() - s);
      renewed += outcomes.filter((o) => o.lease).length;
    }
  }
  const elapsed = (performance.now() - t) / 1000;
  result.batch = { batch, renewed, seconds: elapsed, perSec: renewed / elapsed, ...ms(lat) };
}

// Single renewLease calls, one at a time.
{
  const lat = [];
  const end = performance.now() + seconds * 1000;
  t = performance.now();
  let i = 0;
  while (performance.now() < end) {
    const s = performance.now();
    await store.renewLease(ids[i++ % ids.length], { ttlMs: 600_000 });
    lat.push(performance.now() - s);
  }
  const elapsed = (performance.now() - t) / 1000;
  result.single = { renewed: lat.length, seconds: elapsed, perSec: lat.length / elapsed, ...ms(lat) };
}

// Single renewLease calls, `concurrency` in flight (the HTTP API's pattern under load).
{
  const lat = [];
  const end = performance.now() + seconds * 1000;
  t = performance.now();
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        await store.renewLease(ids[i++ % ids.length], { ttlMs: 600_000 });
        lat.push(performance.now() - s);
      }
    }),
  );
  const elapsed = (performance.now() - t) / 1000;
  result.concurrent = { concurrency, renewed: lat.length, seconds: elapsed, perSec: lat.length / elapsed, ...ms(lat) };
}
await store.close();

// The SQLite floor: the renewal UPDATE alone, prepared once, autocommit, same pragmas.
if (url.startsWith('sqlite:')) {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(url.slice('sqlite:'.length));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const NOW = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`;
  const update = db.prepare(`UPDATE leases SET renewed_at = ${NOW}, expires_at = ${NOW} + ttl_ms WHERE lease_id = ? AND released_at IS NULL AND expires_at > ${NOW}`);
  const lat = [];
  const end = performance.now() + seconds * 1000;
  t = performance.now();
  let i = 0;
  while (performance.now() < end) {
    const s = performance.now();
    update.run(ids[i++ % ids.length]);
    lat.push(performance.now() - s);
  }
  const elapsed = (performance.now() - t) / 1000;
  result.floor = { what: 'better-sqlite3 UPDATE, autocommit', renewed: lat.length, seconds: elapsed, perSec: lat.length / elapsed, ...ms(lat) };
  db.close();
}
result.keep = keep;
console.log(JSON.stringify(result));
