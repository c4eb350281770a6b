// With the WAL synced in the background, no answer may overtake the sync of what it rests on.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';

const dirs: string[] = [];
afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

describe('background durability', () => {
  it('answers a retry (DUPLICATE of a not yet synced reservation) only after the first answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    const engine = new EmbeddedEngine({ path: join(dir, 'stockline.db'), expiryIntervalMs: 0, durability: 'background' });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
      const order: string[] = [];
      const reserve = { type: 'reserve' as const, tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000, idempotencyKey: 'k1' };
      const first = engine.submit(reserve).then((submitted) => { order.push('first'); return submitted; });
      // The retry arrives in the next turn, while the first batch's WAL sync is in flight.
      await new Promise((resolve) => setImmediate(resolve));
      const retry = engine.submit(reserve).then((submitted) => { order.push('retry'); return submitted; });
      const [firstAnswer, retryAnswer] = await Promise.all([first, retry]);
      expect(firstAnswer.outcome.rejection).toBeUndefined();
      expect(retryAnswer.outcome.rejection?.code).toBe('DUPLICATE');
      expect(order).toEqual(['first', 'retry']);
    } finally {
      await engine.close();
    }
  });
});
