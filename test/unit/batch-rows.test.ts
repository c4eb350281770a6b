// The rows a decided batch hands to the writer: an idempotency record put together around its events' JSON
// text is the text JSON.stringify gives for the record, whatever the outcome.

import { describe, expect, it } from 'vitest';
import { eventRow, idempotencyRow } from '../../src/adapters/sqlite/batch-sql.js';
import { execute, initialState } from '../../src/core/index.js';
import type { Command } from '../../src/core/index.js';

describe('idempotencyRow', () => {
  it('gives the text JSON.stringify gives, with the events as the log has them', () => {
    const state = initialState();
    const timeMs = Date.UTC(2026, 11, 7, 9);
    const keyed: Command[] = [
      { type: 'adjust_stock', id: 'a', tenant: 't', timeMs, sku: 'A', location: 'wh', set: 2, idempotencyKey: 'k-adjust' },
      { type: 'reserve', id: 'b', tenant: 't', timeMs, reservationId: 'r-\u00e9"1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 60_000, orderRef: 'o\n1', idempotencyKey: 'k-hold' },
      // Refused: the record holds a rejection and no events.
      { type: 'reserve', id: 'c', tenant: 't', timeMs, reservationId: 'r2', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000, idempotencyKey: 'k-refused' },
      // Two events: the sale and the oversell it makes.
      { type: 'record_sale', id: 'd', tenant: 't', timeMs, reservationId: 'o3', channel: 'pos', lines: [{ sku: 'A', quantity: 3 }], idempotencyKey: 'k-sale' },
    ];
    let position = 0;
    const codes: string[] = [];
    for (const command of keyed) {
      const execution = execute(state, command);
      const rows = execution.outcome.events.map((event) => eventRow({ position: (position += 1), event }));
      const remembered = execution.remembered;
      if (remembered === undefined) throw new Error(`${command.id} has no record`);
      const row = idempotencyRow('t', position, remembered.key, remembered.record, rows.map((eventRowOf) => eventRowOf[3]));
      expect(row).toEqual(['t', position, remembered.key, JSON.stringify(remembered.record), remembered.record.timeMs]);
      expect(JSON.parse(row[3])).toEqual(JSON.parse(JSON.stringify(remembered.record)));
      codes.push(`${execution.outcome.events.length}:${execution.outcome.rejection?.code ?? 'ok'}`);
    }
    expect(codes).toEqual(['1:ok', '1:ok', '0:INSUFFICIENT_STOCK', '2:ok']);
  });
});
