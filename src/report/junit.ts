/**
 * Leak gates as JUnit XML, for CI systems that show test reports (GitLab `reports: junit`,
 * GitHub test-report actions, Jenkins). One `<testsuite name="reaper audit">`; one
 * `<testcase classname="reaper.<backend>" name="<resource>">` per resource type, failing
 * when that type breaks a gate: a gate on that type, or a gate over all types that the type
 * adds to (`orphaned>0` fails on every type with an orphan; see GateResult.breaking). A
 * failing gate over all types that no type can be blamed for (renewalFailureRate, a lower
 * bound) fails a `<testcase name="(all resources)">`, present whenever there are such gates.
 *
 * A type that could not be read whole carries an `<error type="reaper.scan">`, a liveness
 * source that failed gets its own `<testcase classname="reaper.source">` with an `<error>`.
 *
 * A testcase carries at most one `<failure>` (several per testcase break some readers):
 * its message joins the failing gates' messages, its body has one line per gate, then
 * findings of the statuses those gates count — with a baseline or an earlier run, the new
 * ones. Everything is XML-escaped, ids are shown with control characters escaped, and
 * characters XML 1.0 cannot carry are removed.
 */
import type { GateResult } from '../engine/gates.js';
import type { Status } from '../engine/types.js';
import type { AuditDocument, ComparedFinding, FindingsComparison } from './document.js';
import { formatBytes, formatSeconds } from '../util/format.js';
import { printable } from './table.js';
import { scanProblem, sourceProblem } from './telemetry.js';

export interface JunitOptions {
  /** Findings listed under a failing testcase (default 10). */
  samples?: number;
  /** New findings against a baseline or an earlier run: a failing testcase lists these. */
  comparison?: FindingsComparison | null;
}

export const ALL_RESOURCES = '(all resources)';

export function renderJunit(doc: AuditDocument, gateResults: readonly GateResult[], options: JunitOptions = {}): string {
  const sampleSize = options.samples ?? 10;
  const comparison = options.comparison ?? null;
  const cases: string[] = [];
  let failures = 0;
  let errors = 0;
  const findingsOf = (resource: string | null, failed: readonly GateResult[]): { title: string; list: ComparedFinding[] } => {
    const statuses = relevantStatuses(failed);
    const pool: readonly ComparedFinding[] = comparison ? comparison.diff.new.samples : doc.findings;
    return {
      title: comparison ? `new since ${comparison.against}:` : 'findings:',
      list: pool.filter((f) => (resource === null || f.resource === resource) && statuses.has(f.status)).slice(0, sampleSize),
    };
  };

  for (const r of doc.resources) {
    // Its own gates, then the failing gates over all types it breaks.
    const results = [...gateResults.filter((g) => g.resource === r.name), ...gateResults.filter((g) => g.resource === undefined && !g.ok && g.breaking.includes(r.name))];
    const failed = results.filter((g) => !g.ok);
    const telemetry = [
      `${r.scanned} scanned: ${r.live} live, ${r.orphaned} orphaned, ${r.expired} expired, ${r.protected} protected, ${r.young} young, ${r.unknown} unknown`,
      `orphan bytes ${formatBytes(r.orphanBytes)}; beyond ttl ${r.avgAgeBeyondTtlSeconds === null ? '-' : formatSeconds(r.avgAgeBeyondTtlSeconds)} on average; backlog ${r.backlog}`,
      ...results.filter((g) => g.ok).map((g) => g.message),
    ];
    if (failed.length > 0) failures++;
    const error = r.status === 'ok' ? null : { message: scanProblem(r), body: [scanProblem(r), `scope ${r.scope}`] };
    if (error) errors++;
    cases.push(testcase(`reaper.${r.backend}`, r.name, failed, findingsOf(r.name, failed), telemetry, error));
  }

  for (const [source, message] of Object.entries(doc.sourceErrors ?? {})) {
    errors++;
    const why = sourceProblem(source, message);
    cases.push(testcase('reaper.source', source, [], { title: '', list: [] }, [], { message: why, body: [why] }));
  }

  const global = gateResults.filter((g) => g.resource === undefined);
  if (global.length > 0) {
    const failed = global.filter((g) => !g.ok && g.breaking.length === 0);
    if (failed.length > 0) failures++;
    const out = global.filter((g) => g.ok || g.breaking.length > 0).map((g) => (g.ok ? g.message : `${g.message} — the failure is on ${g.breaking.join(', ')}`));
    cases.push(testcase('reaper', ALL_RESOURCES, failed, findingsOf(null, failed), out, null));
  }

  const time = seconds(doc.durationSeconds);
  const suite = [
    `  <testsuite name="reaper audit" tests="${cases.length}" failures="${failures}" errors="${errors}" skipped="0" time="${time}" timestamp="${attr(doc.startedAt.slice(0, 19))}">`,
    '    <properties>',
    property('runId', doc.runId),
    property('reaper', doc.reaper),
    property('manifest', doc.manifest),
    property('scanned', String(doc.summary.scanned)),
    property('orphaned', String(doc.summary.orphaned)),
    property('findingsTotal', String(doc.findingsTotal)),
    ...(comparison ? [property('comparedWith', comparison.against), property('new', String(comparison.diff.new.count)), property('resolved', String(comparison.diff.resolved.count)), property('persisting', String(comparison.diff.persisting.count))] : []),
    '    </properties>',
    ...cases,
    '  </testsuite>',
  ];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="reaper" tests="${cases.length}" failures="${failures}" errors="${errors}" time="${time}">`,
    ...suite,
    '</testsuites>',
    '',
  ].join('\n');
}

function testcase(
  classname: string,
  name: string,
  failed: readonly GateResult[],
  findings: { title: string; list: readonly ComparedFinding[] },
  out: readonly string[],
  error: { message: string; body: readonly string[] } | null,
): string {
  const lines = [`    <testcase classname="${attr(classname)}" name="${attr(name)}" time="0">`];
  if (error) lines.push(`      <error message="${attr(error.message)}" type="reaper.scan">${text(error.body.join('\n'))}</error>`);
  if (failed.length > 0) {
    const body = [...failed.map((g) => g.message)];
    if (findings.list.length > 0) {
      body.push('', findings.title);
      for (const f of findings.list) body.push(`  ${findingLine(f)}`);
    }
    lines.push(`      <failure message="${attr(failed.map((g) => g.message).join('; '))}" type="reaper.gate">${text(body.join('\n'))}</failure>`);
  }
  if (out.length > 0) lines.push(`      <system-out>${text(out.join('\n'))}</system-out>`);
  lines.push('    </testcase>');
  return lines.join('\n');
}

/** The statuses whose findings illustrate the failing gates: `orphaned>0` lists orphans; backlog or lease gates list none. */
function relevantStatuses(failed: readonly GateResult[]): Set<Status> {
  const statuses = new Set<Status>();
  for (const { gate } of failed) {
    const m = gate.metric;
    if (m === 'orphaned' || m === 'expired' || m === 'protected' || m === 'young' || m === 'unknown') statuses.add(m);
    else if (m === 'orphanBytes' || m === 'oldestOrphanAge') statuses.add('orphaned');
    else if (m === 'avgAgeBeyondTtl' || m === 'maxAgeBeyondTtl') statuses.add('orphaned').add('expired');
  }
  return statuses;
}

function findingLine(f: ComparedFinding): string {
  const parts = [f.resource, printable(f.id), f.status + (f.reason ? ` (${f.reason})` : '')];
  if (f.owner !== null && f.owner !== undefined) parts.push(`owner ${printable(f.owner)}`);
  if (f.ageSeconds !== null && f.ageSeconds !== undefined) parts.push(`age ${formatSeconds(f.ageSeconds)}`);
  if (f.bytes !== null) parts.push(formatBytes(f.bytes));
  return parts.join(' · ');
}

function property(name: string, value: string): string {
  return `      <property name="${attr(name)}" value="${attr(value)}"/>`;
}

const seconds = (s: number): string => (Number.isFinite(s) ? s.toFixed(3) : '0');

/** Characters XML 1.0 cannot carry at all (controls other than tab/LF/CR, lone surrogates, U+FFFE/U+FFFF). */
const INVALID_XML = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Escape text content. */
export function xmlText(value: string): string {
  return value.replace(INVALID_XML, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Escape an attribute value; tab, LF and CR become references so parsers keep them. */
export function xmlAttr(value: string): string {
  return xmlText(value).replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\t/g, '&#9;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;');
}

const text = xmlText;
const attr = xmlAttr;
