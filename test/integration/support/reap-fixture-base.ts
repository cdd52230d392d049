/**
 * The fixture contract of the reap safety suite, shared by every backend's fixture
 * (reap-fixture.ts: files and the manifest helpers; reap-fixture-s3.ts;
 * reap-fixture-sql.ts: PostgreSQL and MySQL). Kept apart so the backend modules and
 * reap-fixture.ts do not import each other.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { BackendKind } from '../../../src/manifest/types.js';

/** One resource to create. */
export interface Seed {
  /** The owner value written into the resource (its key is `ownerKey(owner)`); null for none. */
  owner: string | null;
  /**
   * Age of the resource (default one hour: past any test's minAge). Only a fixture whose
   * `traits.backdate` holds accepts it; the others throw rather than create a resource
   * whose age is not the one asked for.
   */
  ageMs?: number;
  /** Matches the type's protect rule. */
  protected?: boolean;
  bytes?: number;
}

/** A resource type's policy keys, written as YAML scalars (`grace: 1s`, `maxDeletesPerRun: 3`). */
export type Policy = Readonly<Record<string, string | number>>;

/** What a backend can and cannot express, so scenarios can state expectations honestly. */
export interface FixtureTraits {
  /**
   * Ages can be set in the past and survive rewrite/replace (files: mtime; SQL: the
   * createdAt column). S3 cannot: LastModified is the server's upload time and moto
   * offers no way to backdate it, so the S3 fixture runs with `minAge: 0s` and has no
   * young resources.
   */
  readonly backdate: boolean;
  /** A resource's `bytes` is exactly its seed's byte count (files, S3 objects); a SQL row's is its stored size. */
  readonly exactBytes: boolean;
}

export interface ResourceOptions {
  /** Also protect every resource of these owners (plain `[a-z0-9-]+` names): a path/key pattern or a SQL `where`. */
  protectOwners?: readonly string[];
}

export interface FixtureOptions {
  /**
   * Keep what a delete removes so `restore` can bring it back: files go to a quarantine
   * with `retain`, SQL rows to an archive table, S3 objects get a delete marker in a
   * versioned bucket.
   */
  restorable?: boolean;
}

/** Resources just outside a type's scope, and ledger entries that name them. */
export interface Outsiders {
  /**
   * Tombstones a corrupted or hostile state store might hold: ids that reach outside the
   * scope (`..`, absolute paths, another prefix, a row outside the `where`), each with
   * the real fingerprint (and owner value) of the resource it reaches, so nothing but the
   * scope guards stands between them and a delete.
   */
  forged: { id: string; fingerprint: string; ownerValue: string | null }[];
  /** Whether every outsider is still there, unchanged. */
  intact(): Promise<boolean>;
}

export interface ReapFixture {
  readonly kind: BackendKind;
  readonly traits: FixtureTraits;
  /** `defaults:` keys this backend needs in every manifest (S3: `minAge: 0s`). */
  readonly defaults: Policy;
  /** The test's own directory: the manifest, the SQLite state store and plan files live here. */
  readonly dir: string;
  /** `connections:` entries the resource types need (YAML, indented by 2), or ''. */
  connectionsYaml(): string;
  /** One `resources:` entry (YAML, indented by 2) for a type this fixture serves. */
  resourceYaml(name: string, policy?: Policy, options?: ResourceOptions): string;
  /** Create resources of a type; returns their ids in the order given. */
  create(resource: string, seeds: readonly Seed[]): Promise<string[]>;
  /** Ids of the type's resources that exist now (what a user would still find). */
  present(resource: string): Promise<Set<string>>;
  /** Each present resource's content (bytes, owner, protection), to compare before a delete and after a restore. */
  snapshot(resource: string): Promise<Map<string, string>>;
  /** Change a resource in place (new content), keeping its age where the backend can: same id, new fingerprint. */
  rewrite(resource: string, id: string): Promise<void>;
  /**
   * Remove a resource and create another under the same id with the same content and age:
   * a new identity. Where the backend has no identity beyond the content (an unversioned
   * S3 bucket: the ETag), the new one differs in content; see the fixture.
   */
  replace(resource: string, id: string): Promise<void>;
  /** Create resources outside the type's scope that would be reapable were they inside it. */
  outsideScope(resource: string): Promise<Outsiders>;
  /** Make the backend refuse or fail the deletes of a type until the returned function is called. */
  failDeletes(resource: string): Promise<() => Promise<void>>;
  /** Environment the CLI needs to reach the backend (endpoints, credentials). */
  env(): Record<string, string>;
  /** Release connections; remove the test's data unless `keep` (evidence of a failed test). */
  cleanup(options?: { keep?: boolean }): Promise<void>;
}

export interface ReapFixtureKind {
  readonly kind: BackendKind;
  /** Whether the backend's service is reachable here (files always are). */
  available(): boolean;
  open(options?: FixtureOptions): Promise<ReapFixture>;
}

export const ownerKey = (owner: string): string => `session:${owner}`;

export const HOUR = 3_600_000;

export function policyLines(policy: Policy): string[] {
  return Object.entries(policy).map(([k, v]) => `    ${k}: ${typeof v === 'number' ? v : JSON.stringify(v)}`);
}

/** Owner names that go into a pattern or a SQL literal unescaped: refuse anything else. */
export function plainOwners(owners: readonly string[] | undefined): readonly string[] {
  for (const o of owners ?? []) if (!/^[a-z0-9-]+$/.test(o)) throw new Error(`protectOwners: ${JSON.stringify(o)} is not a plain owner name`);
  return owners ?? [];
}

/** Run `fn` over `items` with at most `limit` at a time, keeping the order of results. */
export async function mapPool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** What the fixtures whose resources live under `DIR/data/NAME` share: files, and the command kind's reference handler. */
export abstract class DirectoryFixture {
  readonly defaults: Policy = {};
  protected serial = 0;

  constructor(
    readonly dir: string,
    protected readonly restorable: boolean,
  ) {}

  root(resource: string): string {
    return path.join(this.dir, 'data', resource);
  }

  connectionsYaml(): string {
    return '';
  }

  env(): Record<string, string> {
    return {};
  }

  async cleanup(options: { keep?: boolean } = {}): Promise<void> {
    if (!options.keep) await rm(this.dir, { recursive: true, force: true });
  }
}
