// The embedded engine's ticker forgets idempotency records past their retention even when no hold is
// left to expire, in memory and in the file.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { limits } from '../../src/core/index.js';

const dir = mkdtempSync(join(tmpdir(), 'stockline-housekeeping-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the expiry ticker', () => {
  it('forgets an idempotency record past its retention though every hold was committed in time', async () => {
    let nowMs = Date.UTC(2026, 10, 27, 9);
    const engine = new EmbeddedEngine({ path: join(dir, 'stockline.db'), clock: () => nowMs, expiryIntervalMs: 5 });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
      await engine.submit({ type: 'reserve', tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000, idempotencyKey: 'k1' });
      await engine.submit({ type: 'commit', tenant: 't', reservationId: 'r1' });
      const storedKeys = (): number => (engine.db.prepare('SELECT COUNT(*) AS count FROM idempotency').get() as { count: number }).count;
      expect(engine.tenant('t')?.idempotency.has('k1')).toBe(true);
      expect(storedKeys()).toBe(1);

      nowMs += limits.idempotencyRetentionMs + 1_000;
      const deadline = Date.now() + 5_000;
      while (engine.tenant('t')?.idempotency.has('k1') === true && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(engine.tenant('t')?.idempotency.has('k1')).toBe(false);
      // The record leaves the file with the same batch (answered once durable).
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
      expect(storedKeys()).toBe(0);
    } finally {
      await engine.close();
    }
  });
});
