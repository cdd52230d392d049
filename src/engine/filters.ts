/**
 * Run filters (`--older-than`, `--owner`): which findings a run looks at. Pure. A finding
 * whose age or owner cannot be read does not match a filter on it: filters only narrow.
 */

export interface FindingFilter {
  /** Only resources at least this old (seconds). */
  olderThanSeconds?: number;
  /** Only resources whose owner key is one of these. */
  owners?: readonly string[];
}

/** The filter, or undefined when it filters nothing. */
export function activeFilter(filter: FindingFilter): FindingFilter | undefined {
  const out: FindingFilter = {};
  if (filter.olderThanSeconds !== undefined) out.olderThanSeconds = filter.olderThanSeconds;
  if (filter.owners !== undefined && filter.owners.length > 0) out.owners = [...new Set(filter.owners)];
  return Object.keys(out).length > 0 ? out : undefined;
}

export function matchesFilter(filter: FindingFilter | undefined, subject: { owner: string | null; ageSeconds: number | null }): boolean {
  if (!filter) return true;
  if (filter.olderThanSeconds !== undefined && (subject.ageSeconds === null || subject.ageSeconds < filter.olderThanSeconds)) return false;
  if (filter.owners !== undefined && (subject.owner === null || !filter.owners.includes(subject.owner))) return false;
  return true;
}

/** Whether two filters select the same findings (a saved plan is applied only with its own). */
export function sameFilter(a: FindingFilter | undefined, b: FindingFilter | undefined): boolean {
  const key = (f: FindingFilter | undefined) => JSON.stringify({ olderThanSeconds: f?.olderThanSeconds ?? null, owners: [...(f?.owners ?? [])].sort() });
  return key(a) === key(b);
}
