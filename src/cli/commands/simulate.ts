/**
 * `reaper simulate SCENARIO`: run a scenario through the garbage-collection strategies
 * it compares (deterministic: the same file and seed give the same output, byte for
 * byte) and print a table or JSON; `--html` writes a self-contained report, `--svg` the
 * charts, `--vary` sweeps one parameter. `--live` runs the scenario's leases strategy for
 * real — files, SQLite, `reaper daemon` and `reaper reap` processes — beside the simulator.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ManifestError, UsageError } from '../../errors.js';
import { simulationDocument, type SimulationRun } from '../../sim/document.js';
import { simulationCharts, simulationHtml } from '../../sim/render/html.js';
import { simulationTable } from '../../sim/render/table.js';
import { runTasks } from '../../sim/parallel.js';
import { MAX_SCENARIO_BYTES, parseScenario, STRATEGY_NAMES, type Scenario, type StrategyName } from '../../sim/scenario.js';
import { applyVary, parseVary } from '../../sim/vary.js';
import type { OutputFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { integerOption, outputFormat } from '../options.js';
import { writeJson } from '../print.js';

export async function loadScenario(io: CliIO, file: string, seed?: number): Promise<Scenario> {
  const absolute = path.resolve(io.cwd, file);
  let text: string;
  try {
    if ((await stat(absolute)).size > MAX_SCENARIO_BYTES) throw new ManifestError([{ file, line: null, path: '', message: `the scenario is larger than ${MAX_SCENARIO_BYTES} bytes` }]);
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    if (error instanceof ManifestError) throw error;
    throw new ManifestError([{ file, line: null, path: '', message: `cannot read the scenario: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` }]);
  }
  return parseScenario(text, file, seed);
}

function strategiesOption(value: string[] | undefined): StrategyName[] | undefined {
  if (value === undefined) return undefined;
  const names = value.flatMap((v) => v.split(','));
  const unknown = names.filter((n) => !(STRATEGY_NAMES as readonly string[]).includes(n));
  if (unknown.length) throw new UsageError(`--strategy: unknown ${unknown.join(', ')} (one of ${STRATEGY_NAMES.join(', ')})`);
  return names as StrategyName[];
}

export interface SimulateFlags extends OutputFlags {
  seed?: string;
  strategy?: string[];
  vary?: string;
  steps?: string;
  html?: string;
  svg?: string;
  live?: boolean;
  workDir?: string;
}

export async function simulateCommand(io: CliIO, args: unknown[], options: SimulateFlags): Promise<number> {
  const seed = options.seed === undefined ? undefined : integerOption(options.seed, '--seed');
  const only = strategiesOption(options.strategy);
  const steps = integerOption(options.steps ?? '6', '--steps', 2);
  const vary = options.vary === undefined ? null : parseVary(options.vary, steps);
  const format = outputFormat(io, options);
  const scenario = await loadScenario(io, String(args[0]), seed);
  if (options.live) {
    if (vary) throw new UsageError('--live runs one scenario; leave out --vary');
    const { runLive } = await import('../../sim/live/live.js');
    return runLive(io, scenario, { workDir: options.workDir, format });
  }

  const names = scenario.compare.filter((n) => !only || only.includes(n));
  const variants = vary ? vary.values.map((value) => ({ value, scenario: applyVary(scenario, vary, value) })) : [{ value: null, scenario }];
  const results = await runTasks(variants.flatMap((v) => names.map((strategy) => ({ scenario: v.scenario, strategy }))));
  const runs: SimulationRun[] = variants.map((v, i) => ({ value: v.value, results: results.slice(i * names.length, (i + 1) * names.length) }));
  const doc = simulationDocument(scenario, io.version(), vary, runs);
  if (options.html !== undefined) await writeFile(path.resolve(io.cwd, options.html), simulationHtml(doc));
  if (options.svg !== undefined) {
    const dir = path.resolve(io.cwd, options.svg);
    await mkdir(dir, { recursive: true });
    for (const chart of simulationCharts(doc)) await writeFile(path.join(dir, `${chart.name}.svg`), `${chart.svg}\n`);
  }
  if (format === 'json') writeJson(io, doc);
  else io.stdout.write(`${simulationTable(doc)}\n`);
  return 0;
}
