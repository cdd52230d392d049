/**
 * Backend fixtures for the reap safety suite (test/integration/reap-*.test.ts).
 *
 * The scenarios are written against this small interface, not against files: a fixture
 * creates resources with an owner and an age, says which still exist, and changes one
 * in place or replaces it under the same id. The files fixture lives here; S3,
 * PostgreSQL and MySQL fixtures go beside it and join `reapFixtures`, and every scenario
 * then runs for them too (`for (const kind of reapFixtures) describe(kind.kind, …)`).
 *
 * Conventions every fixture follows, so scenarios can state expectations once:
 * - an owned resource's owner key is `ownerKey(owner)` (`session:OWNER`);
 * - a resource created with `owner: null` carries no owner at all (`no-owner`);
 * - a resource created with `protected: true` matches the type's protect rule;
 * - the manifest comes from `reapManifest`, with the state store inside `fixture.dir`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseManifest } from '../../../src/manifest/load.js';
import type { BackendKind, Manifest } from '../../../src/manifest/types.js';
import { SqliteStateStore } from '../../../src/state/sqlite/sqlite-state-store.js';
import type { StateStore } from '../../../src/state/types.js';

/** One resource to create. */
export interface Seed {
  /** The owner value written into the resource (its key is `ownerKey(owner)`); null for none. */
  owner: string | null;
  /** Age of the resource (default one hour: past any test's minAge). */
  ageMs?: number;
  /** Matches the type's protect rule. */
  protected?: boolean;
  bytes?: number;
}

/** A resource type's policy keys, written as YAML scalars (`grace: 1s`, `maxDeletesPerRun: 3`). */
export type Policy = Readonly<Record<string, string | number>>;

export interface ReapFixture {
  readonly kind: BackendKind;
  /** The test's own directory: the manifest, the SQLite state store and plan files live here. */
  readonly dir: string;
  /** `connections:` entries the resource types need (YAML, indented by 2), or ''. */
  connectionsYaml(): string;
  /** One `resources:` entry (YAML, indented by 2) for a type this fixture serves. */
  resourceYaml(name: string, policy?: Policy): string;
  /** Create resources of a type; returns their ids in the order given. */
  create(resource: string, seeds: readonly Seed[]): Promise<string[]>;
  /** Ids of the type's resources that exist now (what a user would still find). */
  present(resource: string): Promise<Set<string>>;
  /** Change a resource in place (new content), keeping its age: same id, new fingerprint. */
  rewrite(resource: string, id: string): Promise<void>;
  /** Remove a resource and create another under the same id with the same content and age: a new identity. */
  replace(resource: string, id: string): Promise<void>;
  /** Environment the CLI needs to reach the backend (endpoints, credentials). */
  env(): Record<string, string>;
  cleanup(): Promise<void>;
}

export interface ReapFixtureKind {
  readonly kind: BackendKind;
  /** Whether the backend's service is reachable here (files always are). */
  available(): boolean;
  open(): Promise<ReapFixture>;
}

export const ownerKey = (owner: string): string => `session:${owner}`;

const HOUR = 3_600_000;

// ---------------------------------------------------------------- files

/** Resource type NAME is the directory `DIR/data/NAME`; an owned file is `OWNER/item-N.dat`, an unowned one `stray-N.dat`. */
class FilesFixture implements ReapFixture {
  readonly kind = 'fs' as const;
  private serial = 0;

  constructor(readonly dir: string) {}

  root(resource: string): string {
    return path.join(this.dir, 'data', resource);
  }

  connectionsYaml(): string {
    return '';
  }

  resourceYaml(name: string, policy: Policy = {}): string {
    return [
      `  - name: ${name}`,
      `    fs: { path: ./data/${name} }`,
      `    owner: { pathPattern: "^(?<owner>[^/]+)/", key: "session:{value}" }`,
      `    protect: [{ pathPattern: "(^|/)keep-[^/]*$" }]`,
      ...policyLines(policy),
    ].join('\n');
  }

  async create(resource: string, seeds: readonly Seed[]): Promise<string[]> {
    const ids: string[] = [];
    const now = Date.now();
    for (const seed of seeds) {
      const n = ++this.serial;
      const base = seed.protected ? `keep-${n}.dat` : `item-${n}.dat`;
      const id = seed.owner === null ? (seed.protected ? base : `stray-${n}.dat`) : `${seed.owner}/${base}`;
      const file = path.join(this.root(resource), ...id.split('/'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, Buffer.alloc(seed.bytes ?? 100, 0x61));
      const when = new Date(now - (seed.ageMs ?? HOUR));
      await utimes(file, when, when);
      ids.push(id);
    }
    return ids;
  }

  async present(resource: string): Promise<Set<string>> {
    const out = new Set<string>();
    const walk = async (dir: string, prefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const e of entries) {
        if (prefix === '' && e.name === '.reaper-quarantine') continue; // quarantined files are gone from the scope
        const id = prefix ? `${prefix}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), id);
        else if (e.isFile()) out.add(id);
      }
    };
    await walk(this.root(resource), '');
    return out;
  }

  async rewrite(resource: string, id: string): Promise<void> {
    const file = path.join(this.root(resource), ...id.split('/'));
    const before = await lstat(file);
    await writeFile(file, Buffer.alloc(before.size + 7, 0x62));
    await utimes(file, before.atime, before.mtime); // same age: only the content (size) tells
  }

  async replace(resource: string, id: string): Promise<void> {
    const file = path.join(this.root(resource), ...id.split('/'));
    const before = await lstat(file);
    // Write the twin first and rename it over: the old inode is still allocated, so the new one differs.
    const twin = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(twin, Buffer.alloc(before.size, 0x61));
    await utimes(twin, before.atime, before.mtime);
    await rename(twin, file);
  }

  env(): Record<string, string> {
    return {};
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

function policyLines(policy: Policy): string[] {
  return Object.entries(policy).map(([k, v]) => `    ${k}: ${typeof v === 'number' ? v : JSON.stringify(v)}`);
}

export const filesFixture: ReapFixtureKind = {
  kind: 'fs',
  available: () => true,
  open: async () => new FilesFixture(mkdtempSync(path.join(tmpdir(), 'reaper-reap-'))),
};

/** Every backend the reap safety suite runs against. */
export const reapFixtures: readonly ReapFixtureKind[] = [filesFixture];

// ---------------------------------------------------------------- manifests and stores

export interface ManifestOptions {
  /** Resource types (this fixture's) and their policies. */
  resources: readonly { name: string; policy?: Policy }[];
  /** `defaults:` keys; the suite's defaults are minAge 1m, grace 1s, maxDeleteFraction 1. */
  defaults?: Policy;
  /** `defaults.breaker` keys. */
  breaker?: Readonly<Record<string, number>>;
}

export const stateFile = (fixture: ReapFixture): string => path.join(fixture.dir, '.reaper', 'state.db');
export const manifestFile = (fixture: ReapFixture): string => path.join(fixture.dir, 'reaper.yaml');

/** Manifest text: leases as the only liveness source, the SQLite store in the fixture's directory. */
export function reapManifest(fixture: ReapFixture, options: ManifestOptions): string {
  const defaults: Policy = { minAge: '1m', grace: '1s', maxDeleteFraction: 1, ...options.defaults };
  const breaker = options.breaker ? `, breaker: { ${Object.entries(options.breaker).map(([k, v]) => `${k}: ${v}`).join(', ')} }` : '';
  const connections = fixture.connectionsYaml();
  return [
    'version: 1',
    'state: sqlite:.reaper/state.db',
    `defaults: { ${Object.entries(defaults).map(([k, v]) => `${k}: ${typeof v === 'number' ? v : JSON.stringify(v)}`).join(', ')}${breaker} }`,
    ...(connections ? ['connections:', connections] : []),
    'owners:',
    '  - leases: {}',
    'resources:',
    ...options.resources.map((r) => fixture.resourceYaml(r.name, r.policy)),
    '',
  ].join('\n');
}

/** Parse manifest text as if it were `fixture.dir/reaper.yaml` (relative paths resolve there). */
export function loadReapManifest(fixture: ReapFixture, text: string): Manifest {
  return parseManifest(text, { file: manifestFile(fixture), baseDir: fixture.dir, env: fixture.env() });
}

export function openFixtureStore(fixture: ReapFixture): Promise<SqliteStateStore> {
  return SqliteStateStore.open(stateFile(fixture));
}

// ---------------------------------------------------------------- store hooks

type Hook<K extends keyof StateStore> = StateStore[K] extends (...args: infer A) => infer R ? (next: (...args: A) => R, ...args: A) => R : never;
/** Replacements for store methods; each gets the real method as `next`. Entries may be set or removed while a run is under way. */
export type StoreHooks = { [K in keyof StateStore]?: Hook<K> };

/**
 * The store seen through hooks: the clean way to put a failing liveness source, a race
 * (a lease taken, a file changed) or a pause at an exact point of a run, without touching src.
 */
export function hookStore(store: StateStore, hooks: StoreHooks): StateStore {
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const bound = (value as (...args: unknown[]) => unknown).bind(target);
      return (...args: unknown[]) => {
        const hook = hooks[prop as keyof StateStore] as ((next: (...a: unknown[]) => unknown, ...a: unknown[]) => unknown) | undefined;
        return hook ? hook(bound, ...args) : bound(...args);
      };
    },
  });
}

/** Wait for a duration of store time to pass (graces and lock ttls are judged by the store's clock). */
export async function waitStoreTime(store: StateStore, ms: number): Promise<void> {
  const until = (await store.now()) + ms;
  for (;;) {
    const now = await store.now();
    if (now >= until) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, until - now + 5)));
  }
}
