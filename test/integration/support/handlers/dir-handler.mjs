#!/usr/bin/env node
/* global process */
// A reference handler of the resource protocol v1 (docs/resource-protocol.md), for the tests:
// the resources are the JSON files of one directory, `{ "owner": …, "protected": …,
// "createdAt": …, "payload": … }`, each file's name its id. The fingerprint is the file's
// inode and a hash of its bytes, so a rewrite and a replace (same bytes, new file) both
// change it; a delete removes the file only if the fingerprint still matches (or, with
// `--trash`, moves it into DIR/.trash and answers a restore handle). A file DIR/.fail-deletes
// makes every delete answer `error`. mark/unmark write a "reaperMark" field; the mark answers `error`
// for the ids listed in DIR/.refuse-marks (one per line). Usage: dir-handler.mjs DIR [--trash]; the op is $REAPER_OP.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
const trash = process.argv.includes('--trash');
const op = process.env.REAPER_OP;
const input = readFileSync(0, 'utf8');
const lines = input.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const out = [];
const say = (o) => out.push(JSON.stringify(o));

// An id is one file name in the directory; anything else (a path, "..", a dot file) is not a resource.
const valid = (id) => typeof id === 'string' && /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(id) && !id.includes('..');

function read(id) {
  if (!valid(id)) return null;
  const file = path.join(dir, id);
  let st;
  try {
    st = statSync(file);
  } catch {
    return null;
  }
  if (!st.isFile()) return null;
  const bytes = readFileSync(file);
  const fingerprint = `${st.ino}:${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`;
  let doc;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { id, fingerprint, createdAt: null, bytes: bytes.length, unreadable: 'not JSON' };
  }
  const attributes = {};
  if (typeof doc.owner === 'string') attributes.owner = doc.owner;
  if (doc.protected) attributes.protected = 'yes';
  return { id, fingerprint, createdAt: doc.createdAt ?? null, bytes: bytes.length, attributes };
}

if (op === 'list') {
  const request = lines[0];
  if (request.ids) {
    for (const id of request.ids) {
      const r = read(id);
      if (r) say(r);
    }
    say({ next: null });
  } else {
    const names = existsSync(dir) ? readdirSync(dir).filter((n) => valid(n)).sort() : [];
    const after = request.cursor;
    const rest = after === null ? names : names.filter((n) => n > after);
    const page = rest.slice(0, request.limit);
    let last = null;
    for (const name of page) {
      const r = read(name);
      if (r) say(r);
      last = name;
    }
    say({ next: rest.length > page.length ? last : null });
  }
} else if (op === 'delete') {
  const failing = existsSync(path.join(dir, '.fail-deletes'));
  for (const { id, fingerprint } of lines) {
    if (failing) {
      say({ id, result: 'error', message: 'deletes are failing (.fail-deletes)' });
      continue;
    }
    const r = read(id);
    if (!r) say({ id, result: 'absent' });
    else if (r.fingerprint !== fingerprint) say({ id, result: 'changed' });
    else if (trash) {
      mkdirSync(path.join(dir, '.trash'), { recursive: true });
      const handle = `${id}.${Date.now()}`;
      renameSync(path.join(dir, id), path.join(dir, '.trash', handle));
      say({ id, result: 'deleted', restoreHandle: handle });
    } else {
      unlinkSync(path.join(dir, id));
      say({ id, result: 'deleted' });
    }
  }
} else if (op === 'mark' || op === 'unmark') {
  // The visible marker: a "reaperMark" field in the file, written in place (the fingerprint changes with the bytes).
  const refused = existsSync(path.join(dir, '.refuse-marks')) ? readFileSync(path.join(dir, '.refuse-marks'), 'utf8').split('\n') : [];
  for (const { id, fingerprint, run } of lines) {
    const r = read(id);
    if (op === 'mark' && refused.includes(id)) say({ id, result: 'error', message: 'too many tags' });
    else if (!r) say({ id, result: 'absent' });
    else if (op === 'mark' && r.fingerprint !== fingerprint) say({ id, result: 'changed' });
    else {
      const file = path.join(dir, id);
      const doc = JSON.parse(readFileSync(file, 'utf8'));
      if (op === 'mark') doc.reaperMark = run;
      else delete doc.reaperMark;
      writeFileSync(file, JSON.stringify(doc));
      say(op === 'mark' ? { id, result: 'marked', fingerprint: read(id).fingerprint } : { id, result: 'unmarked' });
    }
  }
} else if (op === 'restore') {
  for (const { id, handle } of lines) {
    const from = path.join(dir, '.trash', handle);
    if (!valid(id) || !valid(handle) || !existsSync(from)) say({ id, result: 'error', message: 'no such restore handle' });
    else if (existsSync(path.join(dir, id))) say({ id, result: 'error', message: 'a resource of that id exists' });
    else {
      renameSync(from, path.join(dir, id));
      say({ id, result: 'restored' });
    }
  }
} else {
  process.stderr.write(`unknown op ${op}\n`);
  process.exit(2);
}
process.stdout.write(out.map((l) => `${l}\n`).join(''));
