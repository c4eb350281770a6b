// An overlay map answers and iterates as a copy of its base would, through any mix of changes, and never
// changes the base.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OverlayMap } from '../../../src/core/overlay-map.js';

const keys = ['a', 'b', 'c', 'd', 'e', 'f'] as const;

type Op = { op: 'set'; key: string; value: number } | { op: 'delete'; key: string } | { op: 'clear' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...keys), value: fc.integer() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...keys) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

function expectSame(overlay: Map<string, number>, copy: Map<string, number>): void {
  expect([...overlay]).toEqual([...copy]);
  expect([...overlay.keys()]).toEqual([...copy.keys()]);
  expect([...overlay.values()]).toEqual([...copy.values()]);
  expect(overlay.size).toBe(copy.size);
  for (const key of keys) {
    expect(overlay.has(key)).toBe(copy.has(key));
    expect(overlay.get(key)).toBe(copy.get(key));
  }
  const visited: Array<[string, number]> = [];
  overlay.forEach((value, key) => visited.push([key, value]));
  expect(visited).toEqual([...copy]);
}

describe('OverlayMap', () => {
  it('behaves as a copy of its base through any changes, and leaves the base as it was', () => {
    const baseArb = fc.uniqueArray(fc.tuple(fc.constantFrom(...keys), fc.integer()), { selector: ([key]) => key });
    fc.assert(fc.property(baseArb, fc.array(opArb, { maxLength: 30 }), (entries, ops) => {
      const base = new Map<string, number>(entries);
      const before = [...base];
      const overlay = new OverlayMap(base);
      const copy = new Map(base);
      expectSame(overlay, copy);
      for (const op of ops) {
        if (op.op === 'set') {
          expect(overlay.set(op.key, op.value)).toBe(overlay);
          copy.set(op.key, op.value);
        } else if (op.op === 'delete') {
          expect(overlay.delete(op.key)).toBe(copy.delete(op.key));
        } else {
          overlay.clear();
          copy.clear();
        }
        expectSame(overlay, copy);
      }
      expect([...base]).toEqual(before);
    }), { numRuns: 500 });
  });

  it('puts a base key deleted and set again after the others, as a map does', () => {
    const overlay = new OverlayMap(new Map([['a', 1], ['b', 2], ['c', 3]]));
    overlay.set('b', 20);
    overlay.delete('a');
    overlay.set('d', 4);
    overlay.set('a', 10);
    expect([...overlay]).toEqual([['b', 20], ['c', 3], ['d', 4], ['a', 10]]);
    expect(overlay.size).toBe(4);
  });
});
