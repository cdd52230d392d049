// Creates a bucket (versioning enabled when asked) with `size` small objects under
// tmp/<owner>/ (64 PUTs in flight).
import { CreateBucketCommand, PutBucketVersioningCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { endpoint, bucket, size, versioned = false } = JSON.parse(process.argv[2]);
const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
await s3.send(new CreateBucketCommand({ Bucket: bucket }));
if (versioned) await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
let next = 0;
const worker = async () => {
  while (next < size) {
    const i = next++;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `tmp/owner-${i % 500}/obj-${i}`, Body: 'x' }));
  }
};
await Promise.all(Array.from({ length: 64 }, worker));
s3.destroy();
console.log(JSON.stringify({ ok: true }));
