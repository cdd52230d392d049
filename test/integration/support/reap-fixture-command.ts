/**
 * The `command` kind's fixture for the reap safety suite: resources are JSON files in
 * `DIR/data/NAME`, served over the resource protocol by the reference handler's Perl twin
 * (handlers/dir-handler.pl: the same answers as handlers/dir-handler.mjs for list, delete and
 * restore, in a process that starts in a few milliseconds of CPU instead of some 60 — the suites
 * call it hundreds of times), so every scenario the built-in backends pass runs through a real
 * child process speaking the protocol (docs/resource-protocol.md, "Checking a handler").
 *
 * An owned resource is `OWNER--item-N` with `"owner": OWNER` inside; an unowned one
 * `stray-N`; a protected one carries `"protected": true` (the protect rule reads the
 * `protected` attribute). The age is the `createdAt` inside the file, so it can be set in
 * the past and survives rewrite and replace.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

export const DIR_HANDLER = path.resolve(__dirname, 'handlers/dir-handler.pl');
const VALID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/** The reference handler's fingerprint of a file (its inode and a hash of its bytes). */
export async function dirHandlerFingerprint(file: string): Promise<string> {
  const st = await stat(file);
  return `${st.ino}:${createHash('sha256').update(await readFile(file)).digest('hex').slice(0, 16)}`;
}

class CommandFixture extends DirectoryFixture implements ReapFixture {
  readonly kind = 'command' as const;
  readonly traits: FixtureTraits = { backdate: true, exactBytes: false };

  resourceYaml(name: string, policy: Policy = {}, options: ResourceOptions = {}): string {
    const handler = JSON.stringify(['perl', DIR_HANDLER, `./data/${name}`, ...(this.restorable ? ['--trash'] : [])]);
    const protect = ['{ attribute: { protected: "yes" } }', ...plainOwners(options.protectOwners).map((o) => `{ keyPattern: "^${o}--" }`)];
    return [
      `  - name: ${name}`,
      '    command:',
      `      list: ${handler}`,
      `      delete: ${handler}`,
      ...(this.restorable ? [`      restore: ${handler}`] : []),
      '    owner: { attribute: owner, key: "session:{value}" }',
      `    protect: [${protect.join(', ')}]`,
      ...policyLines(policy),
    ].join('\n');
  }

  async create(resource: string, seeds: readonly Seed[]): Promise<string[]> {
    const ids: string[] = [];
    await mkdir(this.root(resource), { recursive: true });
    for (const seed of seeds) {
      const n = ++this.serial;
      const id = seed.owner === null ? (seed.protected ? `keep-${n}` : `stray-${n}`) : `${seed.owner}--item-${n}`;
      const doc = {
        ...(seed.owner !== null ? { owner: seed.owner } : {}),
        ...(seed.protected ? { protected: true } : {}),
        createdAt: new Date(Date.now() - (seed.ageMs ?? HOUR)).toISOString(),
        payload: 'a'.repeat(seed.bytes ?? 100),
      };
      await writeFile(path.join(this.root(resource), id), JSON.stringify(doc));
      ids.push(id);
    }
    return ids;
  }

  async present(resource: string): Promise<Set<string>> {
    const names = await readdir(this.root(resource)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [] as string[];
      throw e;
    });
    return new Set(names.filter((n) => VALID.test(n) && !n.endsWith('.tmp')));
  }

  async snapshot(resource: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const id of await this.present(resource)) out.set(id, await readFile(path.join(this.root(resource), id), 'utf8'));
    return out;
  }

  async rewrite(resource: string, id: string): Promise<void> {
    const file = path.join(this.root(resource), id);
    const doc = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
    await writeFile(file, JSON.stringify({ ...doc, payload: `${doc.payload}bbbbbbb` }));
  }

  async replace(resource: string, id: string): Promise<void> {
    const file = path.join(this.root(resource), id);
    // The twin first, renamed over: the old inode is still allocated, so the new one differs.
    const twin = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(twin, await readFile(file));
    await rename(twin, file);
  }

  /** Files beside the scope, named by ids that climb out or are absolute: the handler must refuse them. */
  async outsideScope(resource: string): Promise<Outsiders> {
    const outside = path.join(this.dir, 'outside.json');
    const sibling = path.join(this.dir, 'data', `${resource}-sibling`);
    const doc = JSON.stringify({ owner: 'nobody-alive', createdAt: new Date(Date.now() - 10 * HOUR).toISOString() });
    for (const f of [outside, sibling]) await writeFile(f, doc);
    const targets: [string, string][] = [
      ['../../outside.json', outside],
      [`../${resource}-sibling`, sibling],
      [outside, outside],
    ];
    return {
      forged: await Promise.all(targets.map(async ([id, file]) => ({ id, fingerprint: await dirHandlerFingerprint(file), ownerValue: null }))),
      intact: async () => (await readFile(outside, 'utf8')) === doc && (await readFile(sibling, 'utf8')) === doc,
    };
  }

  /** The reference handler answers `error` to every delete while DIR/.fail-deletes exists. */
  async failDeletes(resource: string): Promise<() => Promise<void>> {
    await mkdir(this.root(resource), { recursive: true });
    const flag = path.join(this.root(resource), '.fail-deletes');
    await writeFile(flag, '');
    return () => rm(flag);
  }
}

export const commandFixture: ReapFixtureKind = {
  kind: 'command',
  available: () => true,
  open: async (options: FixtureOptions = {}) => new CommandFixture(mkdtempSync(path.join(tmpdir(), 'reaper-reap-command-')), options.restorable === true),
};
