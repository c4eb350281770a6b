// Imports re-decide each event as the command that would have produced it: an expired release is that hold's expiry or a refusal.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatTime } from '../../src/core/index.js';
import type { InventoryEvent } from '../../src/core/index.js';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { importRefusal } from '../../src/adapters/http/routes/events.js';

const tenant = 'imp';
const t0Ms = Date.parse('2026-12-01T10:00:00.000Z');
// The engine's own clock is long before the dump: its expiry ticker never finds an imported hold due.
const clockMs = Date.parse('2020-01-01T00:00:00.000Z');
const line = { sku: 'S', location: 'wh1', quantity: 4 };

function event(id: string, type: InventoryEvent['type'], atMs: number, data: unknown): InventoryEvent {
  return { id, type, tenant, time: formatTime(atMs), source: 'import', data } as InventoryEvent;
}

const stocked = event('x1', 'stock_adjustment', t0Ms, { sku: 'S', location: 'wh1', mode: 'delta', delta: 10, onHand: 10 });
const hold = (id: string, reservationId: string, ttlMs: number): InventoryEvent =>
  event(id, 'order_reserved', t0Ms + 1_000, { reservationId, channel: 'web', expiresAt: formatTime(t0Ms + 1_000 + ttlMs), lines: [line] });
const expired = (id: string, reservationId: string, atMs: number): InventoryEvent =>
  event(id, 'reservation_released', atMs, { reservationId, reason: 'expired', from: 'held', lines: [line] });

describe('importing reservation_released with reason expired', () => {
  let engine: EmbeddedEngine;

  beforeEach(() => {
    engine = new EmbeddedEngine({ path: ':memory:', clock: () => clockMs });
  });

  afterEach(async () => {
    await engine.close();
  });

  it('refuses, naming the event, an expiry of a hold not due at its time, and applies nothing', async () => {
    const result = await engine.importEvents(tenant, [stocked, hold('x2', 'h1', 15 * 60_000), expired('x3', 'h1', t0Ms + 60_000)]);
    expect(result.applied).toBe(false);
    expect(result.items.map((item) => item.outcome?.rejection?.code)).toEqual(['NOT_APPLIED', 'NOT_APPLIED', 'RESERVATION_NOT_DUE']);
    expect(importRefusal(result).extensions.refused).toEqual([{ index: 2, code: 'RESERVATION_NOT_DUE', message: expect.stringContaining('h1') }]);
    expect(engine.tenant(tenant)).toBeUndefined();
    expect((await engine.eventsAfter(tenant, 0, 10)).events).toEqual([]);
  });

  it('expires exactly the hold the event names, at the event time, not the others due then', async () => {
    const result = await engine.importEvents(tenant, [
      stocked, hold('x2', 'h1', 60_000), hold('x3', 'h2', 60_000), expired('x4', 'h1', t0Ms + 120_000),
    ]);
    expect(result.applied).toBe(true);
    expect(result.items[3]?.outcome?.events).toMatchObject([{ type: 'reservation_released', time: formatTime(t0Ms + 120_000), data: { reservationId: 'h1', reason: 'expired', from: 'held' } }]);
    expect(engine.tenant(tenant)?.reservations.get('h1')?.status).toBe('expired');
    expect(engine.tenant(tenant)?.reservations.get('h2')?.status).toBe('held');
    expect(engine.tenant(tenant)?.skus.get('S')?.locations.get('wh1')).toEqual({ onHand: 10, committed: 0, reserved: 4 });
  });

  it('refuses an expiry of a reservation that is not held', async () => {
    const committed = event('x3', 'order_committed', t0Ms + 2_000, { reservationId: 'h1', channel: 'web', direct: false, lines: [line] });
    const result = await engine.importEvents(tenant, [stocked, hold('x2', 'h1', 60_000), committed, expired('x4', 'h1', t0Ms + 120_000)]);
    expect(result.applied).toBe(false);
    expect(result.items[3]?.outcome?.rejection).toMatchObject({ code: 'RESERVATION_NOT_HELD', reservationId: 'h1' });
    expect(engine.tenant(tenant)).toBeUndefined();
  });

  it('still imports the other releases as the release command', async () => {
    const result = await engine.importEvents(tenant, [
      stocked, hold('x2', 'h1', 60_000),
      event('x3', 'reservation_released', t0Ms + 2_000, { reservationId: 'h1', reason: 'released', from: 'held', lines: [line] }),
    ]);
    expect(result.applied).toBe(true);
    expect(engine.tenant(tenant)?.reservations.get('h1')?.status).toBe('released');
  });
});
