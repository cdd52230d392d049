/**
 * A fresh bucket on the test S3 server for one test, optionally versioned, with a client
 * for the test's own writes; emptied (every version and delete marker) and removed after
 * the test through `cleanups`.
 */
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { s3Settings, uniqueName } from './services.js';

export async function freshBucket(cleanups: (() => Promise<void>)[], versioning: 'Enabled' | 'Suspended' | null = null): Promise<{ s3: S3Client; bucket: string }> {
  const cfg = s3Settings();
  const s3 = new S3Client({ endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: true, credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } });
  const bucket = uniqueName('bucket').toLowerCase().replace(/_/g, '-');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  if (versioning !== null) await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: versioning } }));
  cleanups.push(async () => {
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    for (const v of [...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])]) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key!, VersionId: v.VersionId }));
    const left = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    for (const o of left.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }));
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    s3.destroy();
  });
  return { s3, bucket };
}
