/**
 * Strategies (and the values of a --vary sweep) are independent runs: spread them over
 * worker threads, one per core, largest first. Results are the same as in one thread —
 * each run has its own seeded streams — and come back in the order asked. Where the
 * worker script is not built JavaScript (tests running the TypeScript sources) or there is
 * one run, everything runs in this thread.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { StrategyResult } from './metrics.js';
import { runStrategy } from './run.js';
import type { Scenario, StrategyName } from './scenario.js';

export interface Task {
  scenario: Scenario;
  strategy: StrategyName;
}

/** Rough relative cost, so the slowest runs start first. */
const WEIGHT: Record<StrategyName, number> = { leases: 4, refcount: 1, 'weighted-refcount': 1, 'mark-sweep': 1, epochs: 1, hybrid: 1 };

const WORKER = new URL('./worker.js', import.meta.url);

export async function runTasks(tasks: readonly Task[], threads = availableParallelism()): Promise<StrategyResult[]> {
  const workers = Math.min(threads, tasks.length);
  if (workers <= 1 || !WORKER.pathname.endsWith('.js') || !existsSync(fileURLToPath(WORKER))) return tasks.map((t) => runStrategy(t.scenario, t.strategy).result);
  const order = tasks.map((_, i) => i).sort((a, b) => WEIGHT[tasks[b]!.strategy] - WEIGHT[tasks[a]!.strategy] || a - b);
  const results: StrategyResult[] = new Array(tasks.length);
  let next = 0;
  const pool = [...Array(workers).keys()].map(async () => {
    const worker = new Worker(WORKER);
    try {
      while (next < order.length) {
        const index = order[next++]!;
        results[index] = await new Promise<StrategyResult>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
          worker.postMessage(tasks[index]);
        });
        worker.removeAllListeners('error');
      }
    } finally {
      await worker.terminate();
    }
  });
  await Promise.all(pool);
  return results;
}
