/**
 * The inventory report's schema as reaper reads it (src/backends/s3/s3-inventory*.ts): a CSV
 * line of quoted fields, and a Parquet report's `fileSchema` (the message schema S3 writes in
 * manifest.json, in both the older UTF8/TIMESTAMP_MILLIS and the newer STRING/TIMESTAMP forms)
 * named by the CSV columns, so one check of the needed columns serves both formats.
 */
import { describe, expect, it } from 'vitest';
import { parquetFileSchema } from '../../src/backends/s3/s3-inventory-parquet.js';
import { csvFields } from '../../src/backends/s3/s3-inventory.js';

describe('an inventory report schema', () => {
  it('names the columns of a Parquet fileSchema as the CSV one does', () => {
    const older =
      'message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional binary storage_class (UTF8); optional boolean is_multipart_uploaded; }';
    expect(parquetFileSchema(older)).toEqual(['bucket', 'Key', 'VersionId', 'IsLatest', 'IsDeleteMarker', 'Size', 'LastModifiedDate', 'ETag', 'storage_class', 'is_multipart_uploaded']);
    const newer =
      'message s3.inventory {  required binary bucket (STRING);  required binary key (STRING);  optional int64 size;  optional int64 last_modified_date (TIMESTAMP(MILLIS,true));  optional binary e_tag (STRING);}';
    expect(parquetFileSchema(newer)).toEqual(['bucket', 'Key', 'Size', 'LastModifiedDate', 'ETag']);
  });

  it('refuses what is not a message schema', () => {
    expect(parquetFileSchema('Bucket, Key, Size')).toBeNull();
    expect(parquetFileSchema('message s3.inventory { key; }')).toBeNull();
    expect(parquetFileSchema('struct<bucket:string,key:string>')).toBeNull();
  });

  it('reads CSV lines of quoted fields, and nothing else', () => {
    expect(csvFields('"b","tmp/a+b","3","",""')).toEqual(['b', 'tmp/a+b', '3', '', '']);
    expect(csvFields('"say ""hi""","x"')).toEqual(['say "hi"', 'x']);
    expect(csvFields('b,"x"')).toBeNull();
    expect(csvFields('"open')).toBeNull();
  });
});
