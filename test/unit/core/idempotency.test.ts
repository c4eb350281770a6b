// Specs for execute's idempotency: a retry under a key returns the first outcome and changes nothing.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, execute, fingerprintOf, idempotencyDue, idempotencyRecordBytes, idempotencyRecordsMaxFor, remember } from '../../../src/core/ledger.js';
import { tenantOf } from '../../../src/core/evolve.js';
import { initialState } from '../../../src/core/state.js';
import type { IdempotencyRecord } from '../../../src/core/state.js';
import { limits } from '../../../src/core/limits.js';
import { toSnapshot } from '../../../src/core/snapshot.js';
import type { CommandDraft } from '../../support/ledger-dsl.js';
import { attempt, given, givenTenant, receive, reserve, t0Ms } from '../../support/ledger-dsl.js';

const keyed = reserve('cart-1', [{ sku: 'tee-m', quantity: 3 }], { idempotencyKey: 'key-1' });

describe('idempotency keys', () => {
  it('returns DUPLICATE with the first outcome on a retry and changes nothing', () => {
    const scenario = given(receive('tee-m', 'wh-1', 10));
    const first = scenario.when(keyed).result;
    const firstOutcome = first.outcome;
    const before = toSnapshot(first.state, { withIdempotency: true });
    const retry = scenario.when({ ...keyed, id: 'retry-1' }).thenRejects('DUPLICATE', { first: firstOutcome });
    expect(retry.outcome.rejection).toEqual({ code: 'DUPLICATE', first: firstOutcome, message: expect.any(String) as unknown });
    expect(toSnapshot(retry.state, { withIdempotency: true })).toEqual(before);
    expect(retry.execution.remembered).toBeUndefined();
  });

  it('remembers the record to persist with the events', () => {
    const result = given(receive('tee-m', 'wh-1', 10)).when(keyed).result;
    expect(result.execution.remembered).toEqual({ key: 'key-1', record: { fingerprint: fingerprintOf(result.command), outcome: result.outcome, timeMs: result.command.timeMs } });
  });

  it('returns a first refusal on a retry, even after stock arrived', () => {
    const scenario = given(attempt(keyed), receive('tee-m', 'wh-1', 10));
    scenario.when(keyed).thenRejects('DUPLICATE', {
      first: { events: [], rejection: { code: 'INSUFFICIENT_STOCK', lines: [{ sku: 'tee-m', requested: 3, available: 0 }], message: expect.any(String) as unknown as string } },
    });
  });

  it('refuses the same key for a different request with IDEMPOTENCY_KEY_REUSED', () => {
    const result = given(receive('tee-m', 'wh-1', 10), keyed)
      .when(reserve('cart-1', [{ sku: 'tee-m', quantity: 4 }], { idempotencyKey: 'key-1' }))
      .thenRejects('IDEMPOTENCY_KEY_REUSED', { idempotencyKey: 'key-1' });
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(3);
    given(receive('tee-m', 'wh-1', 10), keyed)
      .when({ type: 'commit', reservationId: 'cart-1', idempotencyKey: 'key-1' })
      .thenRejects('IDEMPOTENCY_KEY_REUSED', { idempotencyKey: 'key-1' });
  });

  it('ignores the command id, time and key order of fields when matching a retry', () => {
    const a = { type: 'adjust_stock', sku: 'x', location: 'y', delta: 1, id: 'a', tenant: 't', timeMs: 1, idempotencyKey: 'k' } as const;
    const b = { idempotencyKey: 'k2', timeMs: 99, id: 'b', delta: 1, location: 'y', sku: 'x', tenant: 't', type: 'adjust_stock', reason: undefined } as const;
    expect(fingerprintOf(a)).toBe(fingerprintOf(b));
    expect(fingerprintOf(a)).not.toBe(fingerprintOf({ ...a, delta: 2 }));
    expect(fingerprintOf(a)).not.toBe(fingerprintOf({ ...a, tenant: 'u' }));
  });

  it('keeps keys per tenant', () => {
    givenTenant('other', receive('tee-m', 'wh-1', 10, { idempotencyKey: 'key-1' }))
      .when({ ...receive('tee-m', 'wh-1', 5, { idempotencyKey: 'key-1' }), tenant: 'acme' })
      .then([{ type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 5, onHand: 5 } }]);
  });

  it('makes a retried delta count once', () => {
    const delta: CommandDraft = receive('tee-m', 'wh-1', 12, { idempotencyKey: 'receipt-9' });
    const result = given(delta).when(delta).thenRejects('DUPLICATE');
    expect(result.stock('tee-m', 'wh-1').onHand).toBe(12);
  });

  it(`forgets keys older than ${limits.idempotencyRetentionMs} ms on the next tick`, () => {
    const scenario = given(
      receive('tee-m', 'wh-1', 1, { idempotencyKey: 'old', timeMs: t0Ms }),
      receive('tee-m', 'wh-1', 1, { idempotencyKey: 'recent', timeMs: t0Ms + 1_000 }),
    );
    const tickMs = t0Ms + limits.idempotencyRetentionMs + 500;
    const tick = scenario.when({ type: 'expire_due', nowMs: tickMs, timeMs: tickMs }).then([]);
    expect(tick.execution.forgotten).toEqual(['old']);
    expect([...tick.tenant.idempotency.keys()]).toEqual(['recent']);
    scenario.when(receive('tee-m', 'wh-1', 1, { idempotencyKey: 'old', timeMs: tickMs + 1 }))
      .then([{ type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 3 } }]);
    scenario.when(receive('tee-m', 'wh-1', 1, { idempotencyKey: 'recent', timeMs: tickMs + 2 })).thenRejects('DUPLICATE');
  });

  it('applies a keyed command through execute exactly as without the key', () => {
    const command = { type: 'adjust_stock', sku: 'x', location: 'y', delta: 3, id: 'a', tenant: 't', timeMs: t0Ms } as const;
    const plain = execute({ tenants: new Map() }, command);
    const withKey = execute({ tenants: new Map() }, { ...command, idempotencyKey: 'k' });
    expect(withKey.outcome).toEqual(plain.outcome);
  });
});

describe('fingerprint text', () => {
  /** The text idempotency records were first written with: stored records must keep matching their retries. */
  function referenceCanonicalJson(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(referenceCanonicalJson).join(',')}]`;
    if (value !== null && typeof value === 'object') {
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, item]) => item !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${referenceCanonicalJson(item)}`).join(',')}}`;
    }
    return JSON.stringify(value);
  }

  it('is the same text as the stored records were written with, for any JSON value', () => {
    const withUndefined = fc.oneof(fc.jsonValue(), fc.constant(undefined));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, withUndefined, fc.array(tie('node')), fc.dictionary(fc.string(), tie('node'))),
    })).node;
    fc.assert(fc.property(value, (input) => {
      if (input === undefined) return;
      expect(canonicalJson(input)).toBe(referenceCanonicalJson(input));
    }), { numRuns: 500 });
  });

  it('sorts keys and leaves undefined members out', () => {
    expect(canonicalJson({ b: 1, a: [{ d: undefined, c: 'x' }], e: null })).toBe('{"a":[{"c":"x"}],"b":1,"e":null}');
  });
});

describe('the records kept per tenant', () => {
  const record = (timeMs: number): IdempotencyRecord => ({ fingerprint: '{}', outcome: { events: [] }, timeMs });

  it('are at most the limit: past it, the oldest is forgotten for each new one, and named', () => {
    const records = new Map<string, IdempotencyRecord>();
    const forgotten: string[][] = [];
    for (let index = 0; index < 5; index += 1) forgotten.push(remember(records, `k${index}`, record(index), 3));
    expect(forgotten).toEqual([[], [], [], ['k0'], ['k1']]);
    expect([...records.keys()]).toEqual(['k2', 'k3', 'k4']);
  });

  it('come down to the limit two a new record at most when more are kept (a smaller bound than they were made under)', () => {
    const records = new Map<string, IdempotencyRecord>();
    for (let index = 0; index < 6; index += 1) remember(records, `k${index}`, record(index), 10);
    const forgotten = ['n0', 'n1', 'n2', 'n3'].map((key, index) => remember(records, key, record(10 + index), 3));
    expect(forgotten).toEqual([['k0', 'k1'], ['k2', 'k3'], ['k4', 'k5'], ['n0']]);
    expect([...records.keys()]).toEqual(['n1', 'n2', 'n3']);
  });

  it('forget the oldest kept, whatever else was forgotten or added between (against the first in iteration order)', () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('remember' as const), key: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ kind: fc.constant('expire' as const), key: fc.integer({ min: 0, max: 200 }) }),
    );
    fc.assert(fc.property(fc.integer({ min: 1, max: 8 }), fc.array(operation, { minLength: 50, maxLength: 200 }), (recordsMax, operations) => {
      const state = initialState();
      const tenant = tenantOf(state, 'acme');
      const records = tenant.idempotency;
      operations.forEach(({ kind, key }, index) => {
        const name = `k${key}`;
        const first = [...records.values()][0];
        if (kind === 'delete') {
          // As a changelog's tombstone deletes a record on a Kafka node's replica.
          records.delete(name);
        } else if (kind === 'expire') {
          // Records made before `key` are past their retention.
          const nowMs = key + limits.idempotencyRetentionMs;
          expect(idempotencyDue(tenant, nowMs)).toBe(first !== undefined && first.timeMs < key);
          const expected = [...records].filter(([, kept]) => kept.timeMs < key).map(([forgotten]) => forgotten);
          const execution = execute(state, { type: 'expire_due', id: `x${index}`, tenant: 'acme', timeMs: nowMs, nowMs }, recordsMax);
          expect(execution.forgotten ?? []).toEqual(expected);
        } else if (!records.has(name)) {
          const expected = records.size >= recordsMax ? [...records.keys()].slice(0, 1) : [];
          expect(remember(records, name, record(index), recordsMax)).toEqual(expected);
        }
      });
    }));
  });

  it('are bounded by what execute is given, which names the key forgotten for the store to forget', () => {
    const state = initialState();
    execute(state, { type: 'adjust_stock', id: 'stock', tenant: 'acme', timeMs: t0Ms, sku: 'tee-m', location: 'wh-1', delta: 10 });
    const forgotten = ['a', 'b', 'c'].map((key) => execute(state, {
      type: 'reserve', id: key, tenant: 'acme', timeMs: t0Ms, reservationId: `cart-${key}`, channel: 'web', lines: [{ sku: 'tee-m', quantity: 1 }], ttlMs: 60_000, idempotencyKey: key,
    }, 2).forgotten);
    expect(forgotten).toEqual([undefined, undefined, ['a']]);
    expect([...(state.tenants.get('acme')?.idempotency.keys() ?? [])]).toEqual(['b', 'c']);
  });

  it('fill a quarter of the old generation at a kilobyte each, between 10,000 and the ledger\'s limit', () => {
    const gibibyte = 2 ** 30;
    expect(idempotencyRecordsMaxFor(4 * gibibyte)).toBe(gibibyte / idempotencyRecordBytes);
    expect(idempotencyRecordsMaxFor(512 * 2 ** 20)).toBe(131_072);
    expect(idempotencyRecordsMaxFor(64 * 2 ** 20)).toBe(16_384);
    expect(idempotencyRecordsMaxFor(8 * 2 ** 20)).toBe(10_000);
    expect(idempotencyRecordsMaxFor(64 * gibibyte)).toBe(limits.idempotencyRecordsMax);
  });
});
