/**
 * Outputs that fail, and readers that go away. A Pushgateway that cannot be reached, or a
 * report file that cannot be written, is reported on its own (stderr, or an `output-failed`
 * event of the JSON log) and makes the exit 3; every other output — the stdout document, the
 * other files, the log events, the gate results — is still written. A stdout or stderr whose
 * reader closed it early (`| head -1`) is given up quietly: the run finishes, is recorded,
 * and exits with the code it would have had. Through the built CLI, on the demo's files.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/net.js';
import { BIN, reaper, removeTempDirs, tmp } from './support/cli.js';

afterAll(removeTempDirs);

type Event = { level: string; event: string } & Record<string, unknown>;
const events = (stderr: string): Event[] =>
  stderr
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Event);

/** The demo sandbox; its grace (2d) replaced by `grace` when given, so a second reap sweeps what the first marked. */
function demo(grace?: string): { dir: string; manifest: string } {
  const dir = tmp();
  expect(reaper(['demo'], { cwd: dir }).code).toBe(0);
  const manifest = path.join(dir, 'reaper-demo', 'reaper.yaml');
  if (grace) writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('grace: 2d', `grace: ${grace}`));
  return { dir, manifest };
}

describe('a run stopped by a signal still publishes what it did', () => {
  it('the Pushgateway push of an interrupted reap is made, though the stop signal has fired', async () => {
    const { createServer } = await import('node:http');
    const { writeOutputs } = await import('../../src/cli/outputs.js');
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        bodies.push(body);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const gateway = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const stop = new AbortController();
      stop.abort(new Error('SIGTERM'));
      const report = {
        version: 1,
        kind: 'reap',
        runId: 'r-1',
        execute: true,
        plan: null,
        summary: null,
        resources: [],
        outcomes: { marked: 0, deleted: 0, lifted: 0, changed: 0, absent: 0, failed: 0, lifts: {} },
        sources: {},
        sourceErrors: {},
        errors: ['interrupted: stopped after finishing the current batch; the next run resumes'],
      };
      const io = { signal: stop.signal } as unknown as import('../../src/cli/io.js').CliIO;
      const failures = await writeOutputs(io, { pushgateway: gateway, pushgatewayJob: 'reaper' }, { doc: null, reap: report as never, gates: [], durationSeconds: 1 });
      expect(failures).toEqual([]);
      expect(bodies).toHaveLength(1);
      expect(bodies[0]).toContain('reaper_build_info{');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('an output that fails does not take the others with it', () => {
  it('reap --execute with an unreachable Pushgateway: deletes, prints its report, writes its files and log, names the cause, exits 3', async () => {
    const d = demo('0s');
    expect(reaper(['reap', '-c', d.manifest, '--execute', '--output', 'json'], { cwd: d.dir }).code).toBe(0);
    const gateway = `http://127.0.0.1:${await freePort()}`;
    const r = reaper(
      ['reap', '-c', d.manifest, '--execute', '--pushgateway', gateway, '--log-format', 'json', '--metrics-file', 'm.prom', '--summary', 's.md', '--html', 'r.html', '--output', 'json'],
      { cwd: d.dir },
    );
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as { outcomes: { deleted: number } };
    expect(report.outcomes.deleted).toBe(6);
    const log = events(r.stderr);
    expect(log.map((e) => e.event)).toEqual(['run-started', 'resource-reaped', 'resource-reaped', 'output-failed', 'run-finished']);
    expect(log[3]).toMatchObject({ level: 'error', output: 'pushgateway', message: `cannot push metrics to ${gateway}/metrics/job/reaper: ECONNREFUSED` });
    expect(log[4]).toMatchObject({ exitCode: 3, outcomes: { deleted: 6 } });
    expect(readFileSync(path.join(d.dir, 'm.prom'), 'utf8')).toMatch(/^reaper_reap_total\{resource="scratch-uploads",[^}]*outcome="deleted"[^}]*\} 5$/m);
    expect(readFileSync(path.join(d.dir, 's.md'), 'utf8')).toContain('reap');
    expect(existsSync(path.join(d.dir, 'r.html'))).toBe(true);
  });

  it('audit with a Pushgateway on a port fetch refuses: the document, the gates, JUnit and the summary are all there; exit 3 over the gate\'s 1', () => {
    const d = demo();
    const r = reaper(['audit', '-c', d.manifest, '--pushgateway', 'http://127.0.0.1:1', '--fail-on', 'orphaned>0', '--junit', 'j.xml', '--summary', 's.md', '--output', 'json'], {
      cwd: d.dir,
    });
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout) as { summary: { orphaned: number }; gates: { ok: boolean }[] };
    expect(doc.summary.orphaned).toBe(6);
    expect(doc.gates).toMatchObject([{ ok: false }]);
    expect(r.stderr).toContain('gate orphaned>0 failed');
    // The cause fetch hides under its TypeError: port 1 is one of the Fetch standard's bad ports.
    expect(r.stderr).toMatch(/^reaper: cannot push metrics to http:\/\/127\.0\.0\.1:1\/metrics\/job\/reaper: bad port/m);
    expect(r.stderr).not.toContain('TypeError');
    expect(readFileSync(path.join(d.dir, 'j.xml'), 'utf8')).toContain('<testsuite');
    expect(readFileSync(path.join(d.dir, 's.md'), 'utf8')).toContain('orphaned');
  });

  it('files that cannot be written are each named; the ones that can are written', () => {
    const d = demo();
    const r = reaper(
      ['audit', '-c', d.manifest, '--metrics-file', 'missing/m.prom', '--junit', 'j.xml', '--summary', 'missing/s.md', '--findings', 'missing/f.ndjson', '--html', 'r.html', '--output', 'json'],
      { cwd: d.dir },
    );
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ summary: { orphaned: 6 } });
    expect(r.stderr).toMatch(/^reaper: cannot write the findings file .*missing\/f\.ndjson: ENOENT$/m);
    expect(r.stderr).toMatch(/^reaper: cannot write the metrics file .*missing\/m\.prom: ENOENT$/m);
    expect(r.stderr).toMatch(/^reaper: cannot write the summary .*missing\/s\.md: ENOENT$/m);
    expect(readFileSync(path.join(d.dir, 'j.xml'), 'utf8')).toContain('<testsuite');
    expect(readFileSync(path.join(d.dir, 'r.html'), 'utf8')).toContain('<html');
  });
});

interface Closed {
  code: number | null;
  stderr: string;
}

/**
 * The CLI with its stdout (and with `stderr: true` its stderr too) a pipe whose reader
 * closed it before the CLI wrote anything: every write there fails with EPIPE.
 */
function withClosedReader(args: string[], options: { cwd: string; stderr?: boolean; stdout?: number }): Promise<Closed> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
  });
  child.stdout?.destroy();
  let stderr = '';
  if (options.stderr) child.stderr!.destroy();
  else child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    const bound = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(bound);
      resolve({ code, stderr });
    });
  });
}

describe('a reader that closes the pipe early', () => {
  it('audit --output table | head -1: no crash, nothing on stderr, exit 0', async () => {
    const d = demo();
    const r = await withClosedReader(['audit', '-c', d.manifest, '--output', 'table'], { cwd: d.dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('audit --output json | head -c 10 with a failing gate: the gate is still reported, exit 1', async () => {
    const d = demo();
    const r = await withClosedReader(['audit', '-c', d.manifest, '--output', 'json', '--fail-on', 'orphaned>0'], { cwd: d.dir });
    expect(r.stderr).toBe('gate orphaned>0 failed: 6 orphaned (scratch-uploads 5, report-exports 1)\n');
    expect(r.code).toBe(1);
  });

  it('a stdout that fails otherwise (a full disk) is named, and the exit is 3', async () => {
    const d = demo();
    const full = openSync('/dev/full', 'w');
    try {
      const r = await withClosedReader(['audit', '-c', d.manifest, '--output', 'json'], { cwd: d.dir, stdout: full });
      expect(r.stderr).toBe('reaper: cannot write to stdout: ENOSPC\n');
      expect(r.code).toBe(3);
    } finally {
      closeSync(full);
    }
  });

  it('reap --execute with both stdout and stderr (its JSON log) closed: the run finishes, is recorded ok, exit 0', async () => {
    const d = demo();
    const r = await withClosedReader(['reap', '-c', d.manifest, '--execute', '--log-format', 'json', '--output', 'json'], { cwd: d.dir, stderr: true });
    expect(r.code).toBe(0);
    const runs = JSON.parse(reaper(['runs', '-c', d.manifest, '--output', 'json'], { cwd: d.dir }).stdout) as { kind: string; status: string; summary: { outcomes: { marked: number } } }[];
    expect(runs[0]).toMatchObject({ kind: 'reap', status: 'ok', summary: { outcomes: { marked: 6 } } });
  });
});
