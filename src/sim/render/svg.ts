/**
 * Charts as standalone SVG (no script, no font or style from outside): line charts for
 * a parameter sweep, bar charts for a single run. Numbers are printed with fixed
 * precision so the same data give the same bytes.
 */
const W = 560;
const H = 300;
const M = { left: 64, right: 150, top: 34, bottom: 46 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const n = (x: number) => (Math.round(x * 10) / 10).toString();

/** Round ticks (1, 2, 5 × 10^k) from 0 to at least `max`. */
function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(Math.round(v / step) * step);
  return out;
}

function label(v: number): string {
  if (v >= 1e6) return `${n(v / 1e6)}M`;
  if (v >= 1e4) return `${n(v / 1e3)}k`;
  return Number.isInteger(v) ? String(v) : v.toPrecision(3).replace(/\.?0+$/, '');
}

function frame(title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${M.left}" y="20" font-size="13" font-weight="bold">${esc(title)}</text>`,
    ...body,
    '</svg>',
  ].join('\n');
}

function yAxis(max: number, lines: string[]): (v: number) => number {
  const ys = ticks(max);
  const top = ys[ys.length - 1]!;
  const y = (v: number) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  for (const t of ys) {
    lines.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${n(y(t))}" y2="${n(y(t))}" stroke="#e5e5e5"/>`);
    lines.push(`<text x="${M.left - 6}" y="${n(y(t) + 4)}" text-anchor="end" fill="#444">${label(t)}</text>`);
  }
  lines.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#888"/>`);
  return y;
}

export interface Series {
  name: string;
  color: string;
  points: readonly (readonly [number, number | null])[];
}

export function lineChart(title: string, xLabel: string, xFormat: (x: number) => string, series: readonly Series[]): string {
  const lines: string[] = [];
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const maxY = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1] ?? 0)));
  const y = yAxis(maxY, lines);
  const x0 = xs[0] ?? 0;
  const x1 = xs[xs.length - 1] ?? 1;
  const x = (v: number) => M.left + (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0)) * (W - M.left - M.right);
  for (const v of xs) lines.push(`<text x="${n(x(v))}" y="${H - M.bottom + 16}" text-anchor="middle" fill="#444">${esc(xFormat(v))}</text>`);
  lines.push(`<text x="${n((M.left + W - M.right) / 2)}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[1] !== null).map((p) => `${n(x(p[0]))},${n(y(p[1]!))}`);
    if (pts.length) lines.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.join(' ')}"/>`);
    for (const p of pts) lines.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${s.color}"/>`);
    const ly = M.top + 6 + i * 16;
    lines.push(`<rect x="${W - M.right + 12}" y="${ly - 8}" width="10" height="10" fill="${s.color}"/>`);
    lines.push(`<text x="${W - M.right + 26}" y="${ly + 1}">${esc(s.name)}</text>`);
  });
  return frame(title, lines);
}

export function barChart(title: string, bars: readonly { name: string; color: string; value: number | null }[]): string {
  const lines: string[] = [];
  const y = yAxis(Math.max(0, ...bars.map((b) => b.value ?? 0)), lines);
  const slot = (W - M.left - M.right) / Math.max(1, bars.length);
  bars.forEach((b, i) => {
    const cx = M.left + slot * (i + 0.5);
    const v = b.value ?? 0;
    lines.push(`<rect x="${n(cx - slot * 0.35)}" y="${n(y(v))}" width="${n(slot * 0.7)}" height="${n(y(0) - y(v))}" fill="${b.color}"/>`);
    lines.push(`<text x="${n(cx)}" y="${n(y(v) - 4)}" text-anchor="middle" fill="#222">${b.value === null ? '-' : label(v)}</text>`);
    lines.push(`<text x="${n(cx)}" y="${H - M.bottom + 16}" text-anchor="middle" fill="#444">${esc(b.name)}</text>`);
  });
  return frame(title, lines);
}
