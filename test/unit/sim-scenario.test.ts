/** Scenario files, --vary, the CLI command and its renderers (in-process, no services). */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { run, type CliIO } from '../../src/cli/main.js';
import { ManifestError, UsageError } from '../../src/errors.js';
import { parseScenario } from '../../src/sim/scenario.js';
import { parseVary } from '../../src/sim/vary.js';

const EXAMPLES = fileURLToPath(new URL('../../config/examples/simulate/', import.meta.url));
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function issues(text: string): string[] {
  try {
    parseScenario(text, 's.yaml');
  } catch (error) {
    if (error instanceof ManifestError) return error.message.split('\n');
    throw error;
  }
  return [];
}

const MINIMAL = `version: 1
duration: 5m
services: 2
workload:
  creations: 50
  lifetime: { dist: fixed, value: 1m }
`;

describe('scenario files', () => {
  for (const file of readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'))) {
    it(`${file} loads`, () => {
      const s = parseScenario(readFileSync(path.join(EXAMPLES, file), 'utf8'), file);
      expect(s.workload.creations).toBeGreaterThan(0);
      expect(s.compare.length).toBeGreaterThan(0);
    });
  }

  it('applies defaults and converts durations, offsets may be negative', () => {
    const s = parseScenario(`${MINIMAL}clocks: { offsets: { "1": -40s } }\n`, 's.yaml', 9);
    expect(s.seed).toBe(9);
    expect(s.drainMs).toBe(3_600_000);
    expect(s.clocks.offsets).toEqual({ 1: -40_000 });
    expect(s.leases).toMatchObject({ ttlMs: 30_000, intervalMs: 10_000, graceMs: 120_000, clock: 'store', maxDeleteFraction: 0.5, breaker: { maxDrop: 0.5, minLiveKeys: 1 } });
  });

  it('names file, line and key for every issue', () => {
    expect(issues(`${MINIMAL}strategies:\n  leases: { gracee: 1m }\n`)).toEqual(['s.yaml:8: strategies.leases.gracee: unknown key "gracee"']);
    expect(issues(MINIMAL.replace('5m', '5'))).toEqual(['s.yaml:2: duration: "5" has no unit; write e.g. 5s, 5m or 5h']);
    expect(issues(`${MINIMAL}faults:\n  - { kind: pause, at: 1m, every: 2m, duration: 5s }\n  - { kind: crash, service: 2, at: 1m, downtime: 1s, loseState: true }\n`)).toEqual([
      's.yaml:8: faults[0]: give exactly one of at (once) or every (a mean interval)',
      's.yaml:9: faults[1].service: there are 2 services, numbered from 0',
    ]);
    expect(issues(`${MINIMAL}network: { loss: 2 }\n`)[0]).toMatch(/^s\.yaml:7: network\.loss: /);
    expect(issues('version: 1\n')[0]).toMatch(/^s\.yaml:1: duration: is required$/);
    expect(issues('version: [1\n')[0]).toMatch(/^s\.yaml:\d+: invalid YAML: /);
  });
});

describe('--vary', () => {
  it('spreads a range evenly, or takes the values given', () => {
    expect(parseVary('grace=1s..2m', 3)).toEqual({ param: 'grace', unit: 'duration', values: [1_000, 60_500, 120_000] });
    expect(parseVary('loss=0,0.05,0.1', 6)).toEqual({ param: 'loss', unit: 'number', values: [0, 0.05, 0.1] });
  });

  it('refuses what it cannot use', () => {
    expect(() => parseVary('gravity=1..2', 3)).toThrow(UsageError);
    expect(() => parseVary('grace=2m..1s', 3)).toThrow(/backwards/);
    expect(() => parseVary('grace=10', 3)).toThrow(/no unit/);
    expect(() => parseVary('loss=0..2', 3)).toThrow(/at most 1/);
    expect(() => parseVary('interval=0s,1s', 3)).toThrow(/more than 0/);
  });
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    cwd: process.cwd(),
    signal: new AbortController().signal,
    version: () => '0.0.0-test',
  };
  const code = await run(['node', 'reaper', 'simulate', ...args], io);
  return { code, stdout, stderr };
}

describe('reaper simulate', () => {
  const scenarioFile = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'reaper-sim-'));
    dirs.push(dir);
    const file = path.join(dir, 's.yaml');
    writeFileSync(file, MINIMAL.replace('creations: 50', 'creations: 200').replace('{ dist: fixed, value: 1m }', '{ dist: uniform, min: 30s, max: 2m }\n  fanout: 1'));
    return { dir, file };
  };

  it('prints the same JSON document for the same seed, byte for byte, and another for another seed', async () => {
    const { file } = scenarioFile();
    const a = await cli([file, '-o', 'json', '--seed', '3']);
    const b = await cli([file, '-o', 'json', '--seed', '3']);
    const c = await cli([file, '-o', 'json', '--seed', '4']);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).not.toBe(c.stdout);
    const doc = JSON.parse(a.stdout);
    expect(doc).toMatchObject({ version: 1, kind: 'simulate', seed: 3, vary: null });
    expect(doc.runs[0].results.map((r: { strategy: string }) => r.strategy)).toEqual(['refcount', 'weighted-refcount', 'leases', 'mark-sweep', 'epochs', 'hybrid']);
  });

  it('prints a table, writes a self-contained HTML report and the SVG charts', async () => {
    const { dir, file } = scenarioFile();
    const html = path.join(dir, 'r.html');
    const svg = path.join(dir, 'charts');
    const out = await cli([file, '-o', 'table', '--strategy', 'leases,refcount', '--vary', 'grace=30s..2m', '--steps', '3', '--html', html, '--svg', svg]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/│ grace │ strategy +│ premature │/);
    expect(out.stdout.match(/│ (30s|75s|2m) +│ (leases|refcount) /g)).toHaveLength(6);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<svg');
    expect(page).toContain('premature deletions against grace');
    // Self-contained: nothing to fetch, nothing to run.
    expect(page).not.toMatch(/<script|<link|src=|href=|url\(|@import/i);
    expect(page.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/https?:/);
    expect(readdirSync(svg).sort()).toContain('premature-vs-grace.svg');
  });

  it('exits 2 naming file, line and key for a bad scenario, and for a bad flag', async () => {
    const { file } = scenarioFile();
    writeFileSync(file, `${MINIMAL}strategies: { leases: { grace: soon } }\n`);
    const bad = await cli([file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${file}:7: strategies.leases.grace: "soon" is not a duration`);
    expect((await cli([file.replace('s.yaml', 'none.yaml')])).code).toBe(2);
    writeFileSync(file, MINIMAL);
    const flag = await cli([file, '--vary', 'gravity=1..2']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown parameter "gravity"');
    expect((await cli([file, '--strategy', 'magic'])).code).toBe(2);
  });
});
