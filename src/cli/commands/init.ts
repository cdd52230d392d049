/**
 * `reaper init [FILE]`: a manifest to start from — one files type that validates and audits as
 * written, the other kinds and liveness sources commented out beside it — written to FILE
 * (default ./reaper.yaml; `-` prints it), with the files type's directory (./scratch, empty)
 * made beside it when missing. Never overwrites a file; contacts nothing.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../../errors.js';
import type { CliIO } from '../io.js';
import { outputFile } from '../options.js';

export const STARTER_MANIFEST = `# reaper manifest. Every key, its type and default: docs/manifest.md.
# Edit the resource type below (uncomment the others you need), then:
#   reaper validate     checks the manifest and, read-only, every part it names
#   reaper audit        scans and classifies every resource; read-only
#   reaper reap         shows what a reap would mark and delete; --execute acts
version: 1
state: sqlite:.reaper/state.db          # relative to this file; or postgres://… / mysql://…, shared with the services' leases
defaults: { minAge: 10m, grace: 1h }

# connections:
#   blobs: { kind: s3, region: us-east-1 }      # S3-compatible: endpoint: "\${S3_ENDPOINT}", forcePathStyle: true
#   main-db: { kind: postgres, url: "\${DATABASE_URL}" }
#   legacy: { kind: mysql, url: "\${LEGACY_DATABASE_URL}" }

# What keeps an owner key live (omitted: leases only). Every key has one shape, here session:<id>.
owners:
  - leases: {}                          # services hold leases: reaper daemon, reaper lease acquire
  # - sql: { connection: main-db, query: "SELECT 'session:' || id FROM sessions WHERE expires_at > now()" }
  # - static: ["session:platform"]

resources:
  - name: scratch
    fs: { path: ./scratch }             # relative to this file; glob: "**/*.part" narrows it
    owner: { pathPattern: "^(?<owner>[^/]+)/", key: "session:{value}" }   # scratch/<id>/… belongs to session:<id>
    ttl: 24h
  # - name: upload-blobs
  #   s3: { connection: blobs, bucket: uploads, prefix: tmp/ }
  #   owner: { keyPattern: "^tmp/(?<owner>[^/]+)/", key: "session:{value}" }
  # - name: image-rows
  #   postgres: { connection: main-db, table: public.images, id: id, createdAt: created_at }
  #   owner: { column: session_id, key: "session:{value}" }
  # - name: cart-rows
  #   mysql: { connection: legacy, table: carts, id: id, createdAt: created_at }
  #   owner: { column: session_id, key: "session:{value}" }
`;

export async function initCommand(io: CliIO, args: unknown[]): Promise<number> {
  const target = (args[0] as string | undefined) ?? 'reaper.yaml';
  if (target === '-') {
    io.stdout.write(STARTER_MANIFEST);
    return 0;
  }
  const file = outputFile(io, target, 'init', true)!;
  try {
    // wx: fails on an existing file (or a symlink), never truncates one.
    await writeFile(file, STARTER_MANIFEST, { flag: 'wx', mode: 0o644 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${file} exists; init never overwrites a manifest (name another file, or - to print it)`);
    throw new UsageError(`init: cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  // The files type's directory, empty, beside the manifest: validate and audit then work as written.
  const scratch = path.join(path.dirname(file), 'scratch');
  const made = await mkdir(scratch).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return false;
      throw new UsageError(`init: wrote ${file}, but cannot make ${scratch} for its files type: ${error.code ?? error.message}`);
    },
  );
  // `validate` finds ./reaper.yaml by itself; any other file it must be told.
  const validate = path.resolve(io.cwd, 'reaper.yaml') === file ? 'reaper validate' : `reaper validate -c ${path.relative(io.cwd, file) || file}`;
  const dir = made ? ' and an empty ./scratch for its files type' : '';
  io.stdout.write(`wrote ${file}${dir}: one files type over ./scratch, the other kinds commented out; edit it, then \`${validate}\`\n`);
  return 0;
}
