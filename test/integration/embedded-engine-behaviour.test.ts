// The embedded engine passes the behaviour suite every engine must pass (test/support/engine-suite.ts).

import { describe, expect, it } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { engineBehaviourSuite } from '../support/engine-suite.js';

const idempotencyRecordsMax = 20;
engineBehaviourSuite('embedded', async () => new EmbeddedEngine({ path: ':memory:', idempotencyRecordsMax }), { idempotencyRecordsMax });

describe('an all-or-nothing group', () => {
  it('is tried and applied at the one instant stamped on its members, so a hold falling due between never splits it', async () => {
    const start = Date.UTC(2026, 0, 1);
    // A clock that moves on a millisecond every reading: the trial and the real decision cannot share a reading by chance.
    let now = start;
    const clock = (): number => { const value = now; now += 1; return value; };
    const engine = new EmbeddedEngine({ path: ':memory:', clock, expiryIntervalMs: 0 });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', set: 5, timeMs: start });
      await engine.submit({ type: 'reserve', tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000, timeMs: start });
      // The hold falls due at start + 60,000: the group is stamped just before it, and read again after it.
      now = start + 60_000 - 1;
      const group = [{ type: 'adjust_stock' as const, tenant: 't', sku: 'B', location: 'wh', delta: 7 }, { type: 'commit' as const, tenant: 't', reservationId: 'r1' }];
      const result = await engine.submitAtomic(group);
      expect(result.results.map((submitted) => submitted.outcome.rejection?.code)).toEqual([undefined, undefined]);
      expect(result.applied).toBe(true);
      expect(engine.tenant('t')?.skus.get('B')?.locations.get('wh')?.onHand).toBe(7);
      expect(engine.tenant('t')?.reservations.get('r1')?.status).toBe('committed');
      expect(group.map((input) => (input as { timeMs?: number }).timeMs), 'one instant, stamped on the members').toEqual([start + 60_000 - 1, start + 60_000 - 1]);
    } finally {
      await engine.close();
    }
  });
});

describe('a subscriber that throws', () => {
  it('is reported; the batch still reaches the other subscribers, and the engine goes on', async () => {
    const failures: unknown[] = [];
    const engine = new EmbeddedEngine({ path: ':memory:', onSubscriberFailed: (error) => failures.push(error) });
    try {
      const told: number[] = [];
      engine.subscribe(() => { throw new Error('listener bug'); });
      engine.subscribe((batch) => told.push(...batch.events.map((logged) => logged.position)));
      const first = await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'default', delta: 3 });
      const second = await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'default', delta: 1 });
      expect([first.outcome.rejection, second.outcome.rejection]).toEqual([undefined, undefined]);
      expect(told).toEqual([first.position, second.position]);
      expect(failures).toEqual([new Error('listener bug'), new Error('listener bug')]);
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('default')?.onHand).toBe(4);
    } finally {
      await engine.close();
    }
  });
});
