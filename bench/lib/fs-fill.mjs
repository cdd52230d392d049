// Creates a file tree for the files scenarios: `size` one-byte files, `perDir` to a
// directory named after their owner (`dead-<n>/f-<i>.part`), mtime and atime two days
// old; plus `young` files under `live-0/` written now. Prints {files, seconds}.
import { closeSync, futimesSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';

const { root, size, perDir = 1000, young = 0 } = JSON.parse(process.argv[2]);
const start = process.hrtime.bigint();
const old = new Date(Date.now() - 2 * 86_400_000);
const one = Buffer.from('x');
for (let i = 0; i < size; i++) {
  const dir = path.join(root, `dead-${String(Math.floor(i / perDir)).padStart(5, '0')}`);
  if (i % perDir === 0) mkdirSync(dir, { recursive: true });
  const fd = openSync(path.join(dir, `f-${i}.part`), 'w');
  writeSync(fd, one);
  futimesSync(fd, old, old);
  closeSync(fd);
}
if (young > 0) {
  const dir = path.join(root, 'live-0');
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < young; i++) {
    const fd = openSync(path.join(dir, `y-${i}.part`), 'w');
    writeSync(fd, one);
    closeSync(fd);
  }
}
console.log(JSON.stringify({ files: size + young, seconds: Number(process.hrtime.bigint() - start) / 1e9 }));
