/** The SQL scan's paging: the next page is read while the caller judges this one, and a read that fails reaches only a caller that asks for it. */
import { describe, expect, it } from 'vitest';
import type { DeleteItem } from '../../src/backends/types.js';
import { SqlBackend, type DeletedChunk, type KeyRange, type RestoreOutcome, type SqlResourceSpec, type SqlRow } from '../../src/backends/sql/sql-backend.js';

const spec = {
  name: 'rows',
  owners: [{ extractor: { from: 'column', name: 'owner' } }],
  protect: [],
  location: { kind: 'postgres', connection: 'db', table: 't', id: 'id', createdAt: 'created_at' },
} as unknown as SqlResourceSpec;

/** Rows with ids 1..count; `failAt` makes the page after that id fail. */
class TableOf extends SqlBackend {
  readonly kind = 'postgres' as const;
  readonly asked: (string | null)[] = [];
  constructor(
    private readonly count: number,
    private readonly failAt: string | null = null,
  ) {
    super(spec, 'test table', null);
  }
  protected async selectPage(after: string | null, limit: number, _range?: KeyRange): Promise<SqlRow[]> {
    this.asked.push(after);
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (after !== null && after === this.failAt) throw new Error(`page after ${after} failed`);
    const from = after === null ? 1 : Number(after) + 1;
    const ids = Array.from({ length: Math.max(0, Math.min(limit, this.count - from + 1)) }, (_, i) => from + i);
    return ids.map((id) => ({ reaper_id: String(id), reaper_created_ms: 0, reaper_bytes: 1, reaper_fp: 'f', reaper_o0: 'o' }));
  }
  protected async selectInRange(): Promise<string[]> {
    return [];
  }
  protected async firstUnordered(): Promise<number> {
    return -1;
  }
  protected async selectIds(): Promise<SqlRow[]> {
    return [];
  }
  protected async selectRangeBounds(): Promise<SqlRow[]> {
    return [];
  }
  protected async deleteChunk(_items: readonly DeleteItem[]): Promise<DeletedChunk> {
    return { deleted: new Set(), present: new Set() };
  }
  protected async markChunk(): Promise<Map<string, string>> {
    return new Map();
  }
  protected async unmarkChunk(): Promise<void> {}
  protected async createArchive(): Promise<void> {}
  protected async restoreRow(): Promise<RestoreOutcome> {
    return 'no-archived-copy';
  }
}

describe('SqlBackend.scan', () => {
  it('asks for the next page while the caller holds this one, and yields every row once, in order', async () => {
    const table = new TableOf(7);
    const seen: string[] = [];
    const askedWhenHeld: number[] = [];
    for await (const page of table.scan({ pageSize: 3 })) {
      askedWhenHeld.push(table.asked.length);
      seen.push(...page.records.map((r) => r.id));
    }
    expect(seen).toEqual(['1', '2', '3', '4', '5', '6', '7']);
    expect(table.asked).toEqual([null, '3', '6']);
    // The last page asks for none after it.
    expect(askedWhenHeld).toEqual([2, 3, 3]);
  });

  it('hands a failed read to the caller that asks for that page, and to no other', async () => {
    const failing = new TableOf(9, '3');
    const pages: string[][] = [];
    await expect(
      (async () => {
        for await (const page of failing.scan({ pageSize: 3 })) pages.push(page.records.map((r) => r.id));
      })(),
    ).rejects.toThrow('page after 3 failed');
    expect(pages).toEqual([['1', '2', '3']]);

    // A caller that stops after the first page never meets the failure (nor does the process, as an unhandled rejection).
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      const stopping = new TableOf(9, '3');
      for await (const page of stopping.scan({ pageSize: 3 })) {
        expect(page.records.map((r) => r.id)).toEqual(['1', '2', '3']);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(stopping.asked).toEqual([null, '3']);
    } finally {
      process.off('unhandledRejection', listener);
    }
    expect(unhandled).toEqual([]);
  });
});
