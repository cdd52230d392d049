/**
 * docs/safety.md names, under each invariant, the guard in the code that holds it and the tests
 * that fail without it. These checks keep the names true while the code and the tests move: every
 * invariant names a guard and a test, every file named exists, every function named appears in its
 * file, every test title appears in its test file as a string literal, and every invariant a test
 * (or a code comment, or a page) cites exists. They cannot tell whether a test still fails without
 * its guard: that is what the page's "How this list was checked" records, and must be redone when a
 * guard moves.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const DOC = 'docs/safety.md';
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Entry {
  file: string;
  title: string;
}

interface Section {
  /** `§N`, or the name of an unnumbered section ("Bad input"). */
  name: string;
  number: number | null;
  retired: boolean;
  guard: string;
  tests: Entry[];
  /** Lines of the Tests list that are not `` - `FILE` — TITLE ``. */
  malformed: string[];
}

/** Headings of the page whose sections name guards and tests besides the numbered invariants. */
const UNNUMBERED = ['Bad input'];

/** The invariants of the page and their Guard and Tests paragraphs. */
function parseSections(text: string): Section[] {
  const out: Section[] = [];
  let current: Section | null = null;
  let block: 'guard' | 'tests' | null = null;
  for (const line of text.split('\n')) {
    const invariant = /^\*\*(~~)?§(\d+)\b/.exec(line);
    const heading = /^## (.+)$/.exec(line);
    if (invariant || heading) {
      block = null;
      current = null;
      const name = invariant ? `§${invariant[2]}` : heading![1]!;
      if (invariant || UNNUMBERED.includes(name)) {
        current = { name, number: invariant ? Number(invariant[2]) : null, retired: Boolean(invariant?.[1]), guard: '', tests: [], malformed: [] };
        out.push(current);
      }
      continue;
    }
    if (!current) continue;
    if (line.trim() === '') {
      block = null;
    } else if (line.startsWith('Guard:')) {
      block = 'guard';
      current.guard += line;
    } else if (line === 'Tests:') {
      block = 'tests';
    } else if (block === 'guard') {
      current.guard += ` ${line}`;
    } else if (block === 'tests') {
      const entry = /^- `([^`]+)` — (.+)$/.exec(line);
      if (entry) current.tests.push({ file: entry[1]!, title: entry[2]! });
      else current.malformed.push(line);
    }
  }
  return out;
}

/** `file` `name` pairs of a Guard paragraph, and every `src/…` path it mentions. */
function guardNames(guard: string): { pairs: { file: string; name: string }[]; files: string[] } {
  const pairs = [...guard.matchAll(/`(src\/[^`]+)`\s+`([^`]+)`/g)].map((m) => ({ file: m[1]!, name: m[2]! }));
  const files = [...guard.matchAll(/`(src\/[^`]+)`/g)].map((m) => m[1]!);
  return { pairs, files };
}

/** Whether `title` is a whole string literal of `source` ('…', "…" or `…`, its quote escaped inside). */
function hasTitle(source: string, title: string): boolean {
  return ["'", '"', '`'].some((q) => source.includes(`${q}${title.split(q).join(`\\${q}`)}${q}`));
}

/** What is wrong with the page's sections, one line each, given a way to read the repository's files. */
function sectionProblems(sections: readonly Section[], readFile: (file: string) => string | null): string[] {
  const problems: string[] = [];
  for (const s of sections) {
    if (s.retired) continue;
    const { pairs, files } = guardNames(s.guard);
    if (pairs.length === 0) problems.push(`${s.name}: no Guard: naming \`src/FILE\` \`function\``);
    if (s.tests.length === 0) problems.push(`${s.name}: names no test`);
    for (const line of s.malformed) problems.push(`${s.name}: not \`- \\\`FILE\\\` — TITLE\`: ${line}`);
    for (const file of files) if (readFile(file) === null) problems.push(`${s.name}: guard file ${file} does not exist`);
    for (const { file, name } of pairs) {
      const source = readFile(file);
      if (source === null) continue;
      for (const part of name.split('.')) if (!source.includes(part)) problems.push(`${s.name}: ${part} does not appear in ${file}`);
    }
    for (const { file, title } of s.tests) {
      const source = file.startsWith('test/') ? readFile(file) : null;
      if (source === null) problems.push(`${s.name}: test file ${file} does not exist`);
      else if (!hasTitle(source, title)) problems.push(`${s.name}: no test titled "${title}" in ${file}`);
    }
  }
  return problems;
}

/** Every section number cited in `text`: any `§N` (tests), or only those after `docs/safety.md` or `safety.md` (code and pages). */
function citedNumbers(text: string, bare: boolean): number[] {
  if (bare) return [...text.matchAll(/§(\d+)/g)].map((m) => Number(m[1]));
  const runs = [...text.matchAll(/safety\.md(?:\]\([^)]*\))?((?:\s*(?:,|and|–|-)?\s*§\d+)+)/g)].map((m) => m[1]!);
  return runs.flatMap((run) => [...run.matchAll(/§(\d+)/g)].map((m) => Number(m[1])));
}

function filesUnder(dir: string, ext: string | readonly string[]): string[] {
  const exts = typeof ext === 'string' ? [ext] : ext;
  const out: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...filesUnder(rel, exts));
    else if (exts.some((e) => entry.name.endsWith(e))) out.push(rel);
  }
  return out;
}

/** The repository's own text files outside docs/: what is written, not built or installed. */
const TEXT = ['.ts', '.mjs', '.js', '.md', '.sh', '.py', '.yaml', '.yml', '.json', '.css', '.html'];
const OWN_DIRS = ['src', 'test', 'bench', 'scripts', 'config', 'bin', '.ci'];
function ownFiles(): string[] {
  const root = readdirSync(ROOT, { withFileTypes: true })
    .filter((e) => e.isFile() && (TEXT.some((t) => e.name.endsWith(t)) || e.name === 'Dockerfile') && e.name !== 'package-lock.json')
    .map((e) => e.name);
  return [...root, ...OWN_DIRS.filter((d) => existsSync(path.join(ROOT, d))).flatMap((d) => filesUnder(d, TEXT))];
}

/** A reference to a safety or design document that is not in the repository ("SAFETY 3", "DESIGN §1", SAFETY.md, DESIGN.md). */
const STALE = /\bSAFETY \d|\bSAFETY\.md|\bDESIGN §|\bDESIGN\.md/;

/** GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Relative links of a Markdown file (outside code blocks) that name no file, or no heading of it. */
function brokenLinks(file: string, readFile: (file: string) => string | null): string[] {
  const text = readFile(file) ?? '';
  const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  const problems: string[] = [];
  for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!;
    if (/^[a-z]+:/i.test(target)) continue;
    const [rel, fragment] = target.split('#') as [string, string | undefined];
    const resolved = rel === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), rel));
    const body = readFile(resolved.replace(/\/$/, ''));
    if (body === null) {
      problems.push(`${file}: ${target}: no such file`);
      continue;
    }
    if (fragment !== undefined && resolved.endsWith('.md')) {
      const anchors = new Set([...body.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} (.+)$/gm)].map((h) => anchorOf(h[1]!)));
      if (!anchors.has(fragment)) problems.push(`${file}: ${target}: no heading #${fragment}`);
    }
  }
  return problems;
}

const readOrNull = (file: string) => (existsSync(path.join(ROOT, file)) ? (statSync(path.join(ROOT, file)).isDirectory() ? '' : read(file)) : null);
const page = read(DOC);
const sections = parseSections(page);
const numbers = sections.filter((s) => s.number !== null).map((s) => s.number!);
/** The test files, this one aside (its own examples cite what they must). */
const testFiles = filesUnder('test', '.ts').filter((file) => file !== 'test/unit/docs-safety.test.ts');

describe('docs/safety.md', () => {
  it('numbers the invariants from §1 without a gap, each once, and has a "Bad input" section', () => {
    expect(numbers.length).toBeGreaterThanOrEqual(21);
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    expect(sections.map((s) => s.name)).toContain('Bad input');
  });

  it('names under each invariant a guard in src/ and tests that exist, by their own titles', () => {
    expect(sections.filter((s) => !s.retired).every((s) => s.tests.length > 0)).toBe(true);
    expect(sectionProblems(sections, readOrNull)).toEqual([]);
  });

  it('cites only invariants that exist: any §N in a test or a page of docs/ or the README, docs/safety.md §N in the code', () => {
    const known = new Set(numbers);
    const sources = [
      ...testFiles.map((file) => ({ file, bare: true })),
      ...['src', 'bench', 'scripts'].flatMap((dir) => filesUnder(dir, TEXT)).map((file) => ({ file, bare: false })),
      // The pages use § for this page's sections only (the README's safety rails give their numbers bare).
      ...[...filesUnder('docs', '.md'), 'README.md'].filter((file) => file !== DOC).map((file) => ({ file, bare: true })),
      ...['BENCHMARKS.md', 'CHANGELOG.md'].map((file) => ({ file, bare: false })),
    ];
    const unknown = sources.flatMap(({ file, bare }) => citedNumbers(read(file), bare).filter((n) => !known.has(n)).map((n) => `${file}: §${n}`));
    expect(unknown).toEqual([]);
    // The pattern is not vacuous: the reap suite cites most invariants, the README's rails a dozen.
    expect(new Set(citedNumbers(read('test/integration/reap-fs.test.ts'), true)).size).toBeGreaterThan(10);
    expect(new Set(citedNumbers(read('README.md'), true)).size).toBeGreaterThanOrEqual(12);
  });

  it('is the only safety list anything cites: no SAFETY n, SAFETY.md, DESIGN §n or DESIGN.md outside docs/', () => {
    const files = ownFiles().filter((file) => file !== 'test/unit/docs-safety.test.ts');
    const stale = files.flatMap((file) =>
      read(file)
        .split('\n')
        .map((line, i) => (STALE.test(line) ? `${file}:${i + 1}` : null))
        .filter((hit): hit is string => hit !== null),
    );
    expect(stale).toEqual([]);
    // Not vacuous: the code, the tests, the scripts and the root pages were read.
    for (const file of ['src/run/reap.ts', 'test/unit/docs-safety.test.ts', 'scripts/check-pack.sh', 'BENCHMARKS.md']) expect(ownFiles()).toContain(file);
  });

  it('is cited by the code only as pages of docs/ that exist, and sections of them that exist', () => {
    const problems: string[] = [];
    for (const file of [...['src', 'bench', 'scripts'].flatMap((dir) => filesUnder(dir, TEXT)), ...testFiles]) {
      for (const m of read(file).matchAll(/\bdocs\/([\w-]+\.md)(?:, ([A-Z][\w ]*\w))?/g)) {
        const body = readOrNull(`docs/${m[1]}`);
        if (body === null) problems.push(`${file}: docs/${m[1]} does not exist`);
        else if (m[2] !== undefined && !new RegExp(`^#{1,6} ${m[2]}$`, 'm').test(body)) problems.push(`${file}: docs/${m[1]} has no section "${m[2]}"`);
      }
    }
    expect(problems).toEqual([]);
    expect(read('src/errors.ts')).toContain('docs/architecture.md, Contracts');
  });

  it('links, from every page of docs/ and from the README, only to files and headings that exist', () => {
    const pages = [...filesUnder('docs', '.md'), 'README.md'];
    expect(pages).toEqual(expect.arrayContaining(['docs/safety.md', 'docs/architecture.md', 'docs/manifest.md']));
    expect(pages.flatMap((file) => brokenLinks(file, readOrNull))).toEqual([]);
  });

  it('reports an invariant without a test, a missing file, a function or a title not where it is said to be', () => {
    const fake = [
      '**§1 One.** text',
      '',
      'Guard: `src/run/reap.ts` `noSuchFunction`; `src/run/gone.ts` `x`',
      '',
      'Tests:',
      '- `test/integration/reap-fs.test.ts` — a title nobody wrote',
      '- `test/unit/gone.test.ts` — anything',
      '- test/unit/free-form.test.ts: a title',
      '',
      '**§2 Two.** text',
      '',
      'Guard: `src/run/reap.ts` `runReap`',
      '',
      '## Bad input',
      '',
      'Tests:',
      '- `test/integration/cli.test.ts` — names file, line 6 and key for an unknown key, exits 2 and touches nothing',
    ].join('\n');
    expect(sectionProblems(parseSections(fake), readOrNull)).toEqual([
      '§1: not `- \\`FILE\\` — TITLE`: - test/unit/free-form.test.ts: a title',
      '§1: guard file src/run/gone.ts does not exist',
      '§1: noSuchFunction does not appear in src/run/reap.ts',
      '§1: no test titled "a title nobody wrote" in test/integration/reap-fs.test.ts',
      '§1: test file test/unit/gone.test.ts does not exist',
      '§2: names no test',
      'Bad input: no Guard: naming `src/FILE` `function`',
    ]);
    expect(citedNumbers('see docs/safety.md §7–§9, §11 and §13; DESIGN §3', false)).toEqual([7, 9, 11, 13]);
    expect(citedNumbers('([safety.md §6 and §18](safety.md)), [safety.md](safety.md) §2', false)).toEqual([6, 18, 2]);
    expect(['SAFETY 3', 'see SAFETY.md', 'DESIGN §1', 'DESIGN.md', '../shared/DESIGN.md'].every((t) => STALE.test(t))).toBe(true);
    expect(STALE.test('docs/safety.md §3, the design')).toBe(false);
    const pages: Record<string, string> = {
      'docs/a.md': '# A page\n\n## The `where` key, §2\n\n[ok](b.md) [ok](#the-where-key-2) [ok](../src) [gone](c.md) [bad](b.md#nowhere) [web](https://x.y/z)\n```\n[in code](none.md)\n```\n',
      'docs/b.md': '# B\n',
      src: '',
    };
    expect(brokenLinks('docs/a.md', (f) => pages[f] ?? null)).toEqual(['docs/a.md: c.md: no such file', 'docs/a.md: b.md#nowhere: no heading #nowhere']);
    expect(hasTitle("it('the daemon\\'s own clock', …)", "the daemon's own clock")).toBe(true);
    expect(hasTitle("it('the daemon\\'s own clock, and more', …)", "the daemon's own clock")).toBe(false);
  });
});
