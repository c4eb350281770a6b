// The behaviour every engine must show through the Engine port; the embedded and Kafka engines both run it.
//
// One engine serves the whole suite and every case works on a tenant of its own, so the cases stay
// independent without paying an engine start (a consumer group join, in Kafka mode) per case.

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTime } from '../../src/core/index.js';
import type { InventoryEvent, Outcome, TenantState } from '../../src/core/index.js';
import { allSkus } from '../../src/app/engine.js';
import type { CommittedBatch, Engine, LoggedEvent } from '../../src/app/engine.js';
import type { CommandInput, Submitted } from '../../src/app/ports.js';

export interface EngineSuiteOptions {
  /** Per case; the Kafka engine needs a few round trips to a broker per command. */
  caseTimeoutMs?: number;
  /** Engine start (and close) in beforeAll/afterAll. */
  setupTimeoutMs?: number;
  /** The engine was made to keep this many idempotency records a tenant: a case checks it forgets the oldest past it. */
  idempotencyRecordsMax?: number;
}

const waitLimitMs = 10_000;

/** A tenant no other case (or earlier run against the same Kafka topics) uses. */
function freshTenant(): string {
  return `t-${randomBytes(5).toString('hex')}`;
}

/** Polls `check` until it returns true, or fails after `waitLimitMs`: for what an engine does after a submit resolves. */
async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + waitLimitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${waitLimitMs} ms`);
    await sleep(10);
  }
}

function stockOf(tenant: TenantState | undefined, sku: string, location = 'default'): { onHand: number; committed: number; reserved: number } {
  const stock = tenant?.skus.get(sku)?.locations.get(location);
  return stock === undefined ? { onHand: 0, committed: 0, reserved: 0 } : { onHand: stock.onHand, committed: stock.committed, reserved: stock.reserved };
}

function accepted(submitted: Submitted): Outcome {
  expect(submitted.outcome.rejection, JSON.stringify(submitted.outcome.rejection)).toBeUndefined();
  return submitted.outcome;
}

export function engineBehaviourSuite(name: string, makeEngine: () => Promise<Engine>, options: EngineSuiteOptions = {}): void {
  describe(`${name} engine: behaviour through the Engine port`, { timeout: options.caseTimeoutMs ?? 20_000 }, () => {
    let engine: Engine;
    const adjust = (tenant: string, sku: string, change: { delta: number } | { set: number }, extra: Partial<CommandInput> = {}): Promise<Submitted> =>
      engine.submit({ type: 'adjust_stock', tenant, sku, location: 'default', ...change, ...extra } as CommandInput);
    const reserve = (tenant: string, reservationId: string, lines: Array<{ sku: string; quantity: number }>, extra: Partial<CommandInput> = {}): Promise<Submitted> =>
      engine.submit({ type: 'reserve', tenant, reservationId, channel: 'web', lines, ttlMs: 600_000, ...extra } as CommandInput);

    beforeAll(async () => {
      engine = await makeEngine();
    }, options.setupTimeoutMs ?? 120_000);

    afterAll(async () => {
      await engine?.close();
    }, options.setupTimeoutMs ?? 120_000);

    it('is ready, and adjusts stock by deltas and absolute sets, refusing a negative on hand', async () => {
      expect(engine.ready()).toBe(true);
      const tenant = freshTenant();
      const first = accepted(await adjust(tenant, 'SKU-1', { delta: 12 }));
      expect(first.events).toMatchObject([{ type: 'stock_adjustment', tenant, data: { sku: 'SKU-1', location: 'default', mode: 'delta', delta: 12, onHand: 12 } }]);
      const set = await adjust(tenant, 'SKU-1', { set: 5 });
      expect(accepted(set).events).toMatchObject([{ data: { mode: 'set', delta: -7, onHand: 5 } }]);
      const refused = await adjust(tenant, 'SKU-1', { delta: -6 });
      expect(refused.outcome.rejection?.code).toBe('INVALID_QUANTITY');
      expect(refused.outcome.events).toEqual([]);
      expect(refused.position).toBeUndefined();
      expect(stockOf(engine.tenant(tenant), 'SKU-1')).toEqual({ onHand: 5, committed: 0, reserved: 0 });
      expect(set.position).toBeGreaterThan(0);
      expect(engine.position()).toBeGreaterThanOrEqual(set.position as number);
    });

    it('reserves all lines of a cart or none, and says which line is short', async () => {
      const tenant = freshTenant();
      accepted(await adjust(tenant, 'A', { delta: 3 }));
      accepted(await adjust(tenant, 'B', { delta: 1 }));
      const held = accepted(await reserve(tenant, 'cart-1', [{ sku: 'A', quantity: 2 }, { sku: 'B', quantity: 1 }]));
      expect(held.events).toMatchObject([{ type: 'order_reserved', data: { reservationId: 'cart-1', lines: [{ sku: 'A', quantity: 2 }, { sku: 'B', quantity: 1 }] } }]);
      const short = await reserve(tenant, 'cart-2', [{ sku: 'A', quantity: 1 }, { sku: 'B', quantity: 1 }]);
      expect(short.outcome.rejection).toMatchObject({ code: 'INSUFFICIENT_STOCK', lines: [{ sku: 'B', requested: 1, available: 0 }] });
      expect(short.outcome.events).toEqual([]);
      // Line A of the refused cart was not held either.
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 3, committed: 0, reserved: 2 });
      expect(stockOf(engine.tenant(tenant), 'B')).toEqual({ onHand: 1, committed: 0, reserved: 1 });
      expect(engine.tenant(tenant)?.reservations.has('cart-2')).toBe(false);
      const again = await reserve(tenant, 'cart-1', [{ sku: 'A', quantity: 1 }]);
      expect(again.outcome.rejection?.code).toBe('RESERVATION_EXISTS');
    });

    it('commits, fulfils, releases and cancels reservations', async () => {
      const tenant = freshTenant();
      accepted(await adjust(tenant, 'A', { delta: 10 }));
      accepted(await reserve(tenant, 'order-1', [{ sku: 'A', quantity: 4 }]));
      accepted(await reserve(tenant, 'cart-2', [{ sku: 'A', quantity: 3 }]));
      expect(accepted(await engine.submit({ type: 'commit', tenant, reservationId: 'order-1', orderRef: 'ORD-1' })).events).toMatchObject([{ type: 'order_committed', data: { direct: false } }]);
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 10, committed: 4, reserved: 3 });
      expect(accepted(await engine.submit({ type: 'fulfil', tenant, reservationId: 'order-1' })).events).toMatchObject([{ type: 'order_fulfilled' }]);
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 6, committed: 0, reserved: 3 });
      expect(accepted(await engine.submit({ type: 'release', tenant, reservationId: 'cart-2', reason: 'released' })).events)
        .toMatchObject([{ type: 'reservation_released', data: { reason: 'released', from: 'held' } }]);
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 6, committed: 0, reserved: 0 });
      const twice = await engine.submit({ type: 'release', tenant, reservationId: 'cart-2', reason: 'released' });
      expect(twice.outcome.rejection?.code).toBe('RESERVATION_NOT_HELD');
      accepted(await reserve(tenant, 'order-3', [{ sku: 'A', quantity: 2 }]));
      accepted(await engine.submit({ type: 'commit', tenant, reservationId: 'order-3' }));
      accepted(await engine.submit({ type: 'release', tenant, reservationId: 'order-3', reason: 'cancelled' }));
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 6, committed: 0, reserved: 0 });
      expect(engine.tenant(tenant)?.reservations.get('order-3')?.status).toBe('cancelled');
      const unknown = await engine.submit({ type: 'commit', tenant, reservationId: 'nope' });
      expect(unknown.outcome.rejection?.code).toBe('UNKNOWN_RESERVATION');
    });

    it('answers a retry under the same idempotency key with DUPLICATE and the first outcome, and changes nothing', async () => {
      const tenant = freshTenant();
      accepted(await adjust(tenant, 'A', { delta: 5 }));
      const first = await reserve(tenant, 'cart-1', [{ sku: 'A', quantity: 2 }], { idempotencyKey: 'key-1' });
      accepted(first);
      const positionBefore = engine.position();
      const retry = await reserve(tenant, 'cart-1', [{ sku: 'A', quantity: 2 }], { idempotencyKey: 'key-1' });
      expect(retry.outcome.rejection).toMatchObject({ code: 'DUPLICATE', first: first.outcome });
      expect(retry.outcome.events).toEqual([]);
      const reused = await reserve(tenant, 'cart-9', [{ sku: 'A', quantity: 1 }], { idempotencyKey: 'key-1' });
      expect(reused.outcome.rejection?.code).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 5, committed: 0, reserved: 2 });
      const page = await engine.eventsAfter(tenant, 0, 100);
      expect(page.events.filter((logged) => logged.position > positionBefore)).toEqual([]);
      // A refusal is remembered too: the retry gets the same refusal, not a fresh decision.
      const refused = await adjust(tenant, 'A', { delta: -50 }, { idempotencyKey: 'key-2' });
      accepted(await adjust(tenant, 'A', { delta: 100 }));
      const refusedAgain = await adjust(tenant, 'A', { delta: -50 }, { idempotencyKey: 'key-2' });
      expect(refusedAgain.outcome.rejection).toMatchObject({ code: 'DUPLICATE', first: refused.outcome });
    });

    it.runIf(options.idempotencyRecordsMax !== undefined)('keeps its bound of idempotency records a tenant, forgetting the oldest first', async () => {
      const recordsMax = options.idempotencyRecordsMax as number;
      const tenant = freshTenant();
      const again = async (key: string): Promise<Outcome> => (await adjust(tenant, 'A', { delta: 1 }, { idempotencyKey: key })).outcome;
      for (let index = 0; index < recordsMax + 2; index += 1) accepted(await adjust(tenant, 'A', { delta: 1 }, { idempotencyKey: `k${index}` }));
      expect((await again(`k${recordsMax + 1}`)).rejection?.code, 'the newest is kept').toBe('DUPLICATE');
      expect((await again('k2')).rejection?.code, 'the oldest kept').toBe('DUPLICATE');
      expect((await again('k0')).rejection, 'forgotten: its retry is a new command').toBeUndefined();
      expect(stockOf(engine.tenant(tenant), 'A').onHand).toBe(recordsMax + 3);
    });

    it('expires holds due at the time an expire_due command carries', async () => {
      const tenant = freshTenant();
      const nowMs = Date.now();
      accepted(await adjust(tenant, 'A', { delta: 4 }));
      accepted(await reserve(tenant, 'short', [{ sku: 'A', quantity: 1 }], { ttlMs: 60_000, timeMs: nowMs }));
      accepted(await reserve(tenant, 'long', [{ sku: 'A', quantity: 2 }], { ttlMs: 3_600_000, timeMs: nowMs }));
      expect(stockOf(engine.tenant(tenant), 'A').reserved).toBe(3);
      // A time in the future: the engine's own expiry ticker (real time) has nothing due yet.
      const expired = accepted(await engine.submit({ type: 'expire_due', tenant, nowMs: nowMs + 120_000 }));
      expect(expired.events).toMatchObject([{ type: 'reservation_released', data: { reservationId: 'short', reason: 'expired', from: 'held' } }]);
      expect(stockOf(engine.tenant(tenant), 'A').reserved).toBe(2);
      expect(engine.tenant(tenant)?.reservations.get('short')?.status).toBe('expired');
      const late = await engine.submit({ type: 'commit', tenant, reservationId: 'short' });
      expect(late.outcome.rejection?.code).toBe('RESERVATION_EXPIRED');
    });

    it('applies submitMany in order', async () => {
      const tenant = freshTenant();
      const results = await engine.submitMany([
        { type: 'adjust_stock', tenant, sku: 'A', location: 'default', set: 5 },
        { type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 1 },
        { type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: -6 },
        { type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: -1 },
      ]);
      expect(results.map((result) => result.outcome.rejection?.code ?? 'ok')).toEqual(['ok', 'ok', 'ok', 'INVALID_QUANTITY']);
      expect(results.map((result) => (result.outcome.events[0] as InventoryEvent | undefined)?.type === 'stock_adjustment' ? (result.outcome.events[0] as { data: { onHand: number } }).data.onHand : null))
        .toEqual([5, 6, 0, null]);
    });

    it('imports events all or nothing', async () => {
      const tenant = freshTenant();
      const time = formatTime(Date.now());
      const event = (id: string, type: string, data: unknown): InventoryEvent => ({ id, type, tenant, time, source: 'import', data }) as InventoryEvent;
      const refused = await engine.importEvents(tenant, [
        event('i1', 'stock_adjustment', { sku: 'A', location: 'default', mode: 'set', delta: 2, onHand: 2 }),
        event('i2', 'order_reserved', { reservationId: 'r1', channel: 'web', expiresAt: formatTime(Date.now() + 600_000), lines: [{ sku: 'A', location: 'default', quantity: 5 }] }),
      ]);
      expect(refused.applied).toBe(false);
      expect(refused.items.map((item) => item.outcome?.rejection?.code ?? 'ok')).toEqual(['NOT_APPLIED', 'INSUFFICIENT_STOCK']);
      expect(engine.tenant(tenant)?.skus.get('A')).toBeUndefined();
      expect((await engine.eventsAfter(tenant, 0, 10)).events).toEqual([]);
      const imported = await engine.importEvents(tenant, [
        event('i1', 'stock_adjustment', { sku: 'A', location: 'default', mode: 'set', delta: 7, onHand: 7 }),
        event('i2', 'order_reserved', { reservationId: 'r1', channel: 'web', expiresAt: formatTime(Date.now() + 600_000), lines: [{ sku: 'A', location: 'default', quantity: 5 }] }),
        event('i3', 'conflict_detected', { kind: 'oversell', sku: 'A', location: 'default', shortfall: 1 }),
      ]);
      expect(imported.applied).toBe(true);
      expect(imported.items[2]?.skipped).toBeDefined();
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 7, committed: 0, reserved: 5 });
    });

    it('imports once under an idempotency key: a retry applies nothing, another import under the key applies nothing', async () => {
      const tenant = freshTenant();
      const time = formatTime(Date.now());
      const event = (id: string, type: string, data: unknown): InventoryEvent => ({ id, type, tenant, time, source: 'import', data }) as InventoryEvent;
      const stocked = event('i1', 'stock_adjustment', { sku: 'A', location: 'default', mode: 'delta', delta: 7, onHand: 7 });
      const held = event('i2', 'order_reserved', { reservationId: 'r1', channel: 'web', expiresAt: formatTime(Date.now() + 600_000), lines: [{ sku: 'A', location: 'default', quantity: 5 }] });
      const more = event('i3', 'stock_adjustment', { sku: 'B', location: 'default', mode: 'delta', delta: 1, onHand: 1 });
      const conflict = event('i4', 'conflict_detected', { kind: 'oversell', sku: 'A', location: 'default', shortfall: 1 });
      const first = await engine.importEvents(tenant, [stocked, conflict, held], 'dump-1');
      expect(first).toMatchObject({ applied: true, items: [{ index: 0 }, { index: 1, skipped: expect.any(String) }, { index: 2 }] });
      expect(first.replayed).toBeUndefined();
      const logged = (await engine.eventsAfter(tenant, 0, 100)).events.length;
      expect(logged).toBe(2);

      const retry = await engine.importEvents(tenant, [stocked, conflict, held], 'dump-1');
      expect(retry).toMatchObject({ applied: true, replayed: true });
      expect(retry.items.map((item) => item.outcome)).toEqual(first.items.map((item) => item.outcome));
      // Another import under the key: a changed event, one dated otherwise, one more, a new one in place of one applied.
      const changed = event('i1', 'stock_adjustment', { sku: 'A', location: 'default', mode: 'delta', delta: 8, onHand: 8 });
      const redated = { ...stocked, time: formatTime(Date.parse(time) - 60_000) };
      for (const other of [[changed, held], [redated, held], [stocked, held, more], [stocked, more]]) {
        const refused = await engine.importEvents(tenant, other, 'dump-1');
        expect(refused).toMatchObject({ applied: false, keyReused: true });
      }
      // Its first events alone were each applied once already: nothing is applied again.
      expect(await engine.importEvents(tenant, [stocked], 'dump-1')).toMatchObject({ applied: true, replayed: true });
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 7, committed: 0, reserved: 5 });
      expect(engine.tenant(tenant)?.skus.get('B')).toBeUndefined();
      expect((await engine.eventsAfter(tenant, 0, 100)).events.length).toBe(logged);

      // A refused import remembers nothing, one of a single event too: the same key carries the corrected one.
      const lone = event('i6', 'order_reserved', { reservationId: 'r3', channel: 'web', expiresAt: formatTime(Date.now() + 600_000), lines: [{ sku: 'C', location: 'default', quantity: 1 }] });
      for (let attempt = 0; attempt < 2; attempt += 1) {
        expect(await engine.importEvents(tenant, [lone], 'dump-3')).toMatchObject({ applied: false, items: [{ outcome: { rejection: { code: 'INSUFFICIENT_STOCK' } } }] });
      }
      const cStocked = event('i7', 'stock_adjustment', { sku: 'C', location: 'default', mode: 'delta', delta: 1, onHand: 1 });
      expect((await engine.importEvents(tenant, [cStocked], 'dump-3')).applied).toBe(true);
      expect(stockOf(engine.tenant(tenant), 'C')).toEqual({ onHand: 1, committed: 0, reserved: 0 });

      const tooMuch = event('i5', 'order_reserved', { reservationId: 'r2', channel: 'web', expiresAt: formatTime(Date.now() + 600_000), lines: [{ sku: 'A', location: 'default', quantity: 9 }] });
      expect(await engine.importEvents(tenant, [more, tooMuch], 'dump-2')).toMatchObject({ applied: false, items: [{ outcome: { rejection: { code: 'NOT_APPLIED' } } }, { outcome: { rejection: { code: 'INSUFFICIENT_STOCK' } } }] });
      expect((await engine.importEvents(tenant, [more], 'dump-2')).applied).toBe(true);
      expect(stockOf(engine.tenant(tenant), 'B')).toEqual({ onHand: 1, committed: 0, reserved: 0 });
      // Without a key, every import is applied.
      expect((await engine.importEvents(tenant, [more])).applied).toBe(true);
      expect(stockOf(engine.tenant(tenant), 'B')).toEqual({ onHand: 2, committed: 0, reserved: 0 });
    });

    it('keeps an import\'s key from the import, not from its events\' dates: a month-old dump retried after a tick applies nothing', async () => {
      const tenant = freshTenant();
      const monthAgo = formatTime(Date.now() - 30 * 86_400_000);
      const receipt = { id: 'v1', type: 'stock_adjustment', tenant, time: monthAgo, source: 'import', data: { sku: 'A', location: 'default', mode: 'delta', delta: 10, onHand: 10 } } as InventoryEvent;
      expect((await engine.importEvents(tenant, [receipt], 'onboarding')).applied).toBe(true);
      // Past two expiry ticks (one a second): timed by the event, the record would be 30 days old and forgotten.
      await sleep(2_500);
      expect(await engine.importEvents(tenant, [receipt], 'onboarding')).toMatchObject({ applied: true, replayed: true });
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 10, committed: 0, reserved: 0 });
    });

    it('decides an all-or-nothing group at one instant: a hold falling due meanwhile never leaves it half applied', async () => {
      const tenant = freshTenant();
      accepted(await adjust(tenant, 'A', { set: 50 }));
      for (let attempt = 0; attempt < 6; attempt += 1) {
        const id = `r${attempt}`;
        accepted(await reserve(tenant, id, [{ sku: 'A', quantity: 1 }], { ttlMs: 1_000 }));
        const expiresAtMs = engine.tenant(tenant)?.reservations.get(id)?.expiresAtMs as number;
        // Many commands before the commit, sent just before the hold falls due: deciding them takes milliseconds.
        const group: CommandInput[] = [
          ...Array.from({ length: 1_000 }, (): CommandInput => ({ type: 'adjust_stock', tenant, sku: `B${attempt}`, location: 'default', delta: 1 })),
          { type: 'commit', tenant, reservationId: id },
        ];
        while (Date.now() < expiresAtMs - 1 - (attempt % 3) * 2) await sleep(1);
        const result = await engine.submitAtomic(group);
        const onHandB = stockOf(engine.tenant(tenant), `B${attempt}`).onHand;
        expect({ applied: result.applied, onHandB }, `attempt ${attempt}`).toEqual(result.applied ? { applied: true, onHandB: 1_000 } : { applied: false, onHandB: 0 });
      }
    });

    it('tries an import with an expiry on a copy: refused, the holds it would expire stay held', async () => {
      const tenant = freshTenant();
      const nowMs = Date.now();
      accepted(await adjust(tenant, 'A', { delta: 4 }));
      accepted(await reserve(tenant, 'live', [{ sku: 'A', quantity: 3 }], { ttlMs: 60_000, timeMs: nowMs }));
      // Times in the future: the engine's own expiry ticker (real time) has nothing due yet.
      const later = formatTime(nowMs + 120_000);
      const event = (id: string, type: string, data: unknown): InventoryEvent => ({ id, type, tenant, time: later, source: 'import', data }) as InventoryEvent;
      const expiry = event('i1', 'reservation_released', { reservationId: 'live', reason: 'expired', from: 'held', lines: [{ sku: 'A', location: 'default', quantity: 3 }] });
      const tooMuch = event('i2', 'order_reserved', { reservationId: 'big', channel: 'web', expiresAt: formatTime(nowMs + 600_000), lines: [{ sku: 'A', location: 'default', quantity: 9 }] });
      const refused = await engine.importEvents(tenant, [expiry, tooMuch]);
      expect(refused.applied).toBe(false);
      expect(refused.items.map((item) => item.outcome?.rejection?.code ?? 'ok')).toEqual(['NOT_APPLIED', 'INSUFFICIENT_STOCK']);
      expect(engine.tenant(tenant)?.reservations.get('live')?.status).toBe('held');
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 4, committed: 0, reserved: 3 });
      const imported = await engine.importEvents(tenant, [expiry]);
      expect(imported.applied).toBe(true);
      expect(engine.tenant(tenant)?.reservations.get('live')?.status).toBe('expired');
      expect(stockOf(engine.tenant(tenant), 'A')).toEqual({ onHand: 4, committed: 0, reserved: 0 });
    });

    it('pages through a tenant\'s events with eventsAfter', async () => {
      const tenant = freshTenant();
      const other = freshTenant();
      for (let index = 1; index <= 5; index += 1) accepted(await adjust(tenant, `S-${index}`, { delta: index }));
      accepted(await adjust(other, 'X', { delta: 1 }));
      const seen: LoggedEvent[] = [];
      let after = 0;
      for (let pages = 0; pages < 10; pages += 1) {
        const page = await engine.eventsAfter(tenant, after, 2);
        expect(page.events.length).toBeLessThanOrEqual(2);
        if (page.events.length === 0) {
          expect(page.next).toBe(after);
          break;
        }
        seen.push(...page.events);
        after = page.next;
      }
      expect(seen.map((logged) => (logged.event as { data: { sku: string } }).data.sku)).toEqual(['S-1', 'S-2', 'S-3', 'S-4', 'S-5']);
      expect(seen.every((logged) => logged.event.tenant === tenant)).toBe(true);
      const positions = seen.map((logged) => logged.position);
      expect([...positions].sort((a, b) => a - b)).toEqual(positions);
      expect(new Set(positions).size).toBe(5);
    });

    it('tells subscribers of each durable batch with the tenants and SKUs it touched', async () => {
      const tenant = freshTenant();
      const batches: CommittedBatch[] = [];
      const unsubscribe = engine.subscribe((batch) => batches.push(batch));
      try {
        const submitted = await adjust(tenant, 'SUB-1', { delta: 2 });
        accepted(await engine.submit({ type: 'set_channel_policy', tenant, channel: 'web', locations: null, bufferUnits: 1, maxUnits: null, backorder: false }));
        const mine = (): LoggedEvent[] => batches.flatMap((batch) => batch.events).filter((logged) => logged.event.tenant === tenant);
        await eventually('both events delivered to the subscriber', () => mine().length >= 2);
        expect(mine().map((logged) => logged.event.type)).toEqual(['stock_adjustment', 'channel_policy_set']);
        expect(mine()[0]?.position).toBe(submitted.position);
        const touched = new Set(batches.flatMap((batch) => [...(batch.touched.get(tenant) ?? [])]));
        expect(touched).toEqual(new Set(['SUB-1', allSkus]));
      } finally {
        unsubscribe();
      }
      const after = batches.length;
      accepted(await adjust(tenant, 'SUB-1', { delta: 1 }));
      await sleep(50);
      expect(batches.length).toBe(after);
    });

    it('keeps tenants apart', async () => {
      const one = freshTenant();
      const two = freshTenant();
      accepted(await adjust(one, 'SHARED', { delta: 1 }));
      accepted(await adjust(two, 'SHARED', { delta: 50 }));
      const refused = await reserve(one, 'cart', [{ sku: 'SHARED', quantity: 2 }]);
      expect(refused.outcome.rejection?.code).toBe('INSUFFICIENT_STOCK');
      expect(stockOf(engine.tenant(one), 'SHARED').onHand).toBe(1);
      expect(stockOf(engine.tenant(two), 'SHARED').onHand).toBe(50);
      expect(engine.state().tenants.get(one)).toBe(engine.tenant(one));
    });
  });
}
