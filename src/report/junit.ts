/**
 * Leak gates as JUnit XML, for CI systems that show test reports (GitLab `reports: junit`,
 * GitHub test-report actions, Jenkins). One `<testsuite name="reaper audit">`; one
 * `<testcase classname="reaper.<backend>" name="<resource>">` per resource type, failing
 * when a gate on that type fails; failing gates over all types go to a
 * `<testcase name="(all resources)">`, present whenever there are such gates.
 *
 * A testcase carries at most one `<failure>` (several per testcase break some readers):
 * its message joins the failing gates' messages, its body has one line per gate, then
 * sample findings of the statuses those gates count. Everything is XML-escaped, ids are shown with control
 * characters escaped, and characters XML 1.0 cannot carry are removed.
 */
import type { GateResult } from '../engine/gates.js';
import type { Status } from '../engine/types.js';
import type { AuditDocument, FindingOutput } from './document.js';
import { formatBytes, formatSeconds } from './format.js';
import { printable } from './table.js';

export interface JunitOptions {
  /** Findings listed under a failing testcase (default 10). */
  samples?: number;
}

export const ALL_RESOURCES = '(all resources)';

export function renderJunit(doc: AuditDocument, gateResults: readonly GateResult[], options: JunitOptions = {}): string {
  const sampleSize = options.samples ?? 10;
  const cases: string[] = [];
  let failures = 0;
  const findingsOf = (resource: string | null, failed: readonly GateResult[]) => {
    const statuses = relevantStatuses(failed);
    return doc.findings.filter((f) => (resource === null || f.resource === resource) && statuses.has(f.status)).slice(0, sampleSize);
  };

  for (const r of doc.resources) {
    const results = gateResults.filter((g) => g.resource === r.name);
    const failed = results.filter((g) => !g.ok);
    const telemetry = [
      `${r.scanned} scanned: ${r.live} live, ${r.orphaned} orphaned, ${r.expired} expired, ${r.protected} protected, ${r.young} young, ${r.unknown} unknown`,
      `orphan bytes ${formatBytes(r.orphanBytes)}; beyond ttl ${r.avgAgeBeyondTtlSeconds === null ? '-' : formatSeconds(r.avgAgeBeyondTtlSeconds)} on average; backlog ${r.backlog}`,
      ...results.filter((g) => g.ok).map((g) => g.message),
    ];
    if (failed.length > 0) failures++;
    cases.push(testcase(`reaper.${r.backend}`, r.name, failed, findingsOf(r.name, failed), telemetry));
  }

  const global = gateResults.filter((g) => g.resource === undefined);
  if (global.length > 0) {
    const failed = global.filter((g) => !g.ok);
    if (failed.length > 0) failures++;
    const passed = global.filter((g) => g.ok).map((g) => g.message);
    cases.push(testcase('reaper', ALL_RESOURCES, failed, findingsOf(null, failed), passed));
  }

  const time = seconds(doc.durationSeconds);
  const suite = [
    `  <testsuite name="reaper audit" tests="${cases.length}" failures="${failures}" errors="0" skipped="0" time="${time}" timestamp="${attr(doc.startedAt.slice(0, 19))}">`,
    '    <properties>',
    property('runId', doc.runId),
    property('reaper', doc.reaper),
    property('manifest', doc.manifest),
    property('scanned', String(doc.summary.scanned)),
    property('orphaned', String(doc.summary.orphaned)),
    property('findingsTotal', String(doc.findingsTotal)),
    '    </properties>',
    ...cases,
    '  </testsuite>',
  ];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="reaper" tests="${cases.length}" failures="${failures}" errors="0" time="${time}">`,
    ...suite,
    '</testsuites>',
    '',
  ].join('\n');
}

function testcase(classname: string, name: string, failed: readonly GateResult[], findings: readonly FindingOutput[], out: readonly string[]): string {
  const lines = [`    <testcase classname="${attr(classname)}" name="${attr(name)}" time="0">`];
  if (failed.length > 0) {
    const body = [...failed.map((g) => g.message)];
    if (findings.length > 0) {
      body.push('', 'findings:');
      for (const f of findings) body.push(`  ${findingLine(f)}`);
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

function findingLine(f: FindingOutput): string {
  const parts = [f.resource, printable(f.id), f.status + (f.reason ? ` (${f.reason})` : '')];
  if (f.owner !== null) parts.push(`owner ${printable(f.owner)}`);
  if (f.ageSeconds !== null) parts.push(`age ${formatSeconds(f.ageSeconds)}`);
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
