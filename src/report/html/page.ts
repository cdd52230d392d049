/**
 * Whole pages from the sections: the standalone report file (style and script inline,
 * allowed by their hashes in a Content-Security-Policy meta element, so the file opens
 * anywhere and loads nothing), the daemon's live page and its sign-in page (style and
 * script from the daemon itself, allowed by the header policy; nothing inline).
 * Pure: data and the client's text in, a string out.
 */
import { createHash } from 'node:crypto';
import { esc, scriptJson } from './escape.js';
import { REPORT_MAX_BYTES, type LiveData, type ReportData } from './model.js';
import { findingsHtml, headerHtml, liveSections, reportSections } from './sections.js';

/** The client's style sheet and script (assets.ts reads them from the package). */
export interface ClientAssets {
  css: string;
  script: string;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The policy of the standalone file: nothing but its own hashed style and script; no request of any kind. */
export function fileCsp(assets: ClientAssets): string {
  return [`default-src 'none'`, `style-src ${sha256(assets.css)}`, `script-src ${sha256(assets.script)}`, `img-src data:`, `base-uri 'none'`, `form-action 'none'`].join('; ');
}

/** The policy the daemon sends with every /ui answer: its own files only, nothing inline, no framing. */
export const LIVE_CSP = [
  `default-src 'none'`,
  `style-src 'self'`,
  `script-src 'self'`,
  `connect-src 'self'`,
  `img-src 'self' data:`,
  `form-action 'self'`,
  `base-uri 'none'`,
  `frame-ancestors 'none'`,
].join('; ');

function nav(ids: readonly [string, string][]): string {
  return `<nav class="toc" aria-label="Sections"><ul>${ids.map(([id, label]) => `<li><a href="#${id}">${esc(label)}</a></li>`).join('')}</ul></nav>`;
}

const REPORT_NAV: [string, string][] = [
  ['summary', 'Summary'],
  ['status', 'Types'],
  ['ages', 'Orphan age'],
  ['owners', 'Owners'],
  ['bytes', 'Bytes'],
  ['pending', 'Pending'],
  ['trend', 'Trend'],
  ['findings', 'Findings'],
];

const LIVE_NAV: [string, string][] = [
  ['daemon', 'Daemon'],
  ['holders', 'Holders'],
  ['expiring', 'Expiring'],
  ['reap-runs', 'Reap runs'],
  ...REPORT_NAV,
];

/** The findings rows and counts the client script renders the table from. */
export function findingsPayload(data: ReportData): unknown {
  return data.findings ?? { rows: [], total: 0, omitted: 0 };
}

/** The standalone report: one file, no network, its size bounded by REPORT_MAX_BYTES. */
export function renderReport(data: ReportData, assets: ClientAssets): string {
  const html =
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="${esc(fileCsp(assets))}">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="referrer" content="no-referrer">` +
    `<title>${esc(data.title)}</title><style>${assets.css}</style></head>` +
    `<body data-mode="file"><a class="skip" href="#findings">Skip to the findings</a>` +
    `<div id="report-header">${headerHtml(data)}</div>${nav(REPORT_NAV)}` +
    `<main id="main"><div id="report-sections">${reportSections(data).join('')}</div>${findingsHtml(data)}</main>` +
    `<footer><p>Made by reaper ${esc(data.reaper)}. This file is self-contained: it loads nothing.</p></footer>` +
    `<script type="application/json" id="reaper-findings">${scriptJson(findingsPayload(data))}</script>` +
    `<script>${assets.script}</script></body></html>\n`;
  const bytes = Buffer.byteLength(html);
  // The caps of build.ts and aggregate.ts keep every report under the bound; passing it is a bug.
  if (bytes > REPORT_MAX_BYTES) {
    throw new Error(`internal error: the report is ${bytes} bytes, above its bound of ${REPORT_MAX_BYTES}`);
  }
  return html;
}

export interface LivePageOptions {
  /** Where the client fetches fresh data (same origin). */
  dataUrl: string;
  refreshSeconds: number;
  /** Where the style sheet and script are served. */
  assetBase: string;
  signOutUrl: string | null;
}

/** What the live page's script swaps in on each refresh. */
export function liveFragments(data: ReportData, live: LiveData): { at: string; header: string; live: string; report: string; findings: unknown } {
  return { at: live.at, header: headerHtml(data), live: liveSections(live).join(''), report: reportSections(data).join(''), findings: findingsPayload(data) };
}

export function renderLivePage(data: ReportData, live: LiveData, options: LivePageOptions): string {
  const signOut = options.signOutUrl
    ? `<form class="sign-out" method="post" action="${esc(options.signOutUrl)}"><button type="submit">Sign out</button></form>`
    : '';
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="referrer" content="no-referrer">` +
    `<title>reaper daemon</title><link rel="stylesheet" href="${esc(options.assetBase)}report.css"></head>` +
    `<body data-mode="live" data-refresh-url="${esc(options.dataUrl)}" data-refresh-seconds="${options.refreshSeconds}">` +
    `<a class="skip" href="#findings">Skip to the findings</a>` +
    `<div class="bar-top"><p class="live-state" role="status" aria-live="polite">Live: refreshes every ${options.refreshSeconds}s</p>${signOut}</div>` +
    `<div id="report-header">${headerHtml(data)}</div>${nav(LIVE_NAV)}` +
    `<main id="main"><div id="live-sections">${liveSections(live).join('')}</div>` +
    `<div id="report-sections">${reportSections(data).join('')}</div>${findingsHtml(data)}</main>` +
    `<footer><p>reaper ${esc(data.reaper)}</p></footer>` +
    `<script src="${esc(options.assetBase)}report.js" defer></script></body></html>\n`
  );
}

export function renderSignIn(options: { action: string; assetBase: string; error: string | null }): string {
  const error = options.error ? `<p class="error" id="sign-in-error" role="alert">${esc(options.error)}</p>` : '';
  const described = options.error ? ' aria-describedby="sign-in-error"' : '';
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="referrer" content="no-referrer">` +
    `<title>Sign in · reaper daemon</title><link rel="stylesheet" href="${esc(options.assetBase)}report.css"></head>` +
    `<body data-mode="sign-in"><main id="main" class="sign-in"><h1>reaper daemon</h1>` +
    `<form method="post" action="${esc(options.action)}">` +
    `<label for="token">API token</label>` +
    `<input id="token" name="token" type="password" autocomplete="current-password" required${described}>` +
    `${error}<button type="submit">Sign in</button></form>` +
    `<p class="note">The token the daemon was started with (--token-file or $REAPER_TOKEN). Signing in sets a session cookie for this page only.</p>` +
    `</main></body></html>\n`
  );
}
