// HTTP load on a reaper daemon's lease API: `clients` concurrent clients over one
// keep-alive agent, each acquiring its own lease (POST /v1/leases) and then renewing it
// (POST /v1/leases/{id}/renew with its X-Lease-Token) back to back for `seconds`.
// Prints {renewals, seconds, perSec, p50, p99, errors} (latency in ms per request).
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const { url, token, clients, seconds } = JSON.parse(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
const base = new URL(url);
function request(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : { 'content-length': 0 }), ...headers },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(data ?? undefined);
  });
}

const leases = [];
for (let i = 0; i < clients; i++) {
  const r = await request('POST', '/v1/leases', { key: `http-client-${process.pid}-${i}`, ttl: 600 });
  if (r.status !== 201) throw new Error(`acquire answered ${r.status}: ${r.body}`);
  leases.push(JSON.parse(r.body));
}
const lat = [];
let errors = 0;
const end = performance.now() + seconds * 1000;
const t = performance.now();
await Promise.all(
  leases.map(async (lease) => {
    const path = `/v1/leases/${encodeURIComponent(lease.leaseId)}/renew`;
    while (performance.now() < end) {
      const s = performance.now();
      const r = await request('POST', path, undefined, { 'x-lease-token': lease.token });
      if (r.status === 200) lat.push(performance.now() - s);
      else errors++;
    }
  }),
);
const elapsed = (performance.now() - t) / 1000;
lat.sort((a, b) => a - b);
const at = (p) => lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))] ?? null;
agent.destroy();
console.log(JSON.stringify({ clients, renewals: lat.length, seconds: elapsed, perSec: lat.length / elapsed, p50: at(50), p99: at(99), errors }));
