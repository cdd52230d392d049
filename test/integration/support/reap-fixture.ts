/**
 * Backend fixtures for the reap safety suite (test/integration/reap-*.test.ts).
 *
 * The scenarios are written against a small interface (reap-fixture-base.ts), not against
 * files: a fixture creates resources with an owner and an age, says which still exist,
 * and changes one in place or replaces it under the same id. The files fixture lives
 * here; the S3 (reap-fixture-s3.ts), PostgreSQL and MySQL (reap-fixture-sql.ts) fixtures
 * beside it, and the `command` kind's (reap-fixture-command.ts: a reference handler over a
 * directory), and all five are in `reapFixtures`: every scenario runs for each
 * (`for (const kind of reapFixtures) describe(kind.kind, …)`). What a backend cannot
 * express is in its `traits` (S3 cannot backdate an object), and scenarios read them.
 *
 * Conventions every fixture follows, so scenarios can state expectations once:
 * - an owned resource's owner key is `ownerKey(owner)` (`session:OWNER`);
 * - a resource created with `owner: null` carries no owner at all (`no-owner`);
 * - a resource created with `protected: true` matches the type's protect rule;
 * - the manifest comes from `reapManifest`, with the state store inside `fixture.dir`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileFingerprint } from '../../../src/backends/fs/fs-identity.js';
import { parseManifest } from '../../../src/manifest/load.js';
import type { Manifest } from '../../../src/manifest/types.js';
import { openStateStore } from '../../../src/state/open.js';
import type { StateStore, StoreDialect } from '../../../src/state/types.js';
import {
  HOUR,
  plainOwners,
  policyLines,
  type FixtureOptions,
  type FixtureTraits,
  type Outsiders,
  type Policy,
  type ReapFixture,
  type ReapFixtureKind,
  type ResourceOptions,
  type Seed,
  DirectoryFixture,
} from './reap-fixture-base.js';
import { commandFixture } from './reap-fixture-command.js';
import { s3Fixture } from './reap-fixture-s3.js';
import { mysqlFixture, postgresFixture } from './reap-fixture-sql.js';
import { freshMysqlDatabase, freshPgDatabase, serviceAvailable } from './services.js';

export { ownerKey, type FixtureOptions, type FixtureTraits, type Policy, type ReapFixture, type ReapFixtureKind, type ResourceOptions, type Seed } from './reap-fixture-base.js';
export { s3Fixture, S3ReapFixture } from './reap-fixture-s3.js';
export { mysqlFixture, postgresFixture } from './reap-fixture-sql.js';
export { commandFixture } from './reap-fixture-command.js';

// ---------------------------------------------------------------- files

/** Resource type NAME is the directory `DIR/data/NAME`; an owned file is `OWNER/item-N.dat`, an unowned one `stray-N.dat`. */
class FilesFixture extends DirectoryFixture implements ReapFixture {
  readonly kind = 'fs' as const;
  readonly traits: FixtureTraits = { backdate: true, exactBytes: true };

  resourceYaml(name: string, policy: Policy = {}, options: ResourceOptions = {}): string {
    const protect = ['{ pathPattern: "(^|/)keep-[^/]*$" }', ...plainOwners(options.protectOwners).map((o) => `{ pathPattern: "^${o}/" }`)];
    return [
      `  - name: ${name}`,
      `    fs: { path: ./data/${name} }`,
      `    owner: { pathPattern: "^(?<owner>[^/]+)/", key: "session:{value}" }`,
      `    protect: [${protect.join(', ')}]`,
      ...(this.restorable ? ['    quarantine: ./quarantine', '    retain: 7d'] : []),
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

  async snapshot(resource: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const id of await this.present(resource)) out.set(id, (await readFile(path.join(this.root(resource), ...id.split('/')))).toString('base64'));
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

  /** Old files beside the root and above it, named by ids that climb out (`..`) or are absolute. */
  async outsideScope(_resource: string): Promise<Outsiders> {
    const outside = path.join(this.dir, 'outside.dat');
    const sibling = path.join(this.dir, 'data', 'sibling.dat');
    const old = new Date(Date.now() - 10 * HOUR); // old enough to reap, were they in scope
    for (const f of [outside, sibling]) {
      await writeFile(f, 'precious');
      await utimes(f, old, old);
    }
    const fingerprintOf = async (file: string) => fileFingerprint(await lstat(file, { bigint: true }));
    const targets: [string, string][] = [
      ['../../outside.dat', outside],
      ['../sibling.dat', sibling],
      ['alice/../../sibling.dat', sibling],
      [outside, outside],
    ];
    return {
      forged: await Promise.all(targets.map(async ([id, file]) => ({ id, fingerprint: await fingerprintOf(file), ownerValue: null }))),
      intact: async () => (await readFile(outside, 'utf8')) === 'precious' && (await readFile(sibling, 'utf8')) === 'precious',
    };
  }

  /** A file where the quarantine directory must go: the rename-out-of-the-way step throws. */
  async failDeletes(resource: string): Promise<() => Promise<void>> {
    const blocker = path.join(this.root(resource), '.reaper-quarantine');
    await mkdir(this.root(resource), { recursive: true });
    await writeFile(blocker, 'in the way');
    return () => rm(blocker);
  }
}

export const filesFixture: ReapFixtureKind = {
  kind: 'fs',
  available: () => true,
  open: async (options: FixtureOptions = {}) => new FilesFixture(mkdtempSync(path.join(tmpdir(), 'reaper-reap-')), options.restorable === true),
};

/** Every backend the reap safety suite runs against. */
export const reapFixtures: readonly ReapFixtureKind[] = [filesFixture, s3Fixture, postgresFixture, mysqlFixture, commandFixture];

// ---------------------------------------------------------------- state stores

/**
 * The state store a scene's runs use, as its manifest names it: SQLite inside the
 * fixture's directory (`sqlite:.reaper/state.db`, relative to the manifest), or a fresh
 * PostgreSQL or MySQL database of the test's own.
 */
export interface SceneState {
  readonly dialect: StoreDialect;
  readonly url: string;
}

export const SQLITE_STATE: SceneState = { dialect: 'sqlite', url: 'sqlite:.reaper/state.db' };

export const storeAvailable = (dialect: StoreDialect): boolean => dialect === 'sqlite' || serviceAvailable(dialect);

/**
 * A fresh state store of this dialect for the running test; a server database is dropped with
 * `cleanups` unless `keep()` says otherwise then (the test failed: evidence).
 */
export async function freshSceneState(dialect: StoreDialect, cleanups: (() => Promise<void>)[], keep: () => boolean): Promise<SceneState> {
  if (dialect === 'sqlite') return SQLITE_STATE;
  return { dialect, url: dialect === 'postgres' ? await freshPgDatabase(cleanups, { keep }) : await freshMysqlDatabase(cleanups, { keep }) };
}

/** One (backend, state store) pair the reap suites run on. */
export interface ReapPair {
  readonly backend: ReapFixtureKind;
  readonly store: StoreDialect;
  /** `fs`, or `fs, postgres store`: SQLite pairs keep the backend's name alone. */
  readonly name: string;
  available(): boolean;
}

/** Whether the long matrix runs (REAPER_TEST_FULL=1): every backend on every state store. */
export const fullMatrix = process.env.REAPER_TEST_FULL === '1';

/**
 * The pairs of the reap safety and crash suites. By default every backend on SQLite and
 * the files backend — the quickest, and the one whose sweep has the most steps — on each
 * server store; with REAPER_TEST_FULL=1 every backend on every store.
 */
export function reapPairs(): ReapPair[] {
  const dialects: StoreDialect[] = ['sqlite', 'postgres', 'mysql'];
  return dialects.flatMap((store) =>
    reapFixtures
      .filter((backend) => fullMatrix || store === 'sqlite' || backend.kind === 'fs')
      .map((backend) => ({
        backend,
        store,
        name: store === 'sqlite' ? backend.kind : `${backend.kind}, ${store} store`,
        available: () => backend.available() && storeAvailable(store),
      })),
  );
}

// ---------------------------------------------------------------- manifests and stores

export interface ManifestOptions {
  /** Resource types (this fixture's), their policies and extra protect rules. */
  resources: readonly { name: string; policy?: Policy; options?: ResourceOptions }[];
  /**
   * `defaults:` keys; the suite's defaults are minAge 30m (a young resource, seconds old, stays young however
   * long a test takes on a loaded machine; an old one is an hour old), grace 1s, maxDeleteFraction 1.
   */
  defaults?: Policy;
  /** `defaults.breaker` keys. */
  breaker?: Readonly<Record<string, number>>;
  /** The state store (default SQLite in the fixture's directory). */
  state?: SceneState;
}

export const stateFile = (fixture: ReapFixture): string => path.join(fixture.dir, '.reaper', 'state.db');
export const manifestFile = (fixture: ReapFixture): string => path.join(fixture.dir, 'reaper.yaml');

/**
 * Manifest text: leases as the only liveness source, the state store (SQLite in the
 * fixture's directory unless another is given), the backend's connections inline (URLs,
 * endpoint), and the fixture's own defaults (S3: `minAge: 0s`) over the suite's.
 */
export function reapManifest(fixture: ReapFixture, options: ManifestOptions): string {
  const defaults: Policy = { minAge: '30m', grace: '1s', maxDeleteFraction: 1, ...fixture.defaults, ...options.defaults };
  const breaker = options.breaker ? `, breaker: { ${Object.entries(options.breaker).map(([k, v]) => `${k}: ${v}`).join(', ')} }` : '';
  const connections = fixture.connectionsYaml();
  return [
    'version: 1',
    `state: ${JSON.stringify((options.state ?? SQLITE_STATE).url)}`,
    `defaults: { ${Object.entries(defaults).map(([k, v]) => `${k}: ${typeof v === 'number' ? v : JSON.stringify(v)}`).join(', ')}${breaker} }`,
    ...(connections ? ['connections:', connections] : []),
    'owners:',
    '  - leases: {}',
    'resources:',
    ...options.resources.map((r) => fixture.resourceYaml(r.name, r.policy, r.options)),
    '',
  ].join('\n');
}

/** Parse manifest text as if it were `fixture.dir/reaper.yaml` (relative paths resolve there). */
export function loadReapManifest(fixture: ReapFixture, text: string): Manifest {
  return parseManifest(text, { file: manifestFile(fixture), baseDir: fixture.dir, env: fixture.env() });
}

/** Open the scene's state store here, as a run of the manifest would (another connection each call). */
export function openFixtureStore(fixture: ReapFixture, state: SceneState = SQLITE_STATE): Promise<StateStore> {
  return openStateStore(state.dialect === 'sqlite' ? `sqlite:${stateFile(fixture)}` : state.url);
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
