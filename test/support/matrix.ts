/** Tests that belong to only some passes of a matrix of stores, backends or dialects. */
import { describe, it } from 'vitest';

/** Registers nothing: the stand-in for `it` / `describe` where a test does not apply. */
const absent = Object.assign(() => undefined, { concurrent: () => undefined });

/**
 * `it` for a test that belongs to only some passes of a matrix (one store, one backend, the full
 * matrix): registered where it applies and absent, not skipped, elsewhere — so a skip in a CI
 * report always means something is missing.
 */
export const itWhere = (applies: boolean): typeof it => (applies ? it : (absent as unknown as typeof it));

/** `describe` for a group that belongs to only some passes of a matrix (see `itWhere`). */
export const describeWhere = (applies: boolean): typeof describe => (applies ? describe : (absent as unknown as typeof describe));
