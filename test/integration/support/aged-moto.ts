/**
 * A private S3 server (moto, in-process in Python) whose objects a test can make older:
 * example manifests keep a minAge of minutes, and an object's age is its LastModified,
 * which no S3 request sets. See moto-aged.py. Started per test file, stopped after it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const SCRIPT = path.resolve(__dirname, 'moto-aged.py');

/**
 * Why Python with moto cannot run the private server (the last line Python printed), or null
 * when it can. Asked twice: one failed start of the interpreter on a loaded machine is not a
 * missing service.
 */
export function agedMotoProblem(): string | null {
  let problem = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = spawnSync('python3', ['-c', 'import moto.server, moto.s3.models'], { encoding: 'utf8' });
    if (r.status === 0) return null;
    problem = (r.error?.message ?? r.stderr.trim().split('\n').at(-1)) || `python3 exited with ${r.status ?? r.signal}`;
  }
  return problem;
}

import { freePort } from '../../support/net.js';

export { freePort };

export interface AgedMoto {
  endpoint: string;
  /** Move every object of `bucket` `seconds` into the past. */
  age(bucket: string, seconds: number): Promise<number>;
  stop(): Promise<void>;
}

export async function startAgedMoto(): Promise<AgedMoto> {
  const [port, control] = [await freePort(), await freePort()];
  const child: ChildProcess = spawn('python3', [SCRIPT, String(port), String(control)], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('moto-aged.py did not start within 30 s')), 30_000);
    child.once('exit', (code) => reject(new Error(`moto-aged.py exited with code ${code}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async age(bucket, seconds) {
      const response = await fetch(`http://127.0.0.1:${control}/age`, { method: 'POST', body: JSON.stringify({ bucket, seconds }) });
      const answer = (await response.json()) as { ok: boolean; objects?: number; error?: string };
      if (!answer.ok) throw new Error(`cannot age ${bucket}: ${answer.error}`);
      return answer.objects!;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
