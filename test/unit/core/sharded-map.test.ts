// Specs for the sharded maps that hold a tenant's reservations and idempotency records: a Map's answers (and,
// for the records, its order), in shards small enough to grow without a long rehash.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ShardedMap, ShardedOrderedMap } from '../../../src/core/sharded-map.js';

type Operation = { kind: 'set'; key: string; value: number } | { kind: 'delete'; key: string } | { kind: 'clear' };

const keys = fc.oneof(fc.constantFrom('a', 'b', '__proto__', 'constructor', ''), fc.string({ maxLength: 12 }), fc.uuid());
const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), key: keys, value: fc.integer() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: keys }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
);

function shardSizes(map: ShardedMap<unknown>): number[] {
  return (map as unknown as { shards: Array<Map<string, unknown>> }).shards.map((shard) => shard.size);
}

describe('ShardedMap', () => {
  it('answers as a Map does, for any sequence of sets, deletes and clears', () => {
    fc.assert(fc.property(fc.array(operation, { maxLength: 200 }), fc.array(keys, { maxLength: 20 }), (operations, probes) => {
      const model = new Map<string, number>();
      const map = new ShardedMap<number>();
      for (const step of operations) {
        if (step.kind === 'set') {
          expect(map.set(step.key, step.value)).toBe(map);
          model.set(step.key, step.value);
        } else if (step.kind === 'delete') {
          expect(map.delete(step.key)).toBe(model.delete(step.key));
        } else {
          map.clear();
          model.clear();
        }
        expect(map.size).toBe(model.size);
      }
      for (const key of [...probes, ...model.keys()]) {
        expect(map.get(key)).toBe(model.get(key));
        expect(map.has(key)).toBe(model.has(key));
      }
      const sorted = (entries: Iterable<[string, number]>): Array<[string, number]> => [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      expect(sorted(map)).toEqual(sorted(model));
      expect(sorted(map.entries())).toEqual(sorted(model.entries()));
      expect([...map.keys()].sort()).toEqual([...model.keys()].sort());
      expect([...map.values()].sort()).toEqual([...model.values()].sort());
      const visited: Array<[string, number]> = [];
      map.forEach((value, key) => visited.push([key, value]));
      expect(sorted(visited)).toEqual(sorted(model));
    }));
  });

  it('spreads ids that differ only in their ends, and random ones, over every shard', () => {
    for (const ids of [
      Array.from({ length: 64_000 }, (_, index) => `order-${index}`),
      Array.from({ length: 64_000 }, () => crypto.randomUUID()),
    ]) {
      const map = new ShardedMap(ids.map((id) => [id, true] as [string, boolean]));
      const sizes = shardSizes(map);
      expect(sizes).toHaveLength(64);
      // 1,000 a shard on average; no shard near a Map's own size for the whole.
      expect(Math.min(...sizes)).toBeGreaterThan(700);
      expect(Math.max(...sizes)).toBeLessThan(1_300);
    }
  });

  it('copies into a map of its own that shares the values', () => {
    const value = { quantity: 1 };
    const map = new ShardedMap<{ quantity: number }>([['r-1', value], ['r-2', { quantity: 2 }]]);
    const copy = map.copy();
    copy.set('r-3', { quantity: 3 });
    copy.delete('r-2');
    expect(map.size).toBe(2);
    expect(map.has('r-2')).toBe(true);
    expect(map.has('r-3')).toBe(false);
    expect(copy.size).toBe(2);
    expect(copy.get('r-1')).toBe(value);
  });
});

describe('ShardedOrderedMap', () => {
  /** Mostly what idempotency records see (new keys, the oldest forgotten), with sets of present keys and deletes anywhere. */
  const steps = fc.array(fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), key: keys, value: fc.integer() }) },
    { weight: 3, arbitrary: fc.constant({ kind: 'forget oldest' as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: keys }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
  ), { maxLength: 300 });

  it('answers as a Map does, in a Map\'s order, for any sequence of sets, deletes and clears', () => {
    fc.assert(fc.property(steps, (operations) => {
      const model = new Map<string, number>();
      const map = new ShardedOrderedMap<number>();
      for (const step of operations) {
        if (step.kind === 'set') {
          map.set(step.key, step.value);
          model.set(step.key, step.value);
        } else if (step.kind === 'forget oldest') {
          const oldest = map.keys().next();
          expect(oldest.done === true ? undefined : oldest.value).toBe(model.keys().next().value);
          if (oldest.done !== true) expect(map.delete(oldest.value)).toBe(model.delete(oldest.value));
        } else if (step.kind === 'delete') {
          expect(map.delete(step.key)).toBe(model.delete(step.key));
        } else {
          map.clear();
          model.clear();
        }
        expect(map.size).toBe(model.size);
      }
      expect([...map]).toEqual([...model]);
      expect([...map.values()]).toEqual([...model.values()]);
      for (const key of model.keys()) expect(map.get(key)).toBe(model.get(key));
      const copy = map.copy();
      expect([...copy]).toEqual([...model]);
      copy.set('only-in-the-copy', 1);
      expect(map.has('only-in-the-copy')).toBe(model.has('only-in-the-copy'));
    }));
  });

  it('forgets the oldest of many in order, dropping the order it no longer needs', () => {
    const map = new ShardedOrderedMap<number>();
    for (let index = 0; index < 100_000; index += 1) map.set(`k${index}`, index);
    for (let index = 0; index < 90_000; index += 1) expect(map.delete(`k${index}`)).toBe(true);
    expect(map.size).toBe(10_000);
    expect(map.values().next().value).toBe(90_000);
    const chunks = (map as unknown as { chunks: Array<{ keys: string[] }> }).chunks;
    expect(chunks.reduce((sum, chunk) => sum + chunk.keys.length, 0)).toBeLessThan(10_000 + 4096);
  });
});
