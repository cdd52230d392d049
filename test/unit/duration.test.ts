/** Durations (docs/manifest.md, Rules for all values): a whole number and a unit; anything else is explained, never guessed. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { durationMs, formatDuration, parseDuration } from '../../src/manifest/duration.js';

describe('parseDuration', () => {
  it('reads every unit', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration(' 15m ')).toBe(900_000);
  });

  it('explains a number without a unit', () => {
    expect(parseDuration('600')).toEqual({ error: '"600" has no unit; write e.g. 600s, 600m or 600h' });
  });

  it('explains a negative duration', () => {
    expect(parseDuration('-5m')).toEqual({ error: '"-5m" is negative; durations are zero or more' });
    expect(parseDuration('-0s')).toEqual({ error: '"-0s" is negative; durations are zero or more' });
  });

  it('refuses fractions, unknown or upper-case units, spaces inside, and empty text', () => {
    for (const text of ['1.5h', '1.5', '10M', '3w', '1 h', '1h30m', 'h', '', 'soon', '0x10s', '1e3s']) {
      expect(parseDuration(text), text).toEqual({ error: `"${text}" is not a duration; write a whole number and a unit: 30s, 10m, 24h, 7d` });
    }
  });

  it('refuses a duration too large to hold exactly', () => {
    expect(parseDuration('999999999999999d')).toEqual({ error: '"999999999999999d" is too large' });
  });
});

describe('durationMs', () => {
  it('returns milliseconds or throws a RangeError with the explanation', () => {
    expect(durationMs('2h')).toBe(7_200_000);
    expect(() => durationMs('2')).toThrow(new RangeError('"2" has no unit; write e.g. 2s, 2m or 2h'));
  });
});

describe('formatDuration', () => {
  it('uses the largest exact unit', () => {
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(86_400_000 * 2)).toBe('2d');
    expect(formatDuration(1_500)).toBe('1500ms');
    expect(formatDuration(0)).toBe('0ms');
  });

  it('round-trips through parseDuration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.constantFrom('ms', 's', 'm', 'h', 'd'), (n, unit) => {
        const ms = parseDuration(`${n}${unit}`);
        expect(typeof ms).toBe('number');
        expect(parseDuration(formatDuration(ms as number))).toBe(ms);
      }),
    );
  });
});
