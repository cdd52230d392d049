/**
 * The S3 client of a named connection, and the small helpers every S3 request of reaper
 * shares: loading the SDK lazily, reading S3 errors, decoding url-encoded listed keys.
 *
 * The SDK is loaded on first use only (`reaper --help` never loads it). One S3Client per
 * connection name is created through `Connections` and destroyed when the connections
 * close. Retries: the SDK's `standard` retry strategy (exponential backoff with full
 * jitter; retries throttling such as SlowDown and transient 5xx/network errors) with the
 * connection's `maxAttempts` (default 3). Every delete reaper sends is conditional
 * (If-Match, or an exact VersionId), so a retried delete can never remove a different
 * object than the one fingerprinted.
 */
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { BackendError, redact } from '../../errors.js';
import type { S3ConnectionSpec } from '../../manifest/types.js';
import type { Connections } from '../connections.js';

export type S3Sdk = typeof import('@aws-sdk/client-s3');

export const DEFAULT_CONCURRENCY = 16;
const DEFAULT_MAX_ATTEMPTS = 3;

let sdk: Promise<S3Sdk> | undefined;

/** The SDK module, imported on first use. */
export function loadS3Sdk(): Promise<S3Sdk> {
  sdk ??= import('@aws-sdk/client-s3').catch((error: unknown) => {
    sdk = undefined;
    throw new BackendError('cannot load @aws-sdk/client-s3; reinstall reaper with its dependencies', { cause: error });
  });
  return sdk;
}

/** The S3 connection spec named `name`, refusing a connection of another kind. */
export function s3ConnectionSpec(connections: Connections, name: string): S3ConnectionSpec {
  const spec = connections.spec(name);
  if (spec.kind !== 's3') throw new BackendError(`connection "${name}" is ${spec.kind}; an s3 resource needs an s3 connection`);
  return spec;
}

/** Client settings from a connection: explicit credentials when given, else the SDK's default chain (env, profile, SSO, IMDS…). */
export function s3ClientConfig(spec: S3ConnectionSpec): S3ClientConfig {
  const config: S3ClientConfig = {
    maxAttempts: spec.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    retryMode: 'standard',
    // Checksums only where S3 requires them (DeleteObjects, PutObjectTagging): S3-compatible servers vary in what they accept.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  const region = spec.region ?? (spec.endpoint ? 'us-east-1' : undefined);
  if (region) config.region = region;
  if (spec.endpoint) config.endpoint = spec.endpoint;
  if (spec.forcePathStyle !== undefined) config.forcePathStyle = spec.forcePathStyle;
  if (spec.profile) config.profile = spec.profile;
  if (spec.accessKeyId && spec.secretAccessKey) {
    config.credentials = {
      accessKeyId: spec.accessKeyId,
      secretAccessKey: spec.secretAccessKey,
      ...(spec.sessionToken ? { sessionToken: spec.sessionToken } : {}),
    };
  }
  return config;
}

const ADVISORY_SWITCH = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';

/**
 * Run `make` (an S3Client's construction) with the SDK's Node-version advisory off. reaper
 * supports Node 20 with the SDK version it pins; the advisory about the SDK's own future
 * releases would otherwise land in every CLI run's stderr. The SDK's documented switch is
 * this environment variable set to `true` (aws/aws-sdk-js-v3#7983), read while a client is
 * constructed: it is set for that moment only, so that handler processes reaper starts later
 * see the user's environment, and a user who sets it (to anything) decides. The SDK then
 * counts its advisory as given for the process, so the clients it creates later itself (STS
 * for web identity credentials) stay quiet as well.
 */
export function withoutNodeVersionAdvisory<T>(make: () => T): T {
  if (process.env[ADVISORY_SWITCH] !== undefined) return make();
  process.env[ADVISORY_SWITCH] = 'true';
  try {
    return make();
  } finally {
    delete process.env[ADVISORY_SWITCH];
  }
}

/** The shared S3Client of connection `name`, created once. */
export function s3ClientFor(connections: Connections, name: string): Promise<S3Client> {
  const spec = s3ConnectionSpec(connections, name);
  return connections.client<S3Client>(
    name,
    async () => {
      const { S3Client } = await loadS3Sdk();
      return withoutNodeVersionAdvisory(() => new S3Client(s3ClientConfig(spec)));
    },
    (client) => client.destroy(),
  );
}

/** What reaper needs to know about a failed S3 request. */
export interface S3Failure {
  /** The S3 error code (`NoSuchKey`, `PreconditionFailed`…), or the SDK's name for a bodiless response (`NotFound`). */
  code: string;
  status: number | undefined;
  message: string;
}

export function s3Failure(error: unknown): S3Failure {
  const e = error as { name?: unknown; Code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } } | null;
  const code = typeof e?.Code === 'string' ? e.Code : typeof e?.name === 'string' ? e.name : 'Error';
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return { code, status: e?.$metadata?.httpStatusCode, message };
}

/** `Code: message (HTTP status)`, with anything secret-looking removed. */
export function describeS3Failure(error: unknown): string {
  const f = s3Failure(error);
  const status = f.status === undefined ? '' : ` (HTTP ${f.status})`;
  const text = f.message && f.message !== f.code ? `${f.code}: ${f.message}` : f.code;
  return redact(`${text}${status}`).replace(/\s+/g, ' ').trim();
}

/** Why a request on a bucket failed, in the terms a user acts on. */
export type S3FailureKind = 'no-credentials' | 'credentials-refused' | 'access-denied' | 'no-such-bucket' | 'unreachable' | 'other';

const REFUSED_CREDENTIALS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'InvalidClientTokenId']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/** The network error code of a failed request (`ECONNREFUSED`…), or null when the server answered. */
function networkCode(error: unknown): string | null {
  const e = error as { code?: unknown; name?: unknown; cause?: { code?: unknown } } | null;
  for (const code of [e?.code, e?.cause?.code]) if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  if (e?.name === 'TimeoutError') return 'ETIMEDOUT';
  return null;
}

export function s3FailureKind(error: unknown): S3FailureKind {
  const f = s3Failure(error);
  if (f.code === 'CredentialsProviderError') return 'no-credentials';
  if (REFUSED_CREDENTIALS.has(f.code)) return 'credentials-refused';
  if (f.code === 'NoSuchBucket') return 'no-such-bucket';
  if (f.code === 'AccessDenied' || f.code === 'AllAccessDisabled' || (f.status === 403 && f.code === 'Forbidden')) return 'access-denied';
  if (f.status === undefined && networkCode(error) !== null) return 'unreachable';
  return 'other';
}

/**
 * One sentence on why a request on a bucket failed, telling apart what a user fixes in
 * different places: no credentials found (the SDK's default chain came back empty), the
 * server refused them, access denied (naming the permission `permission`), no such bucket,
 * an endpoint that cannot be reached. Anything else keeps the server's own words.
 */
export function explainS3Failure(error: unknown, where: { bucket: string; endpoint: string | undefined; request: string; permission: string }): string {
  const f = s3Failure(error);
  const endpoint = where.endpoint ?? 'the AWS S3 endpoint of the region';
  switch (s3FailureKind(error)) {
    case 'no-credentials':
      return 'no AWS credentials found: set accessKeyId and secretAccessKey (or profile) on the connection, or provide them to the SDK (AWS_ACCESS_KEY_ID, ~/.aws/credentials, an instance role)';
    case 'credentials-refused':
      return `the credentials were refused by ${redact(endpoint)} (${describeS3Failure(error)}); check the access key and secret of the connection`;
    case 'access-denied':
      return `access denied to ${where.request} on the bucket "${where.bucket}" (needs ${where.permission}): ${describeS3Failure(error)}`;
    case 'no-such-bucket':
      return `the bucket "${where.bucket}" does not exist at ${redact(endpoint)}`;
    case 'unreachable':
      return `cannot connect to the S3 endpoint ${redact(endpoint)}: ${networkCode(error)}${f.message ? ` (${redact(f.message)})` : ''}`;
    case 'other':
      return `${where.request} failed (needs ${where.permission}): ${describeS3Failure(error)}`;
  }
}

/**
 * The key (or the version) is not there. Bodiless HEAD answers only carry the status;
 * requests with a body must say NoSuchKey/NoSuchVersion, so a 404 from something that
 * is not S3's object layer (a proxy, a router) is not taken as "gone".
 */
export function isMissing(error: unknown): boolean {
  const f = s3Failure(error);
  return f.code === 'NoSuchKey' || f.code === 'NoSuchVersion' || (f.code === 'NotFound' && f.status === 404);
}

export function isPreconditionFailed(error: unknown): boolean {
  const f = s3Failure(error);
  return f.code === 'PreconditionFailed' || f.status === 412;
}

/** A concurrent write raced a conditional request (S3 answers 409 ConditionalRequestConflict); the request may be sent again. */
export function isConditionalConflict(error: unknown): boolean {
  const f = s3Failure(error);
  return f.code === 'ConditionalRequestConflict' || f.status === 409;
}

/** The request is one S3 refused for this object alone (a bad tag set, an invalid argument), not a failure of the service or of access. */
export function isObjectLevelRefusal(error: unknown): boolean {
  const f = s3Failure(error);
  return f.status === 400;
}

export function isAbort(error: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || (error as { name?: unknown } | null)?.name === 'AbortError';
}

/**
 * A key as listed. With `EncodingType=url` S3 percent-encodes keys and writes a space
 * as `+` (a literal `+` arrives as `%2B`), so decoding is form-decoding; servers that
 * ignore the parameter do not echo `EncodingType` and their keys are taken verbatim.
 */
export function decodeListedKey(raw: string, urlEncoded: boolean): string {
  if (!urlEncoded) return raw;
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch (error) {
    throw new BackendError(`the S3 server listed a key that is not valid URL encoding: ${JSON.stringify(raw)}`, { cause: error });
  }
}

/** Run `attempt` again (up to `times`) while S3 reports a conditional-request conflict, with jittered backoff. */
export async function retryOnConflict<T>(attempt: () => Promise<T>, signal?: AbortSignal, times = 3): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (n >= times || !isConditionalConflict(error) || signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 100 * 2 ** n));
    }
  }
}

/**
 * The identity reaper fingerprints an object with: the ETag exactly as S3 returns it
 * (quotes included), and in a versioned bucket also the version: `ETag#versionId`
 * (`null` is the version id S3 gives objects written while versioning was off).
 */
export function s3Fingerprint(etag: string, versionId: string | null): string {
  return versionId === null ? etag : `${etag}#${versionId}`;
}

export function parseS3Fingerprint(fingerprint: string, versioned: boolean): { etag: string; versionId: string | null } {
  const hash = versioned ? fingerprint.lastIndexOf('#') : -1;
  if (hash < 0) return { etag: fingerprint, versionId: null };
  return { etag: fingerprint.slice(0, hash), versionId: fingerprint.slice(hash + 1) || null };
}

/** Bucket, scope and shared settings every S3 operation of one resource type works with. */
export interface S3Target {
  sdk: S3Sdk;
  client: S3Client;
  bucket: string;
  prefix: string;
  scope: string;
  /** The connection's endpoint as configured (undefined: AWS's own), for messages. */
  endpoint: string | undefined;
  /** GetBucketVersioning's answer at open: `Enabled`, `Suspended`, or null for a bucket never versioned. */
  versioning: 'Enabled' | 'Suspended' | null;
  concurrency: number;
}

/** Only keys inside the configured prefix are ever touched (docs/safety.md §6). */
export function inScope(target: Pick<S3Target, 'prefix'>, key: string): boolean {
  return key.length > 0 && key.startsWith(target.prefix);
}

/** The name of reaper's delete-mode probe object under a prefix, before its UUID (s3-delete.ts). */
export const PROBE_NAME = '.reaper-probe-';
const PROBE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Whether a key is one of the type's resources: in scope, and not reaper's own probe object
 * (`<prefix>.reaper-probe-<uuid>`), which a run killed mid-probe leaves behind and which is
 * never audited, counted or reaped.
 */
export function isResourceKey(target: Pick<S3Target, 'prefix'>, key: string): boolean {
  if (!inScope(target, key)) return false;
  const rest = key.slice(target.prefix.length);
  return !(rest.startsWith(PROBE_NAME) && PROBE_ID.test(rest.slice(PROBE_NAME.length)));
}
