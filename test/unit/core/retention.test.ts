// Specs for retention: finished reservations are forgotten 25 hours after they finish; held and committed ones never.

import { describe, expect, it } from 'vitest';
import type { InventoryEvent } from '../../../src/core/events.js';
import { evolve, replay } from '../../../src/core/evolve.js';
import { limits } from '../../../src/core/limits.js';
import { fromSnapshot, toSnapshot } from '../../../src/core/snapshot.js';
import type { StateSnapshot } from '../../../src/core/snapshot.js';
import type { FinishedEntry, LedgerState } from '../../../src/core/state.js';
import { formatTime } from '../../../src/core/time.js';
import type { CommandDraft, EventDraft, GivenInput } from '../../support/ledger-dsl.js';
import { given, receive, reserve, t0Ms } from '../../support/ledger-dsl.js';

const hourMs = 3_600_000;
const retentionMs = limits.reservationRetentionMs;
const finishedAtMs = t0Ms + hourMs;
const line = { sku: 'tee-m', location: 'wh-1', quantity: 3 };

const stocked = receive('tee-m', 'wh-1', 10);
const held = reserve('cart-1', [{ sku: 'tee-m', quantity: 3 }], { ttlMs: 2 * hourMs });
const commit: CommandDraft = { type: 'commit', reservationId: 'cart-1' };

/** Every way a reservation finishes, each at `finishedAtMs`. */
const finishing: Array<{ status: string; inputs: GivenInput[] }> = [
  { status: 'released', inputs: [stocked, held, { type: 'release', reservationId: 'cart-1', reason: 'released', timeMs: finishedAtMs }] },
  { status: 'expired', inputs: [stocked, reserve('cart-1', [{ sku: 'tee-m', quantity: 3 }], { ttlMs: 60_000 }), { type: 'expire_due', nowMs: finishedAtMs, timeMs: finishedAtMs }] },
  { status: 'cancelled', inputs: [stocked, held, commit, { type: 'release', reservationId: 'cart-1', reason: 'cancelled', timeMs: finishedAtMs }] },
  { status: 'fulfilled', inputs: [stocked, held, commit, { type: 'fulfil', reservationId: 'cart-1', timeMs: finishedAtMs }] },
];

function laterReceipt(timeMs: number): CommandDraft {
  return receive('tee-m', 'wh-1', 1, { timeMs });
}

/** A raw event at a pinned time, for histories decide would not write (a reservation overwritten in place). */
function at(timeMs: number, draft: EventDraft): EventDraft {
  return { ...draft, time: formatTime(timeMs) } as EventDraft;
}

function sortedEntries(state: LedgerState, tenant: string): FinishedEntry[] {
  return [...(state.tenants.get(tenant)?.finished ?? [])].sort((a, b) => a.finishedAtMs - b.finishedAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

describe('the retention of finished reservations', () => {
  it('is one hour beyond the retention of idempotency records', () => {
    expect(limits.reservationRetentionMs).toBe(limits.idempotencyRetentionMs + hourMs);
  });

  for (const { status, inputs } of finishing) {
    it(`keeps a ${status} reservation until just before the retention has passed`, () => {
      const result = given(...inputs).when(laterReceipt(finishedAtMs + retentionMs - 1)).then([
        { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: status === 'fulfilled' ? 8 : 11 } },
      ]);
      expect(result.reservation('cart-1')).toMatchObject({ status, finishedAtMs });
      expect(result.tenant.finished).toEqual([{ finishedAtMs, id: 'cart-1' }]);
    });

    it(`forgets a ${status} reservation at the first event once the retention has passed`, () => {
      const result = given(...inputs).when(laterReceipt(finishedAtMs + retentionMs)).then([
        { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: status === 'fulfilled' ? 8 : 11 } },
      ]);
      expect(result.reservation('cart-1')).toBeUndefined();
      expect(result.tenant.finished).toEqual([]);
      expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: status === 'fulfilled' ? 8 : 11, committed: 0, reserved: 0 });
    });
  }

  for (const { status, inputs } of finishing) {
    it(`treats a ${status} reservation past its retention as forgotten before any event removes it`, () => {
      // Just before: still known, its id taken.
      given(...inputs).when(reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }], { timeMs: finishedAtMs + retentionMs - 1 }))
        .thenRejects('RESERVATION_EXISTS', { reservationId: 'cart-1' });
      given(...inputs).when({ ...commit, timeMs: finishedAtMs + retentionMs - 1 }).thenRejects(status === 'expired' ? 'RESERVATION_EXPIRED' : 'RESERVATION_NOT_HELD');
      // From the retention on, with no event of the tenant in between: unknown, and the id free.
      given(...inputs).when({ ...commit, timeMs: finishedAtMs + retentionMs }).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'cart-1' });
      given(...inputs).when({ type: 'release', reservationId: 'cart-1', reason: 'released', timeMs: finishedAtMs + retentionMs })
        .thenRejects('UNKNOWN_RESERVATION');
      const again = given(...inputs).when(reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }], { timeMs: finishedAtMs + retentionMs })).result;
      expect(again.outcome.rejection).toBeUndefined();
      expect(again.events.map((event) => event.type)).toEqual(['order_reserved']);
      expect(again.reservation('cart-1')).toMatchObject({ status: 'held', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] });
      // The old life's index entry is dropped, not the new reservation.
      expect(again.tenant.finished).toEqual([]);
    });
  }

  it('forgets on an event of the tenant, not on a refusal, which writes nothing', () => {
    const [released] = finishing;
    const result = given(...(released?.inputs ?? []))
      .when(reserve('cart-2', [{ sku: 'tee-m', quantity: 50 }], { timeMs: finishedAtMs + 2 * retentionMs }))
      .thenRejects('INSUFFICIENT_STOCK');
    expect(result.reservation('cart-1')).toMatchObject({ status: 'released' });
  });

  it('never forgets a held reservation, however late the next event', () => {
    const result = given(stocked, reserve('cart-1', [{ sku: 'tee-m', quantity: 3 }], { ttlMs: limits.ttlMsMax }))
      .when(laterReceipt(t0Ms + 365 * 24 * hourMs))
      .then([{ type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 11 } }]);
    expect(result.reservation('cart-1')).toMatchObject({ status: 'held' });
    expect(result.reservation('cart-1')?.finishedAtMs).toBeUndefined();
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(3);
  });

  it('never forgets a committed order, from a hold or recorded directly, however late the next event', () => {
    const sale: CommandDraft = { type: 'record_sale', reservationId: 'shop-1', channel: 'shopify', lines: [{ sku: 'tee-m', quantity: 2 }] };
    const result = given(stocked, held, commit, sale)
      .when(laterReceipt(t0Ms + 365 * 24 * hourMs))
      .then([{ type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 11 } }]);
    expect(result.reservation('cart-1')).toMatchObject({ status: 'committed' });
    expect(result.reservation('shop-1')).toMatchObject({ status: 'committed' });
    expect(result.stock('tee-m', 'wh-1').committed).toBe(5);
    expect(result.tenant.finished).toEqual([]);
  });

  it('forgets in order of finishing, and only those old enough', () => {
    const result = given(
      stocked,
      reserve('cart-a', [{ sku: 'tee-m', quantity: 1 }], { ttlMs: 4 * hourMs }),
      reserve('cart-b', [{ sku: 'tee-m', quantity: 1 }], { ttlMs: 4 * hourMs }),
      reserve('cart-c', [{ sku: 'tee-m', quantity: 1 }], { ttlMs: 4 * hourMs }),
      { type: 'release', reservationId: 'cart-c', reason: 'released', timeMs: t0Ms + hourMs },
      { type: 'release', reservationId: 'cart-a', reason: 'released', timeMs: t0Ms + 2 * hourMs },
      { type: 'release', reservationId: 'cart-b', reason: 'released', timeMs: t0Ms + 3 * hourMs },
    ).when(laterReceipt(t0Ms + 2 * hourMs + retentionMs)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 11 } },
    ]);
    expect([...result.tenant.reservations.keys()]).toEqual(['cart-b']);
    expect(result.tenant.finished).toEqual([{ finishedAtMs: t0Ms + 3 * hourMs, id: 'cart-b' }]);
  });
});

describe('a forgotten reservation', () => {
  const [released] = finishing;
  const forgotten: GivenInput[] = [...(released?.inputs ?? []), laterReceipt(finishedAtMs + retentionMs)];
  const afterMs = finishedAtMs + retentionMs + 1_000;

  it('is unknown to commit, release and fulfil', () => {
    given(...forgotten).when({ type: 'commit', reservationId: 'cart-1', timeMs: afterMs }).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'cart-1' });
    given(...forgotten).when({ type: 'release', reservationId: 'cart-1', reason: 'cancelled', timeMs: afterMs }).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'cart-1' });
    given(...forgotten).when({ type: 'fulfil', reservationId: 'cart-1', timeMs: afterMs }).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'cart-1' });
  });

  it('frees its id: a new reservation may take it, and is a reservation of its own', () => {
    const result = given(...forgotten)
      .when(reserve('cart-1', [{ sku: 'tee-m', quantity: 2 }], { timeMs: afterMs }))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt: formatTime(afterMs + 60_000), lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 2 }] } }]);
    const reservation = result.reservation('cart-1');
    expect(reservation).toMatchObject({ status: 'held', createdAtMs: afterMs });
    expect(reservation?.finishedAtMs).toBeUndefined();
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(2);
  });

  it('is not confused with a later reservation of the same id when an old index entry comes due', () => {
    // Two lives of cart-1 written over each other without the first being forgotten: only evolve lets that happen.
    const reserved: EventDraft = { type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt: formatTime(t0Ms + 9 * hourMs), lines: [line] } };
    const releasedEvent: EventDraft = { type: 'reservation_released', data: { reservationId: 'cart-1', reason: 'released', from: 'held', lines: [line] } };
    const twoLives: GivenInput[] = [stocked, at(t0Ms, reserved), at(finishedAtMs, releasedEvent), at(finishedAtMs + hourMs, reserved)];

    const stillHeld = given(...twoLives).when(laterReceipt(finishedAtMs + retentionMs)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 11 } },
    ]);
    expect(stillHeld.reservation('cart-1')).toMatchObject({ status: 'held', createdAtMs: finishedAtMs + hourMs });
    expect(stillHeld.tenant.finished).toEqual([]);

    const secondFinish = [...twoLives, at(finishedAtMs + 2 * hourMs, releasedEvent)];
    const releasedAgain = given(...secondFinish).when(laterReceipt(finishedAtMs + retentionMs)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 11 } },
    ]);
    expect(releasedAgain.reservation('cart-1')).toMatchObject({ status: 'released', finishedAtMs: finishedAtMs + 2 * hourMs });
    expect(releasedAgain.tenant.finished).toEqual([{ finishedAtMs: finishedAtMs + 2 * hourMs, id: 'cart-1' }]);

    const gone = given(...secondFinish).when(laterReceipt(finishedAtMs + 2 * hourMs + retentionMs)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 11 } },
    ]);
    expect(gone.reservation('cart-1')).toBeUndefined();
  });
});

describe('snapshots of finished reservations', () => {
  /** Holds finishing an hour apart, in an order other than their ids', then a hold that stays. */
  function history(): InventoryEvent[] {
    const events: InventoryEvent[] = [];
    let sequence = 0;
    const push = (timeMs: number, draft: EventDraft): void => {
      sequence += 1;
      events.push({ ...draft, id: `e-${sequence}`, tenant: 'acme', time: formatTime(timeMs), source: 'api' } as InventoryEvent);
    };
    push(t0Ms, { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 50, onHand: 50 } });
    const ids = ['cart-d', 'cart-b', 'cart-e', 'cart-a', 'cart-c'];
    for (const id of ids) push(t0Ms, { type: 'order_reserved', data: { reservationId: id, channel: 'web', expiresAt: formatTime(t0Ms + 48 * hourMs), lines: [line] } });
    ids.forEach((id, index) => push(t0Ms + (index + 1) * hourMs, { type: 'reservation_released', data: { reservationId: id, reason: 'released', from: 'held', lines: [line] } }));
    // cart-b and cart-x finish at the same instant: the id breaks the tie.
    push(t0Ms + 2 * hourMs, { type: 'order_committed', data: { reservationId: 'cart-x', channel: 'shopify', direct: true, lines: [line] } });
    push(t0Ms + 2 * hourMs, { type: 'order_fulfilled', data: { reservationId: 'cart-x', lines: [line] } });
    push(t0Ms + 6 * hourMs, { type: 'order_reserved', data: { reservationId: 'cart-z', channel: 'web', expiresAt: formatTime(t0Ms + 48 * hourMs), lines: [line] } });
    // Ticks an hour apart from just before the first retention ends until after the last.
    for (let hour = 25; hour <= 32; hour += 1) push(t0Ms + hour * hourMs, { type: 'sync_complete', data: { channel: 'web', sku: 'tee-m', quantity: 1, latencyMs: 5 } });
    return events;
  }

  function jsonCopy<T>(value: T): T {
    return JSON.parse(JSON.stringify(value)) as T;
  }

  it('carry finishedAtMs and restore the index', () => {
    const events = history();
    const state = replay(events.slice(0, 14));
    const snapshot = jsonCopy(toSnapshot(state));
    expect(snapshot.tenants.acme?.reservations['cart-a']?.finishedAtMs).toBe(t0Ms + 4 * hourMs);
    expect(snapshot.tenants.acme?.reservations['cart-z']).not.toHaveProperty('finishedAtMs');
    const restored = fromSnapshot(snapshot);
    expect(restored.tenants.get('acme')?.reservations.get('cart-a')?.finishedAtMs).toBe(t0Ms + 4 * hourMs);
    expect(restored.tenants.get('acme')?.finished).toEqual(sortedEntries(state, 'acme'));
    expect(toSnapshot(restored)).toEqual(toSnapshot(state));
  });

  it('restored at any point, then given the rest of the log, forget exactly what a full replay forgets', () => {
    const events = history();
    const full = replay(events);
    expect([...(full.tenants.get('acme')?.reservations.keys() ?? [])]).toEqual(['cart-z']);
    for (let cut = 0; cut <= events.length; cut += 1) {
      const restored = fromSnapshot(jsonCopy(toSnapshot(replay(events.slice(0, cut)))));
      for (const event of events.slice(cut)) evolve(restored, event);
      expect(toSnapshot(restored), `restored after ${cut} events`).toEqual(toSnapshot(full));
      expect(sortedEntries(restored, 'acme'), `index restored after ${cut} events`).toEqual(sortedEntries(full, 'acme'));
    }
  });

  it('written before format 2 restore finished reservations without an index entry, so they are never forgotten', () => {
    const events = history();
    const snapshot = jsonCopy(toSnapshot(replay(events.slice(0, 14)))) as StateSnapshot;
    for (const reservation of Object.values(snapshot.tenants.acme?.reservations ?? {})) delete reservation.finishedAtMs;
    const restored = fromSnapshot(snapshot);
    expect(restored.tenants.get('acme')?.finished).toEqual([]);
    for (const event of events.slice(14)) evolve(restored, event);
    expect(restored.tenants.get('acme')?.reservations.get('cart-a')).toMatchObject({ status: 'released' });
  });
});

describe('an id used again after its reservation was forgotten', () => {
  const dayMs = 24 * hourMs;
  const first = reserve('cart-x', [{ sku: 'tee-m', quantity: 1 }], { ttlMs: 30 * dayMs, timeMs: t0Ms });
  const other = reserve('cart-y', [{ sku: 'tee-m', quantity: 1 }], { ttlMs: 29 * dayMs, timeMs: t0Ms + 1 });
  const released: CommandDraft = { type: 'release', reservationId: 'cart-x', reason: 'released', timeMs: t0Ms + hourMs };
  // The same id again, at a time and for a TTL that make it expire at the very moment the first would have.
  const again = reserve('cart-x', [{ sku: 'tee-m', quantity: 1 }], { ttlMs: 30 * dayMs - 27 * hourMs, timeMs: t0Ms + 27 * hourMs });

  it('reports the forgotten reservation in the execution, so a changelog can delete it', () => {
    const receipt = { type: 'stock_adjustment' as const, data: { sku: 'tee-m', location: 'wh-1', mode: 'delta' as const, delta: 1, onHand: 11 } };
    const forgetting = given(stocked, first, other, released).when(laterReceipt(t0Ms + 26 * hourMs)).then([receipt]);
    expect(forgetting.execution.forgottenReservations).toEqual(['cart-x']);
    const nothingLeft = given(stocked, first, other, released, laterReceipt(t0Ms + 26 * hourMs)).when(laterReceipt(t0Ms + 27 * hourMs));
    expect(nothingLeft.result.execution.forgottenReservations).toBeUndefined();
  });

  it('expires the new hold once, though the index still holds an entry of the first one for the same time', () => {
    given(stocked, first, other, released, laterReceipt(t0Ms + 26 * hourMs), again)
      .when({ type: 'expire_due', nowMs: t0Ms + 30 * dayMs, timeMs: t0Ms + 30 * dayMs })
      .then([
        { type: 'reservation_released', data: { reservationId: 'cart-y', reason: 'expired', from: 'held', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] } },
        { type: 'reservation_released', data: { reservationId: 'cart-x', reason: 'expired', from: 'held', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] } },
      ]);
  });
});

describe('a tenant with many reservations past their retention at once', () => {
  const count = limits.reservationForgetsPerEventMax + 50;
  /** `count` holds released over a few minutes, ids out of that order; then nothing for a day. */
  function quietAfterBusy(): LedgerState {
    const events: InventoryEvent[] = [];
    const event = (type: string, timeMs: number, data: unknown): InventoryEvent => ({ id: `e${events.length}`, type, tenant: 't', time: formatTime(timeMs), source: 'api', data }) as InventoryEvent;
    events.push(event('stock_adjustment', t0Ms, { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: count, onHand: count }));
    for (let index = 0; index < count; index += 1) {
      const reservationId = `r-${String((index * 7) % count).padStart(3, '0')}`;
      const timeMs = t0Ms + 1_000 * Math.floor(index / 3);
      events.push(event('order_reserved', timeMs, { reservationId, channel: 'web', expiresAt: formatTime(timeMs + hourMs), lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] }));
      events.push(event('reservation_released', timeMs, { reservationId, reason: 'released', from: 'held', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] }));
    }
    return replay(events);
  }

  it(`forgets at most ${limits.reservationForgetsPerEventMax} with one event, the oldest first, and the rest with the next`, () => {
    const state = quietAfterBusy();
    const tenant = state.tenants.get('t');
    const expected = sortedEntries(state, 't').map((entry) => entry.id);
    const later = (id: string, timeMs: number): InventoryEvent => ({ id, type: 'stock_adjustment', tenant: 't', time: formatTime(timeMs), source: 'api', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: count + 1 } }) as InventoryEvent;
    const first: string[] = [];
    evolve(state, later('x1', t0Ms + retentionMs + hourMs), first);
    expect(first).toEqual(expected.slice(0, limits.reservationForgetsPerEventMax));
    expect(tenant?.reservations.size).toBe(50);
    const second: string[] = [];
    evolve(state, later('x2', t0Ms + retentionMs + hourMs), second);
    expect(second).toEqual(expected.slice(limits.reservationForgetsPerEventMax));
    expect(tenant?.reservations.size).toBe(0);
  });

  it('forgets the same ones from a state restored from a snapshot in between', () => {
    const live = quietAfterBusy();
    const later = (id: string, timeMs: number): InventoryEvent => ({ id, type: 'stock_adjustment', tenant: 't', time: formatTime(timeMs), source: 'api', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: count + 1 } }) as InventoryEvent;
    evolve(live, later('x1', t0Ms + retentionMs + hourMs));
    const restored = fromSnapshot(JSON.parse(JSON.stringify(toSnapshot(live))) as StateSnapshot);
    const fromLive: string[] = [];
    const fromRestored: string[] = [];
    evolve(live, later('x2', t0Ms + retentionMs + hourMs), fromLive);
    evolve(restored, later('x2', t0Ms + retentionMs + hourMs), fromRestored);
    expect(fromRestored).toEqual(fromLive);
    expect(fromLive).toHaveLength(50);
    expect(toSnapshot(restored)).toEqual(toSnapshot(live));
  });
});
