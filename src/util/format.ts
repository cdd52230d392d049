/** Number formatting for human output. */

/** Bytes in binary units (KiB = 1024 B), or with `decimal` in decimal ones (KB = 1000 B). */
export function formatBytes(bytes: number, units: 'binary' | 'decimal' = 'binary'): string {
  const step = units === 'binary' ? 1024 : 1000;
  const names = units === 'binary' ? ['B', 'KiB', 'MiB', 'GiB', 'TiB'] : ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= step && unit < names.length - 1) {
    value /= step;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${names[unit]}`;
}

export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)}m`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)}h`;
  return `${(seconds / 86400).toFixed(1)}d`;
}
