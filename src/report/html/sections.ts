/**
 * The report's views as HTML sections, from ReportData (and LiveData for the daemon's
 * live view). Pure: data in, markup out. Shared by the standalone file and `/ui`, where
 * the client script swaps them in place when fresh data arrives.
 */
import type { Status } from '../../engine/types.js';
import { formatBytes, formatSeconds } from '../../util/format.js';
import { esc } from './escape.js';
import { STATUS_ORDER, type LiveData, type ReportData, type TypeView } from './model.js';
import { columnChart, horizontalBars, lineChart, stackedBar, swatch, type Series } from './svg.js';

const num = (n: number) => n.toLocaleString('en-US');
const orDash = (n: number | null, show: (n: number) => string = num) => (n === null ? '—' : show(n));

/** `2026-11-22 02:19:38 UTC` from an ISO time; the text itself when it is not one. */
export function when(iso: string | null): string {
  if (iso === null) return '—';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

/** `11-22 02:19` for chart ticks. */
const tick = (iso: string) => {
  const m = /^\d{4}-(\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return m ? `${m[1]} ${m[2]}` : iso;
};

/** Sections with these ids take half the page's width on a wide screen. */
const HALF_WIDTH = new Set(['ages', 'owners', 'bytes', 'pending', 'holders', 'expiring']);

function section(id: string, title: string, body: string, intro = ''): string {
  return `<section id="${id}" aria-labelledby="h-${id}"${HALF_WIDTH.has(id) ? ' class="half"' : ''}><h2 id="h-${id}">${esc(title)}</h2>${intro ? `<p class="intro">${intro}</p>` : ''}${body}</section>`;
}

function table(caption: string, head: readonly string[], rows: readonly string[][], cls = ''): string {
  const th = head.map((h) => `<th scope="col">${h}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${c}</th>` : `<td>${c}</td>`)).join('')}</tr>`).join('');
  return `<div class="scroll"><table class="${cls}"><caption class="sr-only">${esc(caption)}</caption><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table></div>`;
}

const empty = (text: string) => `<p class="empty">${esc(text)}</p>`;

export function headerHtml(data: ReportData): string {
  const run = data.run;
  const facts: string[] = [];
  if (run) {
    facts.push(`<dt>Run</dt><dd><code>${esc(run.runId)}</code> (${esc(run.kind)})</dd>`);
    if (run.finishedAt) facts.push(`<dt>Finished</dt><dd>${esc(when(run.finishedAt))}</dd>`);
    if (run.complete !== null) facts.push(`<dt>Read whole</dt><dd>${run.complete ? 'yes' : '<strong class="bad">no — see the problems below</strong>'}</dd>`);
    if (run.part) {
      const job = run.part.job === null ? '' : ` of job <code>${esc(run.part.job)}</code>`;
      facts.push(`<dt>Part</dt><dd><strong class="bad">shard ${esc(run.part.shard)}${job}: these figures cover that shard's part of each type only</strong></dd>`);
    }
  }
  facts.push(`<dt>From</dt><dd>${data.sources.map((s) => esc(s)).join('<br>') || '—'}</dd>`);
  facts.push(`<dt>Made</dt><dd>${esc(when(data.generatedAt))} by reaper ${esc(data.reaper)}</dd>`);
  return `<header class="top"><h1>${esc(data.title)}</h1><dl class="facts">${facts.join('')}</dl></header>`;
}

export function summaryHtml(data: ReportData): string {
  const s = data.summary;
  if (!s) return section('summary', 'Summary', empty('Nothing to summarise: no audit or reap was read.'));
  const card = (metric: string, label: string, value: number | null, shown: string, cls = '') =>
    `<div class="card ${cls}" data-metric="${metric}"${value === null ? '' : ` data-value="${value}"`}><dt>${esc(label)}</dt><dd>${esc(shown)}</dd></div>`;
  const cards = [
    card('scanned', 'scanned', s.scanned, orDash(s.scanned)),
    ...STATUS_ORDER.map((st) => (st === 'live' && !s.liveKnown ? card('live', 'live', null, '—', 's-live') : card(st, st, s.counts[st], num(s.counts[st]), `s-${st}`))),
    card('orphanBytes', 'orphan bytes', s.orphanBytes, formatBytes(s.orphanBytes)),
    card('backlog', 'backlog (tombstones)', s.backlog, orDash(s.backlog)),
    card('types', 'resource types', s.types, `${num(s.types)}${s.errors ? ` (${num(s.errors)} not read whole)` : ''}`, s.errors ? 'warn' : ''),
  ];
  return section('summary', 'Summary', `<dl class="cards">${cards.join('')}</dl>`);
}

export function problemsHtml(data: ReportData): string {
  const parts: string[] = [];
  if (data.problems.length) parts.push(`<ul class="problems">${data.problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul>`);
  if (data.gates.length) {
    parts.push(
      `<h3>Gates</h3><ul class="gates">${data.gates.map((g) => `<li class="${g.ok ? 'ok' : 'bad'}" data-gate="${esc(g.expression)}" data-ok="${g.ok}"><strong>${g.ok ? 'passed' : 'FAILED'}</strong> ${esc(g.message)}</li>`).join('')}</ul>`,
    );
  }
  if (data.notes.length) parts.push(`<ul class="notes">${data.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  if (parts.length === 0) return '';
  return section('problems', data.problems.length ? 'Problems and notes' : 'Notes', parts.join(''));
}

function legend(keys: readonly Status[]): string {
  return `<ul class="legend">${keys.map((k) => `<li>${swatch(`s-${k}`)} ${k}</li>`).join('')}</ul>`;
}

function statusBar(t: TypeView): string {
  const parts = STATUS_ORDER.map((st) => ({ key: st, label: st, value: t.counts[st], display: num(t.counts[st]), cls: `s-${st}` }));
  const described = STATUS_ORDER.filter((st) => t.counts[st] > 0).map((st) => `${num(t.counts[st])} ${st}`).join(', ') || 'none';
  return stackedBar(parts, { label: `${t.name}: ${described}` });
}

export function statusHtml(data: ReportData): string {
  if (data.types.length === 0) return section('status', 'Resource types', empty('No resource type was read.'));
  const rows = data.types.map((t) => [
    `<span data-type="${esc(t.name)}">${esc(t.name)}</span>`,
    esc(t.backend),
    t.status === 'ok' ? 'whole' : t.status === 'findings' ? 'findings only' : `<span class="bad" title="${esc(t.error ?? '')}">${t.status === 'partial' ? 'partial' : 'not read'}</span>`,
    orDash(t.scanned),
    statusBar(t),
    num(t.counts.orphaned),
    num(t.counts.expired),
    num(t.counts.unknown),
    formatBytes(t.orphanBytes),
    orDash(t.backlog),
  ]);
  const more = data.typesOmitted ? `<p class="note">${num(data.typesOmitted)} more types are counted in the summary but not shown one by one.</p>` : '';
  return section(
    'status',
    'Resource types',
    `${legend(STATUS_ORDER)}${table('Resources by type and status', ['type', 'backend', 'read', 'scanned', 'statuses', 'orphaned', 'expired', 'unknown', 'orphan bytes', 'backlog'], rows, 'types')}${more}`,
  );
}

export function agesHtml(data: ReportData): string {
  const ages = data.ages;
  if (!ages) return section('ages', 'Orphan age', empty('No findings were read.'));
  if (ages.total === 0) return section('ages', 'Orphan age', empty('No orphans.'));
  const bars = ages.buckets.map((b) => ({ label: b.label, value: b.count, display: num(b.count), title: `${num(b.count)} orphans aged ${b.label}`, cls: 's-orphaned' }));
  const unknown = ages.unknown ? `<p class="note">${num(ages.unknown)} orphans of unknown age are not in the chart.</p>` : '';
  return section('ages', 'Orphan age', `${columnChart(bars, { label: `Orphans by age: ${ages.buckets.map((b) => `${b.label} ${b.count}`).join(', ')}` })}${unknown}`, `${num(ages.total)} orphans by age.`);
}

export function bytesHtml(data: ReportData): string {
  const rows = data.types.filter((t) => t.orphanBytes > 0).sort((a, b) => b.orphanBytes - a.orphanBytes);
  if (rows.length === 0) return section('bytes', 'Orphan bytes by type', empty('No orphan holds bytes.'));
  const bars = rows.map((t) => ({ label: t.name, value: t.orphanBytes, display: formatBytes(t.orphanBytes), title: `${t.name}: ${num(t.orphanBytes)} bytes in ${num(t.counts.orphaned)} orphans`, cls: 's-orphaned' }));
  return section('bytes', 'Orphan bytes by type', horizontalBars(bars, { label: `Orphan bytes by type: ${rows.map((t) => `${t.name} ${formatBytes(t.orphanBytes)}`).join(', ')}` }));
}

export function ownersHtml(data: ReportData): string {
  const owners = data.owners;
  if (!owners) return section('owners', 'Owners with the most orphans', empty('No findings were read.'));
  if (owners.rows.length === 0) return section('owners', 'Owners with the most orphans', empty('No orphans.'));
  const name = (o: string | null) => o ?? '(no owner)';
  const bars = owners.rows.map((o) => ({ label: name(o.owner), value: o.orphans, display: num(o.orphans), title: `${name(o.owner)}: ${num(o.orphans)} orphans, ${formatBytes(o.bytes)}`, cls: 'fill' }));
  const approx = owners.errorBound
    ? `<p class="note">More owners than reaper counts one by one: each count may be low by up to ${num(owners.errorBound)}.</p>`
    : '';
  return section('owners', 'Owners with the most orphans', `${horizontalBars(bars, { label: `Owners with the most orphans: ${owners.rows.map((o) => `${name(o.owner)} ${o.orphans}`).join(', ')}` })}${approx}`);
}

const TREND: { key: 'orphaned' | 'expired' | 'backlog' | 'deleted'; label: string }[] = [
  { key: 'orphaned', label: 'orphaned' },
  { key: 'expired', label: 'expired' },
  { key: 'backlog', label: 'backlog' },
  { key: 'deleted', label: 'deleted' },
];

export function trendHtml(data: ReportData): string {
  const trend = data.trend;
  if (!trend) return section('trend', 'Trend over runs', empty('No state store was read.'));
  if (trend.length === 0) return section('trend', 'Trend over runs', empty('The state store has no finished run yet.'));
  const series: Series[] = TREND.map((t) => ({ key: t.key, label: t.label, values: trend.map((p) => p[t.key]) }));
  const chart = lineChart(
    trend.map((p) => tick(p.at)),
    series,
    { label: `Orphaned, expired, backlog and deleted over the last ${trend.length} runs` },
  );
  const legendHtml = `<ul class="legend">${TREND.map((t) => `<li>${swatch(`series-${t.key}`)} ${t.label}</li>`).join('')}</ul>`;
  const rows = [...trend].reverse().map((p) => [`<code>${esc(p.runId)}</code>`, esc(p.kind), esc(p.status), esc(when(p.at)), orDash(p.orphaned), orDash(p.expired), orDash(p.backlog), orDash(p.deleted)]);
  const numbers = `<details><summary>The numbers, newest first</summary>${table('Runs', ['run', 'kind', 'status', 'finished', 'orphaned', 'expired', 'backlog', 'deleted'], rows, 'runs')}</details>`;
  return section('trend', 'Trend over runs', `${legendHtml}${chart}${numbers}`, `${trend.length === 1 ? 'The one run' : `The last ${num(trend.length)} runs`} recorded in the state store; deleted counts executed reaps only.`);
}

export function pendingHtml(data: ReportData): string {
  const pending = data.pending;
  if (!pending) return section('pending', 'Pending tombstones', empty('No state store was read.'));
  const rows = pending
    .filter((p) => p.marked > 0 || p.deleting > 0)
    .map((p) => [esc(p.resource), num(p.marked), num(p.deleting), esc(when(p.oldestMarkedAt)), p.earliestSweepAt ? esc(when(p.earliestSweepAt)) : p.marked > 0 ? 'grace not known' : '—']);
  if (rows.length === 0) return section('pending', 'Pending tombstones', empty('No tombstone is waiting for its sweep.'));
  return section(
    'pending',
    'Pending tombstones',
    table('Tombstones waiting for their sweep', ['type', 'marked', 'deleting', 'oldest mark', 'earliest sweep'], rows, 'pending'),
    'Marked orphans wait out their grace; each is judged again before its delete.',
  );
}

export function reapHtml(data: ReportData): string {
  const reap = data.reap;
  if (!reap) return '';
  const rows = reap.types.map((t) => [
    esc(t.name),
    num(t.toMark),
    num(t.toSweep),
    num(t.toLift),
    num(t.outcomes.marked),
    num(t.outcomes.deleted),
    num(t.outcomes.lifted),
    t.outcomes.failed ? `<span class="bad">${num(t.outcomes.failed)}</span>` : '0',
    formatBytes(t.outcomes.bytesReclaimed),
    t.error ? `<span class="bad">${esc(t.error)}</span>` : '',
  ]);
  const intro = reap.execute ? 'What this reap planned and what it did.' : 'A dry run: what a reap would do; nothing was marked or deleted.';
  return section('reap', 'Reap', table('Reap plan and outcomes by type', ['type', 'to mark', 'to sweep', 'to lift', 'marked', 'deleted', 'lifted', 'failed', 'reclaimed', 'refused'], rows, 'reap'), intro);
}

/** The findings table's frame; the client script fills it from the embedded (or fetched) rows. */
export function findingsHtml(data: ReportData): string {
  const f = data.findings;
  if (!f) return section('findings', 'Findings', empty('No findings were read.'));
  const intro =
    f.omitted > 0
      ? `The ${num(f.rows.length)} findings of ${num(f.total)} the table holds: orphans first, then expired, unknown, protected and young; older first. The audit's --findings NDJSON file has every one.`
      : `All ${num(f.total)} non-live findings.`;
  const statusOptions = STATUS_ORDER.filter((s) => s !== 'live')
    .map((s) => `<option value="${s}">${s}</option>`)
    .join('');
  const controls =
    `<form class="filters" role="search" aria-label="Filter the findings">` +
    `<label>Search <input type="search" name="q" placeholder="id, owner, reason" autocomplete="off"></label>` +
    `<label>Status <select name="status"><option value="">all</option>${statusOptions}</select></label>` +
    `<label>Type <select name="resource"><option value="">all</option></select></label>` +
    `</form>`;
  const head = [
    ['resource', 'type'],
    ['id', 'id'],
    ['status', 'status'],
    ['reason', 'reason'],
    ['owner', 'owner'],
    ['age', 'age'],
    ['bytes', 'bytes'],
  ]
    .map(([key, label]) => `<th scope="col" data-sort="${key}" aria-sort="none"><button type="button">${label}</button></th>`)
    .join('');
  const tableHtml = `<div class="scroll"><table class="findings"><caption class="sr-only">Findings</caption><thead><tr>${head}</tr></thead><tbody></tbody></table></div>`;
  const pager = `<nav class="pager" aria-label="Findings pages"><button type="button" data-page="prev">Previous</button><span class="status" role="status" aria-live="polite"></span><button type="button" data-page="next">Next</button></nav>`;
  return section('findings', 'Findings', `${controls}${tableHtml}${pager}<noscript><p>The findings table needs JavaScript.</p></noscript>`, intro);
}

/** The sections of a report, in page order. */
export function reportSections(data: ReportData): string[] {
  return [summaryHtml(data), problemsHtml(data), statusHtml(data), reapHtml(data), agesHtml(data), ownersHtml(data), bytesHtml(data), pendingHtml(data), trendHtml(data)].filter(Boolean);
}

// ------------------------------------------------------------------ live view (daemon /ui)

export function heartbeatHtml(live: LiveData): string {
  const h = live.heartbeat;
  const card = (metric: string, label: string, value: number | string, cls = '') => `<div class="card ${cls}" data-metric="${metric}" data-value="${esc(value)}"><dt>${esc(label)}</dt><dd>${esc(typeof value === 'number' ? num(value) : value)}</dd></div>`;
  const rate = `${(live.renewals.renewalFailureRate * 100).toFixed(1)}%`;
  const cards = [
    card('ready', 'daemon', live.ready ? 'ready' : 'not ready', live.ready ? 'ok' : 'warn'),
    card('held', 'leases held / wanted', `${h.held} / ${h.wanted}`, h.held < h.wanted ? 'warn' : ''),
    card('renewalsOk', 'heartbeat renewals', h.renewalsOk),
    card('renewalsFailed', 'renewal failures (this daemon)', h.renewalsFailed, h.renewalsFailed ? 'warn' : ''),
    card('leasesLost', 'leases lost', h.leasesLost, h.leasesLost ? 'warn' : ''),
    card('activeLeases', 'active leases (store)', live.activeLeases),
    card('failureRate', `renewal failures, last ${formatSeconds(live.renewals.windowSeconds)} (store)`, `${num(live.renewals.renewalFailures)} of ${num(live.renewals.renewals + live.renewals.renewalFailures)} (${rate})`, live.renewals.renewalFailures ? 'warn' : ''),
  ];
  return section('daemon', 'Daemon and leases', `<dl class="cards">${cards.join('')}</dl>`, `Holder <code>${esc(live.holder)}</code>; updated ${esc(when(live.at))}.`);
}

export function holdersHtml(live: LiveData): string {
  if (live.holders.length === 0) return section('holders', 'Active leases by holder', empty('No active lease.'));
  const bars = live.holders.map((h) => ({ label: h.holder, value: h.active, display: num(h.active), cls: 'fill' }));
  const capped = live.leasesCapped ? `<p class="note">Counted over the first ${num(live.holders.reduce((s, h) => s + h.active, 0))} active leases.</p>` : '';
  return section('holders', 'Active leases by holder', `${horizontalBars(bars, { label: `Active leases by holder: ${live.holders.map((h) => `${h.holder} ${h.active}`).join(', ')}` })}${capped}`);
}

export function expiringHtml(live: LiveData): string {
  const intro = 'Leases with less than a third of their ttl left: a heartbeat renews at a third, so these have missed one.';
  if (live.expiring.length === 0) return section('expiring', 'Leases about to expire', empty('None: every lease was renewed on time.'), intro);
  const rows = live.expiring.map((l) => [`<code>${esc(l.key)}</code>`, esc(l.holder), num(l.generation), `${formatSeconds(Math.max(0, l.expiresInSeconds))}`, formatSeconds(l.ttlSeconds)]);
  return section('expiring', 'Leases about to expire', table('Leases about to expire', ['key', 'holder', 'generation', 'expires in', 'ttl'], rows, 'expiring'), intro);
}

export function reapRunsHtml(live: LiveData): string {
  if (live.reapRuns.length === 0) return section('reap-runs', 'Recent reap runs', empty('No reap run recorded yet.'));
  const rows = live.reapRuns.map((r) => [
    `<code>${esc(r.runId)}</code>`,
    r.status === 'ok' ? 'ok' : `<span class="bad">${esc(r.status)}</span>`,
    r.execute ? 'execute' : 'dry run',
    esc(when(r.finishedAt ?? r.startedAt)),
    orDash(r.outcomes?.marked ?? null),
    orDash(r.outcomes?.deleted ?? null),
    orDash(r.outcomes?.lifted ?? null),
    r.outcomes?.failed ? `<span class="bad">${num(r.outcomes.failed)}</span>` : orDash(r.outcomes?.failed ?? null),
    r.error ? esc(r.error) : '',
  ]);
  return section('reap-runs', 'Recent reap runs', table('Recent reap runs', ['run', 'outcome', 'mode', 'when', 'marked', 'deleted', 'lifted', 'failed', 'error'], rows, 'reap-runs'));
}

export function liveSections(live: LiveData): string[] {
  return [heartbeatHtml(live), holdersHtml(live), expiringHtml(live), reapRunsHtml(live)];
}
