/**
 * Reading a bucket's S3 Inventory report instead of listing it (docs/scale-out.md, S3 Inventory).
 *
 * An inventory configuration delivers, under its destination prefix, one folder per report
 * named by its time (`2026-12-06T00-00Z/`) holding `manifest.json`: the source bucket, the file
 * format, its columns (`fileSchema`), the report's creation time and its data files. The newest
 * folder's report is read: 1 LIST of the folders (per 1,000), 1 GET of the manifest, then the
 * data files, whatever the number of objects.
 *
 * CSV and Parquet reports are read; an ORC report is refused with a message. A CSV data file is
 * gzip-compressed, read in 1 GET, every field quoted and the key URL-encoded (a space as `+`).
 * A Parquet data file is read by ranged GETs (s3-inventory-parquet.ts): its footer, then one
 * row group at a time, only the columns reaper needs; its keys are not encoded. With versions
 * listed (IsLatest, IsDeleteMarker columns) only current versions that are not delete markers
 * are objects. The ETag is given without quotes; it is quoted as a listing gives it, so a
 * record from the report has the fingerprint a HeadObject would give.
 *
 * A report is stale by nature: it may list an object rewritten or deleted since. Its records
 * are a snapshot (ScanPage.snapshotAtMs): a reap judges due tombstones by reading each resource
 * again, never from the report, and deletes only conditionally on the ETag.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { BackendError } from '../../errors.js';
import { describeS3Failure, isAbort, isResourceKey, type S3Target } from './s3-client.js';
import { parquetFileSchema, parquetObjects } from './s3-inventory-parquet.js';
import type { ListedObject } from './s3-listing.js';

/** Where the reports of an inventory configuration are delivered. */
export interface InventoryLocation {
  bucket: string;
  /** The folder holding one `<time>/manifest.json` per report (`<destination prefix>/<source bucket>/<configuration id>/`). */
  prefix: string;
}

export interface InventoryReport {
  /** The manifest's key in the inventory bucket. */
  manifestKey: string;
  /** When S3 began the report (manifest `creationTimestamp`, epoch ms). */
  createdAtMs: number;
  /** `CSV`: gzip CSV data files; `Parquet`: Parquet data files. */
  format: 'CSV' | 'Parquet';
  /** The columns, in order, by their CSV names (`Key`, `Size`, `LastModifiedDate`, `ETag`, …). */
  schema: string[];
  /** The data files in the inventory bucket, with their size when the manifest gives it. */
  files: { key: string; size: number | null }[];
}

const REPORT_FOLDER = /\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z\/$/;

/** The newest report under the location: its folders listed, its manifest read and checked. */
export async function latestReport(target: S3Target, location: InventoryLocation, signal?: AbortSignal): Promise<InventoryReport> {
  const { sdk, client } = target;
  const where = `s3://${location.bucket}/${location.prefix}`;
  const folders: string[] = [];
  let token: string | undefined;
  do {
    const out = await request(target, `listing the inventory reports in ${where}`, signal, () =>
      client.send(new sdk.ListObjectsV2Command({ Bucket: location.bucket, Prefix: location.prefix, Delimiter: '/', ...(token ? { ContinuationToken: token } : {}) }), { abortSignal: signal }),
    );
    for (const p of out.CommonPrefixes ?? []) if (p.Prefix && REPORT_FOLDER.test(p.Prefix)) folders.push(p.Prefix);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  if (folders.length === 0) throw new BackendError(`${target.scope}: no inventory report in ${where} (expected folders named like 2026-12-06T00-00Z/ holding manifest.json)`);
  // The folder names are times written so that their text order is their time order.
  const manifestKey = `${folders.sort().at(-1)!}manifest.json`;
  const text = await readText(target, location.bucket, manifestKey, signal);
  let manifest: { sourceBucket?: unknown; fileFormat?: unknown; fileSchema?: unknown; creationTimestamp?: unknown; files?: unknown };
  try {
    manifest = JSON.parse(text) as typeof manifest;
  } catch {
    throw new BackendError(`${target.scope}: s3://${location.bucket}/${manifestKey} is not JSON`);
  }
  const bad = (why: string) => new BackendError(`${target.scope}: inventory manifest s3://${location.bucket}/${manifestKey}: ${why}`);
  if (manifest.sourceBucket !== target.bucket) throw bad(`it lists bucket ${JSON.stringify(manifest.sourceBucket)}, not ${target.bucket}`);
  const format = manifest.fileFormat;
  if (format !== 'CSV' && format !== 'Parquet') throw bad(`its format is ${JSON.stringify(format)}; reaper reads CSV and Parquet inventories (configure the inventory's output format as one of them)`);
  if (typeof manifest.fileSchema !== 'string') throw bad('no fileSchema');
  const schema = format === 'CSV' ? manifest.fileSchema.split(',').map((c) => c.trim()) : parquetFileSchema(manifest.fileSchema);
  if (schema === null) throw bad(`its fileSchema is not a Parquet message schema: ${JSON.stringify(manifest.fileSchema.slice(0, 200))}`);
  for (const column of ['Key', 'Size', 'LastModifiedDate', 'ETag']) if (!schema.includes(column)) throw bad(`its fileSchema has no ${column} column (add it to the inventory's optional fields)`);
  const createdAtMs = Number(manifest.creationTimestamp);
  if (!Number.isFinite(createdAtMs)) throw bad('no creationTimestamp');
  if (!Array.isArray(manifest.files)) throw bad('no files');
  const files = manifest.files.map((f: { key?: unknown; size?: unknown }) => {
    if (typeof f?.key !== 'string') throw bad('a file without a key');
    const size = Number(f.size);
    return { key: f.key, size: f.size !== undefined && Number.isSafeInteger(size) && size >= 0 ? size : null };
  });
  return { manifestKey, format, createdAtMs, schema, files };
}

/** The report's current objects under the target's prefix, one data file at a time, in the report's order. */
export async function* reportObjects(target: S3Target, location: InventoryLocation, report: InventoryReport, signal?: AbortSignal): AsyncGenerator<ListedObject[]> {
  if (report.format === 'Parquet') {
    for (const file of report.files) {
      const where = `inventory file s3://${location.bucket}/${file.key}`;
      try {
        for await (const objects of parquetObjects(target, location.bucket, file, signal)) {
          const inside = objects.filter((o) => isResourceKey(target, o.key));
          if (inside.length > 0) yield inside;
        }
      } catch (error) {
        if (error instanceof BackendError || isAbort(error, signal)) throw error;
        throw new BackendError(`${target.scope}: reading the ${where}: ${describeS3Failure(error)}`, { cause: error });
      }
    }
    return;
  }
  const at = (name: string) => report.schema.indexOf(name);
  const [key, size, modified, etag, version, latest, deleteMarker] = ['Key', 'Size', 'LastModifiedDate', 'ETag', 'VersionId', 'IsLatest', 'IsDeleteMarker'].map(at) as [number, number, number, number, number, number, number];
  for (const { key: file } of report.files) {
    const body = await request(target, `reading the inventory file s3://${location.bucket}/${file}`, signal, () =>
      target.client.send(new target.sdk.GetObjectCommand({ Bucket: location.bucket, Key: file }), { abortSignal: signal }),
    );
    const lines = createInterface({ input: (body.Body as Readable).pipe(createGunzip()), crlfDelay: Infinity });
    let batch: ListedObject[] = [];
    let n = 0;
    try {
      for await (const line of lines) {
        n++;
        if (line === '') continue;
        const fields = csvFields(line);
        if (fields === null || fields.length !== report.schema.length) throw new BackendError(`${target.scope}: inventory file s3://${location.bucket}/${file} line ${n}: not a CSV line of ${report.schema.length} fields`);
        if (latest >= 0 && fields[latest] !== 'true') continue;
        if (deleteMarker >= 0 && fields[deleteMarker] === 'true') continue;
        const id = decodeKey(fields[key]!);
        if (id === null) throw new BackendError(`${target.scope}: inventory file s3://${location.bucket}/${file} line ${n}: the key is not URL-encoded UTF-8`);
        if (!isResourceKey(target, id)) continue;
        const when = Date.parse(fields[modified]!);
        batch.push({
          key: id,
          etag: fields[etag] ? `"${fields[etag]}"` : undefined,
          lastModified: Number.isNaN(when) ? undefined : new Date(when),
          size: fields[size] === '' ? undefined : Number(fields[size]),
          versionId: version >= 0 && target.versioning !== null ? fields[version] || 'null' : null,
        });
        if (batch.length >= 1000) {
          yield batch;
          batch = [];
        }
      }
    } catch (error) {
      if (error instanceof BackendError || isAbort(error, signal)) throw error;
      throw new BackendError(`${target.scope}: reading the inventory file s3://${location.bucket}/${file}: ${describeS3Failure(error)}`, { cause: error });
    }
    if (batch.length > 0) yield batch;
  }
}

/** The fields of one CSV line whose fields are all quoted (`"a","b"`, `""` inside a field is a quote); null if it is not. */
export function csvFields(line: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] !== '"') return null;
    let value = '';
    i++;
    for (;;) {
      const quote = line.indexOf('"', i);
      if (quote === -1) return null;
      value += line.slice(i, quote);
      if (line[quote + 1] === '"') {
        value += '"';
        i = quote + 2;
        continue;
      }
      i = quote + 1;
      break;
    }
    fields.push(value);
    if (i === line.length) return fields;
    if (line[i] !== ',') return null;
    i++;
    if (i === line.length) fields.push('');
  }
  return fields;
}

/** A key as the inventory writes it (URL-encoded, a space as `+`); null when it does not decode. */
function decodeKey(encoded: string): string | null {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

async function readText(target: S3Target, bucket: string, key: string, signal?: AbortSignal): Promise<string> {
  const out = await request(target, `reading s3://${bucket}/${key}`, signal, () => target.client.send(new target.sdk.GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal }));
  return out.Body ? await out.Body.transformToString('utf8') : '';
}

async function request<T>(target: S3Target, what: string, signal: AbortSignal | undefined, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    if (isAbort(error, signal)) throw error;
    throw new BackendError(`${target.scope}: ${what}: ${describeS3Failure(error)}`, { cause: error });
  }
}
