/**
 * How a request reaches a handler and its answer comes back, as lines: a child process
 * (`command` kind: the request on stdin, the answer on stdout) or a POST to a webhook
 * (`http` kind). Both hold the handler to the manifest's bounds: a time limit (a command
 * still running is killed, with its process group), a longest line and a most bytes per
 * call; past any of them the call fails and nothing it answered is used
 * (docs/resource-protocol.md, "Hostile output").
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import type { CommandLine, CommandLocation, HandlerPolicy, HttpLocation } from '../../manifest/types.js';
import { trackProcessGroup } from '../../util/process-groups.js';
import { PROTOCOL_VERSION, ProtocolViolation, type HandlerOp } from './protocol.js';

export interface Transport {
  /** What the handler is, for messages (`command ./sessions.sh list`, `http https://…`). */
  readonly scope: string;
  /** Send one request (`body`: a JSON line, or NDJSON lines) and return the answer's lines. */
  call(op: HandlerOp, body: string, env: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<string[]>;
}

/** Splits output into lines under the policy's caps; `fail` is called once with the reason a cap was passed. */
class LineCollector {
  readonly lines: string[] = [];
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private total = 0;
  failed: string | null = null;

  constructor(private readonly policy: HandlerPolicy) {}

  push(chunk: Buffer): boolean {
    if (this.failed !== null) return false;
    this.total += chunk.length;
    if (this.total > this.policy.maxOutputBytes) return this.fail(`wrote more than ${this.policy.maxOutputBytes} bytes (maxOutputBytes)`);
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      this.partialBytes += end - start;
      if (this.partialBytes > this.policy.maxLineBytes) return this.fail(`wrote a line longer than ${this.policy.maxLineBytes} bytes (maxLineBytes)`);
      if (end > start) this.partial.push(chunk.subarray(start, end));
      if (nl === -1) return true;
      this.flush();
      start = nl + 1;
    }
  }

  end(): string[] {
    if (this.partialBytes > 0) this.flush();
    return this.lines;
  }

  private flush(): void {
    const text = Buffer.concat(this.partial).toString('utf8').replace(/\r$/, '');
    if (text.trim() !== '') this.lines.push(text);
    this.partial = [];
    this.partialBytes = 0;
  }

  private fail(why: string): false {
    this.failed = why;
    return false;
  }
}

const STDERR_TAIL = 2048;
/** How long stdout and stderr are read after the handler exited or was killed (docs/resource-protocol.md). */
const PIPE_GRACE_MS = 1000;

/** A `command` handler: each call runs the op's command once. */
export class CommandTransport implements Transport {
  readonly scope: string;

  constructor(
    private readonly location: CommandLocation,
    private readonly resource: string,
  ) {
    this.scope = `command ${display(location.list)}`;
  }

  call(op: HandlerOp, body: string, env: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<string[]> {
    const line = this.location[op];
    if (!line) return Promise.reject(new ProtocolViolation(`no ${op} command in the manifest`));
    const [file, args] = 'shell' in line ? ['/bin/sh', ['-c', line.shell]] : [line.argv[0]!, line.argv.slice(1)];
    const what = `${op} command (${display(line)})`;
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, {
        cwd: this.location.cwd,
        env: { ...process.env, ...this.location.env, REAPER_PROTOCOL: String(PROTOCOL_VERSION), REAPER_OP: op, REAPER_RESOURCE: this.resource, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
        // Its own process group, so a timeout kills what it started too (`sh -c 'yes | …'`).
        detached: true,
      });
      // A process stopped at once by a second signal kills it on its way out (src/run/hard-stop.ts).
      const untrack = child.pid === undefined ? () => undefined : trackProcessGroup(child.pid);
      const out = new LineCollector(this.location);
      let stderr = '';
      let why: string | null = null;
      let exit: { code: number | null; sig: NodeJS.Signals | null } | null = null;
      let settled = false;
      let stdoutEnded = false;
      let grace: NodeJS.Timeout | undefined;
      const killGroup = () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      };
      // The call ends when stdout and stderr are closed; a process that left the group (`setsid`,
      // a daemon) may hold them open past the group's end, so once the handler has exited or been
      // killed they are waited for PIPE_GRACE_MS at most (docs/resource-protocol.md, "The command kind").
      const finish = (eof: boolean) => {
        if (settled) return;
        settled = true;
        untrack();
        clearTimeout(timer);
        clearTimeout(grace);
        signal?.removeEventListener('abort', onAbort);
        killGroup(); // anything it left running in its group
        if (!eof) for (const stream of [child.stdin, child.stdout, child.stderr]) stream.destroy();
        const tail = stderr.trim() ? `: ${lastLines(stderr)}` : '';
        // Stopped by the caller (a reap or audit told to stop): the stop's own reason, not a
        // handler failure, so the run ends interrupted rather than failed.
        if (why === 'interrupted' && signal?.aborted) reject(signal.reason);
        else if (why !== null) reject(new ProtocolViolation(`${what} ${why}${tail}`));
        else if (exit === null) reject(new ProtocolViolation(`${what} did not exit${tail}`));
        else if (exit.code !== 0) reject(new ProtocolViolation(`${what} exited with ${exit.code === null ? `signal ${exit.sig}` : `status ${exit.code}`}${tail}`));
        // Pipes cut after the grace: only the lines the handler finished count, unless stdout
        // itself ended (stderr held open by what it left): then its last line counts too.
        else resolve(eof || stdoutEnded ? out.end() : out.lines);
      };
      const awaitPipes = () => {
        grace ??= setTimeout(() => finish(false), PIPE_GRACE_MS);
      };
      const stop = (reason: string) => {
        why ??= reason;
        killGroup();
        awaitPipes();
      };
      const timer = setTimeout(() => stop(`did not finish within ${this.location.timeoutMs} ms (timeout); killed`), this.location.timeoutMs);
      const onAbort = () => stop('interrupted');
      signal?.addEventListener('abort', onAbort, { once: true });
      child.stdout.on('data', (chunk: Buffer) => {
        if (!out.push(chunk)) stop(`${out.failed}; killed`);
      });
      child.stdout.on('end', () => {
        stdoutEnded = true;
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
      });
      // A handler that exits without reading its stdin is not an error by itself.
      child.stdin.on('error', () => undefined);
      child.stdin.end(body);
      child.on('error', (error) => stop(`could not start: ${(error as NodeJS.ErrnoException).code ?? error.message}`));
      child.on('exit', (code, sig) => {
        exit = { code, sig };
        // It finished within its time: what its pipes still bring is bounded by the grace, not the timeout.
        clearTimeout(timer);
        awaitPipes();
      });
      child.on('close', (code, sig) => {
        exit ??= { code, sig };
        finish(true);
      });
    });
  }
}

/** An `http` handler: each call is a POST to URL/op. */
export class HttpTransport implements Transport {
  readonly scope: string;

  private constructor(
    private readonly location: HttpLocation,
    private readonly resource: string,
    private readonly token: string | null,
    private readonly ca: string[] | undefined,
  ) {
    this.scope = `http ${location.url}`;
  }

  /** Read the token and the CA file now: a missing one is this type's error at open. */
  static async open(location: HttpLocation, resource: string): Promise<HttpTransport> {
    let token: string | null = null;
    if (location.token && 'file' in location.token) {
      token = (await readFile(location.token.file, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new ProtocolViolation(`cannot read the token file ${location.token && 'file' in location.token ? location.token.file : ''}: ${e.code ?? e.message}`);
      })).trim();
    } else if (location.token) {
      token = process.env[location.token.env]?.trim() ?? '';
      if (!token) throw new ProtocolViolation(`the token variable $${location.token.env} is not set`);
    }
    let ca: string[] | undefined;
    if (location.ca) {
      const pem = await readFile(location.ca, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new ProtocolViolation(`cannot read the CA file ${location.ca}: ${e.code ?? e.message}`);
      });
      ca = [...rootCertificates, pem];
    }
    return new HttpTransport(location, resource, token, ca);
  }

  async call(op: HandlerOp, body: string, _env: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<string[]> {
    const url = new URL(`${this.location.url}/${op}`);
    const https = url.protocol === 'https:';
    const { request } = https ? await import('node:https') : await import('node:http');
    const what = `${op} request (POST ${url.href})`;
    const timeout = AbortSignal.timeout(this.location.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (why: string | { stopped: unknown }) => {
        if (settled) return;
        settled = true;
        req.destroy();
        // Stopped by the caller: the stop's own reason, not a handler failure (see CommandTransport).
        reject(typeof why === 'string' ? new ProtocolViolation(`${what} ${why}`) : why.stopped);
      };
      const req = request(
        url,
        {
          method: 'POST',
          headers: {
            'content-type': op === 'list' ? 'application/json' : 'application/x-ndjson',
            accept: 'application/x-ndjson',
            'reaper-protocol': String(PROTOCOL_VERSION),
            'reaper-resource': this.resource,
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          },
          ...(https && this.ca ? { ca: this.ca } : {}),
          signal: combined,
        },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          const out = new LineCollector(this.location);
          if (status < 200 || status > 299) {
            readSome(res, 512).then((text) => fail(`answered HTTP ${status}${text.trim() ? `: ${text.trim()}` : ''}`), () => fail(`answered HTTP ${status}`));
            return;
          }
          res.on('data', (chunk: Buffer) => {
            if (!out.push(chunk)) fail(out.failed!);
          });
          res.on('error', (error) => fail(`failed: ${error.message}`));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            resolve(out.end());
          });
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (timeout.aborted && !signal?.aborted) fail(`did not answer within ${this.location.timeoutMs} ms (timeout)`);
        else if (signal?.aborted) fail({ stopped: signal.reason });
        else fail(`failed: ${error.code ?? error.message}${error.code && error.message && !error.message.includes(error.code) ? ` (${error.message})` : ''}`);
      });
      req.end(body);
    });
  }
}

function readSome(stream: Readable, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.length >= max) {
        stream.destroy();
        resolve(text.slice(0, max));
      }
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

export function display(line: CommandLine): string {
  const text = 'shell' in line ? line.shell : line.argv.join(' ');
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}
