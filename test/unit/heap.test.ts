// The old generation's share of the heap: V8's limit less the young generation, whose size the
// --max-semi-space-size flag sets (bin/stockline.js passes 64).

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { HeapWatch, semiSpaceMb, youngGenerationWarning } from '../../src/app/heap.js';

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

describe('the watch that refuses new holds and imports when the heap is nearly full', () => {
  const mib = 2 ** 20;

  it('refuses from 90 % live after a full collection and takes them again below 85 %, telling each change', () => {
    let reading = 500 * mib;
    const changes: Array<[boolean, number]> = [];
    const watch = new HeapWatch({ limitBytes: 1000 * mib, liveBytes: () => reading, onChange: (refusing, bytes) => changes.push([refusing, bytes / mib]) });
    const collect = (mibs: number): void => {
      reading = mibs * mib;
      watch.collected();
    };
    expect(watch.liveBytes()).toBeUndefined();
    expect(watch.heapFullReason()).toBeUndefined();
    collect(500);
    expect(watch.liveBytes()).toBe(500 * mib);
    expect(watch.full()).toBe(false);
    collect(899);
    expect(watch.full()).toBe(false);
    collect(900);
    expect(watch.full()).toBe(true);
    expect(watch.heapFullReason()).toBe('the heap is nearly full (900 of 1000 MiB live after the last full collection): '
      + 'new holds and imports are refused until finished reservations are forgotten (25 hours after they finish) or the heap is raised');
    // Between the two marks the answer stays as it was.
    collect(860);
    expect(watch.full()).toBe(true);
    collect(849);
    expect(watch.full()).toBe(false);
    expect(watch.heapFullReason()).toBeUndefined();
    collect(880);
    expect(watch.full()).toBe(false);
    expect(changes).toEqual([[true, 900], [false, 849]]);
  });

  it('refuses sales and adjustments too from 95 % and takes them again below 90 %, telling each change', () => {
    let reading = 500 * mib;
    const changes: Array<[boolean, number]> = [];
    const watch = new HeapWatch({ limitBytes: 1000 * mib, liveBytes: () => reading, onChangeAll: (refusing, bytes) => changes.push([refusing, bytes / mib]) });
    const collect = (mibs: number): void => {
      reading = mibs * mib;
      watch.collected();
    };
    collect(949);
    expect(watch.heapFullReason()).toBeDefined();
    expect(watch.heapExhaustedReason()).toBeUndefined();
    collect(950);
    expect(watch.heapExhaustedReason()).toBe('the heap is almost out (950 of 1000 MiB live after the last full collection): '
      + 'recorded sales and adjustments are refused too, so that the process stays up; send them again once the heap is raised');
    collect(920);
    expect(watch.heapExhaustedReason()).toBeDefined();
    collect(899);
    expect(watch.heapExhaustedReason()).toBeUndefined();
    expect(watch.heapFullReason()).toBeDefined();
    expect(changes).toEqual([[true, 950], [false, 899]]);
  });

  it('reads the heap after the full collections V8 makes', async () => {
    const readings: number[] = [];
    const watch = new HeapWatch({ limitBytes: 1000 * mib, liveBytes: () => { readings.push(Date.now()); return 0; } }).start();
    try {
      const before = readings.length;
      setFlagsFromString('--expose-gc');
      (runInNewContext('gc') as () => void)();
      // The observer is told after the collection, in a task of its own.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(readings.length).toBeGreaterThan(before);
    } finally {
      watch.stop();
    }
  });
});
