/** `reaper audit`: scan, classify, print leak telemetry. Read-only. */
import path from 'node:path';
import { findingOutput } from '../../report/document.js';
import { auditTable, findingsTable } from '../../report/table.js';
import { runAudit } from '../../run/audit.js';
import type { CliIO } from '../io.js';
import { NdjsonFile } from '../ndjson.js';
import { integerOption, manifestFrom, outputFormat } from '../options.js';
import { startProgress } from '../progress.js';

export async function auditCommand(io: CliIO, _args: unknown[], options: Record<string, unknown>): Promise<number> {
  const manifest = await manifestFrom(io, options);
  const format = outputFormat(io, options);
  const maxFindings = integerOption(options.maxFindings, '--max-findings');
  const ndjson = typeof options.findings === 'string' ? new NdjsonFile(path.resolve(io.cwd, options.findings)) : null;
  const progress = await startProgress(io, 'auditing…');
  try {
    const doc = await runAudit(manifest, {
      signal: io.signal,
      resources: options.resource as string[] | undefined,
      maxFindings,
      onFinding: ndjson ? (f) => ndjson.write(findingOutput(f)) : undefined,
      onProgress: (p) => progress.update(`auditing ${p.resource}: ${p.scanned} scanned, ${p.orphaned} orphaned`),
    });
    progress.stop();
    await ndjson?.close();
    if (format === 'json') io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    else {
      io.stdout.write(`${auditTable(doc)}\n`);
      const findings = findingsTable(doc);
      if (findings) io.stdout.write(`\n${findings}\n`);
    }
    return 0;
  } catch (error) {
    progress.stop();
    await ndjson?.abort();
    throw error;
  }
}
