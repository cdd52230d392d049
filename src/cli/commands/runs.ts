/** `reaper runs` and `reaper runs show RUN`: run history from the state store. */
import { UsageError } from '../../errors.js';
import { runsTable } from '../../report/table.js';
import { quoted } from '../../report/telemetry.js';
import type { RunRecord } from '../../state/types.js';
import type { ManifestFlags, OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../print.js';
import { integerOption, openStoreToRead, outputFormat, readFromStore, terminalWidth } from '../options.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** A run as `runs -o json` gives it: its times as ISO-8601 strings, as the audit and reap documents and `lease list` give theirs. */
function runJson(run: RunRecord) {
  return { ...run, startedAt: iso(run.startedAt), finishedAt: isoOrNull(run.finishedAt), heartbeatAt: isoOrNull(run.heartbeatAt), aliveUntil: isoOrNull(run.aliveUntil) };
}

export async function runsList(io: CliIO, _args: unknown[], options: ManifestFlags & OutputFlags & { limit: string; job?: string }): Promise<number> {
  const limit = integerOption(options.limit, '--limit', 1);
  const runs = await readFromStore(io, options, (store) => store.listRuns({ limit, ...(options.job !== undefined ? { job: options.job } : {}) }));
  if (runs === null) return 0;
  if (outputFormat(io, options) === 'json') writeJson(io, runs.map(runJson));
  else io.stdout.write(`${runsTable(runs, { width: terminalWidth(io) })}\n`);
  return 0;
}

export async function runsShow(io: CliIO, args: unknown[], options: ManifestFlags & OutputFlags): Promise<number> {
  const runId = String(args[0]);
  const { store, missing } = await openStoreToRead(io, options);
  if (!store) throw new UsageError(`no run ${runId}: ${missing}`);
  try {
    const run = await store.getRun(runId);
    if (!run) throw new UsageError(`no run ${runId} in ${store.description}`);
    const tombstones = await store.findTombstones({ runId });
    const journal = await store.journal({ runId });
    const counts: Record<string, number> = {};
    for (const t of tombstones) {
      const key = t.markedRunId === runId && t.outcomeRunId !== runId ? 'marked' : t.state;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    const failed = journal.filter((j) => j.outcome === 'failed');
    const detail = { run: runJson(run), counts, journal: journal.map((j) => ({ ...j, at: iso(j.at) })), failed: failed.length };
    if (outputFormat(io, options) === 'json') {
      writeJson(io, detail);
    } else {
      io.stdout.write(`${runsTable([run], { width: terminalWidth(io) })}\n`);
      io.stdout.write(`tombstones: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'}\n`);
      for (const j of journal) io.stdout.write(`${j.outcome.padEnd(8)} ${j.resource} ${quoted(j.resourceId)}${j.error ? ` (${j.error})` : ''}\n`);
      if (run.error) io.stdout.write(`error: ${run.error}\n`);
    }
    return 0;
  } finally {
    await store.close();
  }
}
