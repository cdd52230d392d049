/**
 * The schemes of the URLs a manifest names: the state store, SQL connections and S3
 * endpoints. A typo (`postgress://`) would otherwise reach a driver that ignores the
 * scheme, or a store that cannot be opened, long after the manifest was "valid". Checked
 * after `${VAR}` interpolation, so a variable's value is checked too; a value whose
 * variable is not set is left to the missing-variable error. Messages name the scheme
 * only, never the rest of the URL (it may hold a password).
 */
import type { ManifestIssue } from '../errors.js';
import type { ManifestInput } from './schema.js';

const STATE = /^(sqlite:.|postgres:\/\/|postgresql:\/\/|mysql:\/\/)/;
export const STATE_URL_EXPECTED = 'expected sqlite:PATH, postgres://… or mysql://…';

const CONNECTION_SCHEMES: Record<'postgres' | 'mysql', readonly string[]> = {
  postgres: ['postgres://', 'postgresql://'],
  mysql: ['mysql://'],
};

/** The scheme part of a URL-like text, for messages ("postgress://", or the first characters). */
function schemeOf(text: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:(\/\/)?/.exec(text)?.[0];
  return scheme ?? `${[...text].slice(0, 12).join('')}${[...text].length > 12 ? '…' : ''}`;
}

/** Why a state store URL cannot be used, or null when its scheme is one reaper opens. */
export function stateUrlProblem(url: string): string | null {
  return STATE.test(url) ? null : `${STATE_URL_EXPECTED} (got "${schemeOf(url)}")`;
}

function connectionUrlProblem(kind: 'postgres' | 'mysql', url: string): string | null {
  const schemes = CONNECTION_SCHEMES[kind];
  if (schemes.some((s) => url.startsWith(s))) return null;
  return `unknown scheme "${schemeOf(url)}"; a ${kind} connection URL starts with ${schemes.join(' or ')}${kind === 'mysql' ? ' (MariaDB too)' : ''}`;
}

function endpointProblem(endpoint: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    return 'expected an http:// or https:// URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `unknown scheme "${schemeOf(endpoint)}"; an S3 endpoint starts with http:// or https://`;
  return null;
}

/**
 * Every URL of the manifest whose scheme is wrong, as issues at its key. `skip(path)` says
 * a value still holds an unset `${VAR}` (reported as such where the value is used).
 */
export function urlIssues(
  input: Pick<ManifestInput, 'state' | 'connections'>,
  file: string,
  lineAt: (path: (string | number)[]) => number | null,
  skip: (path: (string | number)[]) => boolean,
): ManifestIssue[] {
  const issues: ManifestIssue[] = [];
  const check = (path: (string | number)[], problem: string | null) => {
    if (problem !== null && !skip(path)) issues.push({ file, line: lineAt(path), path: path.join('.'), message: problem });
  };
  if (input.state !== undefined) check(['state'], STATE.test(input.state) ? null : STATE_URL_EXPECTED);
  for (const [name, c] of Object.entries(input.connections ?? {})) {
    if (c.kind === 's3') {
      if (c.endpoint !== undefined) check(['connections', name, 'endpoint'], endpointProblem(c.endpoint));
    } else {
      check(['connections', name, 'url'], connectionUrlProblem(c.kind, c.url));
    }
  }
  return issues;
}
