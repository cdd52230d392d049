/** A worker thread of src/sim/parallel.ts: runs one strategy over one scenario per message. */
import { parentPort } from 'node:worker_threads';
import { runStrategy } from './run.js';
import type { Task } from './parallel.js';

parentPort?.on('message', (task: Task) => {
  parentPort!.postMessage(runStrategy(task.scenario, task.strategy).result);
});
