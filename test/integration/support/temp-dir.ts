/**
 * Temporary directories for tests: removed once the test that made one has passed, kept
 * as evidence when it failed (as the test databases are; see services.ts). Call it from
 * inside a test (or a function a test calls).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';

export function testTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  // onTestFinished runs after the afterEach hooks, so stores and servers they close are closed by now.
  onTestFinished(({ task }) => {
    if (task.result?.state === 'pass') rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
