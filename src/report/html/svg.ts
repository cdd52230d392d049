/**
 * Inline SVG charts for the HTML report: pure functions from numbers to markup. Every
 * mark carries its number three ways: as text on the chart, in a <title> (the tooltip),
 * and in `data-value` (for tests and scripts). Colours come from CSS classes, so the
 * page's style sheet themes them; no inline style attribute is written (the page's
 * Content-Security-Policy allows none).
 */
import { cut } from '../../util/format.js';
import { esc } from './escape.js';

/** Width of a chart's coordinate system: half a page for bars and columns, a whole one for lines. */
const HALF = 540;
const WHOLE = 1080;

export interface Bar {
  label: string;
  value: number;
  /** The value as shown (e.g. "1.2 MiB"). */
  display: string;
  /** Tooltip text; defaults to `label: display`. */
  title?: string;
  /** CSS class of the bar. */
  cls?: string;
}

const svgOpen = (width: number, height: number, label: string, cls: string) =>
  `<svg class="chart ${cls}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(label)}" preserveAspectRatio="xMinYMin meet">`;

/**
 * One stacked horizontal bar: the parts of a whole (a type's resources by status). Parts
 * of zero are left out; a tiny part still gets one pixel, so it can be seen.
 */
export function stackedBar(parts: readonly (Bar & { key: string })[], options: { label: string; width?: number; height?: number }): string {
  const width = options.width ?? 480;
  const height = options.height ?? 18;
  const total = parts.reduce((sum, p) => sum + p.value, 0);
  const shown = parts.filter((p) => p.value > 0);
  let x = 0;
  const rects = shown.map((p, i) => {
    const remaining = width - x;
    const w = i === shown.length - 1 ? remaining : Math.min(remaining, Math.max(1, (p.value / total) * width));
    const rect = `<rect class="${esc(p.cls ?? '')}" x="${fmt(x)}" y="0" width="${fmt(w)}" height="${height}" data-key="${esc(p.key)}" data-value="${p.value}"><title>${esc(p.title ?? `${p.label}: ${p.display}`)}</title></rect>`;
    x += w;
    return rect;
  });
  const empty = total === 0 ? `<rect class="empty" x="0" y="0" width="${width}" height="${height}" data-value="0"><title>nothing scanned</title></rect>` : '';
  return `<svg class="stacked" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(options.label)}" preserveAspectRatio="none">${empty}${rects.join('')}</svg>`;
}

/** Horizontal bars, one per row, largest first as given: label, bar, value. */
export function horizontalBars(bars: readonly Bar[], options: { label: string; cls?: string }): string {
  const row = 24;
  const labelWidth = 200;
  const valueWidth = 80;
  const barMax = HALF - labelWidth - valueWidth - 8;
  const max = Math.max(0, ...bars.map((b) => b.value));
  const height = Math.max(row, bars.length * row) + 4;
  const rows = bars.map((b, i) => {
    const y = i * row + 2;
    const w = max === 0 ? 0 : Math.max(b.value > 0 ? 1 : 0, (b.value / max) * barMax);
    const title = esc(b.title ?? `${b.label}: ${b.display}`);
    return (
      `<g class="bar" data-label="${esc(b.label)}" data-value="${b.value}"><title>${title}</title>` +
      `<text class="label" x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${esc(cut(b.label, 26))}</text>` +
      `<rect class="${esc(b.cls ?? 'fill')}" x="${labelWidth}" y="${y + 3}" width="${fmt(w)}" height="${row - 8}" rx="2"/>` +
      `<text class="value" x="${fmt(labelWidth + w + 6)}" y="${y + 16}">${esc(b.display)}</text></g>`
    );
  });
  return `${svgOpen(HALF, height, options.label, options.cls ?? 'hbars')}${rows.join('')}</svg>`;
}

/** Vertical bars over ordered buckets (a histogram): count above each bar, bucket label below. */
export function columnChart(bars: readonly Bar[], options: { label: string; cls?: string }): string {
  const height = 220;
  const top = 24;
  const bottom = 32;
  const plot = height - top - bottom;
  const slot = HALF / Math.max(1, bars.length);
  const barWidth = Math.min(56, slot * 0.7);
  const max = Math.max(0, ...bars.map((b) => b.value));
  const cols = bars.map((b, i) => {
    const h = max === 0 ? 0 : Math.max(b.value > 0 ? 1 : 0, (b.value / max) * plot);
    const cx = slot * i + slot / 2;
    const y = top + plot - h;
    return (
      `<g class="column" data-label="${esc(b.label)}" data-value="${b.value}"><title>${esc(b.title ?? `${b.label}: ${b.display}`)}</title>` +
      `<rect class="${esc(b.cls ?? 'fill')}" x="${fmt(cx - barWidth / 2)}" y="${fmt(y)}" width="${fmt(barWidth)}" height="${fmt(h)}" rx="2"/>` +
      `<text class="value" x="${fmt(cx)}" y="${fmt(y - 6)}" text-anchor="middle">${esc(b.display)}</text>` +
      `<text class="label" x="${fmt(cx)}" y="${height - 10}" text-anchor="middle">${esc(b.label)}</text></g>`
    );
  });
  const axis = `<line class="axis" x1="0" x2="${HALF}" y1="${top + plot}" y2="${top + plot}"/>`;
  return `${svgOpen(HALF, height, options.label, options.cls ?? 'columns')}${axis}${cols.join('')}</svg>`;
}

export interface Series {
  key: string;
  label: string;
  /** One value per x position; null where the series has none (the line breaks there). */
  values: readonly (number | null)[];
}

/** Lines over evenly spaced x positions (runs), with a point per value and a labelled y axis. */
export function lineChart(xLabels: readonly string[], series: readonly Series[], options: { label: string }): string {
  const height = 260;
  const left = 56;
  const right = 40;
  const top = 16;
  const bottom = 40;
  const plotW = WHOLE - left - right;
  const plotH = height - top - bottom;
  const max = niceCeiling(Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null))));
  const n = xLabels.length;
  const xAt = (i: number) => left + (n <= 1 ? plotW / 2 : (i / (n - 1)) * plotW);
  const yAt = (v: number) => top + plotH - (max === 0 ? 0 : (v / max) * plotH);
  const grid: string[] = [];
  for (let k = 0; k <= 4; k++) {
    const v = (max / 4) * k;
    const y = yAt(v);
    grid.push(`<line class="grid" x1="${left}" x2="${WHOLE - right}" y1="${fmt(y)}" y2="${fmt(y)}"/><text class="tick" x="${left - 6}" y="${fmt(y + 4)}" text-anchor="end">${esc(compact(v))}</text>`);
  }
  // At most six x labels: the first, the last, and evenly between.
  const every = Math.max(1, Math.ceil(n / 6));
  xLabels.forEach((label, i) => {
    if (i % every !== 0 && i !== n - 1) return;
    const anchor = n > 1 && i === 0 ? 'start' : n > 1 && i === n - 1 ? 'end' : 'middle';
    grid.push(`<text class="tick" x="${fmt(xAt(i))}" y="${height - 14}" text-anchor="${anchor}">${esc(label)}</text>`);
  });
  const lines = series.map((s) => {
    const segments: string[][] = [];
    let current: string[] = [];
    const points: string[] = [];
    s.values.forEach((v, i) => {
      if (v === null) {
        if (current.length) segments.push(current);
        current = [];
        return;
      }
      current.push(`${fmt(xAt(i))},${fmt(yAt(v))}`);
      points.push(`<circle class="point" cx="${fmt(xAt(i))}" cy="${fmt(yAt(v))}" r="3.5" data-index="${i}" data-value="${v}"><title>${esc(`${xLabels[i] ?? ''} ${s.label}: ${v.toLocaleString('en-US')}`)}</title></circle>`);
    });
    if (current.length) segments.push(current);
    const polylines = segments.filter((seg) => seg.length > 1).map((seg) => `<polyline class="line" points="${seg.join(' ')}"/>`);
    return `<g class="series series-${esc(s.key)}" data-series="${esc(s.key)}">${polylines.join('')}${points.join('')}</g>`;
  });
  return `${svgOpen(WHOLE, height, options.label, 'lines')}${grid.join('')}${lines.join('')}</svg>`;
}

/** A small square in a series' or status' colour, for legends. */
export function swatch(cls: string): string {
  return `<svg class="swatch" viewBox="0 0 12 12" width="12" height="12" aria-hidden="true"><rect class="${esc(cls)}" width="12" height="12" rx="2"/></svg>`;
}

/** The smallest 1, 2 or 5 × 10^k at or above `n` (0 stays 0). */
export function niceCeiling(n: number): number {
  if (n <= 0) return 0;
  const magnitude = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= n) return step * magnitude;
  return 10 * magnitude;
}

function compact(n: number): string {
  if (n >= 1e9) return `${trim(n / 1e9)}G`;
  if (n >= 1e6) return `${trim(n / 1e6)}M`;
  if (n >= 1e3) return `${trim(n / 1e3)}k`;
  return trim(n);
}

const trim = (n: number) => String(Math.round(n * 10) / 10);
const fmt = (n: number) => String(Math.round(n * 10) / 10);
