// Specs for snapshots: plain data that restores a state which behaves exactly like the original.

import { describe, expect, it } from 'vitest';
import type { Command } from '../../../src/core/commands.js';
import { execute } from '../../../src/core/ledger.js';
import { fromSnapshot, packState, toSnapshot, unpackState } from '../../../src/core/snapshot.js';
import { initialState } from '../../../src/core/state.js';
import type { LedgerState } from '../../../src/core/state.js';
import { t0Ms } from '../../support/ledger-dsl.js';

let counter = 0;
function command(fields: Record<string, unknown>): Command {
  counter += 1;
  return { id: `c-${counter}`, tenant: 'acme', timeMs: t0Ms + counter * 1_000, ...fields } as Command;
}

/** A state with stock at two locations, holds of several ages, a commit, a release, a sale, a policy, a key and a sequence. */
function busyState(): LedgerState {
  const state = initialState();
  const run = (fields: Record<string, unknown>): void => {
    execute(state, command(fields));
  };
  run({ type: 'adjust_stock', sku: 'tee-m', location: 'wh-1', set: 50, sourceSeq: '77', source: 'pg:main' });
  run({ type: 'adjust_stock', sku: 'tee-m', location: 'wh-2', delta: 5, idempotencyKey: 'receipt-1' });
  run({ type: 'adjust_stock', sku: 'cap', location: 'wh-1', delta: 9 });
  run({ type: 'set_channel_policy', channel: 'b2b', locations: ['wh-2', 'wh-1'], bufferUnits: 2, maxUnits: 30, backorder: false });
  for (let index = 0; index < 12; index += 1) {
    run({ type: 'reserve', reservationId: `cart-${index}`, channel: index % 2 === 0 ? 'web' : 'b2b', lines: [{ sku: 'tee-m', quantity: 1 + (index % 3) }], ttlMs: 60_000 + ((index * 37) % 11) * 1_000, orderRef: `o-${index}` });
  }
  run({ type: 'commit', reservationId: 'cart-3' });
  run({ type: 'release', reservationId: 'cart-5', reason: 'released' });
  run({ type: 'record_sale', reservationId: 'shop-1', channel: 'shopify', lines: [{ sku: 'cap', quantity: 12 }] });
  run({ type: 'delete_sku', sku: 'cap' });
  execute(state, { id: 'other-1', tenant: 'globex', timeMs: t0Ms, type: 'adjust_stock', sku: 'tee-m', location: 'wh-1', delta: 3 });
  return state;
}

/** Commands after the snapshot: new holds, a stale sequence, a retry, expiries, a commit, a sale. */
const later: Array<Record<string, unknown>> = [
  { type: 'reserve', reservationId: 'cart-new', channel: 'b2b', lines: [{ sku: 'tee-m', quantity: 20 }], ttlMs: 2_000 },
  { type: 'adjust_stock', sku: 'tee-m', location: 'wh-1', set: 40, sourceSeq: '77', source: 'pg:main' },
  { type: 'adjust_stock', sku: 'tee-m', location: 'wh-2', delta: 5, idempotencyKey: 'receipt-1' },
  { type: 'expire_due', nowMs: t0Ms + 70_000 },
  { type: 'commit', reservationId: 'cart-0' },
  { type: 'expire_due', nowMs: t0Ms + 75_000 },
  { type: 'reserve', reservationId: 'cart-x', channel: 'web', lines: [{ sku: 'cap', quantity: 1 }], ttlMs: 2_000 },
  { type: 'fulfil', reservationId: 'cart-3' },
  { type: 'expire_due', nowMs: t0Ms + 200_000 },
  { type: 'reserve', reservationId: 'cart-y', channel: 'web', lines: [{ sku: 'tee-m', quantity: 1 }], ttlMs: 2_000 },
];

function jsonCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

describe('snapshots', () => {
  it('round-trips through plain data and JSON', () => {
    const state = busyState();
    for (const withIdempotency of [false, true]) {
      const snapshot = toSnapshot(state, { withIdempotency });
      expect(toSnapshot(fromSnapshot(jsonCopy(snapshot)), { withIdempotency })).toEqual(snapshot);
    }
  });

  it('is independent of insertion order', () => {
    const state = busyState();
    const snapshot = toSnapshot(state, { withIdempotency: true });
    expect(JSON.stringify(toSnapshot(fromSnapshot(jsonCopy(snapshot)), { withIdempotency: true }))).toBe(JSON.stringify(snapshot));
    expect(Object.keys(snapshot.tenants)).toEqual(['acme', 'globex']);
    expect(Object.keys(snapshot.tenants.acme?.skus ?? {})).toEqual(['cap', 'tee-m']);
  });

  it('leaves idempotency records out unless asked', () => {
    const state = busyState();
    expect(toSnapshot(state).tenants.acme?.idempotency).toBeUndefined();
    expect(Object.keys(toSnapshot(state, { withIdempotency: true }).tenants.acme?.idempotency ?? {})).toEqual(['receipt-1']);
    const onlyKeys = initialState();
    execute(onlyKeys, command({ type: 'restore_sku', sku: 'none', idempotencyKey: 'k' }));
    expect(toSnapshot(onlyKeys)).toEqual({ tenants: {} });
    expect(Object.keys(toSnapshot(onlyKeys, { withIdempotency: true }).tenants)).toEqual(['acme']);
  });

  it('restores a state that decides every later command the same way, expiries and retries included', () => {
    const original = busyState();
    const restored = fromSnapshot(jsonCopy(toSnapshot(original, { withIdempotency: true })));
    expect(restored.tenants.get('acme')?.expiries.length).toBe(10);
    let expiredCount = 0;
    for (const fields of later) {
      const next = command(fields);
      const a = execute(original, next);
      const b = execute(restored, next);
      expect(b).toEqual(a);
      if (next.type === 'expire_due') expiredCount += a.outcome.events.length;
      expect(toSnapshot(restored, { withIdempotency: true })).toEqual(toSnapshot(original, { withIdempotency: true }));
    }
    expect(expiredCount).toBeGreaterThan(5);
  });

  it('shares no mutable stock with the snapshot it was made from', () => {
    const snapshot = toSnapshot(busyState());
    const frozen = jsonCopy(snapshot);
    const restored = fromSnapshot(snapshot);
    execute(restored, command({ type: 'adjust_stock', sku: 'tee-m', location: 'wh-1', delta: 1 }));
    execute(restored, command({ type: 'set_channel_policy', channel: 'b2b', locations: null, bufferUnits: 0, maxUnits: null, backorder: true }));
    expect(snapshot).toEqual(frozen);
  });
});

describe('packed snapshots (the snapshot file)', () => {
  it('round-trip through JSON to the state the events determine, indexes included', () => {
    const state = busyState();
    const restored = unpackState(jsonCopy(packState(state)));
    expect(toSnapshot(restored)).toEqual(toSnapshot(state));
    const viaPlain = fromSnapshot(toSnapshot(state));
    for (const name of ['acme', 'globex']) {
      expect(restored.tenants.get(name)?.expiries).toEqual(viaPlain.tenants.get(name)?.expiries);
      expect(restored.tenants.get(name)?.finished).toEqual(viaPlain.tenants.get(name)?.finished);
    }
    expect(restored.tenants.get('acme')?.idempotency.size, 'idempotency records are kept beside the log, not in it').toBe(0);
  });

  it('keep the order of the original maps', () => {
    const state = busyState();
    const restored = unpackState(jsonCopy(packState(state)));
    const acme = state.tenants.get('acme');
    expect([...restored.tenants.keys()]).toEqual([...state.tenants.keys()]);
    expect([...(restored.tenants.get('acme')?.reservations.keys() ?? [])]).toEqual([...(acme?.reservations.keys() ?? [])]);
    expect([...(restored.tenants.get('acme')?.skus.keys() ?? [])]).toEqual(['tee-m', 'cap']);
  });

  it('restore a state that decides every later command the same way', () => {
    const original = busyState();
    const restored = unpackState(jsonCopy(packState(original)));
    // Idempotency records are restored from beside the log, as the engine does.
    for (const [name, tenant] of original.tenants) {
      for (const [key, record] of tenant.idempotency) restored.tenants.get(name)?.idempotency.set(key, record);
    }
    for (const fields of later) {
      const next = command(fields);
      expect(execute(restored, next)).toEqual(execute(original, next));
      expect(toSnapshot(restored, { withIdempotency: true })).toEqual(toSnapshot(original, { withIdempotency: true }));
    }
  });

  it('keep names that are special to JavaScript objects as data', () => {
    const state = initialState();
    execute(state, { id: 'p-1', tenant: '__proto__', timeMs: t0Ms, type: 'adjust_stock', sku: '__proto__', location: 'constructor', delta: 4 });
    execute(state, { id: 'p-2', tenant: '__proto__', timeMs: t0Ms, type: 'reserve', reservationId: '__proto__', channel: 'toString', lines: [{ sku: '__proto__', quantity: 1 }], ttlMs: 60_000 });
    const restored = unpackState(jsonCopy(packState(state)));
    expect(toSnapshot(restored)).toEqual(toSnapshot(state));
    expect(restored.tenants.get('__proto__')?.reservations.get('__proto__')?.lines).toEqual([{ sku: '__proto__', location: 'constructor', quantity: 1 }]);
  });

  it('share nothing mutable with the state they were made from', () => {
    const state = busyState();
    const packed = packState(state);
    const frozen = jsonCopy(packed);
    const restored = unpackState(packed);
    execute(restored, command({ type: 'adjust_stock', sku: 'tee-m', location: 'wh-1', delta: 1 }));
    execute(restored, command({ type: 'set_channel_policy', channel: 'b2b', locations: null, bufferUnits: 0, maxUnits: null, backorder: true }));
    const line = restored.tenants.get('acme')?.reservations.get('cart-0')?.lines[0];
    if (line === undefined) throw new Error('cart-0 has no line');
    line.quantity = 99;
    expect(packed).toEqual(frozen);
    expect(state.tenants.get('acme')?.reservations.get('cart-0')?.lines[0]?.quantity).toBe(1);
  });
});
