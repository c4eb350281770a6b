// The dashboard's incident feed: conflict_detected events in words, newest first, bounded, without repeats.

import { describe, expect, it } from 'vitest';
import { createFeed, describeConflict } from '../../web/feed.js';
import type { FeedEntry } from '../../web/feed.js';

const receivedAtMs = Date.parse('2026-01-01T12:00:00Z');

function conflict(data: Record<string, unknown>, id = 'evt-1'): unknown {
  return { id, type: 'conflict_detected', tenant: 'acme', time: '2026-01-01T11:59:58.000Z', source: 'api', data };
}

describe('describeConflict', () => {
  it('describes an oversell by a channel, with the order', () => {
    expect(describeConflict(conflict({ kind: 'oversell', sku: 'TEE-S', location: 'wh-2', shortfall: 2, channel: 'marketplace', orderRef: 'MP-1' }), receivedAtMs)).toEqual({
      id: 'evt-1', timeMs: Date.parse('2026-01-01T11:59:58.000Z'), kind: 'oversell', sku: 'TEE-S', location: 'wh-2',
      title: 'Oversell', detail: 'marketplace sold 2 units beyond stock (order MP-1)',
    });
  });

  it('describes an oversell from a recount, in the singular', () => {
    expect(describeConflict(conflict({ kind: 'oversell', sku: 'A', location: 'x', shortfall: 1 }), receivedAtMs)?.detail).toBe('A recount left 1 unit sold beyond stock');
  });

  it('describes a refused stale update with both sequences', () => {
    const entry = describeConflict(conflict({ kind: 'stale_sequence', sku: 'MUG', location: 'wh-2', conflictSource: 'pg:erp', appliedSeq: '200', incomingSeq: '150' }), receivedAtMs);
    expect(entry?.title).toBe('Stale update');
    expect(entry?.detail).toBe('Refused an update from pg:erp: sequence 150 is not newer than 200');
  });

  it('accepts the payload alone, timed at arrival', () => {
    const entry = describeConflict({ kind: 'stale_sequence', sku: 'MUG', location: 'wh-2' }, receivedAtMs);
    expect(entry?.timeMs).toBe(receivedAtMs);
    expect(entry?.detail).toBe('Refused an update from a source');
  });

  it('ignores anything that is not a conflict', () => {
    expect(describeConflict(conflict({ kind: 'mystery', sku: 'A', location: 'x' }), receivedAtMs)).toBeUndefined();
    expect(describeConflict(null, receivedAtMs)).toBeUndefined();
    expect(describeConflict({ data: { kind: 'oversell' } }, receivedAtMs)).toBeUndefined();
  });
});

describe('createFeed', () => {
  const entry = (id: string): FeedEntry => ({ id, timeMs: 0, kind: 'oversell', title: 'Oversell', sku: 'A', location: 'x', detail: '' });

  it('keeps the newest entries first, up to its bound', () => {
    const feed = createFeed({ entriesMax: 2 });
    for (const id of ['1', '2', '3']) feed.add(entry(id));
    expect(feed.entries().map((one) => one.id)).toEqual(['3', '2']);
  });

  it('does not add an entry twice (a replay after reconnecting)', () => {
    const feed = createFeed();
    expect(feed.add(entry('1'))).toBe(true);
    expect(feed.add(entry('1'))).toBe(false);
    expect(feed.entries()).toHaveLength(1);
  });
});
