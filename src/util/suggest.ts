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

/**
 * The word of `words` that `typed` most likely meant: the same but for case, else the nearest
 * within two edits (ignoring case; the first of equals) and fewer edits than the word is long,
 * so a one- or two-letter typo is not "meant" as any short word; undefined when none is.
 */
export function closestWord(typed: string, words: readonly string[]): string | undefined {
  const lower = typed.toLowerCase();
  const same = words.find((w) => w.toLowerCase() === lower);
  if (same !== undefined) return same;
  let best: { word: string; distance: number } | undefined;
  for (const word of words) {
    const distance = editDistance(word.toLowerCase(), lower);
    if (distance <= 2 && distance < Math.min(word.length, typed.length) && (best === undefined || distance < best.distance)) best = { word, distance };
  }
  return best?.word;
}
