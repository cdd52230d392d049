/** Audits made up for the HTML report's tests: findings generated lazily, telemetry that agrees with them. */
import type { Status } from '../../../src/engine/types.js';
import type { FindingOutput } from '../../../src/report/document.js';
import type { AuditInput } from '../../../src/report/html/build.js';
import { TelemetryAccumulator } from '../../../src/report/telemetry.js';

const STATUSES: readonly Status[] = ['orphaned', 'orphaned', 'orphaned', 'expired', 'unknown', 'protected', 'young', 'live'];

/** `n` findings over `types` types: a fixed mix of statuses, ages from minutes to months, owners from a pool of `owners`. */
export function* findings(n: number, options: { types?: number; owners?: number; idLength?: number } = {}): Generator<FindingOutput> {
  const types = options.types ?? 3;
  const owners = options.owners ?? 50;
  const pad = options.idLength ? 'x'.repeat(options.idLength) : '';
  for (let i = 0; i < n; i++) {
    const status = STATUSES[i % STATUSES.length]!;
    yield {
      resource: `type-${i % types}`,
      backend: 'fs',
      id: `obj/${i}${pad}`,
      status,
      reason: status === 'orphaned' ? (i % 5 === 0 ? 'no-owner' : 'owner-dead') : status === 'expired' ? 'ttl' : null,
      owner: status === 'orphaned' && i % 5 === 0 ? null : `session:${(i * 7919) % owners}`,
      ageSeconds: (i * 3_613) % (120 * 86_400),
      bytes: 1_000 + (i % 1_000),
    };
  }
}

/** An audit of those findings, with telemetry counted from them (the document lists the first `listed`). */
export function auditOf(all: readonly FindingOutput[], listed = all.length): AuditInput {
  const accs = new Map<string, TelemetryAccumulator>();
  for (const f of all) {
    let acc = accs.get(f.resource);
    if (!acc) accs.set(f.resource, (acc = new TelemetryAccumulator(f.resource, 'fs', `/data/${f.resource}`)));
    acc.add({ ...f, backend: 'fs', fingerprint: '', beyondTtlSeconds: null });
  }
  const nonLive = all.filter((f) => f.status !== 'live');
  return {
    runId: '20261122T021938Z-f02811',
    startedAt: '2026-11-22T02:19:38.000Z',
    finishedAt: '2026-11-22T02:19:40.000Z',
    complete: true,
    resources: [...accs.values()].map((a) => a.result({ count: 2, oldestAgeSeconds: 60 })),
    leases: { active: 3, expired: 1, renewals: 10, renewalFailures: 1, renewalFailureRate: 0.0909, windowSeconds: 3600 },
    sourceErrors: {},
    findings: nonLive.slice(0, listed),
    findingsTotal: nonLive.length,
    findingsTruncated: listed < nonLive.length,
  };
}
