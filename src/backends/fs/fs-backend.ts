/**
 * Files backend: the resources are regular files under a directory (optionally
 * filtered by a glob on the relative path).
 *
 * The walk streams with fs.opendir and never follows symlinks; only regular files
 * are resources (symlinks, FIFOs, sockets and devices are skipped). Each directory's
 * names are sorted so the order is stable and a scan can resume after a cursor (the
 * last id emitted): memory is bounded by the largest single directory, not the tree.
 * Names are read as bytes; a name that is not valid UTF-8 is reported with an escaped
 * id and `unreadable`, so it is never reaped. A directory below the root that cannot be
 * opened, or a file that cannot be stat'ed (EACCES), is reported as an unreadable entry
 * of the page (a file also as an `unreadable` record, judged unknown) and the walk goes on.
 */
import { lstatSync } from 'node:fs';
import { opendir, realpath } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';
import { BackendError, SafetyError } from '../../errors.js';
import { partHoldsBytes, type ShardPart } from '../../engine/shard.js';
import type { ResourceRecord } from '../../engine/types.js';
import { isFilesystemRoot } from '../../manifest/fs-scope.js';
import type { FsLocation, ResourceSpec } from '../../manifest/types.js';
import { fileFingerprint, quarantineDir, readScopeCheck, safeRelative } from './fs-identity.js';
import { purgeQuarantine, quarantinedCopy, recoverQuarantined, restoreFile, sweepFiles } from './fs-sweep.js';
import type { Backend, BackendCapabilities, BackendFailpoint, DeleteItem, DeleteResult, ScanOptions, ScanPage } from '../types.js';

export interface FsBackendOptions {
  /** Absolute paths never treated as resources (the state store, the quarantine directory). */
  exclude?: readonly string[];
  /** Crash tests' failpoints inside the sweep. */
  failpoint?: (name: BackendFailpoint) => void;
}

const STAT_BATCH = 256;

export class FsBackend implements Backend {
  readonly kind = 'fs' as const;
  readonly scope: string;
  private readonly root: string;
  private readonly matches: (relative: string) => boolean;
  private readonly exclude: Set<string>;

  constructor(
    private readonly spec: ResourceSpec & { location: FsLocation },
    private readonly options: FsBackendOptions = {},
  ) {
    this.root = spec.location.path;
    this.scope = this.root;
    const glob = spec.location.glob;
    this.matches = glob ? picomatch(glob, { dot: true }) : () => true;
    this.exclude = new Set([...(options.exclude ?? []), quarantineDir(this.root, spec.quarantine)].map((p) => path.resolve(p)));
  }

  async capabilities(): Promise<BackendCapabilities> {
    return { deleteMode: 'rename-verify' };
  }

  /**
   * A shard's part is the top-level entries whose name hashes to it (docs/scale-out.md): the
   * root is read whole by every shard, and only the entries of its part are walked and stat'ed.
   */
  async *scan(options: ScanOptions): AsyncIterable<ScanPage> {
    await this.checkRoot();
    const part = options.part ?? { kind: 'all' };
    if (part.kind === 'range') throw new BackendError(`${this.scope}: an fs type is sharded by top-level entry, not by key range`);
    if (part.kind === 'none') {
      yield { records: [], cursor: null };
      return;
    }
    const topLevel = part.kind === 'hash' ? (name: string) => partHoldsBytes(part, name) : () => true;
    const resumeAfter = options.cursor ? options.cursor.split('/') : null;
    let page: ResourceRecord[] = [];
    let unreadable: { id: string; why: string }[] = [];
    let pending: string[] = [];
    // Stats are synchronous, a batch at a time between directory reads: an lstat through the
    // thread pool costs several times the call itself, and scans are stat-bound.
    const flush = () => {
      for (const id of pending) {
        const r = this.statRecordSync(id);
        if (!r) continue;
        page.push(r);
        if (r.unreadable !== undefined && !id.startsWith('\0')) unreadable.push({ id: r.id, why: r.unreadable });
      }
      pending = [];
    };
    const take = (records: ResourceRecord[], last = false): ScanPage => {
      const out: ScanPage = { records, cursor: last ? null : records[records.length - 1]!.id };
      if (unreadable.length) out.unreadable = unreadable;
      unreadable = [];
      return out;
    };
    for await (const entry of this.walk(this.root, [], resumeAfter, options.signal, topLevel)) {
      if (typeof entry !== 'string') {
        unreadable.push(entry);
        continue;
      }
      pending.push(entry);
      if (pending.length >= STAT_BATCH) flush();
      if (page.length >= options.pageSize) {
        yield take(page);
        page = [];
      }
    }
    flush();
    while (page.length > options.pageSize) {
      yield take(page.slice(0, options.pageSize));
      page = page.slice(options.pageSize);
    }
    yield take(page, true);
  }

  /**
   * The manifest refused a root scope at load (docs/safety.md §6); a symlink on the way may have been
   * pointed at one since. Without `allowRoot`, a scope whose real path is a root is not walked.
   */
  private async checkRoot(): Promise<void> {
    if (this.spec.location.allowRoot) return;
    const real = await realpath(this.root).catch(() => null);
    if (real !== null && isFilesystemRoot(real)) {
      throw new SafetyError(`${this.root} resolves to the filesystem root ${real}; not scanned (allowRoot: true in the manifest if that is meant)`);
    }
  }

  /**
   * Relative ids of candidate regular files, in stable order, after `resumeAfter`. A
   * directory below the root that cannot be opened is yielded as an unreadable entry
   * (`sub/dir/`) and the walk goes on; only the root failing stops the scan.
   */
  private async *walk(
    dir: string,
    prefix: string[],
    resumeAfter: string[] | null,
    signal?: AbortSignal,
    topLevel: (name: string) => boolean = () => true,
  ): AsyncGenerator<string | { id: string; why: string }> {
    if (this.exclude.has(dir)) return;
    let handle;
    try {
      handle = await opendir(dir, { encoding: 'buffer' as never, bufferSize: 256 });
    } catch (error) {
      if (dir !== this.root && isGone(error)) return; // removed while walking
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      if (dir === this.root) throw new BackendError(`cannot read the directory ${this.root}: ${rootProblem(code)}`, { cause: error });
      yield { id: `${prefix.join('/')}/`, why: `cannot open the directory: ${code}` };
      return;
    }
    const entries: { name: string; bytesOk: boolean; kind: 'dir' | 'file' | 'other' }[] = [];
    for await (const dirent of handle) {
      const raw = dirent.name as unknown as Buffer;
      const name = raw.toString('utf8');
      const bytesOk = Buffer.from(name, 'utf8').equals(raw);
      const kind = dirent.isDirectory() ? 'dir' : dirent.isFile() ? 'file' : 'other';
      if (kind !== 'other') entries.push({ name: bytesOk ? name : escapeBytes(raw), bytesOk, kind });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const depth = prefix.length;
    for (const entry of entries) {
      signal?.throwIfAborted();
      if (depth === 0 && !topLevel(entry.name)) continue;
      if (resumeAfter && depth < resumeAfter.length) {
        const mark = resumeAfter[depth]!;
        if (entry.name < mark) continue;
        if (entry.name === mark && (entry.kind === 'file' || depth === resumeAfter.length - 1)) continue;
      }
      const parts = [...prefix, entry.name];
      const childResume = resumeAfter && depth < resumeAfter.length && entry.name === resumeAfter[depth] ? resumeAfter : null;
      if (entry.kind === 'dir') {
        if (!entry.bytesOk) continue; // cannot address its children by name; nothing under it is reapable
        yield* this.walk(path.join(dir, entry.name), parts, childResume, signal);
      } else {
        const id = parts.join('/');
        if (this.exclude.has(path.join(dir, entry.name))) continue;
        if (!entry.bytesOk) yield `\0${id}`;
        else if (this.matches(id)) yield id;
      }
    }
  }

  private statRecordSync(id: string): ResourceRecord | null {
    if (id.startsWith('\0')) {
      return { id: id.slice(1), createdAtMs: null, bytes: null, fingerprint: '', unreadable: 'file name is not valid UTF-8' };
    }
    try {
      const st = lstatSync(this.absolute(id), { bigint: true, throwIfNoEntry: false });
      if (!st || !st.isFile()) return null;
      return toRecord(id, st, this.spec.ageFrom);
    } catch (error) {
      if (isGone(error)) return null;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === undefined) throw error;
      // Listed but not readable (EACCES in a directory without search permission): counted, judged unknown, never reaped.
      return { id, createdAtMs: null, bytes: null, fingerprint: '', unreadable: `cannot stat: ${code}` };
    }
  }

  async inPart(ids: readonly string[], part: ShardPart): Promise<Set<string>> {
    if (part.kind === 'range') throw new BackendError(`${this.scope}: an fs type is sharded by top-level entry, not by key range`);
    return new Set(ids.filter((id) => partHoldsBytes(part, id)));
  }

  /**
   * Read ids again (sweep-time re-verification): an id outside the root, or reached through a symlink, is not found.
   * Synchronous, like the scan's stats; each distinct parent directory is resolved once per call (never across
   * calls). A read only informs the decision: the sweep resolves the parent again at its rename.
   */
  async read(ids: readonly string[]): Promise<Map<string, ResourceRecord>> {
    const out = new Map<string, ResourceRecord>();
    const inScope = readScopeCheck(this.root);
    for (const id of ids) {
      const r = safeRelative(id) && inScope(id) ? this.statRecordSync(id) : null;
      if (r) out.set(r.id, r);
    }
    return out;
  }

  /** Conditional delete: rename into quarantine, verify identity, unlink (fs-sweep.ts). */
  async delete(items: readonly DeleteItem[]): Promise<DeleteResult[]> {
    const failpoint = this.options.failpoint;
    return sweepFiles(this.root, items, {
      quarantine: this.spec.quarantine,
      keep: this.spec.retainMs !== undefined,
      afterRename: failpoint && (() => failpoint('after-rename')),
    });
  }

  /** A copy a run killed mid-sweep left in quarantine: unlinked (kept, with `retain`) if it is the journaled file, else put back. */
  async recoverDelete(item: DeleteItem): Promise<DeleteResult | null> {
    return recoverQuarantined(this.root, this.spec.quarantine, item, this.spec.retainMs !== undefined);
  }

  /** Unlink quarantined copies older than `retain`. */
  async purgeRetained(nowMs: number): Promise<number> {
    return this.spec.retainMs === undefined ? 0 : purgeQuarantine(this.root, this.spec.quarantine, this.spec.retainMs, nowMs);
  }

  /** Whether the copy a handle names is still in quarantine, and until when `retain` keeps it. */
  async keptCopy(handle: string): Promise<{ present: boolean; untilMs: number | null }> {
    return quarantinedCopy(handle, this.spec.retainMs);
  }

  async restore(id: string, handle: string): Promise<void> {
    await restoreFile(this.root, id, handle);
  }

  /** Absolute path of an id, refusing anything that would leave the root. */
  absolute(id: string): string {
    if (!safeRelative(id)) throw new SafetyError(`refusing path outside the scope: ${JSON.stringify(id)}`);
    return path.join(this.root, ...id.split('/'));
  }

  async close(): Promise<void> {}
}

export function toRecord(
  id: string,
  st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint; atimeNs: bigint },
  ageFrom: 'mtime' | 'ctime' | 'atime',
): ResourceRecord {
  const ns = ageFrom === 'mtime' ? st.mtimeNs : ageFrom === 'ctime' ? st.ctimeNs : st.atimeNs;
  return {
    id,
    createdAtMs: Number(ns / 1_000_000n),
    bytes: Number(st.size),
    fingerprint: fileFingerprint(st),
  };
}

function isGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function escapeBytes(raw: Buffer): string {
  let out = '';
  for (const byte of raw) out += byte >= 0x20 && byte < 0x7f && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).padStart(2, '0').toUpperCase()}`;
  return out;
}

/** Why the scope's own directory cannot be read, in words a first run can act on. */
function rootProblem(code: string): string {
  if (code === 'ENOENT') return 'it does not exist (ENOENT): create it, or point the type\'s `fs: { path }` at the directory to audit';
  if (code === 'ENOTDIR') return 'it is not a directory (ENOTDIR): `fs: { path }` names the directory whose files are audited';
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code}) for ${typeof process.getuid === 'function' ? `uid ${process.getuid()}` : 'this user'}`;
  return code;
}
