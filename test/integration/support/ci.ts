/**
 * Tools and privileges a test file needs. Outside CI a missing one skips the tests that need
 * it; under CI=true it is a failing test that names what is missing and how to get it, never a
 * silent skip (as a missing service already fails global-setup).
 */
import { describe, expect, it } from 'vitest';

export const inCI = process.env.CI === 'true';

/** What a test file needs: whether it is there, and what to do when it is not. */
export type Needs = Record<string, { have: boolean; hint: string }>;

/** Under CI=true, one test that fails naming each of `needs` that is missing; outside CI, none. */
export function requiredUnderCI(tests: string, needs: Needs): void {
  describe.runIf(inCI)(`what ${tests} need (required under CI)`, () => {
    it(`${Object.keys(needs).join(', ')}`, () => {
      const missing = Object.entries(needs)
        .filter(([, need]) => !need.have)
        .map(([name, need]) => `${name}: ${need.hint}`);
      expect(missing, `missing under CI=true (the tests that need them would skip):\n${missing.join('\n')}`).toEqual([]);
    });
  });
}
