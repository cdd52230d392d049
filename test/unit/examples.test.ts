/** The files in config/examples stay valid: YAML parses, manifests load, gates parse, alerts use real metrics. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseGate } from '../../src/engine/gates.js';
import { ManifestError } from '../../src/errors.js';
import { parseManifest } from '../../src/manifest/load.js';
import { prometheusRunTexts } from './support/prometheus-runs.js';

const DIR = fileURLToPath(new URL('../../config/examples/', import.meta.url));
const read = (name: string) => readFileSync(`${DIR}${name}`, 'utf8');
const yamlFiles = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));

describe('config/examples', () => {
  it('holds the documented examples', () => {
    expect(yamlFiles).toEqual(
      expect.arrayContaining(['full-manifest.yaml', 'github-actions-leak-gate.yml', 'gitlab-ci.yml', 'k8s-cronjob.yaml', 'prometheus-alerts.yml']),
    );
  });

  for (const file of yamlFiles) {
    it(`${file} parses as YAML without errors or warnings`, () => {
      const docs = parseAllDocuments(read(file), { uniqueKeys: true, strict: true });
      expect(Array.isArray(docs)).toBe(true);
      const list = docs as Exclude<typeof docs, { empty: true }>;
      expect(list.length).toBeGreaterThan(0);
      for (const doc of list) {
        expect(doc.errors.map((e) => e.message)).toEqual([]);
        expect(doc.warnings.map((e) => e.message)).toEqual([]);
      }
    });
  }

  it('every --fail-on gate in the examples parses', () => {
    const gates = yamlFiles.flatMap((file) => [...read(file).matchAll(/--fail-on '([^']*)'/g)].map((m) => m[1]!));
    expect(gates.length).toBeGreaterThanOrEqual(2);
    for (const gate of gates) expect(() => parseGate(gate), gate).not.toThrow();
  });
});

describe('full-manifest.yaml', () => {
  const env = { S3_ENDPOINT: 'http://127.0.0.1:9000', DATABASE_URL: 'postgres://app@db:5432/app', LEGACY_DATABASE_URL: 'mysql://app@db:3306/app' };

  it('has every backend and passes the schema with S3_ENDPOINT, DATABASE_URL and LEGACY_DATABASE_URL set', () => {
    const manifest = parseManifest(read('full-manifest.yaml'), { file: 'full-manifest.yaml', baseDir: DIR, env });
    expect(manifest.resources.map((r) => r.name)).toEqual(['upload-blobs', 'image-rows', 'thumbnails', 'cart-rows', 'scratch']);
    expect(manifest.resources.map((r) => r.location.kind)).toEqual(['s3', 'postgres', 's3', 'mysql', 'fs']);
  });

  it('names the missing variable without it', () => {
    expect(() => parseManifest(read('full-manifest.yaml'), { file: 'full-manifest.yaml', baseDir: DIR, env: { DATABASE_URL: env.DATABASE_URL } })).toThrow(ManifestError);
    expect(() => parseManifest(read('full-manifest.yaml'), { file: 'full-manifest.yaml', baseDir: DIR, env: { DATABASE_URL: env.DATABASE_URL } })).toThrow(/S3_ENDPOINT/);
  });
});

describe('CI examples', () => {
  it('the GitHub Actions job gates, writes JUnit and the step summary, and uploads the JUnit file', () => {
    const workflow = parse(read('github-actions-leak-gate.yml')) as { jobs: Record<string, { steps: { run?: string; uses?: string; if?: string; with?: { path?: string } }[] }> };
    const steps = Object.values(workflow.jobs)[0]!.steps;
    const gate = steps.find((s) => s.run?.includes('reaper audit'))!.run!.replace(/\\\n\s*/g, '');
    expect(gate).toMatch(/^reaper audit -c \S+ /);
    expect(gate).toContain("--fail-on 'orphaned>0'");
    expect(gate).toContain('--junit reaper-junit.xml');
    expect(gate).toContain('--summary "$GITHUB_STEP_SUMMARY"');
    // A CI log is no terminal: without it, stdout would be the whole JSON document on one line.
    expect(gate).toContain('--output table');
    const upload = steps.find((s) => s.uses?.startsWith('actions/upload-artifact'))!;
    expect(upload.if).toBe('always()');
    expect(upload.with!.path).toContain('reaper-junit.xml');
  });

  it('the GitLab job reports its JUnit file', () => {
    const ci = parse(read('gitlab-ci.yml')) as Record<string, { script?: string[]; artifacts?: { when?: string; reports?: { junit?: string } } }>;
    const job = ci['leak-gate']!;
    expect(job.artifacts).toMatchObject({ when: 'always', reports: { junit: 'reaper-junit.xml' } });
    expect(job.script!.some((line) => line.includes("reaper audit") && line.includes('--junit reaper-junit.xml') && line.includes("--fail-on 'orphaned>0'") && line.includes('--output table'))).toBe(true);
  });
});

describe('every example installs an artifact that exists', () => {
  // `reaper` on the npm registry is an unrelated package: the CLI is the package orphan-reaper.
  it('installs orphan-reaper at a pinned version, never `reaper` from the registry', () => {
    const installs: string[] = [];
    for (const file of yamlFiles) {
      const text = read(file);
      expect(text, file).not.toMatch(/\bnpx\s+(--\S+\s+)*reaper\b/);
      expect(text, file).not.toMatch(/npm (i|install)\b[^\n]*\sreaper(@|\s|$)/m);
      installs.push(...[...text.matchAll(/npm install --global (\S+)/g)].map((m) => m[1]!));
    }
    expect(installs.length).toBeGreaterThanOrEqual(2);
    for (const spec of installs) expect(spec).toMatch(/^orphan-reaper@\d+\.\d+\.\d+$/);
  });

  it('runs reaper in Kubernetes from reaper\'s image, as uid 10001 on a read-only root filesystem', () => {
    type Container = { name: string; image: string; command?: string[]; args?: string[]; securityContext?: Record<string, unknown> };
    const containers: { file: string; c: Container; pod: Record<string, unknown> | undefined }[] = [];
    const walk = (file: string, node: unknown, pod?: Record<string, unknown>): void => {
      if (!node || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if (Array.isArray(o.containers)) for (const c of o.containers as Container[]) containers.push({ file, c, pod: (o.securityContext as Record<string, unknown>) ?? pod });
      for (const v of Object.values(o)) walk(file, v, pod);
    };
    for (const file of yamlFiles.filter((f) => f.startsWith('k8s-'))) for (const doc of parseAllDocuments(read(file)) as unknown as { toJS(): unknown }[]) walk(file, doc.toJS());
    const reapers = containers.filter(({ c }) => c.name === 'reaper');
    expect(reapers.map(({ file }) => file).sort()).toEqual(['k8s-cronjob.yaml', 'k8s-cronjob.yaml', 'k8s-indexed-job.yaml', 'k8s-sidecar.yaml']);
    for (const { file, c, pod } of reapers) {
      expect(c.image, file).toMatch(/\/reaper:\d+\.\d+\.\d+$/);
      expect(c.command, `${file}: the image's entrypoint is reaper`).toBeUndefined();
      expect(['reap', 'daemon', 'audit']).toContain(c.args![0]);
      expect({ ...pod, ...c.securityContext }, file).toMatchObject({ runAsUser: 10001, readOnlyRootFilesystem: true });
    }
  });
});

describe('k8s-cronjob.yaml', () => {
  type Container = { args: string[]; volumeMounts?: { name: string; mountPath: string }[] };
  type CronJob = { kind: 'CronJob'; metadata: { name: string }; spec: { concurrencyPolicy: string; jobTemplate: { spec: { template: { spec: { containers: Container[]; volumes: { name: string; hostPath?: { path: string } }[] } } } } } };
  const docs = parseAllDocuments(read('k8s-cronjob.yaml')) as unknown as { toJS(): Record<string, unknown> }[];
  const objects = docs.map((d) => d.toJS());
  const cronJobs = objects.filter((o): o is CronJob => o.kind === 'CronJob');

  it('has a textfile-collector CronJob sharing a hostPath directory with node-exporter, and a Pushgateway one', () => {
    expect(cronJobs.map((c) => c.metadata.name)).toEqual(['reaper-reap', 'reaper-reap-push']);
    const [textfile, push] = cronJobs.map((c) => c.spec.jobTemplate.spec.template.spec);
    const args = textfile!.containers[0]!.args;
    expect(args.slice(0, 1)).toEqual(['reap']);
    expect(args).toContain('--execute');
    expect(args).toContain('--metrics-file=/textfile/reaper.prom');
    expect(textfile!.containers[0]!.volumeMounts).toContainEqual({ name: 'textfile', mountPath: '/textfile' });
    expect(textfile!.volumes.find((v) => v.name === 'textfile')!.hostPath!.path).toBe('/var/lib/node-exporter/textfile');
    expect(push!.containers[0]!.args).toEqual(expect.arrayContaining(['reap', '--execute', expect.stringMatching(/^--pushgateway=http:\/\//)]));
    for (const c of cronJobs) expect(c.spec.concurrencyPolicy).toBe('Forbid');
  });

  it('carries a manifest that loads', () => {
    const configMap = objects.find((o) => o.kind === 'ConfigMap') as { data: Record<string, string> };
    const manifest = parseManifest(configMap.data['reaper.yaml']!, {
      file: 'reaper.yaml',
      baseDir: '/etc/reaper',
      env: { REAPER_STATE_URL: 'postgres://reaper@state-db:5432/reaper', APP_DATABASE_URL: 'postgres://app@app-db:5432/app' },
    });
    expect(manifest.state).toBe('postgres://reaper@state-db:5432/reaper');
    expect(manifest.resources.map((r) => r.name)).toEqual(['upload-blobs', 'export-rows']);
  });
});

describe('k8s-indexed-job.yaml (docs/scale-out.md)', () => {
  type Env = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
  type JobSpec = { completionMode: string; completions: number; parallelism: number; template: { spec: { containers: { args: string[]; env: Env[] }[] } } };
  const objects = (parseAllDocuments(read('k8s-indexed-job.yaml')) as unknown as { toJS(): Record<string, unknown> }[]).map((d) => d.toJS());
  const cron = objects.find((o) => o.kind === 'CronJob') as { spec: { concurrencyPolicy: string; jobTemplate: { spec: JobSpec } } };
  const job = cron.spec.jobTemplate.spec;
  const env = Object.fromEntries(job.template.spec.containers[0]!.env.map((e) => [e.name, e]));

  it('runs an Indexed Job whose shard count is its completions, named by the job', () => {
    expect(job).toMatchObject({ completionMode: 'Indexed', completions: 4, parallelism: 4 });
    expect(cron.spec.concurrencyPolicy).toBe('Forbid');
    expect(env.REAPER_SHARDS!.value).toBe(String(job.completions));
    expect(env.REAPER_JOB!.valueFrom!.fieldRef!.fieldPath).toBe("metadata.labels['batch.kubernetes.io/job-name']");
    expect(job.template.spec.containers[0]!.args).toEqual(expect.arrayContaining(['reap', '--execute', expect.stringMatching(/^--pushgateway=http:\/\//)]));
  });

  it('carries a manifest that loads, each split type with a multiple of the shard count of ranges', () => {
    const configMap = objects.find((o) => o.kind === 'ConfigMap') as { data: Record<string, string> };
    const manifest = parseManifest(configMap.data['reaper.yaml']!, {
      file: 'reaper.yaml',
      baseDir: '/etc/reaper',
      env: { REAPER_STATE_URL: 'postgres://reaper@state-db:5432/reaper', APP_DATABASE_URL: 'postgres://app@app-db:5432/app' },
    });
    for (const r of manifest.resources) {
      expect(((r.splitPoints?.length ?? 0) + 1) % job.completions, r.name).toBe(0);
      expect(r.maxDeletesPerRun).toBe(20_000);
    }
  });
});

describe('prometheus-alerts.yml', () => {
  const rules = (parse(read('prometheus-alerts.yml')) as { groups: { name: string; rules: { alert: string; expr: string; for?: string }[] }[] }).groups.flatMap((g) => g.rules);

  /** Every metric renderPrometheus can emit, with the label values it emits. */
  async function emitted(): Promise<Map<string, Map<string, Set<string>>>> {
    const texts = await prometheusRunTexts();
    const out = new Map<string, Map<string, Set<string>>>();
    for (const text of texts) {
      for (const line of text.split('\n')) {
        const m = /^(reaper_\w+)(?:\{(.*)\})? /.exec(line);
        if (!m) continue;
        const labels = out.get(m[1]!) ?? new Map<string, Set<string>>();
        out.set(m[1]!, labels);
        for (const [, name, value] of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) {
          labels.set(name!, (labels.get(name!) ?? new Set()).add(value!));
        }
      }
    }
    return out;
  }

  it('has the issue\'s alerts: orphans growing, backlog growing, renewal failures, last run too old, reap failures', () => {
    const exprs = rules.map((r) => r.expr.replace(/\s+/g, ' '));
    expect(exprs).toContain('deriv(reaper_resources{status="orphaned"}[6h]) > 0');
    expect(rules.find((r) => r.expr.includes('deriv(reaper_resources'))!.for).toMatch(/^\d+h$/);
    expect(exprs.some((e) => e.startsWith('deriv(reaper_backlog_tombstones'))).toBe(true);
    expect(exprs).toContain('reaper_lease_renewal_failure_ratio > 0.05');
    expect(exprs.some((e) => e.includes('time() - reaper_last_run_timestamp_seconds'))).toBe(true);
    expect(exprs).toContain('reaper_reap_total{outcome="failed"} > 0');
  });

  it('references only metrics and label values renderPrometheus emits', async () => {
    const metrics = await emitted();
    for (const rule of rules) {
      const names = [...rule.expr.matchAll(/\breaper_\w+/g)].map((m) => m[0]);
      expect(names.length, rule.alert).toBeGreaterThan(0);
      for (const name of names) expect(metrics.has(name), `${rule.alert}: ${name}`).toBe(true);
      for (const [, name, matchers] of rule.expr.matchAll(/\b(reaper_\w+)\{([^}]*)\}/g)) {
        for (const [, label, op, value] of matchers!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
          const values = metrics.get(name!)!.get(label!);
          expect(values, `${rule.alert}: ${name} has no label ${label}`).toBeDefined();
          if (op === '=') expect(values!.has(value!), `${rule.alert}: ${name}{${label}="${value}"} is never emitted`).toBe(true);
        }
      }
    }
  });
});

describe('handler examples (docs/resource-protocol.md)', () => {
  it('the Redis and Kubernetes examples load as command types whose handler scripts sit beside them, executable', () => {
    for (const [example, script] of [
      ['redis-sessions', 'sessions.sh'],
      ['kubernetes-objects', 'configmaps.sh'],
    ] as const) {
      const file = `${DIR}${example}/reaper.yaml`;
      const manifest = parseManifest(readFileSync(file, 'utf8'), { file, baseDir: `${DIR}${example}`, env: { REAPER_STATE: 'sqlite:/tmp/state.db' } });
      const location = manifest.resources[0]!.location;
      expect(location).toMatchObject({ kind: 'command', list: { shell: `./${script}` }, delete: { shell: `./${script}` }, conditional: true });
      expect(statSync(`${DIR}${example}/${script}`).mode & 0o111, `${script} is executable`).not.toBe(0);
    }
  });
});
