/** How `reaper demo`'s "try next" lines call reaper, wherever it runs from. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tryNextCommand } from '../../src/cli/commands/demo.js';

const clone = '/home/me/reaper';
const module = path.join(clone, 'dist', 'cli', 'commands', 'demo.js');

describe('the demo\'s "try next" command', () => {
  it('is `reaper` where reaper is installed', () => {
    expect(tryNextCommand('/tmp', '/usr/lib/node_modules/orphan-reaper/dist/cli/commands/demo.js')).toBe('reaper');
  });

  it('is `npx reaper` inside the clone, where npx finds the clone\'s bin', () => {
    expect(tryNextCommand(clone, module)).toBe('npx reaper');
    expect(tryNextCommand(path.join(clone, 'sandbox'), module)).toBe('npx reaper');
  });

  it('is the clone\'s bin by its path outside it (npx would offer the registry\'s unrelated `reaper`)', () => {
    expect(tryNextCommand('/tmp/work', module)).toBe('/home/me/reaper/bin/reaper');
    expect(tryNextCommand('/home/me/reaper-other', module)).toBe('/home/me/reaper/bin/reaper');
    expect(tryNextCommand('/tmp', path.join("/home/me/my clone's", 'dist', 'cli', 'commands', 'demo.js'))).toBe("'/home/me/my clone'\\''s/bin/reaper'");
  });
});
