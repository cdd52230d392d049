import { createServer, type IncomingMessage } from 'node:http';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { evaluateGates, parseGates } from '../../src/engine/gates.js';
import { BackendError } from '../../src/errors.js';
import type { AuditDocument, FindingOutput } from '../../src/report/document.js';
import { renderJunit } from '../../src/report/junit.js';
import { markdownText, renderMarkdown } from '../../src/report/markdown.js';
import { pushMetrics, renderPrometheus, writeMetricsFile } from '../../src/report/prometheus.js';
import { auditSummaryLine, findingsTable, printable, reapSummaryLine, reapTable } from '../../src/report/table.js';
import type { ResourceTelemetry } from '../../src/report/telemetry.js';
import type { ReapReport, ResourceReap } from '../../src/report/reap-report.js';
import { testTempDir } from '../integration/support/temp-dir.js';

// ------------------------------------------------------------------ fixtures

const HOSTILE = 'we"ird\\type\nname';

function telemetry(name: string, backend: ResourceTelemetry['backend'], counts: Partial<ResourceTelemetry>): ResourceTelemetry {
  return {
    name,
    backend,
    scope: `/data/${name}`,
    status: 'ok',
    error: null,
    unreadable: 0,
    scanned: 0,
    live: 0,
    orphaned: 0,
    expired: 0,
    protected: 0,
    young: 0,
    unknown: 0,
    reasons: {},
    orphanBytes: 0,
    avgAgeBeyondTtlSeconds: null,
    maxAgeBeyondTtlSeconds: null,
    oldestOrphanAgeSeconds: null,
    backlog: 0,
    backlogOldestAgeSeconds: null,
    ...counts,
  };
}

function finding(resource: string, id: string, status: FindingOutput['status'] = 'orphaned'): FindingOutput {
  return { resource, backend: 'fs', id, status, reason: status === 'orphaned' ? 'owner-dead' : null, owner: `session:${id}`, ageSeconds: 7200, bytes: 100 };
}

function auditDoc(findings: FindingOutput[] = [finding('scratch-uploads', 'bob/1.part'), finding('scratch-uploads', 'bob/2.part'), finding('exports', 'adhoc.csv')]): AuditDocument {
  return {
    version: 1,
    kind: 'audit',
    reaper: '0.1.0',
    runId: '20261122T020000Z-abc123',
    startedAt: '2026-11-22T02:00:00.000Z',
    finishedAt: '2026-11-22T02:00:02.500Z',
    durationSeconds: 2.5,
    manifest: '/etc/reaper/reaper.yaml',
    state: 'sqlite:/var/lib/reaper/state.db',
    summary: { errors: 0, unreadable: 0, scanned: 15, live: 8, orphaned: 3, expired: 1, protected: 1, young: 1, unknown: 1, orphanBytes: 300, backlog: 2 },
    resources: [
      telemetry('scratch-uploads', 'fs', {
        scanned: 10,
        live: 5,
        orphaned: 2,
        expired: 1,
        protected: 1,
        unknown: 1,
        orphanBytes: 200,
        avgAgeBeyondTtlSeconds: 1800.5,
        maxAgeBeyondTtlSeconds: 3600,
        oldestOrphanAgeSeconds: 7200,
        backlog: 2,
        backlogOldestAgeSeconds: 900,
      }),
      telemetry('exports', 's3', { scanned: 5, live: 3, orphaned: 1, young: 1, orphanBytes: 100, oldestOrphanAgeSeconds: 7200 }),
    ],
    leases: { active: 12, expired: 2, renewals: 100, renewalFailures: 7, renewalFailureRate: 0.07, windowSeconds: 3600 },
    sources: { leases: 12, 'static#1': 1 },
    sourceErrors: {},
    complete: true,
    findings,
    findingsTotal: findings.length,
    findingsTruncated: false,
  };
}

function reapReport(execute: boolean, resources = auditDoc().resources): ReapReport {
  const rows: ResourceReap[] = resources.map((t, i) => ({
    name: t.name,
    backend: t.backend,
    deleteMode: execute ? 'rename' : null,
    scanned: t.scanned,
    toMark: t.orphaned,
    toSweep: i,
    toLift: 0,
    samples: { mark: [], sweep: [], lift: [] },
    lifts: {},
    outcomes: execute ? { marked: t.orphaned, deleted: i, lifted: 0, failed: i === 0 ? 1 : 0, kept: 0, bytesReclaimed: i * 4096 } : { marked: 0, deleted: 0, lifted: 0, failed: 0, kept: 0, bytesReclaimed: 0 },
    telemetry: t,
    error: null,
  }));
  return {
    version: 1,
    kind: 'reap',
    reaper: '0.1.0',
    runId: 'reap-1',
    execute,
    plan: null,
    summary: auditDoc().summary,
    resources: rows,
    outcomes: {
      marked: sum(rows, 'marked'),
      deleted: sum(rows, 'deleted'),
      lifted: sum(rows, 'lifted'),
      failed: sum(rows, 'failed'),
      kept: sum(rows, 'kept'),
      bytesReclaimed: sum(rows, 'bytesReclaimed'),
    },
    sources: { leases: 12 },
    sourceErrors: {},
    errors: [],
  };
}

const sum = (rows: readonly ResourceReap[], key: keyof ResourceReap['outcomes']) => rows.reduce((n, r) => n + r.outcomes[key], 0);

// ------------------------------------------------------------------ a strict exposition parser

interface Sample {
  labels: Record<string, string>;
  value: number;
}
interface Family {
  help: string;
  type: string | null;
  samples: Sample[];
}

const METRIC_NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]Inf$/;

/**
 * Parses Prometheus text format 0.0.4 and enforces what the textfile collector and the
 * Pushgateway need: HELP then TYPE before a family's samples, each family contiguous and
 * declared once, label values with only \\ \" \n escapes, finite values, no duplicate series.
 */
function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the text does not end with a line feed');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  let current: string | null = null;
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, index) => {
      const fail = (why: string): never => {
        throw new Error(`line ${index + 1}: ${why}: ${JSON.stringify(line)}`);
      };
      let m: RegExpExecArray | null;
      if ((m = new RegExp(`^# HELP (${METRIC_NAME}) (.*)$`).exec(line))) {
        const name = m[1]!;
        if (families.has(name)) fail(`${name} declared twice`);
        if (!/^(?:[^\\]|\\[\\n])*$/.test(m[2]!)) fail('bad escape in HELP');
        families.set(name, { help: m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)), type: null, samples: [] });
        current = name;
      } else if ((m = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
        const family = families.get(m[1]!);
        if (!family || current !== m[1]) fail('TYPE without a HELP just before it');
        if (family!.type !== null || family!.samples.length > 0) fail('TYPE after samples or twice');
        family!.type = m[2]!;
      } else if (line.startsWith('#')) {
        fail('unexpected comment');
      } else if ((m = new RegExp(`^(${METRIC_NAME})(\\{.*\\})? (\\S+)$`).exec(line))) {
        const name = m[1]!;
        const family = families.get(name);
        if (!family || current !== name) fail(`sample of ${name} outside its family`);
        if (family!.type === null) fail('sample before TYPE');
        if (!FLOAT.test(m[3]!)) fail(`value ${m[3]} is not a finite number`);
        const labels = m[2] ? parseLabels(m[2].slice(1, -1), fail) : {};
        const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
        if (series.has(key)) fail('duplicate series');
        series.add(key);
        family!.samples.push({ labels, value: Number(m[3]) });
      } else {
        fail('not a HELP, TYPE or sample line');
      }
    });
  return families;
}

function parseLabels(inner: string, fail: (why: string) => never): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < inner.length) {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(inner.slice(i))?.[0] ?? fail(`bad label name at ${i}`);
    i += name.length;
    if (inner.slice(i, i + 2) !== '="') fail(`expected =" after ${name}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = inner[i] ?? fail(`unterminated value of ${name}`);
      i++;
      if (c === '"') break;
      if (c === '\\') {
        const e = inner[i++];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else fail(`bad escape \\${e} in ${name}`);
      } else value += c;
    }
    if (name in labels) fail(`label ${name} twice`);
    labels[name] = value;
    if (i < inner.length) {
      if (inner[i] !== ',') fail(`expected , after ${name}`);
      i++;
    }
  }
  return labels;
}

const sampleOf = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
  families.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));

// ------------------------------------------------------------------ Prometheus

describe('renderPrometheus', () => {
  const ISSUE_METRICS = [
    'reaper_resources',
    'reaper_orphan_bytes',
    'reaper_age_beyond_ttl_seconds',
    'reaper_age_beyond_ttl_max_seconds',
    'reaper_oldest_orphan_age_seconds',
    'reaper_backlog_tombstones',
    'reaper_backlog_oldest_age_seconds',
    'reaper_lease_renewal_failure_ratio',
    'reaper_leases',
    'reaper_liveness_source_keys',
    'reaper_reap_total',
    'reaper_reap_bytes_reclaimed_total',
    'reaper_last_run_timestamp_seconds',
    'reaper_last_run_interrupted',
    'reaper_run_duration_seconds',
  ];

  it('is valid exposition text with every metric the issue names', async () => {
    const text = await renderPrometheus(auditDoc(), reapReport(true));
    const families = parsePrometheus(text);
    for (const name of ISSUE_METRICS) {
      expect(families.has(name), name).toBe(true);
      expect(families.get(name)!.help.length, name).toBeGreaterThan(10);
    }
    for (const family of families.values()) expect(family.samples.length).toBeGreaterThan(0);
  });

  it('reports every status per type, never a per-resource label', async () => {
    const families = parsePrometheus(await renderPrometheus(auditDoc(), reapReport(true)));
    const resources = families.get('reaper_resources')!;
    expect(resources.type).toBe('gauge');
    expect(resources.samples).toHaveLength(2 * 6);
    for (const status of ['live', 'orphaned', 'expired', 'protected', 'young', 'unknown']) {
      expect(sampleOf(families, 'reaper_resources', { resource: 'scratch-uploads', status })?.labels.backend).toBe('fs');
    }
    expect(sampleOf(families, 'reaper_resources', { resource: 'scratch-uploads', status: 'unknown' })!.value).toBe(1);
    expect(sampleOf(families, 'reaper_resources', { resource: 'exports', status: 'orphaned' })!.value).toBe(1);
    const allowed = new Set(['resource', 'backend', 'status', 'state', 'source', 'outcome', 'action', 'kind', 'version']);
    for (const family of families.values()) for (const s of family.samples) for (const label of Object.keys(s.labels)) expect(allowed.has(label), label).toBe(true);
  });

  it('carries the numbers of the document', async () => {
    const families = parsePrometheus(await renderPrometheus(auditDoc(), reapReport(true)));
    const fs = { resource: 'scratch-uploads', backend: 'fs' };
    expect(sampleOf(families, 'reaper_orphan_bytes', fs)!.value).toBe(200);
    expect(sampleOf(families, 'reaper_age_beyond_ttl_seconds', fs)!.value).toBe(1800.5);
    expect(sampleOf(families, 'reaper_age_beyond_ttl_max_seconds', fs)!.value).toBe(3600);
    expect(sampleOf(families, 'reaper_oldest_orphan_age_seconds', fs)!.value).toBe(7200);
    expect(sampleOf(families, 'reaper_backlog_tombstones', fs)!.value).toBe(2);
    expect(sampleOf(families, 'reaper_backlog_oldest_age_seconds', fs)!.value).toBe(900);
    expect(sampleOf(families, 'reaper_lease_renewal_failure_ratio')!.value).toBe(0.07);
    expect(sampleOf(families, 'reaper_leases', { state: 'active' })!.value).toBe(12);
    expect(sampleOf(families, 'reaper_leases', { state: 'expired' })!.value).toBe(2);
    expect(sampleOf(families, 'reaper_liveness_source_keys', { source: 'static#1' })!.value).toBe(1);
    expect(sampleOf(families, 'reaper_last_run_timestamp_seconds', { kind: 'audit' })!.value).toBe(Date.parse('2026-11-22T02:00:02.500Z') / 1000);
    expect(sampleOf(families, 'reaper_run_duration_seconds', { kind: 'audit' })!.value).toBe(2.5);
    expect(sampleOf(families, 'reaper_reap_total', { resource: 'scratch-uploads', outcome: 'failed' })!.value).toBe(1);
    expect(sampleOf(families, 'reaper_reap_total', { resource: 'exports', outcome: 'deleted' })!.value).toBe(1);
    expect(families.get('reaper_reap_total')!.samples).toHaveLength(2 * 4);
    expect(sampleOf(families, 'reaper_reap_bytes_reclaimed_total', { resource: 'exports' })!.value).toBe(4096);
  });

  it('leaves out null values instead of writing NaN', async () => {
    const text = await renderPrometheus(auditDoc(), reapReport(true));
    expect(text).not.toMatch(/NaN|Inf/);
    const families = parsePrometheus(text);
    expect(sampleOf(families, 'reaper_age_beyond_ttl_seconds', { resource: 'exports' })).toBeUndefined();
    expect(sampleOf(families, 'reaper_backlog_oldest_age_seconds', { resource: 'exports' })).toBeUndefined();
    // A family with no value at all is left out whole (no HELP/TYPE without samples).
    const empty = auditDoc();
    for (const r of empty.resources) r.backlogOldestAgeSeconds = null;
    expect(parsePrometheus(await renderPrometheus(empty)).has('reaper_backlog_oldest_age_seconds')).toBe(false);
  });

  it('writes reap outcomes only for an executed run; a dry run shows its plan', async () => {
    expect(parsePrometheus(await renderPrometheus(auditDoc())).has('reaper_reap_total')).toBe(false);
    const dry = parsePrometheus(await renderPrometheus(auditDoc(), reapReport(false)));
    expect(dry.has('reaper_reap_total')).toBe(false);
    expect(sampleOf(dry, 'reaper_reap_execute')!.value).toBe(0);
    expect(sampleOf(dry, 'reaper_reap_planned', { resource: 'scratch-uploads', action: 'mark' })!.value).toBe(2);
  });

  it('renders a reap report alone, with the run timing the caller measured', async () => {
    const families = parsePrometheus(await renderPrometheus(null, reapReport(true), { run: { finishedAt: '2026-11-22T03:00:00Z', durationSeconds: 12 } }));
    expect(sampleOf(families, 'reaper_resources', { resource: 'scratch-uploads', status: 'orphaned' })!.value).toBe(2);
    expect(sampleOf(families, 'reaper_last_run_timestamp_seconds', { kind: 'reap' })!.value).toBe(Date.parse('2026-11-22T03:00:00Z') / 1000);
    expect(sampleOf(families, 'reaper_run_duration_seconds', { kind: 'reap' })!.value).toBe(12);
    expect(families.has('reaper_leases')).toBe(false);
  });

  it('says whether the last reap was stopped by a signal before it finished, so a reap that never finishes is not taken for one that does', async () => {
    const finished = parsePrometheus(await renderPrometheus(null, reapReport(true), { run: { finishedAt: '2026-11-22T03:00:00Z', durationSeconds: 12 } }));
    expect(sampleOf(finished, 'reaper_last_run_interrupted', { kind: 'reap' })!.value).toBe(0);
    const stopped = parsePrometheus(await renderPrometheus(null, { ...reapReport(true), interrupted: true }, { run: { finishedAt: '2026-11-22T03:00:00Z', durationSeconds: 12 } }));
    expect(sampleOf(stopped, 'reaper_last_run_interrupted', { kind: 'reap' })!.value).toBe(1);
    expect(sampleOf(parsePrometheus(await renderPrometheus(auditDoc())), 'reaper_last_run_interrupted', { kind: 'audit' })!.value).toBe(0);
  });

  it('escapes label values (backslash, double quote, newline) so they read back unchanged', async () => {
    const doc = auditDoc();
    doc.resources[0]!.name = HOSTILE;
    doc.sources = { 'sql "registry"\\#1\n': 4 };
    const text = await renderPrometheus(doc, undefined, { labels: { deployment: 'prod "eu"\n\\' } });
    expect(text).toContain('resource="we\\"ird\\\\type\\nname"');
    const families = parsePrometheus(text);
    expect(sampleOf(families, 'reaper_orphan_bytes', { resource: HOSTILE })!.value).toBe(200);
    expect(sampleOf(families, 'reaper_liveness_source_keys', { source: 'sql "registry"\\#1\n' })!.value).toBe(4);
    for (const family of families.values()) for (const s of family.samples) expect(s.labels.deployment).toBe('prod "eu"\n\\');
    expect(text).toContain('deployment="prod \\"eu\\"\\n\\\\"');
  });

  it('refuses extra labels that are not label names or clash with its own', async () => {
    await expect(renderPrometheus(auditDoc(), undefined, { labels: { 'bad-name': 'x' } })).rejects.toThrow(/cannot be an extra label/);
    await expect(renderPrometheus(auditDoc(), undefined, { labels: { __name__: 'x' } })).rejects.toThrow(/cannot be an extra label/);
    await expect(renderPrometheus(auditDoc(), undefined, { labels: { resource: 'x' } })).rejects.toThrow(/cannot be an extra label/);
  });
});

describe('writeMetricsFile', () => {
  it('replaces the file atomically and leaves no temporary file', async () => {
    const dir = testTempDir('reaper-prom-');
    const file = path.join(dir, 'reaper.prom');
    writeFileSync(file, 'old\n');
    await writeMetricsFile(file, await renderPrometheus(auditDoc()));
    expect(parsePrometheus(readFileSync(file, 'utf8')).has('reaper_resources')).toBe(true);
    await writeMetricsFile(file, 'reaper_x 1\n');
    expect(readFileSync(file, 'utf8')).toBe('reaper_x 1\n');
    expect(readdirSync(dir)).toEqual(['reaper.prom']);
  });

  it('fails with a BackendError when the directory is missing', async () => {
    const file = path.join(tmpdir(), 'reaper-no-such-dir', 'x', 'reaper.prom');
    await expect(writeMetricsFile(file, '')).rejects.toThrow(BackendError);
    await expect(writeMetricsFile(file, '')).rejects.toThrow(/cannot write the metrics file .*reaper\.prom: ENOENT/);
  });
});

describe('pushMetrics', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  async function gateway(status = 200, answer = '') {
    const requests: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(answer);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
  }

  it('PUTs the text to /metrics/job/<job> as text/plain version 0.0.4', async () => {
    const gw = await gateway();
    const text = await renderPrometheus(auditDoc());
    await pushMetrics(`${gw.url}/`, text, { job: 'reaper', grouping: { instance: 'prod-eu' } });
    expect(gw.requests).toHaveLength(1);
    const [req] = gw.requests;
    expect(req!.method).toBe('PUT');
    expect(req!.url).toBe('/metrics/job/reaper/instance/prod-eu');
    expect(req!.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(req!.body).toBe(text);
  });

  it('encodes a job with "/" in base64, and sends URL credentials as basic auth', async () => {
    const gw = await gateway(202);
    const url = new URL(gw.url);
    url.username = 'pusher';
    url.password = 's3cret';
    await pushMetrics(`${url.toString()}prefix`, 'reaper_x 1\n', { job: 'team/reaper' });
    expect(gw.requests[0]!.url).toBe(`/prefix/metrics/job@base64/${Buffer.from('team/reaper').toString('base64url')}`);
    expect(gw.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('pusher:s3cret').toString('base64')}`);
  });

  it('fails clearly on a non-2xx answer, without the password', async () => {
    const gw = await gateway(400, 'text format parsing error in line 3');
    const url = new URL(gw.url);
    url.username = 'pusher';
    url.password = 's3cret';
    const push = pushMetrics(url.toString(), 'bad\n', { job: 'reaper' });
    await expect(push).rejects.toThrow(BackendError);
    const error = (await push.catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/^the Pushgateway at http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/reaper answered 400 Bad Request: text format parsing error in line 3$/);
    expect(error.message).not.toContain('s3cret');
  });

  it('fails clearly when nothing listens, without secrets', async () => {
    const gw = await gateway();
    await closers.pop()!();
    const url = new URL(gw.url);
    url.password = 'hunter2';
    url.username = 'u';
    url.search = '?token=abc';
    const error = (await pushMetrics(url.toString(), 'x 1\n', { job: 'reaper' }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(BackendError);
    expect(error.message).toMatch(/^cannot push metrics to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/reaper: ECONNREFUSED$/);
    expect(error.message).not.toMatch(/hunter2|abc/);
  });

  it('names the cause fetch keeps under its TypeError, not the TypeError', async () => {
    // Port 1 is one of the Fetch standard's bad ports: fetch refuses it before connecting.
    const error = (await pushMetrics('http://127.0.0.1:1', 'x 1\n', { job: 'reaper' }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(BackendError);
    expect(error.message).toBe('cannot push metrics to http://127.0.0.1:1/metrics/job/reaper: bad port (fetch refuses to connect to port 1)');
  });

  it('gives up after the timeout, and lets a caller\'s abort through as an abort', async () => {
    const sockets: Socket[] = [];
    const silent = createServer(() => undefined);
    silent.on('connection', (socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    closers.push(
      () =>
        new Promise((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const timedOut = (await pushMetrics(url, 'x 1\n', { job: 'reaper', timeoutMs: 200 }).catch((e: unknown) => e)) as Error;
    expect(timedOut).toBeInstanceOf(BackendError);
    expect(timedOut.message).toMatch(/^cannot push metrics to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/reaper: no answer within 0\.2s$/);
    const stop = new AbortController();
    const pushing = pushMetrics(url, 'x 1\n', { job: 'reaper', signal: stop.signal });
    setTimeout(() => stop.abort(), 50);
    const aborted = (await pushing.catch((e: unknown) => e)) as Error;
    expect(aborted).not.toBeInstanceOf(BackendError);
    expect(aborted.name).toBe('AbortError');
  });

  it('refuses what is not an http URL', async () => {
    await expect(pushMetrics('pushgateway:9091', '', { job: 'reaper' })).rejects.toThrow(/is not an http\(s\) URL|is not a URL/);
    await expect(pushMetrics('ftp://u:pw@host/', '', { job: 'reaper' })).rejects.toThrow('ftp://u:***@host/ is not an http(s) URL');
  });
});

// ------------------------------------------------------------------ JUnit

describe('renderJunit', () => {
  const gates = (texts: string[], doc = auditDoc()) => evaluateGates(parseGates(texts), doc);

  it('fails the testcases of the leaking types, for their own gates and the gates over all types they break', () => {
    const doc = auditDoc();
    const xml = renderJunit(doc, gates(['orphaned>0', 'scratch-uploads:orphaned>1', 'exports:orphaned>5', 'renewalFailureRate>50%'], doc));
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n')).toBe(true);
    expect(xml.match(/<testsuite /g)).toHaveLength(1);
    expect(xml).toMatch(/<testsuite name="reaper audit" tests="3" failures="2" errors="0" skipped="0" time="2\.500" timestamp="2026-11-22T02:00:00">/);
    const cases = [...xml.matchAll(/<testcase classname="([^"]*)" name="([^"]*)"[^>]*>([\s\S]*?)<\/testcase>/g)].map((m) => ({ classname: m[1], name: m[2], body: m[3]! }));
    expect(cases.map((c) => [c.classname, c.name])).toEqual([
      ['reaper.fs', 'scratch-uploads'],
      ['reaper.s3', 'exports'],
      ['reaper', '(all resources)'],
    ]);
    // A gate over all types fails on each type that adds to it, not on a synthetic case.
    expect(cases[0]!.body).toContain(
      '<failure message="scratch-uploads:orphaned&gt;1 failed: 2 orphaned; orphaned&gt;0 failed: 3 orphaned (scratch-uploads 2, exports 1)" type="reaper.gate">',
    );
    expect(cases[0]!.body).toContain('bob/1.part · orphaned (owner-dead) · owner session:bob/1.part · age 2.0h · 100 B');
    expect(cases[1]!.body).toContain('<failure message="orphaned&gt;0 failed: 3 orphaned (scratch-uploads 2, exports 1)" type="reaper.gate">');
    expect(cases[1]!.body).toContain('exports:orphaned&gt;5 passed: 1 orphaned');
    expect(cases[2]!.body).not.toContain('<failure');
    expect(cases[2]!.body).toContain('orphaned&gt;0 failed: 3 orphaned (scratch-uploads 2, exports 1) — the failure is on scratch-uploads, exports');
    expect(cases[2]!.body).toContain('renewalFailureRate&gt;50% passed');
  });

  it('lists the findings the failing gates count, and none for gates findings cannot explain', () => {
    const doc = auditDoc([finding('exports', 'gone.csv'), finding('exports', 'late.csv', 'expired'), finding('exports', 'new.csv', 'young')]);
    doc.resources[1]!.expired = 1;
    const expired = renderJunit(doc, gates(['exports:expired>0'], doc));
    expect(expired).toContain('late.csv');
    expect(expired).not.toContain('gone.csv');
    expect(expired).not.toContain('new.csv');
    const backlog = renderJunit(doc, gates(['backlog>0'], doc));
    expect(backlog).toContain('<failure message="backlog&gt;0 failed: 2 tombstones awaiting sweep (scratch-uploads 2)"');
    expect(backlog).not.toContain('findings:');
  });

  it('has one passing testcase per type and no "(all resources)" without global gates', () => {
    const xml = renderJunit(auditDoc(), []);
    expect(xml).toContain('tests="2" failures="0"');
    expect(xml).not.toContain('(all resources)');
    expect(xml).not.toContain('<failure');
  });

  it('escapes markup and drops characters XML 1.0 cannot carry', () => {
    const evil = `<x a="1">&amp;'\u0000\u0001\u001b\u000b\ud800\ufffe]]><!--`;
    const doc = auditDoc([finding('scratch-uploads', evil), finding('scratch-uploads', 'ok')]);
    doc.resources[0]!.name = `scratch"<&>`;
    doc.findings[0]!.resource = doc.resources[0]!.name;
    doc.manifest = `/tmp/\u0007"quoted"\n`;
    const xml = renderJunit(doc, gates([`orphaned>0`], doc));
    // eslint-disable-next-line no-control-regex
    expect(xml).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/);
    expect(xml).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
    expect(xml).toContain('name="scratch&quot;&lt;&amp;&gt;"');
    expect(xml).toContain('value="/tmp/\\u0007&quot;quoted&quot;&#10;"'.replace('\\u0007', ''));
    // Every attribute value is free of raw markup characters.
    for (const m of xml.matchAll(/ [a-zA-Z]+="([^"]*)"/g)) expect(m[1]).not.toMatch(/[<>]|&(?!(amp|lt|gt|quot|apos|#\d+);)/);
    // The id is shown with control characters escaped, markup escaped.
    expect(xml).toContain('&lt;x a=\\"1\\"&gt;&amp;amp;\'\\u0000\\u0001\\u001b\\u000b\\ud800]]&gt;&lt;!--');
  });
});

// ------------------------------------------------------------------ Markdown

describe('renderMarkdown', () => {
  const gates = (texts: string[], doc = auditDoc()) => evaluateGates(parseGates(texts), doc);

  it('has a ❌ headline, the failing gates and a table per type', () => {
    const doc = auditDoc();
    const text = renderMarkdown(doc, gates(['orphaned>0', 'expired>5'], doc));
    expect(text.split('\n')[0]).toBe('## ❌ reaper audit: 1 of 2 gates failed');
    // The gate as code, then what was measured, as it reads.
    expect(text).toContain('### Failing gates\n\n- ❌ `orphaned>0` — 3 orphaned (scratch-uploads 2, exports 1)\n');
    expect(text).toContain('### Passing gates\n\n- ✅ `expired>5` — 1 expired');
    expect(text).toContain('| resource | backend | scanned | live | orphaned | expired | protected | young | unknown | orphan bytes | beyond ttl (avg) | backlog |');
    expect(text).toContain('| ❌ scratch-uploads | fs | 10 | 5 | 2 | 1 | 1 | 0 | 1 | 200 B | 30.0m | 2 |');
    expect(text).toContain('| **total** |  | 15 | 8 | 3 | 1 | 1 | 1 | 1 | 300 B |  | 2 |');
  });

  it('has a ✅ headline when every gate passes, or none is set', () => {
    expect(renderMarkdown(auditDoc(), gates(['orphaned>10'])).split('\n')[0]).toBe('## ✅ reaper audit: the gate passed');
    expect(renderMarkdown(auditDoc(), gates(['orphaned>10', 'expired>10'])).split('\n')[0]).toBe('## ✅ reaper audit: all 2 gates passed');
    expect(renderMarkdown(auditDoc(), []).split('\n')[0]).toBe('## ✅ reaper audit: no leak gates set');
  });

  it('marks the type a per-type gate failed on', () => {
    const text = renderMarkdown(auditDoc(), gates(['exports:orphaned>0']));
    expect(text).toContain('| ❌ exports | s3 | 5 |');
  });

  it('reads well raw: names, ids, owners and messages carry no escapes they do not need', () => {
    const doc = auditDoc([finding('scratch-uploads', 'bob/chunk_1.part')]);
    const broken = { ...doc, resources: [telemetry('image-rows', 'postgres', { status: 'error', error: 'postgres connection "app": database "app-db" does not exist; hint: create it first (reaper creates its tables, not the database)' }), ...doc.resources] };
    const text = renderMarkdown(broken, gates(['orphaned>0'], doc));
    expect(text).toContain('Run 20261122T020000Z-abc123 · 15 scanned');
    expect(text).toContain('- ❌ `orphaned>0` — 3 orphaned (scratch-uploads 2, exports 1)\n');
    expect(text).toContain('| ❌ scratch-uploads | fs | 10 | 5 | 2 |');
    // Ids and owners are code spans: shown as they are, markup inside them inert.
    expect(text).toContain('| scratch-uploads | `bob/chunk_1.part` | orphaned | owner-dead | `session:bob/chunk_1.part` | 2.0h | 100 B |');
    expect(text).toContain('live keys by source: leases 12, static#1 1');
    expect(text).toContain(
      '- ⚠️ **image-rows** (/data/image-rows): not read: postgres connection "app": database "app-db" does not exist; hint: create it first (reaper creates its tables, not the database)\n',
    );
  });

  it('escapes what could break the table or become markup, in ids, owners and text', () => {
    const cells = (line: string) => line.match(/(?<!\\)(?:\\\\)*\|/g)!.length;
    // An id without a backslash is a code span long enough for the backticks in it; its pipes escaped for the table.
    const coded = 'a|b`c``d<img src=x onerror=alert(1)>[l](http://x) *e* _u_ @t $x$';
    let text = renderMarkdown(auditDoc([finding('scratch-uploads', coded)]), []);
    let line = text.split('\n').find((l) => l.startsWith('| scratch-uploads | ```a'))!;
    expect(cells(line)).toBe(8);
    expect(line).toContain('| ```a\\|b`c``d<img src=x onerror=alert(1)>[l](http://x) *e* _u_ @t $x$``` |');
    // Backticks at either end are padded with a space (which the renderer strips).
    text = renderMarkdown(auditDoc([finding('scratch-uploads', '`x`')]), []);
    expect(text).toContain('| `` `x` `` |');
    // Control characters, a backslash or a bidi override: escaped text, every markup character escaped.
    const evil = 'a|b`c`\nd\r<img src=x onerror=alert(1)>[link](http://x) *em* _u_ \\| @team www.x.io $m$ &amp; \u202egnp.exe';
    text = renderMarkdown(auditDoc([finding('scratch-uploads', evil)]), []);
    line = text.split('\n').find((l) => l.startsWith('| scratch-uploads | a'))!;
    expect(cells(line)).toBe(8);
    expect(line).toContain(
      '| a\\|b\\`c\\`\\\\nd\\\\r\\<img src=x onerror=alert(1)>\\[link\\](http\\://x) \\*em\\* \\_u\\_ \\\\\\| \\@team www\\.x.io \\$m\\$ \\&amp; \\\\u202egnp.exe |',
    );
    expect(text).not.toContain('\r');
    // Intraword underscores cannot start emphasis and stay as they are.
    expect(markdownText('x|y snake_case _em_')).toBe('x\\|y snake_case \\_em\\_');
  });

  it('lists at most 20 findings, cuts long ids, and says how many more there are', () => {
    const many = Array.from({ length: 30 }, (_, i) => finding('exports', `${'x'.repeat(i === 0 ? 500 : 3)}-${i}`));
    const doc = { ...auditDoc(many), findingsTotal: 1234, findingsTruncated: true };
    const text = renderMarkdown(doc, []);
    expect(text).toContain('### Findings (20 of 1234, orphans first)');
    expect(text.split('\n').filter((l) => l.startsWith('| exports | `x'))).toHaveLength(20);
    expect(text).toContain(`${'x'.repeat(119)}…`);
    expect(text).not.toContain('x'.repeat(121));
    expect(text).toContain('… and 1214 more');
  });

  it('adds the reap outcomes when a reap report is given', () => {
    const executed = renderMarkdown(auditDoc(), [], reapReport(true));
    expect(executed).toContain('### Reap (executed)');
    expect(executed).toContain('| scratch-uploads | 2 | 0 | 0 | 1 | 0 | 0 B |');
    const dry = renderMarkdown(auditDoc(), [], reapReport(false));
    expect(dry).toContain('### Reap (dry run: nothing was changed)');
    expect(dry).toContain('| exports | 1 | 1 | 0 |');
  });

  it('summarises a reap run alone from its own scan', () => {
    const text = renderMarkdown(null, [], reapReport(true));
    expect(text.split('\n')[0]).toBe('## ❌ reaper reap (executed)');
    expect(text).toContain('| scratch-uploads | fs | 10 | 5 | 2 |');
    expect(text).toContain('live keys by source: leases 12');
    expect(text).not.toContain('Leases:');
    expect(text).not.toContain('### Findings');
    expect(renderMarkdown(null, [], reapReport(false)).split('\n')[0]).toBe('## ✅ reaper reap (dry run)');
    expect(() => renderMarkdown(null, [])).toThrow(TypeError);
  });
});

// ------------------------------------------------------------------ reap table: pending tombstones

describe('the pending tombstones of a reap', () => {
  const withPending = (execute: boolean, toSweep: number): ReapReport => {
    const report = reapReport(execute);
    report.resources = report.resources.map((r) => (r.name === 'exports' ? { ...r, toSweep, pending: { count: 3, earliestSweepAt: '2026-11-22T01:00:00.000Z' } } : r));
    return report;
  };

  it('a dry run says how many of them are due now, rather than an earliest sweep already past', () => {
    const dry = withPending(false, 2);
    expect(reapTable(dry)).toContain('exports: 3 pending, 2 due now (--execute sweeps them)');
    expect(reapTable(dry)).not.toContain('earliest sweep at 2026-11-22T01:00:00Z');
    expect(reapSummaryLine(dry)).toMatch(/; 3 pending, 2 due now$/);
  });

  it('says when the first may be swept where none is due, and after an executed run', () => {
    expect(reapTable(withPending(false, 0))).toContain('exports: 3 pending, earliest sweep at 2026-11-22T01:00:00Z');
    expect(reapTable(withPending(true, 2))).toContain('exports: 3 pending, earliest sweep at 2026-11-22T01:00:00Z');
    expect(reapSummaryLine(withPending(true, 2))).toMatch(/; 3 pending, earliest sweep at 2026-11-22T01:00:00Z$/);
  });
});

// ------------------------------------------------------------------ terminal tables: ids

describe('ids in terminal tables', () => {
  it('show every control character escaped: C0, C1 (a terminal may take \\u009b for CSI) and bidi overrides that reorder text', () => {
    const id = 'evil\u001b[31mred\u009b2J\u202egnp.exe\u2066x\u2028y';
    expect(printable(id)).toBe('evil\\u001b[31mred\\u009b2J\\u202egnp.exe\\u2066x\\u2028y');
    const table = findingsTable(auditDoc([finding('scratch-uploads', id)]), 20, { width: 200 });
    // eslint-disable-next-line no-control-regex
    expect(table).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/);
    expect(table).toContain('evil\\u001b[31mred\\u009b2J\\u202egnp.exe');
  });
});

// ------------------------------------------------------------------ which findings the short lists show

describe('the findings a terminal table and the Markdown summary list', () => {
  // Scan order puts young and protected resources first; a gate on orphans is about the last ones.
  const aged = (id: string, status: FindingOutput['status'], ageSeconds: number): FindingOutput => ({ ...finding('scratch-uploads', id, status), ageSeconds });
  const scanOrder = [
    aged('a/young-1', 'young', 60),
    aged('a/young-2', 'young', 120),
    aged('b/kept', 'protected', 9000),
    aged('c/unknown', 'unknown', 500),
    aged('d/old-orphan', 'orphaned', 90_000),
    aged('e/expired', 'expired', 7000),
    aged('f/new-orphan', 'orphaned', 4000),
  ];
  // Ids only: the owner column holds them again after `session:`.
  const ids = (text: string) => [...text.matchAll(/(?<![:\w])[a-f]\/[a-z0-9-]+/g)].map((m) => m[0]);

  it('the terminal table leads with orphans (older first), then expired, unknown, protected, young', () => {
    expect(ids(findingsTable(auditDoc(scanOrder), 20, { width: 200 }))).toEqual(['d/old-orphan', 'f/new-orphan', 'e/expired', 'c/unknown', 'b/kept', 'a/young-2', 'a/young-1']);
    // Cut to 3: the three that matter most, not the first three scanned.
    const table = findingsTable(auditDoc(scanOrder), 3, { width: 200 });
    expect(ids(table)).toEqual(['d/old-orphan', 'f/new-orphan', 'e/expired']);
    expect(table).toContain('… and 4 more');
  });

  it('the Markdown summary lists the same, and says the list is the most pressing of them', () => {
    const text = renderMarkdown(auditDoc(scanOrder), [], undefined, { findings: 3 });
    expect(ids(text)).toEqual(['d/old-orphan', 'f/new-orphan', 'e/expired']);
    expect(text).toContain('### Findings (3 of 7, orphans first)');
  });

  it('a list chosen from the whole stream (more findings than the document keeps) is shown as given', () => {
    const doc = auditDoc(scanOrder.slice(0, 2));
    doc.findingsTotal = 7;
    const top = [scanOrder[4]!, scanOrder[6]!];
    expect(ids(findingsTable(doc, 2, { width: 200, top }))).toEqual(['d/old-orphan', 'f/new-orphan']);
    expect(ids(renderMarkdown(doc, [], undefined, { findings: 2, top }))).toEqual(['d/old-orphan', 'f/new-orphan']);
  });
});

// ------------------------------------------------------------------ --quiet: one line that does not hide a part not read

describe('the --quiet summary line', () => {
  it('of a complete audit or reap says nothing more', () => {
    expect(auditSummaryLine(auditDoc())).toMatch(/; 300 B orphaned$/);
    expect(reapSummaryLine(reapReport(true))).not.toContain('not read');
  });

  it('of an audit says how many types were not read whole and which liveness sources failed', () => {
    const doc = auditDoc();
    doc.resources[1] = { ...doc.resources[1]!, status: 'error', error: 'the bucket does not exist' };
    doc.sourceErrors = { 'sql:main-db#1': 'connect ECONNREFUSED' };
    doc.complete = false;
    expect(auditSummaryLine(doc)).toMatch(/; 300 B orphaned; INCOMPLETE: 1 of 2 types not read whole \(exports\), liveness source sql:main-db#1 failed$/);
  });

  it('of a reap names the types refused or read in part', () => {
    const report = reapReport(true);
    report.resources[0] = { ...report.resources[0]!, error: 'cannot open' };
    report.resources[1] = { ...report.resources[1]!, telemetry: { ...report.resources[1]!.telemetry!, status: 'partial', unreadable: 2 } };
    expect(reapSummaryLine(report)).toMatch(/; INCOMPLETE: 2 of 2 types not read whole \(scratch-uploads, exports\)$/);
  });
});

describe('reap table: numbers line up on the right, as in the audit table', () => {
  const rightAligned = (line: string, column: number) => {
    const cell = line.split('│')[column]!;
    return /^ +\S+ $/.test(cell) && cell.startsWith('  ');
  };
  it('scanned and the plan counts, dry run and executed', () => {
    const report = reapReport(false);
    report.resources[0] = { ...report.resources[0]!, scanned: 123_456 };
    for (const execute of [false, true]) {
      const lines = reapTable({ ...report, execute }, { width: 200 }).split('\n');
      const row = lines.find((line) => line.includes(' exports '))!;
      expect(rightAligned(row, 3), row).toBe(true);
    }
  });
});
