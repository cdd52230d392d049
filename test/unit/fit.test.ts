/** Tables fitted to a terminal's width keep every value. */
import { describe, expect, it } from 'vitest';
import { fitTable, renderedWidth, wrapText } from '../../src/report/fit.js';

const spec = {
  head: ['resource', 'backend', 'scanned', 'live', 'orphaned', 'expired', 'protected', 'young', 'unknown', 'orphan bytes', 'beyond ttl (avg)', 'backlog'],
  rows: [
    ['scratch-uploads', 'fs', 10, 2, 5, 1, 1, 1, 0, '433.4 KiB', '1.0d', 0],
    ['total', '', 13, 3, 6, 2, 1, 1, 0, '482.3 KiB', '', 0],
  ],
  titleCells: 2,
};

describe('fitTable', () => {
  it('draws the whole table when it fits, or when no width is known', () => {
    const whole = fitTable(spec);
    expect(renderedWidth(whole)).toBe(141);
    expect(fitTable(spec, 200)).toBe(whole);
  });

  for (const width of [80, 40, 24]) {
    it(`at ${width} columns no line is wider, and every value is still shown`, () => {
      const text = fitTable(spec, width);
      expect(renderedWidth(text)).toBeLessThanOrEqual(width);
      for (const [i, head] of spec.head.entries()) {
        if (i < 2) continue;
        expect(text).toContain(`${head} ${spec.rows[0]![i]}`);
      }
      expect(text.split('\n')[0]).toBe('scratch-uploads  fs');
    });
  }

  it('cuts the shrinkable columns, widest first, before giving up the table', () => {
    const ids = { head: ['resource', 'id', 'status'], rows: [['uploads', 'a/very/long/object/key/that/goes/on/and/on.bin', 'orphaned']], shrink: [1] };
    const text = fitTable(ids, 50);
    expect(renderedWidth(text)).toBe(50);
    expect(text).toContain('│ a/very/long/object/key/… │');
    expect(text).toContain('orphaned');
  });

  it('wraps a long line at spaces', () => {
    expect(wrapText('uploads: 5 pending, earliest sweep at 2026-01-01T00:00:00Z', 30)).toBe('uploads: 5 pending, earliest\n  sweep at\n  2026-01-01T00:00:00Z');
    expect(wrapText('short', undefined)).toBe('short');
  });

  it('wraps each line of a text on its own: lines that fit are left as they are, indentation kept', () => {
    const block = fitTable(spec, 60);
    expect(wrapText(block, 60)).toBe(block);
    expect(wrapText('one two\n  three four five', 12)).toBe('one two\n  three four\n    five');
  });
});
