/**
 * The daemon's Prometheus metrics. Each daemon has its own prom-client Registry (never
 * the global default), so embedders and tests running several daemons do not clash.
 * Labels are bounded: outcomes, route templates and status codes; never a lease id,
 * a key or a holder.
 *
 * Process metrics (heap, open fds, event-loop lag, GC) describe the process, not one
 * daemon, and prom-client cannot stop the event-loop monitor and GC observer it starts
 * for them; so they are collected once per process into a registry of their own (also
 * not the global default) and appended to every daemon's /metrics answer.
 *
 * prom-client is imported lazily, here and in report/prometheus.ts, so commands that serve
 * or write no metrics never load it.
 */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface DaemonMetrics {
  /** This daemon's own registry (without the process metrics). */
  readonly registry: Registry;
  readonly contentType: string;
  /** Leases the heartbeat loop holds right now (confirmed and not past their deadline; read at each scrape). */
  readonly leasesActive: Gauge;
  /** 1 while /readyz answers 200. */
  readonly ready: Gauge;
  /** Lease renewals by outcome: each lease of a heartbeat batch, and each renewal over HTTP. */
  readonly renewals: Counter<'outcome'>;
  /** Time of each renewal: one heartbeat batch, or one HTTP renewal (its wait to join a batched call included). */
  readonly renewalDuration: Histogram;
  /** How far behind the heartbeat is (read at each scrape; see Heartbeat.lagSeconds). */
  readonly heartbeatLag: Gauge;
  /** Heartbeat leases found expired or released (each is then acquired afresh). */
  readonly leasesLost: Counter;
  readonly httpRequests: Counter<'route' | 'code'>;
  /** The Prometheus text of this daemon's metrics followed by the process metrics. */
  text(): Promise<string>;
}

let processRegistry: Promise<Registry> | undefined;

async function sharedProcessRegistry(): Promise<Registry> {
  processRegistry ??= import('prom-client').then((prom) => {
    const register = new prom.Registry();
    prom.collectDefaultMetrics({ register });
    return register;
  });
  return processRegistry;
}

/** What the gauges read at each scrape, so they change the moment the daemon's state does. */
export interface DaemonGauges {
  ready(): boolean;
  leasesActive(): number;
  heartbeatLagSeconds(): number;
}

export async function createDaemonMetrics(gauges: DaemonGauges): Promise<DaemonMetrics> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  const registers = [registry];
  const processMetrics = await sharedProcessRegistry();
  const metrics: DaemonMetrics = {
    registry,
    contentType: registry.contentType,
    leasesActive: new prom.Gauge({
      name: 'reaper_daemon_leases_active',
      help: 'Leases the daemon heartbeats and holds: confirmed by the store and not past their deadline (last confirmed send + ttl - margin).',
      registers,
      collect() {
        this.set(gauges.leasesActive());
      },
    }),
    ready: new prom.Gauge({
      name: 'reaper_daemon_ready',
      help: '1 when the daemon is ready (store answering, every lease held), else 0.',
      registers,
      collect() {
        this.set(gauges.ready() ? 1 : 0);
      },
    }),
    renewals: new prom.Counter({
      name: 'reaper_daemon_renewals_total',
      help: 'Lease renewals by outcome (ok, failed): each lease of a heartbeat batch and each renewal over the HTTP API.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    renewalDuration: new prom.Histogram({
      name: 'reaper_daemon_renewal_duration_seconds',
      help: 'Duration of renewals: one heartbeat batch, or one HTTP renewal including its wait to join a batched store call.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    heartbeatLag: new prom.Gauge({
      name: 'reaper_daemon_heartbeat_lag_seconds',
      help: 'How long ago the earliest heartbeat not yet confirmed by the store was due (grows while the store refuses or hangs); else how late the last tick started.',
      registers,
      collect() {
        this.set(gauges.heartbeatLagSeconds());
      },
    }),
    leasesLost: new prom.Counter({
      name: 'reaper_daemon_leases_lost_total',
      help: 'Heartbeat leases lost: past their deadline without a confirmed renewal, or found expired or released by the store; each is acquired afresh with a new generation.',
      registers,
    }),
    httpRequests: new prom.Counter({
      name: 'reaper_daemon_http_requests_total',
      help: 'HTTP requests by route template and status code.',
      labelNames: ['route', 'code'] as const,
      registers,
    }),
    async text() {
      return `${await registry.metrics()}${await processMetrics.metrics()}`;
    },
  };
  // Both outcomes are present from the start, so a rate over them is defined at once.
  metrics.renewals.inc({ outcome: 'ok' }, 0);
  metrics.renewals.inc({ outcome: 'failed' }, 0);
  return metrics;
}
