/**
 * The JUnit XML reaper writes is well-formed XML 1.0, checked by libxml2's xmllint: for
 * a real audit of the demo sandbox and for a document full of hostile ids. Outside CI a
 * missing xmllint skips with a hint; under CI=true it fails.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDemo } from '../../src/cli/commands/demo.js';
import { evaluateGates, parseGates } from '../../src/engine/gates.js';
import { loadManifest } from '../../src/manifest/load.js';
import type { AuditDocument, FindingOutput } from '../../src/report/document.js';
import { renderJunit } from '../../src/report/junit.js';
import { runAudit } from '../../src/run/audit.js';
import { testTempDir } from './support/temp-dir.js';

const probe = spawnSync('xmllint', ['--version'], { encoding: 'utf8' });
const haveXmllint = probe.error === undefined && probe.status === 0;
const inCI = process.env.CI === 'true';

if (!haveXmllint && !inCI) {
  console.warn('xmllint not found: skipping the JUnit validation tests (Debian/Ubuntu: apt-get install libxml2-utils)');
}

function xmllint(xml: string): { code: number | null; stderr: string; file: string } {
  const dir = testTempDir('reaper-junit-');
  const file = path.join(dir, 'reaper-junit.xml');
  writeFileSync(file, xml, 'utf8');
  const result = spawnSync('xmllint', ['--noout', '--nonet', file], { encoding: 'utf8' });
  return { code: result.status, stderr: result.stderr, file };
}

describe.skipIf(!haveXmllint && !inCI)('JUnit XML validates with xmllint', () => {
  it('xmllint is installed (required under CI)', () => {
    expect(haveXmllint, 'xmllint is missing: apt-get install libxml2-utils').toBe(true);
  });

  it('for a real audit of the demo sandbox, with failing per-type and global gates', async () => {
    const dir = path.join(testTempDir('reaper-junit-demo-'), 'reaper-demo');
    await buildDemo(dir);
    const doc = await runAudit(await loadManifest(path.join(dir, 'reaper.yaml'), {}));
    const results = evaluateGates(parseGates(['orphaned>0', 'scratch-uploads:orphaned>10', 'report-exports:expired>0', 'renewalFailureRate>5%']), doc);
    const xml = renderJunit(doc, results);
    const lint = xmllint(xml);
    expect(lint.stderr).toBe('');
    expect(lint.code).toBe(0);
    expect(xml).toContain('<testsuite name="reaper audit" tests="3" failures="2"');
    // Its own gate, then the gate over all types it adds an orphan to.
    expect(xml).toMatch(/<testcase classname="reaper\.fs" name="report-exports" time="0">\n {6}<failure message="report-exports:expired&gt;0 failed: 1 expired; orphaned&gt;0 failed: 6 orphaned/);
  });

  it('for ids holding markup, quotes, control characters, lone surrogates and non-characters', () => {
    const nasty = [
      '<testcase name="x"></testsuite>',
      `a&b;c&amp;d'e"f`,
      ']]><!-- -->\u0000\u0001\u0008\u000b\u000c\u000e\u001f\u007f',
      '\ud800alone \udfff and \ufffe \uffff',
      'tab\tnew\nline\rcarriage',
      '😀 🧟 emoji and \u202ertl',
      '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>&e;',
    ];
    const findings: FindingOutput[] = nasty.map((id, i) => ({ resource: 'weird<type>&"', backend: 'fs', id, status: 'orphaned', reason: 'owner-dead', owner: id, ageSeconds: i, bytes: i }));
    const doc: AuditDocument = {
      version: 1,
      kind: 'audit',
      reaper: '0.1.0',
      runId: 'run"<&>',
      startedAt: '2026-11-22T02:00:00.000Z',
      finishedAt: '2026-11-22T02:00:01.000Z',
      durationSeconds: 1,
      manifest: '/tmp/\u0001<manifest>&"\'.yaml',
      state: 'sqlite:x',
      summary: { errors: 0, unreadable: 0, scanned: 7, live: 0, orphaned: 7, expired: 0, protected: 0, young: 0, unknown: 0, orphanBytes: 21, backlog: 0 },
      resources: [
        {
          name: 'weird<type>&"',
          backend: 'fs',
          scope: '/',
          status: 'ok',
          error: null,
          unreadable: 0,
          scanned: 7,
          live: 0,
          orphaned: 7,
          expired: 0,
          protected: 0,
          young: 0,
          unknown: 0,
          reasons: {},
          orphanBytes: 21,
          avgAgeBeyondTtlSeconds: null,
          maxAgeBeyondTtlSeconds: null,
          oldestOrphanAgeSeconds: 6,
          backlog: 0,
          backlogOldestAgeSeconds: null,
        },
      ],
      leases: { active: 0, expired: 0, renewals: 0, renewalFailures: 0, renewalFailureRate: 0, windowSeconds: 3600 },
      sources: {},
      sourceErrors: {},
      complete: true,
      findings,
      findingsTotal: findings.length,
      findingsTruncated: false,
    };
    // Gates are evaluated against the document as it is; the type name cannot be written in
    // a gate, so only global gates apply here.
    const xml = renderJunit(doc, evaluateGates(parseGates(['orphaned>0', 'orphanBytes>1', 'oldestOrphanAge>1s']), doc), { samples: 20 });
    const lint = xmllint(xml);
    expect(lint.stderr).toBe('');
    expect(lint.code).toBe(0);
    // xmllint reads back the attribute values it was given, unchanged but for the characters XML cannot carry.
    // (xmllint ends --xpath output with a line feed.)
    const xpath = (expr: string) => spawnSync('xmllint', ['--nonet', '--xpath', expr, lint.file], { encoding: 'utf8' }).stdout.replace(/\n$/, '');
    expect(xpath('string(//testcase[1]/@name)')).toBe('weird<type>&"');
    expect(xpath('string(//property[@name="manifest"]/@value)')).toBe('/tmp/<manifest>&"\'.yaml');
    expect(xpath('string(//property[@name="runId"]/@value)')).toBe('run"<&>');
    expect(xpath('count(//testcase)')).toBe('2');
    expect(xpath('count(//failure)')).toBe('1');
  });
});
