// Specs for expire_due: the tick that releases holds whose time is up, decided from the tick's own time.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../../src/core/commands.js';
import { dueReservations } from '../../../src/core/decide.js';
import { execute } from '../../../src/core/ledger.js';
import { initialState } from '../../../src/core/state.js';
import type { TenantState } from '../../../src/core/state.js';
import { housekeepingDue, moreDueAfterTick } from '../../../src/core/ledger.js';
import { limits } from '../../../src/core/limits.js';
import { formatTime } from '../../../src/core/time.js';
import type { CommandDraft, GivenInput } from '../../support/ledger-dsl.js';
import { given, givenTenant, receive, reserve, t0Ms } from '../../support/ledger-dsl.js';

const baseMs = t0Ms + 3_600_000;

function holdAt(id: string, quantity: number, createdMs: number, ttlMs: number): CommandDraft {
  return reserve(id, [{ sku: 'tee-m', quantity }], { timeMs: createdMs, ttlMs });
}

function tick(nowMs: number): CommandDraft {
  return { type: 'expire_due', nowMs, timeMs: nowMs };
}

function expired(id: string, quantity: number): { type: 'reservation_released'; data: { reservationId: string; reason: 'expired'; from: 'held'; lines: Array<{ sku: string; location: string; quantity: number }> } } {
  return { type: 'reservation_released', data: { reservationId: id, reason: 'expired', from: 'held', lines: [{ sku: 'tee-m', location: 'wh-1', quantity }] } };
}

describe('expire_due', () => {
  it('releases only the holds that are due, oldest expiry first, ties by id', () => {
    const result = given(
      receive('tee-m', 'wh-1', 100),
      holdAt('c-late', 1, baseMs, 50_000),
      holdAt('c-b', 2, baseMs, 20_000),
      holdAt('c-a', 3, baseMs, 20_000),
      holdAt('c-early', 4, baseMs, 10_000),
      holdAt('c-not-yet', 5, baseMs, 30_001),
      holdAt('c-committed', 6, baseMs, 5_000),
      { type: 'commit', reservationId: 'c-committed', timeMs: baseMs + 1 },
      holdAt('c-released', 7, baseMs, 5_000),
      { type: 'release', reservationId: 'c-released', reason: 'released', timeMs: baseMs + 2 },
    )
      .when(tick(baseMs + 30_000))
      .then([expired('c-early', 4), expired('c-a', 3), expired('c-b', 2)]);
    expect(result.events.map((event) => event.id)).toEqual(['cmd-11.0', 'cmd-11.1', 'cmd-11.2']);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 100, committed: 6, reserved: 6 });
    expect(result.reservation('c-a')?.status).toBe('expired');
    expect(result.reservation('c-not-yet')?.status).toBe('held');
    expect(result.reservation('c-committed')?.status).toBe('committed');
  });

  it('treats a hold as due at exactly its expiry instant', () => {
    given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000)).when(tick(baseMs + 10_000)).then([expired('c-1', 1)]);
    given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000)).when(tick(baseMs + 9_999)).then([]);
  });

  it('decides from nowMs, not from the time the command arrives', () => {
    given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000))
      .when({ type: 'expire_due', nowMs: baseMs + 5_000, timeMs: baseMs + 60_000 })
      .then([]);
  });

  it('does nothing when nothing is due, and nothing for a tenant it has never seen', () => {
    given(receive('tee-m', 'wh-1', 10)).when(tick(baseMs)).then([]);
    givenTenant('empty').when(tick(baseMs)).then([]);
  });

  it('does not expire a hold twice', () => {
    given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000), tick(baseMs + 10_000)).when(tick(baseMs + 20_000)).then([]);
  });

  it('finds due holds behind holds that were committed or released before them', () => {
    const inputs: GivenInput[] = [receive('tee-m', 'wh-1', 1_000)];
    for (let index = 0; index < 40; index += 1) inputs.push(holdAt(`c-${String(index).padStart(2, '0')}`, 1, baseMs, 1_000 + ((index * 7919) % 40) * 1_000));
    for (let index = 0; index < 40; index += 3) inputs.push({ type: 'commit', reservationId: `c-${String(index).padStart(2, '0')}`, timeMs: baseMs + 500 });
    const result = given(...inputs).when(tick(baseMs + 20_000));
    const due = [...result.result.tenant.reservations.values()].filter((r) => r.status === 'expired').map((r) => r.id);
    const expected = Array.from({ length: 40 }, (_, index) => index)
      .filter((index) => index % 3 !== 0 && 1_000 + ((index * 7919) % 40) * 1_000 <= 20_000)
      .map((index) => ({ id: `c-${String(index).padStart(2, '0')}`, expiresAtMs: baseMs + 1_000 + ((index * 7919) % 40) * 1_000 }))
      .sort((a, b) => a.expiresAtMs - b.expiresAtMs || (a.id < b.id ? -1 : 1));
    expect(result.result.events.map((event) => event.type === 'reservation_released' ? event.data.reservationId : '')).toEqual(expected.map((entry) => entry.id));
    expect(due.sort()).toEqual(expected.map((entry) => entry.id).sort());
  });

  it(`releases at most ${limits.expirationsPerTickMax} holds per tick, the oldest first, and the rest on the next tick`, () => {
    const count = limits.expirationsPerTickMax + 2;
    const inputs: GivenInput[] = [receive('tee-m', 'wh-1', count)];
    // Created in reverse so the oldest expiry is the last one inserted.
    for (let index = count - 1; index >= 0; index -= 1) inputs.push(holdAt(`c-${String(index).padStart(6, '0')}`, 1, baseMs, 1_000 + index));
    const scenario = given(...inputs);
    const first = scenario.when(tick(baseMs + 1_000_000)).result;
    expect(first.events).toHaveLength(limits.expirationsPerTickMax);
    expect(first.events[0]).toMatchObject({ data: { reservationId: 'c-000000' } });
    expect(first.events.at(-1)).toMatchObject({ data: { reservationId: `c-${String(limits.expirationsPerTickMax - 1).padStart(6, '0')}` } });
    expect(first.stock('tee-m', 'wh-1').reserved).toBe(2);
    const second = scenario.when(tick(baseMs + 1_000_001)).result;
    expect(second.events.map((event) => event.type === 'reservation_released' ? event.data.reservationId : '')).toEqual([
      `c-${String(count - 2).padStart(6, '0')}`, `c-${String(count - 1).padStart(6, '0')}`,
    ]);
    expect(second.stock('tee-m', 'wh-1').reserved).toBe(0);
  });
});

describe('housekeepingDue: when a ticker should send expire_due', () => {
  const retentionMs = limits.idempotencyRetentionMs;

  it('when a hold is due, not before', () => {
    const { tenant } = given(receive('tee-m', 'wh-1', 10)).when(holdAt('c-1', 1, baseMs, 60_000)).then([
      { type: 'order_reserved', data: { reservationId: 'c-1', channel: 'web', expiresAt: formatTime(baseMs + 60_000), lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] } },
    ]);
    expect(housekeepingDue(tenant, baseMs + 59_999)).toBe(false);
    expect(housekeepingDue(tenant, baseMs + 60_000)).toBe(true);
  });

  it('when the oldest idempotency record is past its retention, though no hold is left to expire', () => {
    const { tenant } = given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 60_000))
      .when({ type: 'commit', reservationId: 'c-1', idempotencyKey: 'k-1', timeMs: baseMs + 1_000 })
      .then([{ type: 'order_committed', data: { reservationId: 'c-1', channel: 'web', direct: false, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] } }]);
    expect(housekeepingDue(tenant, baseMs + 1_000 + retentionMs)).toBe(false);
    expect(housekeepingDue(tenant, baseMs + 1_001 + retentionMs)).toBe(true);
    const forgetting = given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 60_000),
      { type: 'commit', reservationId: 'c-1', idempotencyKey: 'k-1', timeMs: baseMs + 1_000 }).when(tick(baseMs + 1_001 + retentionMs)).then([]);
    expect(forgetting.execution.forgotten).toEqual(['k-1']);
    expect(housekeepingDue(forgetting.tenant, baseMs + 2 * retentionMs)).toBe(false);
  });
});

describe('a tick with many idempotency records past their retention', () => {
  it(`forgets at most ${limits.idempotencyForgetsPerTickMax}, the oldest first, and says another tick is due at once`, () => {
    const max = limits.idempotencyForgetsPerTickMax;
    const state = initialState();
    for (let index = 0; index < max + 2; index += 1) {
      execute(state, { type: 'adjust_stock', id: `a-${index}`, tenant: 't', timeMs: baseMs + index, sku: 'tee-m', location: 'wh-1', delta: 1, idempotencyKey: `k-${index}` });
    }
    const tenant = state.tenants.get('t') as TenantState;
    const nowMs = baseMs + max + 2 + limits.idempotencyRetentionMs;
    const tickAt = (id: string): Command => ({ type: 'expire_due', id, tenant: 't', timeMs: nowMs, nowMs });
    const first = execute(state, tickAt('e-1')).forgotten ?? [];
    expect(first).toHaveLength(max);
    expect(first[0]).toBe('k-0');
    expect(moreDueAfterTick(tenant, nowMs, 0)).toBe(true);
    expect(execute(state, tickAt('e-2')).forgotten).toEqual([`k-${max}`, `k-${max + 1}`]);
    expect(moreDueAfterTick(tenant, nowMs, 0)).toBe(false);
    expect(moreDueAfterTick(tenant, nowMs, limits.expirationsPerTickMax)).toBe(true);
  });
});

describe('dueReservations: the holds a tick releases', () => {
  it('are the held ones due, by expiry then id, the first `max` of them, however many more are due', () => {
    const holdArb = fc.record({ ttlSeconds: fc.integer({ min: 1, max: 40 }), then: fc.constantFrom('held', 'held', 'commit', 'release') });
    fc.assert(fc.property(fc.array(holdArb, { maxLength: 120 }), fc.integer({ min: 0, max: 45 }), fc.integer({ min: 1, max: 130 }), (holds, atSecond, max) => {
      const state = initialState();
      const run = (command: Omit<Command, 'id' | 'tenant' | 'timeMs'>, index: number): void => {
        execute(state, { ...command, id: `c${index}`, tenant: 't', timeMs: baseMs } as Command);
      };
      run({ type: 'adjust_stock', sku: 'tee-m', location: 'wh-1', set: 1_000 } as Omit<Command, 'id' | 'tenant' | 'timeMs'>, -1);
      // Ids out of creation order, so ties on expiry are broken by id, not by when the hold was made.
      holds.forEach(({ ttlSeconds, then }, index) => {
        const reservationId = `r-${String((index * 37) % 1_000).padStart(3, '0')}-${index}`;
        run({ type: 'reserve', reservationId, channel: 'web', lines: [{ sku: 'tee-m', quantity: 1 }], ttlMs: ttlSeconds * 1_000 } as Omit<Command, 'id' | 'tenant' | 'timeMs'>, 3 * index);
        if (then === 'commit') run({ type: 'commit', reservationId } as Omit<Command, 'id' | 'tenant' | 'timeMs'>, 3 * index + 1);
        if (then === 'release') run({ type: 'release', reservationId, reason: 'released' } as Omit<Command, 'id' | 'tenant' | 'timeMs'>, 3 * index + 2);
      });
      const tenant = state.tenants.get('t') as TenantState;
      const nowMs = baseMs + atSecond * 1_000;
      const expected = [...tenant.reservations.values()]
        .filter((reservation) => reservation.status === 'held' && reservation.expiresAtMs <= nowMs)
        .sort((a, b) => a.expiresAtMs - b.expiresAtMs || (a.id < b.id ? -1 : 1))
        .slice(0, max);
      expect(dueReservations(tenant, nowMs, max).map((reservation) => reservation.id)).toEqual(expected.map((reservation) => reservation.id));
    }), { numRuns: 300 });
  });
});


describe('release with reason expired (an imported expiry of one hold)', () => {
  const expire = (id: string, timeMs: number): CommandDraft => ({ type: 'release', reservationId: id, reason: 'expired', timeMs });

  it('expires that hold at or after its expiry instant, and no other hold due then', () => {
    const holds = [receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000), holdAt('c-2', 2, baseMs, 5_000)];
    given(...holds).when(expire('c-1', baseMs + 10_000)).then([expired('c-1', 1)]);
    const later = given(...holds).when(expire('c-1', baseMs + 60_000)).then([expired('c-1', 1)]);
    expect(later.reservation('c-1')?.status).toBe('expired');
    expect(later.reservation('c-2')?.status).toBe('held');
    expect(later.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 0, reserved: 2 });
  });

  it('refuses a hold not due yet, and a reservation that is not held', () => {
    given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000))
      .when(expire('c-1', baseMs + 9_999)).thenRejects('RESERVATION_NOT_DUE', { reservationId: 'c-1', expiresAtMs: baseMs + 10_000 });
    given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000), { type: 'commit', reservationId: 'c-1', timeMs: baseMs + 1 })
      .when(expire('c-1', baseMs + 60_000)).thenRejects('RESERVATION_NOT_HELD', { status: 'committed' });
    given(receive('tee-m', 'wh-1', 10), holdAt('c-1', 1, baseMs, 10_000), tick(baseMs + 10_000))
      .when(expire('c-1', baseMs + 60_000)).thenRejects('RESERVATION_NOT_HELD', { status: 'expired' });
    given(receive('tee-m', 'wh-1', 10)).when(expire('ghost', baseMs)).thenRejects('UNKNOWN_RESERVATION');
  });
});
