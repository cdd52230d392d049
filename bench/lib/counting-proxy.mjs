// A tiny HTTP proxy in front of an S3 endpoint (moto_server) that counts the requests
// every tool sends, at the server side: by method and query (the names of the query
// parameters, plus list-type's value), with the S3 operation each one is.
//
//   import { startCountingProxy } from './counting-proxy.mjs';
//   const proxy = await startCountingProxy('http://127.0.0.1:PORT');
//   … point a tool at proxy.url …
//   proxy.counts(); proxy.reset(); await proxy.close();
//
// Standalone: node bench/lib/counting-proxy.mjs TARGET [PORT] — prints the counts as JSON
// on SIGINT/SIGTERM.
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** What an S3 request is, from its method, path and query parameter names. */
export function s3Operation(method, url) {
  const u = new URL(url, 'http://proxy.invalid');
  const params = [...u.searchParams.keys()].filter((k) => !k.startsWith('x-id'));
  const has = (k) => u.searchParams.has(k);
  const segments = u.pathname.split('/').filter(Boolean);
  const onObject = segments.length >= 2;
  let op;
  if (method === 'POST' && has('delete')) op = 'DeleteObjects';
  else if (method === 'GET' && u.searchParams.get('list-type') === '2') op = 'ListObjectsV2';
  else if (method === 'GET' && has('versions')) op = 'ListObjectVersions';
  else if (method === 'GET' && has('versioning')) op = 'GetBucketVersioning';
  else if (method === 'PUT' && has('versioning')) op = 'PutBucketVersioning';
  else if (has('tagging')) op = { GET: 'GetObjectTagging', PUT: 'PutObjectTagging', DELETE: 'DeleteObjectTagging' }[method] ?? `${method}Tagging`;
  else if (method === 'HEAD') op = onObject ? 'HeadObject' : 'HeadBucket';
  else if (method === 'DELETE') op = onObject ? 'DeleteObject' : 'DeleteBucket';
  else if (method === 'PUT') op = onObject ? 'PutObject' : 'CreateBucket';
  else if (method === 'GET') op = onObject ? 'GetObject' : segments.length === 0 ? 'ListBuckets' : has('location') ? 'GetBucketLocation' : 'ListObjects';
  else op = 'other';
  const query = params.length ? '?' + params.map((k) => (k === 'list-type' ? `list-type=${u.searchParams.get(k)}` : k)).sort().join('&') : '';
  return { op, key: `${method} ${query || '(no query)'}` };
}

export function startCountingProxy(target, port = 0) {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  let byOp = new Map();
  let byKey = new Map();
  let total = 0;
  const server = http.createServer((req, res) => {
    const { op, key } = s3Operation(req.method, req.url);
    total++;
    byOp.set(op, (byOp.get(op) ?? 0) + 1);
    byKey.set(key, (byKey.get(key) ?? 0) + 1);
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode, answer.rawHeaders);
        answer.pipe(res);
      },
    );
    forward.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${error.message}`);
    });
    req.pipe(forward);
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}`;
      resolve({
        url,
        counts: () => ({ total, byOp: Object.fromEntries(byOp), byKey: Object.fromEntries(byKey) }),
        reset: () => {
          total = 0;
          byOp = new Map();
          byKey = new Map();
        },
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
            agent.destroy();
          }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [target, port] = process.argv.slice(2);
  if (!target) {
    console.error('usage: node bench/lib/counting-proxy.mjs TARGET [PORT]');
    process.exit(2);
  }
  const proxy = await startCountingProxy(target, Number(port ?? 0));
  console.error(`counting proxy ${proxy.url} → ${target}`);
  const done = async () => {
    console.log(JSON.stringify(proxy.counts()));
    await proxy.close();
    process.exit(0);
  };
  process.on('SIGINT', done);
  process.on('SIGTERM', done);
}
