/** `LeaseLostError` says why a lease is lost in words, as the CLI does (src/cli/commands/lease.ts), for library callers too. */
import { describe, expect, it } from 'vitest';
import { ExitCode, LEASE_LOSS_REASONS, LeaseLostError } from '../../src/errors.js';

const ID = '0b6f3f1e-6d4c-4a4e-9d59-3f1ad4a1c2b7';

describe('LeaseLostError', () => {
  it('says each reason in words', () => {
    expect(new LeaseLostError(ID, 'expired').message).toBe(`lease ${ID} has expired`);
    expect(new LeaseLostError(ID, 'released').message).toBe(`lease ${ID} was released`);
    expect(new LeaseLostError(ID, 'not-found').message).toBe(`no lease ${ID} in the state store`);
    expect(new LeaseLostError(ID, 'not-holder').message).toBe(`lease ${ID} is held by another holder`);
    expect(new LeaseLostError(ID, 'deadline').message).toMatch(/was not renewed in time/);
  });

  it('keeps the reason as a code in `why`, and no message carries the code itself', () => {
    for (const why of LEASE_LOSS_REASONS) {
      const error = new LeaseLostError(ID, why);
      expect(error.why).toBe(why);
      expect(error.exitCode).toBe(ExitCode.runtime);
      expect(error.message).not.toContain(` is ${why}`);
    }
  });
});
