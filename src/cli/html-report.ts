/**
 * Writing the HTML report, shared by `reaper report`, `audit --html FILE` and
 * `reap --html FILE`: the state store's history for it, and the file itself (written
 * atomically: a reader sees the old file or the new one).
 */
import { atomicWrite } from '../util/atomic-write.js';
import path from 'node:path';
import type { GateResult } from '../engine/gates.js';
import { BackendError, redact } from '../errors.js';
import type { Manifest } from '../manifest/types.js';
import type { AuditDocument, FindingOutput } from '../report/document.js';
import { FindingsAggregate } from '../report/html/aggregate.js';
import { clientAssets } from '../report/html/assets.js';
import { buildReportData } from '../report/html/build.js';
import { manifestScope, readPending, readTrend, recordedTypes, type HistoryStore } from '../report/html/history.js';
import type { PendingView, ReportData, TrendPoint } from '../report/html/model.js';
import { renderReport } from '../report/html/page.js';
import type { ReapReport } from '../report/reap-report.js';
import type { ManifestFlags } from './flags.js';
import type { CliIO } from './io.js';
import { configPath } from './options.js';

export const DEFAULT_TREND_RUNS = 30;

/** The trend and the pending tombstones: of the manifest's types (whose grace gives the earliest sweep), else of the types runs recorded. */
export async function readHistory(store: HistoryStore, manifest: Pick<Manifest, 'resources' | 'digest'> | null, runs = DEFAULT_TREND_RUNS): Promise<{ trend: TrendPoint[]; pending: PendingView[] }> {
  // The manifest's runs only: a store may be shared by several manifests (report/html/history.ts).
  const trend = await readTrend(store, runs, manifestScope(manifest));
  const types = manifest ? manifest.resources.map((r) => r.name) : await recordedTypes(store);
  const grace = manifest ? new Map(manifest.resources.map((r) => [r.name, r.graceMs])) : undefined;
  return { trend, pending: await readPending(store, types, grace) };
}

/** The manifest, when one is named or found, for its types' grace (earliest sweeps); its other values are not needed. */
export async function manifestIfAny(io: CliIO, options: ManifestFlags): Promise<Manifest | null> {
  const file = configPath(io, options, false);
  if (!file) return null;
  const { loadManifest } = await import('../manifest/load.js');
  return loadManifest(file, io.env, { lazyEnv: true });
}

/** Render and write the report; `-` writes it to stdout. Returns its size in bytes. */
export async function writeReport(io: CliIO, target: string, data: ReportData): Promise<number> {
  const html = renderReport(data, await clientAssets());
  if (target === '-') {
    io.stdout.write(html);
    return Buffer.byteLength(html);
  }
  const file = path.resolve(io.cwd, target);
  try {
    await atomicWrite(file, html);
  } catch (error) {
    throw new BackendError(`cannot write the HTML report ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  return Buffer.byteLength(html);
}

/**
 * `audit --html FILE` and `reap --html FILE`: every non-live finding of the run is fed in
 * as it streams (only aggregates are kept), and the report is written once the run is done,
 * with the state store's trend (this run included) and pending tombstones.
 */
export class HtmlReportSink {
  private readonly findings = new FindingsAggregate();
  constructor(
    private readonly target: string,
    private readonly manifest: Manifest,
  ) {}

  add(finding: FindingOutput): void {
    this.findings.add(finding);
  }

  async writeAudit(io: CliIO, doc: AuditDocument, gates: readonly GateResult[]): Promise<void> {
    const history = await this.history();
    const sources = [`audit run ${doc.runId} of ${doc.manifest}`, `state store ${doc.state}`];
    await writeReport(io, this.target, buildReportData({ generatedAt: new Date().toISOString(), reaper: io.version(), sources, audit: doc, findings: this.findings, history, gates }));
  }

  async writeReap(io: CliIO, report: ReapReport): Promise<void> {
    const history = await this.history();
    const sources = [`reap run ${report.runId} of ${this.manifest.file}`, `state store ${redact(this.manifest.state)}`];
    await writeReport(io, this.target, buildReportData({ generatedAt: new Date().toISOString(), reaper: io.version(), sources, reap: report, findings: this.findings, history }));
  }

  private async history(): Promise<{ trend: TrendPoint[]; pending: PendingView[] }> {
    const { openStateStore } = await import('../state/open.js');
    const store = await openStateStore(this.manifest.state);
    try {
      return await readHistory(store, this.manifest);
    } finally {
      await store.close();
    }
  }
}
