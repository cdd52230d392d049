import { UsageError } from '../../errors.js';
import type { CliIO } from '../../cli/io.js';
import type { Scenario } from '../scenario.js';

export async function runLive(_io: CliIO, _scenario: Scenario, _options: { workDir?: string; format: 'table' | 'json' }): Promise<number> {
  throw new UsageError('--live is not built yet');
}
