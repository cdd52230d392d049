/**
 * The Parquet data files of an S3 Inventory report (s3-inventory.ts reads the manifest).
 *
 * A Parquet file is read where it lies, by ranged GETs: first its footer (the row groups and
 * where each column chunk is), then one row group at a time, fetching only the columns reaper
 * needs (key, size, last_modified_date, e_tag, and with versions version_id, is_latest,
 * is_delete_marker); hyparquet merges neighbouring chunks into one request. Memory is one row
 * group's worth of those columns, whatever the size of the file. The reader (hyparquet, pure
 * JavaScript, no dependencies) is loaded only when a Parquet report is read. Snappy is its own;
 * GZIP, Brotli and (where Node.js has it) Zstandard come from node:zlib.
 */
import zlib from 'node:zlib';
import type { AsyncBuffer, Compressors, FileMetaData } from 'hyparquet';
import { BackendError } from '../../errors.js';
import type { S3Target } from './s3-client.js';
import type { ListedObject } from './s3-listing.js';

/** The Parquet column of each CSV column name reaper reads (the manifest's fileSchema uses these). */
const PARQUET_COLUMNS: Record<string, string> = {
  Key: 'key',
  Size: 'size',
  LastModifiedDate: 'last_modified_date',
  ETag: 'e_tag',
  VersionId: 'version_id',
  IsLatest: 'is_latest',
  IsDeleteMarker: 'is_delete_marker',
};

/**
 * The columns of a Parquet inventory's `fileSchema` (`message s3.inventory { required binary
 * key (UTF8); optional int64 size; … }`) by their CSV names, so one check serves both formats;
 * a column reaper does not read keeps its Parquet name. Null when it is not such a schema.
 */
export function parquetFileSchema(fileSchema: string): string[] | null {
  const body = /^\s*message\s+[\w.]+\s*\{([^{}]*)\}\s*$/.exec(fileSchema);
  if (!body) return null;
  const byParquet = new Map(Object.entries(PARQUET_COLUMNS).map(([csv, parquet]) => [parquet, csv]));
  const columns: string[] = [];
  for (const field of body[1]!.split(';')) {
    if (field.trim() === '') continue;
    // `required binary key (UTF8)`, `optional int64 last_modified_date (TIMESTAMP(MILLIS,true))`
    const m = /^\s*(?:required|optional|repeated)\s+\w+\s+(\w+)/.exec(field);
    if (!m) return null;
    columns.push(byParquet.get(m[1]!) ?? m[1]!);
  }
  return columns;
}

/** Decompressors beyond hyparquet's own Snappy. */
function compressors(): Compressors {
  const out: Compressors = {
    GZIP: (input) => new Uint8Array(zlib.gunzipSync(input)),
    BROTLI: (input) => new Uint8Array(zlib.brotliDecompressSync(input)),
  };
  const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Uint8Array) => Buffer }).zstdDecompressSync;
  if (zstd) out.ZSTD = (input) => new Uint8Array(zstd(input));
  return out;
}

/** A file in the bucket as hyparquet reads it: each slice one ranged GET. */
async function s3File(target: S3Target, bucket: string, key: string, size: number | null, signal?: AbortSignal): Promise<AsyncBuffer> {
  const { sdk, client } = target;
  let byteLength = size;
  if (byteLength === null) {
    const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    byteLength = Number(head.ContentLength);
  }
  // The first read is the footer's (the file's last 512 KiB, or all of a smaller file): it is
  // kept, and a later read inside it is served from it — a small file then costs one GET.
  let tail: { start: number; bytes: Uint8Array } | null = null;
  return {
    byteLength,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = end ?? byteLength;
      if (stop <= start) return new ArrayBuffer(0);
      if (tail && start >= tail.start && stop <= tail.start + tail.bytes.byteLength) {
        return tail.bytes.slice(start - tail.start, stop - tail.start).buffer as ArrayBuffer;
      }
      const out = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${stop - 1}` }), { abortSignal: signal });
      const bytes = await out.Body!.transformToByteArray();
      tail ??= { start, bytes };
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    },
  };
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : undefined);
const count = (v: unknown): number | undefined => (typeof v === 'bigint' || typeof v === 'number' ? Number(v) : undefined);
function time(v: unknown): Date | undefined {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v;
  if (typeof v === 'bigint' || typeof v === 'number') return new Date(Number(v));
  return undefined;
}

/** The current objects of one Parquet data file, a row group at a time (at most 1,000 per yield). */
export async function* parquetObjects(
  target: S3Target,
  bucket: string,
  file: { key: string; size: number | null },
  signal?: AbortSignal,
): AsyncGenerator<ListedObject[]> {
  const { parquetMetadataAsync, parquetReadObjects } = await import('hyparquet');
  const source = await s3File(target, bucket, file.key, file.size, signal);
  const metadata: FileMetaData = await parquetMetadataAsync(source);
  const present = new Set(metadata.schema.map((e) => e.name));
  for (const needed of ['key', 'size', 'last_modified_date', 'e_tag']) {
    if (!present.has(needed)) throw new BackendError(`${target.scope}: inventory file s3://${bucket}/${file.key} has no ${needed} column`);
  }
  const columns = Object.values(PARQUET_COLUMNS).filter((c) => present.has(c));
  const versions = present.has('version_id') && target.versioning !== null;
  const latest = present.has('is_latest');
  const decompress = compressors();
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({ file: source, metadata, columns, rowStart, rowEnd, compressors: decompress });
    rowStart = rowEnd;
    let batch: ListedObject[] = [];
    for (const row of rows) {
      // As the CSV reader: with versions listed, only a row that says it is current counts.
      if ((latest && row.is_latest !== true) || row.is_delete_marker === true) continue;
      const key = text(row.key);
      if (key === undefined) throw new BackendError(`${target.scope}: inventory file s3://${bucket}/${file.key}: a row without a key`);
      const etag = text(row.e_tag);
      batch.push({
        key,
        etag: etag ? `"${etag}"` : undefined,
        lastModified: time(row.last_modified_date),
        size: count(row.size),
        versionId: versions ? text(row.version_id) || 'null' : null,
      });
      if (batch.length >= 1000) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
    signal?.throwIfAborted();
  }
}
