/**
 * The files backend refuses an id that would leave its root as a safety rail (docs/safety.md §6):
 * a SafetyError, exit code 4, like the other rails, never a plain runtime error (exit 3).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { restoreFile } from '../../src/backends/fs/fs-sweep.js';
import { ExitCode, SafetyError } from '../../src/errors.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

it.each(['../outside', 'a/../../outside', '/etc/passwd'])('refuses to restore %s outside the root with exit code 4', async (id) => {
  const root = mkdtempSync(path.join(tmpdir(), 'reaper-scope-'));
  dirs.push(root);
  const refusal = await restoreFile(root, id, 'handle').then(
    () => null,
    (error: unknown) => error,
  );
  expect(refusal).toBeInstanceOf(SafetyError);
  expect((refusal as SafetyError).exitCode).toBe(ExitCode.safety);
  expect(ExitCode.safety).toBe(4);
  expect((refusal as Error).message).toMatch(/refusing path outside the scope/);
});
