/**
 * The S3 fixture of the reap safety suite, on the moto server the global setup starts.
 *
 * Each fixture has its own bucket; resource type NAME is the prefix `NAME/`. An owned
 * object is `NAME/OWNER/item-N.dat` (owner by keyPattern: one LIST per page, nothing per
 * object), an unowned one `NAME/stray-N.dat`. A protected object is named `keep-N.dat`
 * and also carries the tag `keep=true`. The protect rule is the keyPattern: moto answers
 * about 100 requests a second, and a tag rule costs a GetObjectTagging per object on every
 * scan and re-read. With `protectByTag` set, the rule is the tag instead (the S3-specific
 * scenarios use it).
 *
 * What S3 on moto can and cannot express:
 * - Age is LastModified, the server's upload time; moto cannot backdate it. The fixture
 *   runs with `minAge: 0s`, refuses seeds with `ageMs`, and so has no young objects.
 * - Identity is the ETag (an MD5 of the bytes) in an unversioned bucket, `ETag#versionId`
 *   in a versioned one. An unversioned bucket cannot tell a byte-identical re-upload from
 *   the original — no precondition S3 offers can — so there `replace` re-uploads the key
 *   with different bytes of the same size. In a versioned bucket (`restorable`) `replace`
 *   re-uploads the very same bytes: a new version id is the new identity.
 * - Deletes: moto ignores the per-object ETags of DeleteObjects but enforces If-Match on a
 *   single DeleteObject; reaper's adapter probes that and deletes one by one with If-Match
 *   (`s3-per-object-if-match`), or, versioned, checks the current version with HeadObject
 *   and then adds a delete marker with If-Match (`s3-versioned-delete-marker`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { s3Settings, serviceAvailable, uniqueName } from './services.js';
import {
  mapPool,
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
} from './reap-fixture-base.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Sees every request an S3Client of this process sends to one bucket; `send` sends it for real. */
export type S3Interceptor = (command: object, send: () => Promise<unknown>) => Promise<unknown>;

const interceptors = new Map<string, S3Interceptor>();
let seamInstalled = false;

/**
 * A seam in the SDK's transport, installed once per test process: requests to a bucket
 * with an interceptor go through it, every other request passes straight through. It
 * injects what a real network does (a timeout, a lost response) into reaper's real S3
 * adapter; it never answers for the server.
 */
function installSeam(): void {
  if (seamInstalled) return;
  seamInstalled = true;
  const proto = S3Client.prototype as unknown as { send: (this: S3Client, command: { input?: { Bucket?: unknown } }, ...rest: unknown[]) => Promise<unknown> };
  const original = proto.send;
  proto.send = function (this: S3Client, command, ...rest) {
    const bucket = command?.input?.Bucket;
    const hook = typeof bucket === 'string' ? interceptors.get(bucket) : undefined;
    const send = () => original.call(this, command, ...rest);
    return hook ? hook(command, send) : send();
  };
}

/** The error a client sees when the network, not the server, fails a request. */
export function networkTimeout(): Error {
  return Object.assign(new Error('connect ETIMEDOUT (injected by the test)'), { name: 'TimeoutError', code: 'ETIMEDOUT', $metadata: {} });
}

const isProbeKey = (key: string | undefined) => (key ?? '').includes('.reaper-probe-');

/** A delete of a resource's object, not of the adapter's own delete-mode probe object (which must keep working). */
export function isResourceDelete(command: object): command is DeleteObjectCommand | DeleteObjectsCommand {
  if (command instanceof DeleteObjectCommand) return !isProbeKey(command.input.Key);
  if (command instanceof DeleteObjectsCommand) return (command.input.Delete?.Objects ?? []).some((o) => !isProbeKey(o.Key));
  return false;
}

const bodyOf = (bytes: number, fill: number) => Buffer.alloc(bytes, fill);
const tagging = (tags: readonly { Key?: string; Value?: string }[] | undefined) =>
  (tags ?? []).map((t) => `${encodeURIComponent(t.Key ?? '')}=${encodeURIComponent(t.Value ?? '')}`).join('&');

export class S3ReapFixture implements ReapFixture {
  readonly kind = 's3' as const;
  readonly traits: FixtureTraits = { backdate: false, exactBytes: true };
  readonly defaults: Policy = { minAge: '0s' };
  /** Protect by the `keep=true` tag (GetObjectTagging per object) instead of the `keep-N.dat` key pattern. */
  protectByTag = false;
  /** The location's `deleteMode` (default: none, i.e. `auto`, probed). */
  deleteMode: 'batch-if-match' | 'per-object-if-match' | null = null;
  private serial = 0;

  constructor(
    readonly dir: string,
    readonly bucket: string,
    readonly versioned: boolean,
    private readonly client: S3Client,
    private readonly endpoint: string,
  ) {}

  prefix(resource: string): string {
    return `${resource}/`;
  }

  connectionsYaml(): string {
    return `  blobs: { kind: s3, endpoint: "${this.endpoint}", region: us-east-1, forcePathStyle: true, accessKeyId: testing, secretAccessKey: testing }`;
  }

  resourceYaml(name: string, policy: Policy = {}, options: ResourceOptions = {}): string {
    const keep = this.protectByTag ? '{ tag: { keep: "true" } }' : '{ keyPattern: "(^|/)keep-[^/]*$" }';
    const protect = [keep, ...plainOwners(options.protectOwners).map((o) => `{ keyPattern: "^${name}/${o}/" }`)];
    return [
      `  - name: ${name}`,
      `    s3: { connection: blobs, bucket: ${this.bucket}, prefix: ${this.prefix(name)}${this.deleteMode ? `, deleteMode: ${this.deleteMode}` : ''} }`,
      `    owner: { keyPattern: "^${name}/(?<owner>[^/]+)/", key: "session:{value}" }`,
      `    protect: [${protect.join(', ')}]`,
      ...policyLines(policy),
    ].join('\n');
  }

  async create(resource: string, seeds: readonly Seed[]): Promise<string[]> {
    const named = seeds.map((seed) => {
      if (seed.ageMs !== undefined) throw new Error('the S3 fixture cannot backdate an object (LastModified is the upload time); leave ageMs out on S3');
      const n = ++this.serial;
      const base = seed.protected ? `keep-${n}.dat` : `item-${n}.dat`;
      const rest = seed.owner === null ? (seed.protected ? base : `stray-${n}.dat`) : `${seed.owner}/${base}`;
      return { key: `${this.prefix(resource)}${rest}`, seed };
    });
    await mapPool(named, 8, ({ key, seed }) =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bodyOf(seed.bytes ?? 100, 0x61), ...(seed.protected ? { Tagging: 'keep=true' } : {}) })),
    );
    return named.map((n) => n.key);
  }

  private async keys(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of page.Contents ?? []) if (o.Key !== undefined) out.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async present(resource: string): Promise<Set<string>> {
    return new Set(await this.keys(this.prefix(resource)));
  }

  async snapshot(resource: string): Promise<Map<string, string>> {
    const keys = await this.keys(this.prefix(resource));
    const entries = await mapPool(keys, 8, async (key) => {
      const [object, tags] = await Promise.all([
        this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })),
        this.client.send(new GetObjectTaggingCommand({ Bucket: this.bucket, Key: key })),
      ]);
      return [key, `${await object.Body!.transformToString('base64')} ${tagging(tags.TagSet)}`] as const;
    });
    return new Map(entries);
  }

  /** Overwrite in place with longer content, keeping the tags (PutObject would drop them). LastModified moves: S3 has no other way. */
  async rewrite(_resource: string, id: string): Promise<void> {
    const [head, tags] = await Promise.all([
      this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: id })),
      this.client.send(new GetObjectTaggingCommand({ Bucket: this.bucket, Key: id })),
    ]);
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: id, Body: bodyOf((head.ContentLength ?? 0) + 7, 0x62), Tagging: tagging(tags.TagSet) }));
  }

  /**
   * Delete the key, then upload under it again. Versioned: the same bytes (a new version
   * id is a new identity). Unversioned: different bytes of the same size, because a
   * byte-identical upload has the same ETag — the same identity as far as any S3
   * precondition can tell.
   */
  async replace(_resource: string, id: string): Promise<void> {
    const [object, tags] = await Promise.all([
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: id })),
      this.client.send(new GetObjectTaggingCommand({ Bucket: this.bucket, Key: id })),
    ]);
    const bytes = Buffer.from(await object.Body!.transformToByteArray());
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: id }));
    const body = this.versioned ? bytes : bodyOf(bytes.length, 0x63);
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: id, Body: body, Tagging: tagging(tags.TagSet) }));
  }

  /** Objects in the same bucket under another prefix and under a look-alike prefix, plus a `..` key that S3 treats literally. */
  async outsideScope(resource: string): Promise<Outsiders> {
    const keys = ['other/mallory/item.dat', `${resource}-sibling/mallory/item.dat`];
    const etags = new Map<string, string>();
    for (const key of keys) {
      const put = await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bodyOf(100, 0x78) }));
      etags.set(key, this.versioned ? `${put.ETag}#${put.VersionId ?? 'null'}` : put.ETag!);
    }
    const first = keys[0]!;
    const forged = [...keys, `${this.prefix(resource)}../${first}`].map((id) => ({ id, fingerprint: etags.get(id) ?? etags.get(first)!, ownerValue: null }));
    return {
      forged,
      intact: async () => {
        for (const key of keys) {
          const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })).catch(() => null);
          if (!head || !etags.get(key)!.startsWith(head.ETag ?? '-')) return false;
        }
        return true;
      },
    };
  }

  /** Until undone, every delete of a resource's object times out in the network before it reaches moto. */
  async failDeletes(): Promise<() => Promise<void>> {
    return this.intercept(async (command, send) => {
      if (isResourceDelete(command)) throw networkTimeout();
      return send();
    });
  }

  /** Route this bucket's requests (from any S3Client in this process) through `hook` until undone. */
  intercept(hook: S3Interceptor): () => Promise<void> {
    installSeam();
    interceptors.set(this.bucket, hook);
    return async () => {
      if (interceptors.get(this.bucket) === hook) interceptors.delete(this.bucket);
    };
  }

  env(): Record<string, string> {
    return {};
  }

  async cleanup(options: { keep?: boolean } = {}): Promise<void> {
    interceptors.delete(this.bucket);
    try {
      if (options.keep) return;
      await this.empty();
      await this.client.send(new DeleteBucketCommand({ Bucket: this.bucket }));
      await rm(this.dir, { recursive: true, force: true });
    } finally {
      this.client.destroy();
    }
  }

  private async empty(): Promise<void> {
    if (!this.versioned) {
      await mapPool(await this.keys(''), 8, (key) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
      return;
    }
    for (;;) {
      const page = await this.client.send(new ListObjectVersionsCommand({ Bucket: this.bucket }));
      const versions = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])];
      if (versions.length === 0) return;
      await mapPool(versions, 8, (v) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: v.Key!, VersionId: v.VersionId! })));
    }
  }
}

export const s3Fixture = {
  kind: 's3',
  available: () => serviceAvailable('s3'),
  open: async (options: FixtureOptions = {}): Promise<S3ReapFixture> => {
    const settings = s3Settings();
    const client = new S3Client({
      endpoint: settings.endpoint,
      region: settings.region,
      forcePathStyle: true,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    });
    const bucket = `${uniqueName('reap').toLowerCase().replace(/_/g, '-')}-${randomBytes(2).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const versioned = options.restorable === true;
    if (versioned) await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    return new S3ReapFixture(mkdtempSync(path.join(tmpdir(), 'reaper-reap-s3-')), bucket, versioned, client, settings.endpoint);
  },
} satisfies ReapFixtureKind;
