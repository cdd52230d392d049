/**
 * Classification: every scanned resource gets exactly one status (docs/architecture.md, Contracts).
 *
 * Order of judgement, first match wins:
 *   1. protected — a protect rule matches (a rule that cannot be evaluated makes it `unknown`);
 *   2. unknown   — attributes unreadable, or age unknown;
 *   3. young     — younger than minAge (the creator may not have taken its lease yet);
 *   4. owners    — live if any owner is live; unknown if none is live and one could not be judged;
 *                  orphaned otherwise (`no-owner` when no owner could be read at all,
 *                  `unreachable` when a referenced owner is dead or missing, `owner-dead` otherwise);
 *   5. expired   — an owned (live) resource older than its ttl.
 *
 * Pure: a function of the record, the spec, the liveness answers and `now`.
 */
import { matchesPattern, matchOwner, MAX_MATCHED_LENGTH, TOO_LONG } from '../manifest/pattern.js';
import type { OwnerRule, ProtectRule, ResourceSpec } from '../manifest/types.js';
import type { Finding, Liveness, OwnerValue, ResourceRecord } from './types.js';

/** Answers for the owners of one page of resources, gathered by the caller (batched look-ups). */
export interface LivenessAnswers {
  /** Liveness of an owner key across all sources: live if any source says live. */
  key(key: string): Liveness;
  /** Liveness of a referenced resource (`TYPE/ID`): live, dead (or missing), unknown. */
  ref(type: string, id: string): Liveness;
}

const TOO_LONG_WHY = `the name is longer than ${MAX_MATCHED_LENGTH} characters; patterns are not matched on it`;

/** Read the owner of a record under one rule. */
export function readOwner(record: ResourceRecord, rule: OwnerRule): OwnerValue {
  const e = rule.extractor;
  let value: string | null | undefined;
  switch (e.from) {
    case 'keyPattern':
    case 'pathPattern': {
      const owner = matchOwner(e.pattern, record.id);
      if (owner === TOO_LONG) return { kind: 'unreadable', why: TOO_LONG_WHY };
      value = owner;
      break;
    }
    case 'metadata':
      if (!record.metadata) return { kind: 'unreadable', why: 'metadata not read' };
      value = lookupCaseInsensitive(record.metadata, e.name);
      break;
    case 'tag':
      if (!record.tags) return { kind: 'unreadable', why: 'tags not read' };
      value = Object.hasOwn(record.tags, e.name) ? record.tags[e.name] : undefined;
      break;
    case 'column':
      if (!record.columns || !Object.hasOwn(record.columns, e.name)) return { kind: 'unreadable', why: `column ${e.name} not read` };
      value = record.columns[e.name];
      break;
    case 'attribute':
      if (!record.attributes) return { kind: 'unreadable', why: 'attributes not read' };
      value = Object.hasOwn(record.attributes, e.name) ? record.attributes[e.name] : undefined;
      break;
  }
  if (value === undefined || value === null || value === '') return { kind: 'none' };
  if (rule.ref !== undefined) return { kind: 'ref', ref: { type: rule.ref, id: value } };
  return { kind: 'key', key: rule.keyTemplate ? rule.keyTemplate.split('{value}').join(value) : value };
}

/** S3 user-metadata names are case-insensitive (they arrive lower-cased). */
function lookupCaseInsensitive(map: Readonly<Record<string, string>>, name: string): string | undefined {
  if (Object.hasOwn(map, name)) return map[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(map)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Every owner value of a record, one per owner rule. */
export function readOwners(record: ResourceRecord, spec: Pick<ResourceSpec, 'owners'>): OwnerValue[] {
  return spec.owners.map((rule) => readOwner(record, rule));
}

/** The keys the caller must look up for a page: owner keys, and referenced resources as TYPE/ID. */
export function ownerKeysOf(records: readonly ResourceRecord[], spec: Pick<ResourceSpec, 'owners'>): { keys: Set<string>; refs: Map<string, Set<string>> } {
  const keys = new Set<string>();
  const refs = new Map<string, Set<string>>();
  for (const record of records) {
    for (const owner of readOwners(record, spec)) {
      if (owner.kind === 'key') keys.add(owner.key);
      else if (owner.kind === 'ref') {
        let ids = refs.get(owner.ref.type);
        if (!ids) refs.set(owner.ref.type, (ids = new Set()));
        ids.add(owner.ref.id);
      }
    }
  }
  return { keys, refs };
}

/** Which protect rule matches: its index, `unknown` when one cannot be evaluated, or null. */
export function matchProtect(record: ResourceRecord, rules: readonly ProtectRule[]): { index: number } | 'unknown' | null {
  let unknown = false;
  for (let index = 0; index < rules.length; index++) {
    const rule = rules[index]!;
    let hit: boolean | undefined;
    switch (rule.kind) {
      case 'keyPattern':
      case 'pathPattern': {
        const matched = matchesPattern(rule.pattern, record.id);
        hit = matched === TOO_LONG ? undefined : matched;
        break;
      }
      case 'tag':
        hit = record.tags ? Object.entries(rule.match).every(([k, v]) => Object.hasOwn(record.tags!, k) && record.tags![k] === v) : undefined;
        break;
      case 'metadata':
        hit = record.metadata ? Object.entries(rule.match).every(([k, v]) => lookupCaseInsensitive(record.metadata!, k) === v) : undefined;
        break;
      case 'where':
        hit = record.protectMatches?.[index];
        break;
      case 'attribute':
        hit = record.attributes ? Object.entries(rule.match).every(([k, v]) => Object.hasOwn(record.attributes!, k) && record.attributes![k] === v) : undefined;
        break;
    }
    if (hit === true) return { index };
    if (hit === undefined) unknown = true;
  }
  return unknown ? 'unknown' : null;
}

export function ownerLabel(owner: OwnerValue): string | null {
  if (owner.kind === 'key') return owner.key;
  if (owner.kind === 'ref') return `${owner.ref.type}/${owner.ref.id}`;
  return null;
}

/** Classify one resource. */
export function classify(record: ResourceRecord, spec: ResourceSpec, answers: LivenessAnswers, nowMs: number): Finding {
  const ageMs = record.createdAtMs === null ? null : Math.max(0, nowMs - record.createdAtMs);
  const beyondTtlSeconds = spec.ttlMs === undefined || ageMs === null ? null : Math.max(0, ageMs - spec.ttlMs) / 1000;
  const owners = readOwners(record, spec);
  const labelled = owners.map(ownerLabel).find((l) => l !== null) ?? null;
  const finding = (status: Finding['status'], reason: string | null, owner: string | null = labelled): Finding => ({
    resource: spec.name,
    backend: spec.location.kind,
    id: record.id,
    status,
    reason,
    owner,
    ageSeconds: ageMs === null ? null : ageMs / 1000,
    bytes: record.bytes,
    fingerprint: record.fingerprint,
    beyondTtlSeconds,
  });

  const protection = matchProtect(record, spec.protect);
  if (protection !== null && protection !== 'unknown') return finding('protected', `protect[${protection.index}]`);
  if (protection === 'unknown') return finding('unknown', 'protection-unreadable');
  if (record.unreadable !== undefined) return finding('unknown', 'attributes-unreadable');
  if (ageMs === null) return finding('unknown', 'age-unknown');
  // A creation time ahead of the store's clock is clock skew, not age: not judged yet.
  if (record.createdAtMs !== null && record.createdAtMs > nowMs) return finding('young', 'future-timestamp');
  if (ageMs < spec.minAgeMs) return finding('young', 'min-age');

  let sawUnknown = false;
  let sawOwner = false;
  let sawRef = false;
  let deadOwner: string | null = null;
  for (const owner of owners) {
    let liveness: Liveness;
    if (owner.kind === 'none') continue;
    if (owner.kind === 'unreadable') {
      sawUnknown = true;
      continue;
    }
    sawOwner = true;
    if (owner.kind === 'key') liveness = answers.key(owner.key);
    else {
      sawRef = true;
      liveness = answers.ref(owner.ref.type, owner.ref.id);
    }
    if (liveness === 'live') {
      const expired = beyondTtlSeconds !== null && beyondTtlSeconds > 0;
      return finding(expired ? 'expired' : 'live', expired ? 'ttl' : null, ownerLabel(owner));
    }
    if (liveness === 'unknown') sawUnknown = true;
    else deadOwner ??= ownerLabel(owner);
  }
  if (sawUnknown) return finding('unknown', 'liveness-unavailable');
  if (!sawOwner) return finding('orphaned', 'no-owner', null);
  return finding('orphaned', sawRef ? 'unreachable' : 'owner-dead', deadOwner);
}

/** Whether a finding may be tombstoned under its resource's policy. */
export function isReapable(finding: Pick<Finding, 'status'>, spec: Pick<ResourceSpec, 'onExpired'>): boolean {
  return finding.status === 'orphaned' || (finding.status === 'expired' && spec.onExpired === 'reap');
}
