import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PlanItem } from '../../src/engine/reap-plan.js';
import { openPlan, PLAN_FORMAT_VERSION, planItems, PlanWriter, type PlanHeader } from '../../src/run/plan-file.js';
import { spoolFile } from '../../src/util/spool.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A plan file in a fresh directory, removed after the test. */
async function planFile(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'reaper-plan-test-'));
  dirs.push(dir);
  return path.join(dir, 'plan.ndjson');
}

const lift = (id: string): PlanItem => ({ op: 'lift', resource: 'r', tombstoneId: 1, id, why: 'owner-live' });
const header = (toLift: number): PlanHeader => ({
  kind: 'reaper-plan',
  version: PLAN_FORMAT_VERSION,
  runId: 'run',
  createdAt: new Date(0).toISOString(),
  manifestDigest: 'm',
  resources: [{ name: 'r', scanned: 0, toMark: 0, toSweep: 0, toLift }],
});

describe('PlanWriter', () => {
  it('§9: a rolled-back segment (a type whose scan failed) leaves no item in the plan, and the digest still holds', async () => {
    const file = await planFile();
    const writer = new PlanWriter(file);
    await writer.add(lift('kept-1'));
    const segment = writer.segment();
    for (let i = 0; i < 5000; i++) await writer.add(lift(`dropped-${i}`)); // more than one write buffer
    await writer.rollback(segment);
    await writer.add(lift('kept-2'));
    await writer.close(header(2));
    const plan = await openPlan(file, 'm');
    const ids: string[] = [];
    for await (const item of plan.items()) ids.push(item.id);
    expect(ids).toEqual(['kept-1', 'kept-2']);
    expect(await readFile(file, 'utf8')).not.toContain('dropped');
    await plan.dispose();
  });

  it('writes, rolls back and reads a spool (on Linux an unlinked file used through /proc/self/fd) as it does a named file', async () => {
    const spool = await spoolFile('reaper-plan-test-', 'plan.ndjson');
    try {
      if (process.platform === 'linux') expect(spool.path).toMatch(/^\/proc\/self\/fd\/\d+$/);
      const writer = new PlanWriter(spool.path);
      await writer.add(lift('kept-1'));
      const segment = writer.segment();
      for (let i = 0; i < 5000; i++) await writer.add(lift(`dropped-${i}`));
      await writer.rollback(segment);
      await writer.add(lift('kept-2'));
      await writer.close(header(2));
      const ids: string[] = [];
      for await (const item of planItems(spool.path)) ids.push(item.id);
      expect(ids).toEqual(['kept-1', 'kept-2']);
      // Read twice, from the start each time.
      const again: string[] = [];
      for await (const item of planItems(spool.path)) again.push(item.id);
      expect(again).toEqual(ids);
    } finally {
      await spool.dispose();
    }
  });

  it('applies what it checked: items come from a private copy, whatever happens to the file after the check', async () => {
    const file = await planFile();
    const writer = new PlanWriter(file);
    for (const id of ['a', 'b']) await writer.add(lift(id));
    await writer.close(header(2));
    const plan = await openPlan(file, 'm');
    try {
      // Rewritten in place, then removed: neither reaches the items the check passed.
      await writeFile(file, (await readFile(file, 'utf8')).replaceAll('"a"', '"z"'));
      await rm(file);
      const ids: string[] = [];
      for await (const item of plan.items()) ids.push(item.id);
      expect(ids).toEqual(['a', 'b']);
    } finally {
      await plan.dispose();
    }
    await expect(plan.items().next()).rejects.toThrow(/ENOENT/);
  });

  it('a write that fails (a full disk) fails the plan, and abandoning it still ends', async () => {
    const writer = new PlanWriter('/dev/full');
    const adding = (async () => {
      for (let i = 0; i < 10_000; i++) await writer.add(lift(`id-${i}`)); // many 64 KiB writes
    })();
    await expect(adding).rejects.toThrow(/ENOSPC/);
    await writer.abandon();
    await expect(writer.close(header(10_000))).rejects.toThrow(/ENOSPC/);
  });

  it('a write that fails where nothing waits on it (a segment, a rollback) fails the next step, not the process', async () => {
    const writer = new PlanWriter('/dev/full');
    await writer.add(lift('a'));
    const segment = writer.segment(); // writes 'a' without waiting for it
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(writer.add(lift('b')).then(() => writer.rollback(segment))).rejects.toThrow(/ENOSPC/);
    await writer.abandon();
  });

  it('a plan abandoned before its trailer is refused as incomplete', async () => {
    const file = await planFile();
    const writer = new PlanWriter(file);
    await writer.add(lift('a'));
    await writer.abandon();
    await expect(openPlan(file, 'm')).rejects.toThrow(/not a complete reaper plan/);
  });

  it('reads back every item in order across write and read chunks, multi-byte ids included, and a CRLF copy the same', async () => {
    const file = await planFile();
    const writer = new PlanWriter(file);
    // ~40,000 lines of ~90 bytes: many 64 KiB writes and 256 KiB reads, lines cut at both.
    const ids = Array.from({ length: 40_000 }, (_, i) => (i % 7 === 0 ? `é-${i}-☃` : `id-${i}`));
    for (const id of ids) await writer.add(lift(id));
    await writer.close(header(ids.length));
    const read = async (f: string) => {
      const out: string[] = [];
      for await (const item of planItems(f)) out.push(item.id);
      return out;
    };
    expect(await read(file)).toEqual(ids);
    const plan = await openPlan(file, 'm');
    const checked: string[] = [];
    for await (const item of plan.items()) checked.push(item.id);
    expect(checked).toEqual(ids);
    await plan.dispose();
    const crlf = await planFile();
    await writeFile(crlf, (await readFile(file, 'utf8')).replaceAll('\n', '\r\n'));
    expect(await read(crlf)).toEqual(ids);
  });
});
