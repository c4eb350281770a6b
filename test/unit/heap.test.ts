// The old generation's share of the heap: V8's limit less the young generation, whose size the
// --max-semi-space-size flag sets (bin/stockline.js passes 64).

import { describe, expect, it } from 'vitest';
import { semiSpaceMb, youngGenerationWarning } from '../../src/app/heap.js';

describe('the semi-space size this process runs with', () => {
  it('is read from the flag in either spelling, the last one counting, else the default', () => {
    expect(semiSpaceMb(['--max-semi-space-size=64'])).toBe(64);
    expect(semiSpaceMb(['--max_semi_space_size=32', '--inspect'])).toBe(32);
    expect(semiSpaceMb(['--max-semi-space-size', '8'])).toBe(8);
    expect(semiSpaceMb(['--max-semi-space-size=64', '--max-semi-space-size=128'])).toBe(128);
    expect(semiSpaceMb(['--max-old-space-size=512'])).toBe(16);
    expect(semiSpaceMb(['--max-semi-space-size=nonsense'])).toBe(16);
  });
});

describe('the warning of a young generation larger than the old one', () => {
  it('is given below three semi-spaces of old generation, naming both sizes', () => {
    expect(youngGenerationWarning(128 * 2 ** 20, 64)).toMatch(/old generation \(128 MiB\) is smaller than its young one \(3 × 64 MiB/);
    expect(youngGenerationWarning(192 * 2 ** 20, 64)).toBeUndefined();
    expect(youngGenerationWarning(128 * 2 ** 20, 16)).toBeUndefined();
  });
});
