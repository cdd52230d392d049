/** How a reap names the cause of failed deletes: the distinct errors, first met first, counted. */
import { describe, expect, it } from 'vitest';
import { describeFailures } from '../../src/run/reap/sweep.js';

describe('describeFailures', () => {
  it('counts each distinct error, in the order first met', () => {
    expect(describeFailures(['connection reset', 'connection reset', 'timeout', 'connection reset'])).toBe('connection reset ×3; timeout ×1');
  });

  it('shows the first three and says how many other errors there were', () => {
    expect(describeFailures(['a', 'b', 'c', 'd', 'e', 'a'])).toBe('a ×2; b ×1; c ×1; and 2 other error(s)');
  });
});
