/**
 * `restore`'s note on a deleted resource it cannot bring back names what that type's backend
 * needs to keep copies, by the manifest keys of docs/manifest.md.
 */
import { describe, expect, it } from 'vitest';
import { notRestorableDetail } from '../../src/run/restore.js';
import type { ResourceSpec } from '../../src/manifest/types.js';

const spec = (location: object, extra: object = {}) => ({ name: 't', location, ...extra }) as unknown as ResourceSpec;
const handler = { conditional: true, allowUnconditional: false, timeoutMs: 1000, maxLineBytes: 1, maxOutputBytes: 1 };

describe('the not-restorable note', () => {
  it('files: quarantine and retain, or the one still missing', () => {
    const fs = { kind: 'fs', path: '/data' };
    expect(notRestorableDetail(spec(fs), null, true)).toBe('the backend kept no copy; to keep the files later runs delete, set quarantine and retain on the type');
    expect(notRestorableDetail(spec(fs, { quarantine: '/q' }), null, true)).toBe('the backend kept no copy; to keep the files later runs delete, set retain on the type');
    expect(notRestorableDetail(spec(fs, { quarantine: '/q', retainMs: 1 }), null, true)).toBe('the backend kept no copy: it was deleted before the type kept copies');
  });

  it('SQL: archive', () => {
    for (const kind of ['postgres', 'mysql']) {
      expect(notRestorableDetail(spec({ kind, table: 't' }), null, true)).toBe('the backend kept no copy; to keep the rows later runs delete, set archive on the type');
    }
  });

  it('S3: versioning on the bucket', () => {
    expect(notRestorableDetail(spec({ kind: 's3', bucket: 'b', prefix: '' }), null, true)).toBe(
      'the backend kept no copy; to keep the objects later runs delete, enable versioning on the bucket (and set requireVersioning on the type)',
    );
  });

  it('command and http: a restore operation, and a delete that answers a restoreHandle', () => {
    expect(notRestorableDetail(spec({ kind: 'command', ...handler }), null, false)).toBe(
      'the backend kept no copy; to restore what later runs delete, give the type a restore command, and have its delete answer a restoreHandle',
    );
    expect(notRestorableDetail(spec({ kind: 'command', ...handler, restore: { shell: 'x' } }), null, true)).toBe('the backend kept no copy: the handler\'s delete answered no restoreHandle');
    expect(notRestorableDetail(spec({ kind: 'http', ...handler, restore: false }), 'h1', false)).toBe(
      'the handler kept a copy, but the type cannot restore it: set restore: true on the http type (the webhook serves restore)',
    );
  });
});
