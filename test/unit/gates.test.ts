import { describe, expect, it } from 'vitest';
import { baselineKeys, diffFindings, findingKey, GateError, NewFindingsTally, parseBaseline } from '../../src/engine/baseline.js';
import { evaluateGates, GATE_METRICS, GATE_OPERATORS, parseGate, parseGates, type Gate } from '../../src/engine/gates.js';
import { ExitCode } from '../../src/errors.js';
import type { AuditDocument, FindingOutput } from '../../src/report/document.js';
import type { ResourceTelemetry } from '../../src/report/telemetry.js';

const DAY = 86_400;

function finding(resource: string, id: string, status: FindingOutput['status'], bytes: number | null = 1000): FindingOutput {
  return { resource, backend: resource === 'exports' ? 's3' : 'fs', id, status, reason: status === 'orphaned' ? 'owner-dead' : null, owner: `session:${id}`, ageSeconds: 3600, bytes };
}

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

/** Four orphans: three in scratch-uploads, one (1.5 GB) in exports. */
function auditDoc(): AuditDocument {
  const findings = [
    finding('scratch-uploads', 'bob/1.part', 'orphaned'),
    finding('scratch-uploads', 'bob/2.part', 'orphaned'),
    finding('scratch-uploads', 'erin/x.part', 'orphaned'),
    finding('scratch-uploads', 'carol/big.part', 'expired'),
    finding('scratch-uploads', 'dave/fresh.part', 'young'),
    finding('scratch-uploads', 'keep/golden.part', 'protected'),
    finding('scratch-uploads', 'odd/1.part', 'unknown'),
    finding('scratch-uploads', 'odd/2.part', 'unknown'),
    finding('exports', 'adhoc.csv', 'orphaned', 1_500_000_000),
    finding('exports', 'weekly.csv', 'expired'),
  ];
  const resources = [
    telemetry('scratch-uploads', 'fs', {
      scanned: 10,
      live: 2,
      orphaned: 3,
      expired: 1,
      protected: 1,
      young: 1,
      unknown: 2,
      orphanBytes: 3000,
      avgAgeBeyondTtlSeconds: 7200,
      maxAgeBeyondTtlSeconds: 10_800,
      oldestOrphanAgeSeconds: 2 * DAY,
      backlog: 4,
      backlogOldestAgeSeconds: 600,
    }),
    telemetry('exports', 's3', { scanned: 5, live: 3, orphaned: 1, expired: 1, orphanBytes: 1_500_000_000, oldestOrphanAgeSeconds: 3600 }),
  ];
  return {
    version: 1,
    kind: 'audit',
    reaper: '0.1.0',
    runId: 'run-1',
    startedAt: '2026-11-22T02:00:00.000Z',
    finishedAt: '2026-11-22T02:00:01.000Z',
    durationSeconds: 1,
    manifest: 'reaper.yaml',
    state: 'sqlite:state.db',
    summary: { errors: 0, unreadable: 0, scanned: 15, live: 5, orphaned: 4, expired: 2, protected: 1, young: 1, unknown: 2, orphanBytes: 1_500_003_000, backlog: 4 },
    resources,
    leases: { active: 37, expired: 3, renewals: 37, renewalFailures: 3, renewalFailureRate: 0.075, windowSeconds: 3600 },
    sources: { leases: 37 },
    sourceErrors: {},
    complete: true,
    findings,
    findingsTotal: findings.length,
    findingsTruncated: false,
  };
}

const evaluate = (texts: string[], doc = auditDoc(), baseline?: Parameters<typeof evaluateGates>[2]) => evaluateGates(parseGates(texts), doc, baseline);
const one = (text: string, doc = auditDoc(), baseline?: Parameters<typeof evaluateGates>[2]) => evaluate([text], doc, baseline)[0]!;

function parseError(text: string): GateError {
  try {
    parseGate(text);
  } catch (error) {
    expect(error).toBeInstanceOf(GateError);
    return error as GateError;
  }
  throw new Error(`parseGate("${text}") did not throw`);
}

describe('parseGate', () => {
  it('reads METRIC OP VALUE and TYPE:METRIC OP VALUE, with or without spaces', () => {
    expect(parseGate('orphaned>0')).toEqual<Gate>({ text: 'orphaned>0', resource: null, metric: 'orphaned', op: '>', value: 0 });
    expect(parseGate('  scratch-uploads : orphaned >= 2 ')).toEqual<Gate>({ text: 'scratch-uploads:orphaned>=2', resource: 'scratch-uploads', metric: 'orphaned', op: '>=', value: 2 });
    expect(parseGate('v1.images_2:expired<3').resource).toBe('v1.images_2');
  });

  it('knows every operator', () => {
    for (const op of GATE_OPERATORS) expect(parseGate(`orphaned${op}3`)).toMatchObject({ op, value: 3 });
    expect(parseGate('orphaned != 3').op).toBe('!=');
  });

  it('knows every metric', () => {
    const values: Record<string, string> = { orphanBytes: '1GiB', avgAgeBeyondTtl: '1h', maxAgeBeyondTtl: '1d', oldestOrphanAge: '7d', renewalFailureRate: '5%' };
    for (const metric of GATE_METRICS) {
      expect(parseGate(`${metric}>${values[metric] ?? '1'}`).metric).toBe(metric);
    }
    expect(GATE_METRICS).toEqual(
      expect.arrayContaining(['orphaned', 'expired', 'protected', 'young', 'unknown', 'live', 'scanned', 'orphanBytes', 'backlog', 'avgAgeBeyondTtl', 'maxAgeBeyondTtl', 'oldestOrphanAge', 'renewalFailureRate']),
    );
  });

  it('reads byte sizes in decimal and binary units', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['512', 512],
      ['512B', 512],
      ['1KB', 1e3],
      ['1MB', 1e6],
      ['1GB', 1e9],
      ['1TB', 1e12],
      ['1KiB', 1024],
      ['1MiB', 1024 ** 2],
      ['1GiB', 1024 ** 3],
      ['1TiB', 1024 ** 4],
      ['1.5GiB', 1.5 * 1024 ** 3],
      ['2 gib', 2 * 1024 ** 3],
      ['10mb', 1e7],
    ];
    for (const [text, bytes] of cases) expect(parseGate(`orphanBytes>${text}`).value, text).toBe(bytes);
  });

  it('reads durations as seconds', () => {
    const cases: [string, number][] = [
      ['30s', 30],
      ['10m', 600],
      ['24h', 86_400],
      ['7d', 7 * DAY],
      ['90', 90],
      ['1.5h', 5400],
    ];
    for (const metric of ['avgAgeBeyondTtl', 'maxAgeBeyondTtl', 'oldestOrphanAge']) {
      for (const [text, seconds] of cases) expect(parseGate(`${metric}>${text}`).value, `${metric} ${text}`).toBe(seconds);
    }
  });

  it('reads the renewal failure rate as a ratio or a percentage', () => {
    expect(parseGate('renewalFailureRate>5%').value).toBeCloseTo(0.05);
    expect(parseGate('renewalFailureRate>0.05').value).toBe(0.05);
    expect(parseGate('renewalFailureRate>=100%').value).toBe(1);
    expect(parseGate('renewalFailureRate>1').value).toBe(1);
  });

  it('says what is wrong with a bad gate (a usage error: exit 2)', () => {
    const cases: [string, RegExp][] = [
      ['', /empty gate; write e\.g\. orphaned>0/],
      ['orphaned', /no comparison operator \(one of > >= < <= == !=\)/],
      ['orphaned=0', /"=" is not an operator; use ==/],
      ['orphaned=>0', /"=>" is not an operator; did you mean >=\?/],
      ['orphans>0', /unknown metric "orphans" \(did you mean orphaned\?\); metrics: orphaned, expired/],
      ['OrphanBytes>1', /did you mean orphanBytes\?/],
      ['leaks>0', /unknown metric "leaks"; metrics: /],
      ['>0', /no metric before ">"/],
      ['orphaned>', /no value after ">"/],
      ['orphaned>abc', /orphaned is a number of resources; write a plain number, not "abc"/],
      ['orphaned>-1', /"-1" is negative/],
      ['orphaned>10MB', /plain number, not "10MB"/],
      ['backlog>1h', /backlog is a number of tombstones/],
      ['orphanBytes>10XB', /unknown size unit "XB"; units: B KB MB GB TB KiB MiB GiB TiB/],
      ['orphanBytes>lots', /"lots" is not a size/],
      ['oldestOrphanAge>5y', /unknown duration unit "y"; units: s m h d/],
      ['oldestOrphanAge>soon', /"soon" is not a duration/],
      ['renewalFailureRate>5', /more than 1; .*write 5%/],
      ['renewalFailureRate>150%', /more than 100%/],
      ['renewalFailureRate>high', /not a ratio; write a number between 0 and 1 \(0\.05\) or a percentage \(5%\)/],
      ['scratch:renewalFailureRate>5%', /measured over all leases, not per resource type/],
      [':orphaned>0', /nothing before ":"/],
      ['my bucket!:orphaned>0', /"my bucket!" is not a resource type name/],
    ];
    for (const [text, pattern] of cases) {
      const error = parseError(text);
      expect(error.message, text).toMatch(pattern);
      expect(error.message.startsWith(`--fail-on "${text}": `), text).toBe(true);
      expect(error.exitCode).toBe(ExitCode.usage);
    }
  });
});

describe('evaluateGates', () => {
  it('with 4 orphans, orphaned>0 fails and orphaned>10 passes (the issue\'s acceptance)', () => {
    const [zero, ten] = evaluate(['orphaned>0', 'orphaned>10']);
    expect(zero).toMatchObject({ ok: false, actual: 4 });
    expect(zero!.message).toBe('orphaned>0 failed: 4 orphaned (scratch-uploads 3, exports 1)');
    expect(zero!.resource).toBeUndefined();
    expect(zero!.byResource).toEqual([
      { resource: 'scratch-uploads', value: 3 },
      { resource: 'exports', value: 1 },
    ]);
    expect(ten).toMatchObject({ ok: true, actual: 4, message: 'orphaned>10 passed: 4 orphaned (scratch-uploads 3, exports 1)' });
  });

  it('applies each operator as "the gate fails when actual OP value holds"', () => {
    const fails: Record<string, boolean> = {
      'orphaned>3': true,
      'orphaned>4': false,
      'orphaned>=4': true,
      'orphaned>=5': false,
      'orphaned<5': true,
      'orphaned<4': false,
      'orphaned<=4': true,
      'orphaned<=3': false,
      'orphaned==4': true,
      'orphaned==3': false,
      'orphaned!=3': true,
      'orphaned!=4': false,
    };
    for (const [text, failed] of Object.entries(fails)) expect(one(text).ok, text).toBe(!failed);
  });

  it('evaluates per-type gates on that type alone', () => {
    const results = evaluate(['scratch-uploads:orphaned>2', 'exports:orphaned>2', 'exports:expired>=1']);
    expect(results.map((r) => [r.resource, r.ok, r.actual])).toEqual([
      ['scratch-uploads', false, 3],
      ['exports', true, 1],
      ['exports', false, 1],
    ]);
    expect(results[0]!.message).toBe('scratch-uploads:orphaned>2 failed: 3 orphaned');
  });

  it('refuses a per-type gate on a type the audit does not have', () => {
    expect(() => evaluate(['nope:orphaned>0'])).toThrow(GateError);
    expect(() => evaluate(['nope:orphaned>0'])).toThrow('no resource type "nope" in this audit (types: scratch-uploads, exports)');
  });

  it('sums every status count', () => {
    const expected: Record<string, number> = { orphaned: 4, expired: 2, protected: 1, young: 1, unknown: 2, live: 5, scanned: 15 };
    for (const [metric, value] of Object.entries(expected)) {
      const result = one(`${metric}>=0`);
      expect(result.actual, metric).toBe(value);
      expect(result.message, metric).toContain(`${value} ${metric}`);
    }
    expect(one('scratch-uploads:unknown>0')).toMatchObject({ ok: false, actual: 2 });
  });

  it('measures orphan bytes, written in the gate\'s own unit family', () => {
    const decimal = one('orphanBytes>1GB');
    expect(decimal).toMatchObject({ ok: false, actual: 1_500_003_000 });
    expect(decimal.message).toBe('orphanBytes>1GB failed: 1.5 GB orphaned (exports 1.5 GB, scratch-uploads 3.0 KB)');
    expect(one('orphanBytes>2GiB')).toMatchObject({ ok: true });
    expect(one('orphanBytes>2GiB').message).toMatch(/^orphanBytes>2GiB passed: 1\.4 GiB orphaned \(exports 1\.4 GiB, scratch-uploads 2\.9 KiB\)$/);
    expect(one('scratch-uploads:orphanBytes>=3000')).toMatchObject({ ok: false, actual: 3000 });
  });

  it('measures the backlog', () => {
    expect(one('backlog>3')).toMatchObject({ ok: false, actual: 4, message: 'backlog>3 failed: 4 tombstones awaiting sweep (scratch-uploads 4)' });
    expect(one('exports:backlog>0')).toMatchObject({ ok: true, actual: 0 });
  });

  it('takes the worst type for ages, and a type with nothing to measure as 0', () => {
    const oldest = one('oldestOrphanAge>1d');
    expect(oldest).toMatchObject({ ok: false, actual: 2 * DAY });
    expect(oldest.message).toBe('oldestOrphanAge>1d failed: oldest orphan 2.0d old (by type: scratch-uploads 2.0d, exports 1.0h)');
    expect(one('avgAgeBeyondTtl>1h')).toMatchObject({ ok: false, actual: 7200 });
    expect(one('maxAgeBeyondTtl>=3h')).toMatchObject({ ok: false, actual: 10_800 });
    expect(one('exports:avgAgeBeyondTtl>0')).toMatchObject({ ok: true, actual: 0, message: 'exports:avgAgeBeyondTtl>0 passed: nothing past its ttl' });
    expect(one('exports:maxAgeBeyondTtl>0').ok).toBe(true);
    expect(one('exports:oldestOrphanAge<=1h')).toMatchObject({ ok: false, actual: 3600, message: 'exports:oldestOrphanAge<=1h failed: oldest orphan 1.0h old' });
  });

  it('reads the renewal failure rate from the lease telemetry', () => {
    const rate = one('renewalFailureRate>5%');
    expect(rate).toMatchObject({ ok: false, actual: 0.075, byResource: [] });
    // renewals counts the ones that succeeded: 3 failed of 37 + 3 attempted.
    expect(rate.message).toBe('renewalFailureRate>5% failed: 7.5% of lease renewals failed (3 of 40 over 1.0h)');
    expect(one('renewalFailureRate>=0.1').ok).toBe(true);
    expect(one('renewalFailureRate<=0.1').ok).toBe(false);
  });

  it('passes everything on an empty audit', () => {
    const doc = { ...auditDoc(), resources: [], findings: [], findingsTotal: 0 };
    doc.leases = { ...doc.leases, renewalFailureRate: 0 };
    const results = evaluate(['orphaned>0', 'orphanBytes>0', 'oldestOrphanAge>0', 'backlog>0', 'renewalFailureRate>0'], doc);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(results[0]!.message).toBe('orphaned>0 passed: 0 orphaned');
    expect(results[2]!.message).toBe('oldestOrphanAge>0 passed: no orphans');
  });
});

describe('baselines', () => {
  it('pass when the baseline holds every current orphan', () => {
    const doc = auditDoc();
    const keys = parseBaseline(JSON.stringify(doc, null, 2), 'baseline.json');
    const results = evaluate(['orphaned>0', 'orphanBytes>0', 'expired>0', 'unknown>0', 'scratch-uploads:orphaned>0'], doc, { keys });
    expect(results.map((r) => [r.gate.text, r.ok, r.actual])).toEqual([
      ['orphaned>0', true, 0],
      ['orphanBytes>0', true, 0],
      ['expired>0', true, 0],
      ['unknown>0', true, 0],
      ['scratch-uploads:orphaned>0', true, 0],
    ]);
    expect(results[0]!.message).toBe('orphaned>0 passed: 0 orphaned not in the baseline');
  });

  it('fail on one new orphan, counting only it', () => {
    const baseline = auditDoc();
    const doc = auditDoc();
    const fresh = finding('scratch-uploads', 'mallory/new.part', 'orphaned', 4096);
    doc.findings.push(fresh);
    doc.findingsTotal++;
    doc.resources[0]!.orphaned++;
    const keys = baselineKeys(baseline);
    const [orphaned, bytes, live] = evaluate(['orphaned>0', 'orphanBytes>=4KiB', 'live>=5'], doc, { keys });
    expect(orphaned).toMatchObject({ ok: false, actual: 1, message: 'orphaned>0 failed: 1 orphaned not in the baseline (scratch-uploads 1)' });
    expect(bytes).toMatchObject({ ok: false, actual: 4096, message: 'orphanBytes>=4KiB failed: 4.0 KiB orphaned not in the baseline (scratch-uploads 4.0 KiB)' });
    // live and scanned are not findings: always the full totals.
    expect(live).toMatchObject({ ok: false, actual: 5 });
  });

  it('count a resource whose status changed since the baseline as new', () => {
    const baseline = { ...auditDoc(), findings: [finding('scratch-uploads', 'dave/fresh.part', 'young')], findingsTotal: 1 };
    const doc = auditDoc();
    const keys = baselineKeys(baseline);
    const current = [finding('scratch-uploads', 'dave/fresh.part', 'orphaned')];
    expect(one('orphaned>0', doc, { keys, current })).toMatchObject({ ok: false, actual: 1 });
  });

  it('refuse a baseline whose findings were truncated', () => {
    const truncated = { ...auditDoc(), findingsTotal: 5000, findingsTruncated: true };
    expect(() => parseBaseline(JSON.stringify(truncated), 'old.json')).toThrow(GateError);
    expect(() => parseBaseline(JSON.stringify(truncated), 'old.json')).toThrow(
      /^old\.json lists 10 of 5000 findings \(findingsTruncated: true\), so it cannot say which leaks are known; write it with --max-findings 5000 or more, or use the --findings NDJSON file/,
    );
  });

  it('need every current finding: a truncated current document without them is refused', () => {
    const doc = { ...auditDoc(), findingsTotal: 20_000, findingsTruncated: true };
    const keys = baselineKeys(auditDoc());
    expect(() => one('orphaned>0', doc, { keys })).toThrow(/needs every current finding, and this audit's document lists only 10 of 20000/);
    // With the full findings (e.g. read back from --findings) it works.
    function* all() {
      yield* auditDoc().findings;
      yield finding('exports', 'late.csv', 'orphaned');
    }
    expect(one('orphaned>0', doc, { keys, current: all() })).toMatchObject({ ok: false, actual: 1 });
  });

  it('can be tallied while the audit streams, in bounded memory', () => {
    const doc = auditDoc();
    const tally = new NewFindingsTally(baselineKeys({ ...doc, findings: doc.findings.slice(0, 2) }));
    for (const f of doc.findings) tally.add(f);
    expect(tally.seen).toBe(10);
    expect(one('orphaned>0', doc, tally)).toMatchObject({ ok: false, actual: 2, message: 'orphaned>0 failed: 2 orphaned not in the baseline (scratch-uploads 1, exports 1)' });
  });

  it('read a --findings NDJSON file as a baseline', () => {
    const doc = auditDoc();
    const ndjson = doc.findings.map((f) => JSON.stringify(f)).join('\n') + '\n';
    const keys = parseBaseline(ndjson, 'findings.ndjson');
    expect(keys.size).toBe(10);
    expect(keys.has(findingKey(doc.findings[0]!))).toBe(true);
    expect([...parseBaseline(JSON.stringify(doc.findings[0]))]).toEqual([findingKey(doc.findings[0]!)]);
    expect(() => parseBaseline(`${JSON.stringify(doc.findings[0])}\nnot json\n`, 'f.ndjson')).toThrow('f.ndjson:2: neither an audit JSON document nor NDJSON findings');
    expect(() => parseBaseline('{"resource":"a","id":"b","status":"gone"}\n{"x":1}', 'f.ndjson')).toThrow('f.ndjson:1: not a finding');
  });

  it('refuse what is not an audit document', () => {
    expect(() => parseBaseline('', 'b.json')).toThrow('b.json is empty');
    expect(() => parseBaseline('{"kind":"reap","findings":[]}', 'b.json')).toThrow('b.json is not a reaper audit document');
    expect(() => parseBaseline('[1,2]', 'b.json')).toThrow('b.json is not a reaper audit document');
    expect(() => baselineKeys({ kind: 'audit', findings: [{ id: 'x' }] }, 'b.json')).toThrow('b.json: findings[0] is not a finding');
  });

  it('key findings unambiguously, whatever their ids hold', () => {
    expect(findingKey({ resource: 'a', id: 'b\u0000c', status: 'orphaned' })).not.toBe(findingKey({ resource: 'a\u0000b', id: 'c', status: 'orphaned' }));
    expect(findingKey({ resource: 'a', id: '"],["x', status: 'orphaned' })).not.toBe(findingKey({ resource: 'a', id: '', status: 'orphaned' }));
  });
});

describe('which types break a failing gate', () => {
  it('names every type adding to a failing sum, and a per-type gate its own type', () => {
    expect(one('orphaned>0').breaking).toEqual(['scratch-uploads', 'exports']);
    expect(one('orphanBytes>1GB').breaking).toEqual(['scratch-uploads', 'exports']);
    expect(one('expired>=2').breaking).toEqual(['scratch-uploads', 'exports']);
    expect(one('scratch-uploads:orphaned>0').breaking).toEqual(['scratch-uploads']);
    expect(one('young>0').breaking).toEqual(['scratch-uploads']);
  });

  it('names the types whose own age breaks an age gate', () => {
    expect(one('oldestOrphanAge>1d').breaking).toEqual(['scratch-uploads']);
    expect(one('oldestOrphanAge>30m').breaking).toEqual(['scratch-uploads', 'exports']);
  });

  it('names none for a passing gate, a lower bound, or the lease renewal rate', () => {
    expect(one('orphaned>100').breaking).toEqual([]);
    expect(one('scanned<100').breaking).toEqual([]);
    expect(one('live==0').breaking).toEqual([]);
    expect(one('renewalFailureRate>1%').breaking).toEqual([]);
  });

  it('counts only new findings against a baseline: a type whose orphans are all known does not break it', () => {
    const doc = auditDoc();
    const known = baselineKeys({ ...doc, findings: doc.findings.filter((f) => f.resource === 'exports') });
    expect(one('orphaned>0', doc, { keys: known }).breaking).toEqual(['scratch-uploads']);
  });
});

describe('NewFindingsTally.diff', () => {
  it('gives new findings with samples per type, baseline keys not met as resolved, and the count persisting', () => {
    const tally = new NewFindingsTally<FindingOutput>(
      new Set([findingKey({ resource: 'exports', id: 'old.csv', status: 'orphaned' }), findingKey({ resource: 'exports', id: 'kept.csv', status: 'orphaned' }), findingKey({ resource: 'scratch-uploads', id: 'x', status: 'orphaned' })]),
      2,
    );
    for (const f of [
      finding('exports', 'kept.csv', 'orphaned'),
      finding('exports', 'kept.csv', 'orphaned'),
      finding('scratch-uploads', 'n1', 'orphaned'),
      finding('scratch-uploads', 'n2', 'orphaned'),
      finding('scratch-uploads', 'n3', 'orphaned'),
      finding('exports', 'n4', 'expired'),
      finding('exports', 'alive', 'live'),
    ]) {
      tally.add(f);
    }
    const diff = tally.diff();
    expect(diff.new).toMatchObject({ count: 4, byResource: { 'scratch-uploads': 3, exports: 1 } });
    expect(diff.new.samples.map((f) => f.id)).toEqual(['n1', 'n2', 'n4']);
    expect(diff.persisting.count).toBe(1);
    expect(diff.resolved.samples).toEqual([
      { resource: 'exports', id: 'old.csv', status: 'orphaned', bytes: null },
      { resource: 'scratch-uploads', id: 'x', status: 'orphaned', bytes: null },
    ]);
    // A type not read whole this time has nothing resolved.
    expect(tally.diff(new Set(['scratch-uploads'])).resolved.samples.map((f) => f.id)).toEqual(['old.csv']);
  });
});

describe('resolved findings against a baseline file', () => {
  const resolvedOf = (text: string, met: readonly FindingOutput[]) => {
    const tally = new NewFindingsTally<FindingOutput>(parseBaseline(text, 'b.json'), 2);
    for (const f of met) tally.add(f);
    return tally.diff().resolved;
  };

  it('keep the fields the baseline document held: reason, owner, age and bytes', () => {
    const doc = auditDoc();
    const [gone, ...rest] = doc.findings;
    const resolved = resolvedOf(JSON.stringify(doc), rest);
    expect(resolved.count).toBe(1);
    expect(resolved.samples).toEqual([gone]);
  });

  it('keep them from a --findings NDJSON file too, and only as many as the samples show', () => {
    const doc = auditDoc();
    const resolved = resolvedOf(doc.findings.map((f) => JSON.stringify(f)).join('\n'), []);
    expect(resolved.byResource).toEqual({ 'scratch-uploads': 8, exports: 2 });
    expect(resolved.samples).toEqual([doc.findings[0], doc.findings[1], doc.findings[8], doc.findings[9]]);
  });

  it('leave out a field of the wrong type instead of passing it on', () => {
    const doc = auditDoc();
    const odd = { ...doc.findings[0]!, owner: 5, ageSeconds: 'old', bytes: -1, reason: ['x'] };
    const resolved = resolvedOf(JSON.stringify({ ...doc, findings: [odd] }), []);
    expect(resolved.samples).toEqual([{ resource: 'scratch-uploads', backend: 'fs', id: 'bob/1.part', status: 'orphaned', reason: null, owner: null, ageSeconds: null, bytes: null }]);
  });
});

describe('diffFindings', () => {
  it('splits findings into new, resolved and persisting', () => {
    const previous = [finding('scratch-uploads', 'a', 'orphaned'), finding('scratch-uploads', 'b', 'orphaned'), finding('exports', 'c', 'young')];
    const current = [
      finding('scratch-uploads', 'b', 'orphaned'),
      finding('exports', 'c', 'orphaned'), // status changed: resolved as young, new as orphaned
      finding('exports', 'd', 'orphaned'),
      finding('exports', 'd', 'orphaned'), // counted once
      finding('exports', 'e', 'live'), // live is not a finding
    ];
    const diff = diffFindings(previous, current);
    expect(diff.new).toMatchObject({ count: 2, byResource: { exports: 2 }, byStatus: { orphaned: 2 } });
    expect(diff.new.samples.map((f) => f.id)).toEqual(['c', 'd']);
    expect(diff.resolved).toMatchObject({ count: 2, byResource: { 'scratch-uploads': 1, exports: 1 }, byStatus: { orphaned: 1, young: 1 } });
    expect(diff.resolved.samples.map((f) => f.id)).toEqual(['a', 'c']);
    expect(diff.persisting).toMatchObject({ count: 1, byResource: { 'scratch-uploads': 1 } });
  });

  it('keeps at most sampleSize samples but counts everything', () => {
    const current = Array.from({ length: 50 }, (_, i) => finding('exports', `f${i}`, 'orphaned'));
    const diff = diffFindings([], current, { sampleSize: 3 });
    expect(diff.new.count).toBe(50);
    expect(diff.new.samples).toHaveLength(3);
    expect(diffFindings(current, current).persisting.count).toBe(50);
  });
});
