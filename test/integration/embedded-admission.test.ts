// The embedded engine admits a batch (submitMany: the adjustments of one request) whole or not at all: refused as
// OVERLOADED when its queue cannot take all of it, it applies none, so a client that retries as told applies it once.

import { describe, expect, it } from 'vitest';
import { EmbeddedEngine, queueCommandsMax } from '../../src/adapters/sqlite/embedded-engine.js';
import type { CommandInput } from '../../src/app/ports.js';

describe('a batch that meets a nearly full queue', () => {
  it('is refused whole with OVERLOADED, and none of it is applied', async () => {
    const engine = new EmbeddedEngine({ path: ':memory:' });
    try {
      // Other traffic, queued in this turn: the queue has room for fewer commands than the batch holds.
      const background = Array.from({ length: queueCommandsMax - 400 }, () => engine.submit({ type: 'adjust_stock', tenant: 'globex', sku: 'OTHER', location: 'wh', delta: 1 }));
      const batch: CommandInput[] = Array.from({ length: 1_000 }, () => ({ type: 'adjust_stock', tenant: 'acme', sku: 'RECEIVED', location: 'wh', delta: 1 }));
      await expect(engine.submitMany(batch)).rejects.toMatchObject({ code: 'OVERLOADED', retryable: true });
      await Promise.all(background);
      expect(engine.tenant('acme')).toBeUndefined();
      // The retry, once the queue has room, applies it once.
      await engine.submitMany(batch);
      expect(engine.tenant('acme')?.skus.get('RECEIVED')?.locations.get('wh')?.onHand).toBe(1_000);
    } finally {
      await engine.close();
    }
  });
});
