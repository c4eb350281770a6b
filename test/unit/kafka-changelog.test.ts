// The Kafka changelog follows the ledger's forgetting: a finished reservation past its retention becomes a
// tombstone, and a restore from the compacted records no longer has it.

import { describe, expect, it } from 'vitest';
import { ChangelogRestore, entityKey, entityValue, nextOffsetKey, noteChangedEntities } from '../../src/adapters/kafka/changelog.js';
import { execute, initialState, limits, toSnapshot } from '../../src/core/index.js';
import type { Command, LedgerState } from '../../src/core/index.js';

/** A command of any type without the fields the test stamps. */
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type Draft = Without<Command, 'id' | 'tenant'>;

const t0Ms = Date.UTC(2026, 10, 27, 9);

describe('the changelog of a forgotten reservation', () => {
  it('writes a tombstone for it, so a restored processor forgets it too', () => {
    const state: LedgerState = initialState();
    /** Every record the changelog would hold, latest value per key, as the compacted topic keeps them. */
    const records = new Map<string, string | null>();
    let sequence = 0;
    const run = (command: Draft): void => {
      sequence += 1;
      const execution = execute(state, { ...command, id: `c${sequence}`, tenant: 'acme' } as Command);
      const keys = new Set<string>();
      noteChangedEntities(keys, 'acme', execution);
      for (const key of keys) records.set(key, entityValue(state, key));
    };
    run({ type: 'adjust_stock', sku: 'A', location: 'wh', delta: 5, timeMs: t0Ms });
    run({ type: 'reserve', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 60_000, timeMs: t0Ms });
    run({ type: 'release', reservationId: 'r1', reason: 'released', timeMs: t0Ms + 1_000 });
    expect(records.get(entityKey('acme', 'reservation', 'r1'))).toContain('"finishedAtMs"');

    run({ type: 'adjust_stock', sku: 'A', location: 'wh', delta: 1, timeMs: t0Ms + 1_000 + limits.reservationRetentionMs });
    expect(state.tenants.get('acme')?.reservations.has('r1')).toBe(false);
    expect(records.get(entityKey('acme', 'reservation', 'r1')), 'a tombstone').toBeNull();

    const restore = new ChangelogRestore();
    for (const [key, value] of records) restore.apply(key, value === null ? undefined : Buffer.from(value));
    expect(toSnapshot(restore.state())).toEqual(toSnapshot(state));
  });
});

describe('the #next record', () => {
  it('carries the partition\'s last command time, and one written without it restores as no time yet', () => {
    const restore = new ChangelogRestore();
    restore.apply(nextOffsetKey, Buffer.from(JSON.stringify({ nextOffset: '7' })));
    expect([restore.nextOffset, restore.lastTimeMs]).toEqual([7n, 0]);
    restore.apply(nextOffsetKey, Buffer.from(JSON.stringify({ nextOffset: '9', lastTimeMs: t0Ms })));
    expect([restore.nextOffset, restore.lastTimeMs]).toEqual([9n, t0Ms]);
  });
});
