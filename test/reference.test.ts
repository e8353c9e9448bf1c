// The flip explainer used by the golden tests can tell a reciprocal flip from anything else.
import { describe, expect, it } from 'vitest';
import { NF4_T, explainedByReciprocal, nextDown, nextUp, nf4Code } from './helpers/reference.js';

/** Finds x, amax where moving 1/amax by one ulp changes the NF4 code of x * (1/amax). */
function findFlip(): { x: number; amax: number; ieee: number; flipped: number } {
  for (let k = 0; k < 1000; k++) {
    const amax = Math.fround(1.2345679 + k * 1e-4);
    const r = Math.fround(1 / amax);
    let x = Math.fround(NF4_T[12]! / r);
    for (let j = 0; j < 8; j++, x = nextDown(x)) {
      const ieee = nf4Code(Math.fround(x * r)),
        flipped = nf4Code(Math.fround(x * nextUp(r)));
      if (ieee !== flipped) return { x, amax, ieee, flipped };
    }
  }
  throw new Error('no flip found');
}

describe('explainedByReciprocal', () => {
  it('accepts a code that the neighbouring reciprocal gives and rejects others', () => {
    const { x, amax, ieee, flipped } = findFlip();
    expect([ieee, flipped]).toEqual([12, 13]);
    expect(explainedByReciprocal(x, amax, flipped, nf4Code)).toBe(true);
    expect(explainedByReciprocal(x, amax, 14, nf4Code)).toBe(false);
    expect(explainedByReciprocal(0.3, 1, 0, nf4Code)).toBe(false);
  });
});
