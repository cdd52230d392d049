/** "Did you mean …?" for a word typed wrong: the closest of the words allowed there. */

/** Levenshtein distance: the fewest single-character insertions, deletions and substitutions from a to b. */
export function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}

/** The word of `words` that `typed` most likely meant: the same but for case, else the first within two edits (ignoring case); undefined when none is. */
export function closestWord(typed: string, words: readonly string[]): string | undefined {
  const lower = typed.toLowerCase();
  return words.find((w) => w.toLowerCase() === lower) ?? words.find((w) => editDistance(w.toLowerCase(), lower) <= 2);
}
