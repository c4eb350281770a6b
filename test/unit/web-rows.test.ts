// The dashboard's SKU rows: merged by version so a stale read never wins, diffed for flashing, filtered and sorted.

import { describe, expect, it } from 'vitest';
import { compareRows, createSkuStore, diffRow, normalizeRow, prefixSearches, visibleRows } from '../../web/rows.js';
import type { SkuRow } from '../../web/rows.js';

function row(sku: string, fields: Partial<SkuRow> = {}): SkuRow {
  return { sku, onHand: 10, committed: 0, reserved: 0, available: 10, deleted: false, version: 1, channels: { web: 10 }, ...fields };
}

describe('normalizeRow', () => {
  it('keeps known fields, drops non-numeric channel values and refuses a row without a SKU', () => {
    expect(normalizeRow({ sku: 'A', onHand: 3, available: 3, version: 2, channels: { web: 3, bad: 'x' }, extra: true }))
      .toEqual({ sku: 'A', onHand: 3, committed: 0, reserved: 0, available: 3, deleted: false, version: 2, channels: { web: 3 } });
    expect(normalizeRow({ onHand: 3 })).toBeUndefined();
    expect(normalizeRow(null)).toBeUndefined();
    expect(normalizeRow('A')).toBeUndefined();
  });
});

describe('diffRow', () => {
  it('names each changed cell with its direction, including channels that appear or go', () => {
    const before = row('A', { channels: { web: 10, b2b: 4 } });
    const after = row('A', { reserved: 3, available: 7, version: 2, deleted: true, channels: { web: 7, shopify: 2 } });
    expect(diffRow(before, after)).toEqual([
      { column: 'available', direction: 'down' },
      { column: 'reserved', direction: 'up' },
      { column: 'deleted', direction: 'changed' },
      { column: 'channel:web', direction: 'down' },
      { column: 'channel:b2b', direction: 'changed' },
      { column: 'channel:shopify', direction: 'changed' },
    ]);
  });

  it('finds nothing when only the version moved', () => {
    expect(diffRow(row('A'), row('A', { version: 9 }))).toEqual([]);
  });
});

describe('createSkuStore', () => {
  it('adds, then changes a row only with a version at least as new', () => {
    const store = createSkuStore();
    expect(store.upsert(row('A', { version: 5 })).status).toBe('added');
    expect(store.upsert(row('A', { version: 4, available: 0 })).status).toBe('stale');
    expect(store.get('A')?.available).toBe(10);
    expect(store.upsert(row('A', { version: 6, reserved: 2, available: 8 }))).toEqual({
      status: 'changed', changes: [{ column: 'available', direction: 'down' }, { column: 'reserved', direction: 'up' }],
    });
    expect(store.upsert(row('A', { version: 6, reserved: 2, available: 8 })).status).toBe('same');
  });

  it('takes a same-version row, since a channel policy changes what a SKU shows without a new SKU version', () => {
    const store = createSkuStore();
    store.upsert(row('A', { version: 3 }));
    expect(store.upsert(row('A', { version: 3, channels: { web: 8 } })).status).toBe('changed');
  });

  it('stops adding SKUs at its bound but still updates the ones it has', () => {
    const store = createSkuStore({ rowsMax: 2 });
    store.upsert(row('A'));
    store.upsert(row('B'));
    expect(store.upsert(row('C')).status).toBe('full');
    expect(store.full).toBe(true);
    expect(store.upsert(row('A', { version: 2, available: 1 })).status).toBe('changed');
    expect(store.size).toBe(2);
  });

  it('collects channel names from rows and from the channel list, sorted', () => {
    const store = createSkuStore();
    store.addChannel('web');
    store.upsert(row('A', { channels: { b2b: 1, marketplace: 2 } }));
    expect(store.channels()).toEqual(['b2b', 'marketplace', 'web']);
  });

  it('reports an invalid row and keeps nothing of it', () => {
    const store = createSkuStore();
    expect(store.upsert({ nope: 1 }).status).toBe('invalid');
    expect(store.size).toBe(0);
  });
});

describe('visibleRows', () => {
  const rows = [row('TEE-10', { available: 1 }), row('TEE-2', { available: 9 }), row('hoodie-m', { available: 5 }), row('TEE-1', { available: 5 })];

  it('sorts SKUs in natural order by default, ignoring case', () => {
    expect(visibleRows(rows).rows.map((one) => one.sku)).toEqual(['hoodie-m', 'TEE-1', 'TEE-2', 'TEE-10']);
  });

  it('filters by a case-insensitive substring and says how many matched before the cap', () => {
    const view = visibleRows(rows, { filterText: '  tee-1 ', limit: 1 });
    expect(view.matched).toBe(2);
    expect(view.rows.map((one) => one.sku)).toEqual(['TEE-1']);
  });

  it('sorts by a number column, descending, with ties by SKU', () => {
    const view = visibleRows(rows, { sortColumn: 'available', sortDirection: 'descending' });
    expect(view.rows.map((one) => one.sku)).toEqual(['TEE-2', 'TEE-1', 'hoodie-m', 'TEE-10']);
  });

  it('sorts by a channel column; a row without that channel counts as lowest', () => {
    const withChannel = [row('A', { channels: { web: 3 } }), row('B', { channels: {} }), row('C', { channels: { web: 1 } })];
    expect(visibleRows(withChannel, { sortColumn: 'channel:web' }).rows.map((one) => one.sku)).toEqual(['B', 'C', 'A']);
    expect(compareRows(withChannel[0] as SkuRow, withChannel[2] as SkuRow, 'channel:web', 'descending')).toBeLessThan(0);
  });
});

describe('prefixSearches', () => {
  it('asks the server for the text as typed, in upper case and in lower case, once each', () => {
    expect(prefixSearches(' tee-51 ')).toEqual(['tee-51', 'TEE-51']);
    expect(prefixSearches('Tee-5')).toEqual(['Tee-5', 'TEE-5', 'tee-5']);
    expect(prefixSearches('51')).toEqual(['51']);
  });

  it('asks nothing for text no SKU can start with', () => {
    expect(prefixSearches('')).toEqual([]);
    expect(prefixSearches('tee 5')).toEqual([]);
    expect(prefixSearches('tée')).toEqual([]);
  });
});
