// Files: reaper audit beside `find DIR -type f -mmin +N`, and reaper's sweep beside
// `find -delete` and `tmpreaper`, each run on its own identical copy (cp -a) of one tree.
//
// The tree: `size` one-byte files two days old in directories of 1,000 named after dead
// owners, plus 100 files written now under a live owner's directory. Every tool removes
// exactly the old files and keeps the 100 young ones (checked after each run).
//
// reaper is timed as a user runs it: `reaper reap --execute` once to mark (grace 1s), a
// wait for the grace to pass, then `reaper reap --execute` again, which sweeps: only this
// second run deletes, and it is the "sweep only" figure; "mark+sweep" adds the first run.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { child, ensureTools, fmt, load1, log, median, reaper, run, skipLine, sleep, timed } from '../lib/common.mjs';

export const name = 'files';
const YOUNG = 100;

function manifest(dir, root) {
  const file = path.join(dir, 'reaper.yaml');
  writeFileSync(
    file,
    `version: 1
state: sqlite:${path.join(dir, 'state.db')}
defaults: { minAge: 10m, grace: 1s, batchSize: 10000, maxDeletesPerRun: 100000000, maxDeleteFraction: 1 }
owners:
  - static: [live-0]
resources:
  - name: files
    fs: { path: ${JSON.stringify(root)} }
    owner: { pathPattern: "^(?<owner>[^/]+)/" }
`,
  );
  return file;
}

const countFiles = async (root) => Number((await run('bash', ['-c', `find '${root}' -type f -not -path '*/.reaper-quarantine/*' | wc -l`])).stdout.trim());

export async function run_({ quick, reps, work, sizeOverride }) {
  const size = sizeOverride ?? (quick ? 20_000 : 200_000);
  const tools = ensureTools({ tmpreaper: 'tmpreaper' });
  const skipped = [];
  if (!tools.tmpreaper) skipped.push(skipLine(name, 'tmpreaper', 'tmpreaper is not on PATH and `apt-get install -y tmpreaper` did not provide it'));

  const master = path.join(work, 'files-master');
  log(`files: creating ${size.toLocaleString('en-US')} files (+${YOUNG} young)…`);
  const filled = await child('fs-fill.mjs', { root: master, size, perDir: 1000, young: YOUNG });
  log(`  created in ${filled.seconds.toFixed(1)} s`);

  // ------------------------------------------------------------ audit (read-only)
  const auditDir = path.join(work, 'files-audit');
  mkdirSync(auditDir, { recursive: true });
  const auditManifest = manifest(auditDir, master);
  await run('bash', ['-c', `find '${master}' -type f -mmin +60 | wc -l`]); // warm the dentry and inode caches
  const audit = { reaper: [], find: [] };
  for (let i = 0; i < reps; i++) {
    const l = load1();
    const r = await reaper(['audit', '-c', auditManifest, '--output', 'json', '--max-findings', '0']);
    if (r.json?.summary?.orphaned !== size) throw new Error(`reaper audit saw ${r.json?.summary?.orphaned} orphans, expected ${size}`);
    audit.reaper.push({ seconds: r.seconds, rss: r.maxRssKiB, load: l });
    const l2 = load1();
    const f = await timed('bash', ['-c', `find '${master}' -type f -mmin +60 | wc -l`]);
    if (Number(f.stdout.trim()) !== size) throw new Error(`find listed ${f.stdout.trim()} files, expected ${size}`);
    audit.find.push({ seconds: f.seconds, rss: f.maxRssKiB, load: l2 });
    log(`  audit rep ${i + 1}: reaper ${r.seconds.toFixed(2)} s, find ${f.seconds.toFixed(2)} s (load ${l})`);
  }

  // ------------------------------------------------------------ deletes, each on a fresh copy
  const sweeps = { mark: [], sweep: [], markSweep: [], find: [], tmpreaper: [] };
  const copy = async (tag) => {
    const dir = path.join(work, `files-${tag}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const root = path.join(dir, 'data');
    await run('cp', ['-a', master, root]);
    await run('sync', []); // every tool starts with the copy written out, not with writeback pending
    return { dir, root };
  };
  const order = ['reaper', 'find', 'tmpreaper'].filter((t) => t !== 'tmpreaper' || tools.tmpreaper);
  for (let i = 0; i < reps; i++) {
    const rotated = [...order.slice(i % order.length), ...order.slice(0, i % order.length)];
    for (const tool of rotated) {
      const { dir, root } = await copy(`${tool}-${i}`);
      if (tool === 'reaper') {
        const m = manifest(dir, root);
        const l = load1();
        const marked = await reaper(['reap', '-c', m, '--execute', '--output', 'json']);
        if (marked.json?.outcomes?.marked !== size) throw new Error(`reaper marked ${marked.json?.outcomes?.marked}, expected ${size}: ${marked.stderr.slice(-500)}`);
        await sleep(1500); // grace: 1s by the store's clock
        const l2 = load1();
        const swept = await reaper(['reap', '-c', m, '--execute', '--output', 'json']);
        if (swept.json?.outcomes?.deleted !== size) throw new Error(`reaper deleted ${swept.json?.outcomes?.deleted}, expected ${size}: ${swept.stderr.slice(-500)}`);
        const left = await countFiles(root);
        sweeps.mark.push({ seconds: marked.seconds, rss: marked.maxRssKiB, load: l, left });
        sweeps.sweep.push({ seconds: swept.seconds, rss: swept.maxRssKiB, load: l2, left });
        sweeps.markSweep.push({ seconds: marked.seconds + swept.seconds, rss: Math.max(marked.maxRssKiB ?? 0, swept.maxRssKiB ?? 0) || null, load: l, left });
        log(`  rep ${i + 1} reaper: mark ${marked.seconds.toFixed(2)} s, sweep ${swept.seconds.toFixed(2)} s, ${left} files left (load ${l2})`);
      } else {
        const l = load1();
        const r =
          tool === 'find'
            ? await timed('find', [root, '-type', 'f', '-mmin', '+60', '-delete'])
            : await timed(tools.tmpreaper, ['--runtime=3600', '--mtime', '1h', root]); // its default run-time limit is 20 s
        const left = await countFiles(root);
        sweeps[tool].push({ seconds: r.seconds, rss: r.maxRssKiB, load: l, left });
        log(`  rep ${i + 1} ${tool}: ${r.seconds.toFixed(2)} s, ${left} files left (load ${l})`);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }
  rmSync(master, { recursive: true, force: true });
  rmSync(auditDir, { recursive: true, force: true });

  const med = (list) => median(list.map((x) => x.seconds));
  const row = (tool, what, list, base) => {
    const s = med(list);
    return [
      tool,
      what,
      fmt.s(s),
      fmt.n(size / s),
      base ? fmt.x(base / s) : '',
      list.length ? fmt.n(median(list.map((x) => x.rss)) / 1024) : '—',
      list.map((x) => x.seconds.toFixed(2)).join(' / '),
      list.map((x) => x.load).join(' / '),
      'left' in (list[0] ?? {}) ? String(list[0].left) : '',
    ];
  };
  const findAudit = med(audit.find);
  const findDelete = med(sweeps.find);
  const head = ['tool', 'what', 'median s', 'files/s', 'speed vs peer', 'peak RSS MiB', 'runs (s)', 'load avg (1 min)', 'files left'];
  const auditRows = [row('reaper audit', 'scan + classify', audit.reaper, findAudit), row('find -type f -mmin +60, counted', 'list', audit.find, null)];
  const sweepRows = [
    row('reaper reap --execute (2nd run)', 'sweep only', sweeps.sweep, findDelete),
    row('reaper reap --execute (1st run)', 'mark only', sweeps.mark, null),
    row('reaper, both runs', 'mark+sweep', sweeps.markSweep, findDelete),
    row('find -type f -mmin +60 -delete', 'delete', sweeps.find, null),
  ];
  if (tools.tmpreaper) sweepRows.push(row('tmpreaper --runtime=3600 --mtime 1h', 'delete', sweeps.tmpreaper, findDelete));
  const sweepRatio = findDelete / med(sweeps.sweep);
  return {
    name,
    size,
    tables: [
      { title: `Files: audit of ${size.toLocaleString('en-US')} files (speed vs find = find time / reaper time)`, head, rows: auditRows },
      { title: `Files: deleting ${size.toLocaleString('en-US')} old files, each tool on its own copy (speed vs find -delete)`, head, rows: sweepRows },
    ],
    ratios: {
      'audit vs find (speed)': findAudit / med(audit.reaper),
      'sweep only vs find -delete (speed)': sweepRatio,
      'mark+sweep vs find -delete (speed)': findDelete / med(sweeps.markSweep),
      ...(tools.tmpreaper ? { 'tmpreaper vs find -delete (speed)': findDelete / med(sweeps.tmpreaper) } : {}),
    },
    targets: [{ target: 'files sweep ≥ 0.8× find -delete', value: fmt.x(sweepRatio), met: sweepRatio >= 0.8 }],
    skipped,
    raw: { audit, sweeps, fillSeconds: filled.seconds },
  };
}

export { run_ as run };
