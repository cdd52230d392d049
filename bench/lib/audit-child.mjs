// Runs one `reaper audit` in this process and prints {scanned, seconds, maxRssKiB}.
import { loadManifest } from '../../dist/manifest/load.js';
import { runAudit } from '../../dist/run/audit.js';

const { manifest } = JSON.parse(process.argv[2]);
const m = await loadManifest(manifest, {});
const start = process.hrtime.bigint();
const doc = await runAudit(m, { maxFindings: 0 });
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ scanned: doc.summary.scanned, seconds, maxRssKiB: process.resourceUsage().maxRSS }));
