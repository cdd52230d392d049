// Baseline: a bare ListObjectsV2 loop over the prefix; prints {count, seconds, maxRssKiB}.
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { endpoint, bucket, prefix } = JSON.parse(process.argv[2]);
const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
const start = process.hrtime.bigint();
let count = 0;
let token;
do {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }));
  count += page.KeyCount ?? 0;
  token = page.NextContinuationToken;
} while (token);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
s3.destroy();
console.log(JSON.stringify({ count, seconds, maxRssKiB: process.resourceUsage().maxRSS }));
