/**
 * The manifest's regular expressions (`keyPattern`, `pathPattern`; owner and protect rules)
 * are matched against names that anyone able to write a file or an S3 key chooses. A
 * backtracking engine (JavaScript's RegExp) takes minutes on `^(?<owner>(a+)+)b` against 34
 * a's and a c, and cannot be interrupted meanwhile. So patterns use RE2 syntax and a
 * linear-time engine (re2js, a pure-JavaScript port of RE2: no lookaround, no
 * backreferences), and a name longer than MAX_MATCHED_LENGTH is not matched at all: its
 * owner and protection are unknown, so it is never judged orphaned (docs/safety.md §4, §19).
 *
 * Cost: about 5–10 µs per match on short paths, against about 1 µs for RegExp (see
 * BENCHMARKS.md); the engine (~260 KB) loads on the first pattern compiled, so manifests
 * without patterns never load it.
 */
import { createRequire } from 'node:module';
import type { RE2JS } from 're2js';

/** Longest name a pattern is matched on (UTF-16 units): above S3's 1,024-byte keys and PATH_MAX. */
export const MAX_MATCHED_LENGTH = 4096;

type Re2js = typeof import('re2js');
let engine: Re2js | undefined;
const load = (): Re2js => (engine ??= createRequire(import.meta.url)('re2js') as Re2js);

interface Compiled {
  re: RE2JS;
  /** Index of the group named "owner" (group(index) is about twice as fast as group(name)); -1 without one. */
  owner: number;
}
const compiled = new Map<string, Compiled>();

/** A pattern compiled once; throws the engine's syntax error for an invalid one. */
function compile(source: string): Compiled {
  let entry = compiled.get(source);
  if (!entry) {
    const re = load().RE2JS.compile(source);
    entry = { re, owner: re.namedGroups()['owner'] ?? -1 };
    compiled.set(source, entry);
  }
  return entry;
}

/** What is wrong with a manifest pattern, or null. `needsOwner`: an owner pattern must name a group "owner". */
export function patternProblem(source: string, needsOwner: boolean): string | null {
  let entry: Compiled;
  try {
    entry = compile(source);
  } catch (error) {
    const message = (error as Error).message.replace(/^error parsing regexp: /, '');
    return `invalid regular expression (RE2 syntax: no lookaround or backreferences): ${message}`;
  }
  if (needsOwner && entry.owner < 0) return 'the pattern needs a named group "owner", e.g. ^(?<owner>[^/]+)/';
  return null;
}

/** A name too long to match: its owner and protection cannot be judged. */
export const TOO_LONG = Symbol('too long');

/** The `owner` group of the first match in `text` (undefined: no match, or the group took no part). */
export function matchOwner(source: string, text: string): string | undefined | typeof TOO_LONG {
  if (text.length > MAX_MATCHED_LENGTH) return TOO_LONG;
  const { re, owner } = compile(source);
  if (owner < 0) return undefined;
  const matcher = re.matcher(text);
  return matcher.find() ? (matcher.group(owner) ?? undefined) : undefined;
}

/** Whether the pattern matches anywhere in `text`. */
export function matchesPattern(source: string, text: string): boolean | typeof TOO_LONG {
  if (text.length > MAX_MATCHED_LENGTH) return TOO_LONG;
  return compile(source).re.test(text);
}
