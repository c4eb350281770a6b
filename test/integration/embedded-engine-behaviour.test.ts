// The embedded engine passes the behaviour suite every engine must pass (test/support/engine-suite.ts).

import { describe, expect, it } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { engineBehaviourSuite } from '../support/engine-suite.js';

const idempotencyRecordsMax = 20;
engineBehaviourSuite('embedded', async () => new EmbeddedEngine({ path: ':memory:', idempotencyRecordsMax }), { idempotencyRecordsMax });

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
