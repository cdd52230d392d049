/**
 * Lazy `${VAR}` resolution: a command needs only the variables of the values it uses.
 * `reaper lease list` reads the state store alone, so an unset DATABASE_URL must not stop
 * it; `reaper audit` needs the state store, the liveness sources, the resource types it
 * scans and their connections. A lazy load records each unset variable with its
 * file:line:key (`Manifest.unresolved`); `requireVariables` reports those the command
 * uses, as a manifest error (exit 2) before anything is contacted.
 */
import { ManifestError } from '../errors.js';
import type { Manifest, UnresolvedVariable } from './types.js';

type KeyPath = readonly (string | number)[];

/** What a command reads from the manifest. */
export interface ManifestUse {
  /** The state store URL (false where --state or $REAPER_STATE replaces it). */
  state: boolean;
  /** The liveness sources (`owners:`) and their connections. */
  owners: boolean;
  /** The resource types scanned, with the types their `ref` owners reach: all when undefined, none when empty. */
  resources?: readonly string[];
  /** Whether the resources' connections are opened (not by `graph`). Default true. */
  connections?: boolean;
}

/** Everything: what `validate` checks and what a caller that does not say uses. */
export const USES_EVERYTHING: ManifestUse = { state: true, owners: true };

/** Resource types reached from `names` through `ref` owners (each type once). */
function withReferenced(manifest: Manifest, names: readonly string[]): Set<string> {
  const reached = new Set<string>();
  const visit = (name: string) => {
    if (reached.has(name)) return;
    reached.add(name);
    for (const owner of manifest.resources.find((r) => r.name === name)?.owners ?? []) if (owner.ref !== undefined) visit(owner.ref);
  };
  names.forEach(visit);
  return reached;
}

/** Key paths (prefixes) of the manifest that `use` reads. */
function usedPaths(manifest: Manifest, use: ManifestUse): KeyPath[] {
  const paths: KeyPath[] = [['version'], ['defaults']];
  if (use.state) paths.push(['state']);
  if (use.owners) {
    paths.push(['owners']);
    for (const source of manifest.owners) if (source.kind === 'sql') paths.push(['connections', source.connection]);
  }
  const names = use.resources === undefined ? manifest.resources.map((r) => r.name) : [...withReferenced(manifest, use.resources)];
  manifest.resources.forEach((r, i) => {
    if (!names.includes(r.name)) return;
    paths.push(['resources', i]);
    if (use.connections !== false && 'connection' in r.location) paths.push(['connections', r.location.connection]);
  });
  return paths;
}

/** Whether one path lies on the other (either is a prefix of the other). */
function overlaps(a: KeyPath, b: KeyPath): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (String(a[i]) !== String(b[i])) return false;
  return true;
}

/** The unset variables among the values `use` reads. */
export function usedUnresolved(manifest: Manifest, use: ManifestUse): UnresolvedVariable[] {
  const unresolved = manifest.unresolved ?? [];
  if (unresolved.length === 0) return [];
  const paths = usedPaths(manifest, use);
  return unresolved.filter((u) => paths.some((p) => overlaps(p, u.keyPath)));
}

/** Throw a ManifestError naming file, line and key of every unset variable that `use` reads. */
export function requireVariables(manifest: Manifest, use: ManifestUse): void {
  const missing = usedUnresolved(manifest, use);
  if (missing.length > 0) throw new ManifestError(missing.map((u) => u.issue));
}
