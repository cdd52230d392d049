/** Durations in manifests and flags: a whole number and a unit (`500ms`, `30s`, `10m`, `24h`, `7d`). */

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+)(ms|s|m|h|d)$/;

/** Parse a duration to milliseconds, or return an explanation of what is wrong. */
export function parseDuration(text: string): number | { error: string } {
  const trimmed = text.trim();
  if (trimmed.startsWith('-')) return { error: `"${text}" is negative; durations are zero or more` };
  const match = DURATION.exec(trimmed);
  if (!match) {
    if (/^\d+$/.test(trimmed)) return { error: `"${text}" has no unit; write e.g. ${trimmed}s, ${trimmed}m or ${trimmed}h` };
    return { error: `"${text}" is not a duration; write a whole number and a unit: 30s, 10m, 24h, 7d` };
  }
  const value = Number(match[1]) * UNITS[match[2]!]!;
  if (!Number.isSafeInteger(value)) return { error: `"${text}" is too large` };
  return value;
}

/** Parse a duration or throw; for flags already known to be present. */
export function durationMs(text: string): number {
  const parsed = parseDuration(text);
  if (typeof parsed !== 'number') throw new RangeError(parsed.error);
  return parsed;
}

/** Render milliseconds back as the largest exact unit (`90000` → `90s`, `3600000` → `1h`). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
