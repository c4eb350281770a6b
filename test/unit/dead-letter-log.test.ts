// The server's log of dead letters: source, reason and the start of the payload at warn, a bounded number a minute
// per source, and no buyer's details from a marketplace order.

import { describe, expect, it } from 'vitest';
import { deadLetterLog } from '../../src/main.js';

interface Line { fields: Record<string, unknown>; message: string }

function recorder(): { lines: Line[]; logger: { warn(fields: object, message: string): void } } {
  const lines: Line[] = [];
  return { lines, logger: { warn: (fields: object, message: string) => { lines.push({ fields: fields as Record<string, unknown>, message }); } } };
}

describe('deadLetterLog', () => {
  it('logs the source, the reason and the payload, cut to 500 characters', () => {
    const { lines, logger } = recorder();
    const log = deadLetterLog(logger, () => 0);
    log({ source: 'debezium:erp', reason: 'after.qty: must be >= 0', payload: { after: { sku: 'TEE', qty: -5 } }, timeMs: 0 });
    log({ source: 'pg:warehouse', reason: 'sku: too long', payload: { sku: 'x'.repeat(2_000) }, timeMs: 0 });
    expect(lines[0]).toEqual({
      message: 'input set aside as a dead letter',
      fields: { source: 'debezium:erp', reason: 'after.qty: must be >= 0', payload: '{"after":{"sku":"TEE","qty":-5}}' },
    });
    const long = lines[1]?.fields.payload as string;
    expect(long).toHaveLength(501);
    expect(long.endsWith('…')).toBe(true);
  });

  it('leaves out the payload of a channel webhook, which holds the buyer\'s details', () => {
    const { lines, logger } = recorder();
    deadLetterLog(logger, () => 0)({ source: 'shopify:shop', reason: 'line_items: must be an array', payload: { email: 'buyer@example.com' }, timeMs: 0 });
    expect(lines).toEqual([{ message: 'input set aside as a dead letter', fields: { source: 'shopify:shop', reason: 'line_items: must be an array' } }]);
  });

  it('logs at most 100 a source a minute, then how many were not', () => {
    const { lines, logger } = recorder();
    let nowMs = 0;
    const log = deadLetterLog(logger, () => nowMs);
    const letter = (source: string): { source: string; reason: string; payload: unknown; timeMs: number } => ({ source, reason: 'bad', payload: {}, timeMs: nowMs });
    for (let index = 0; index < 250; index += 1) log(letter('pg:warehouse'));
    log(letter('debezium:erp'));
    expect(lines.filter((line) => line.fields.source === 'pg:warehouse')).toHaveLength(100);
    expect(lines[99]?.message).toBe('input set aside as a dead letter; more from pg:warehouse this minute are counted and kept, not logged');
    expect(lines.filter((line) => line.fields.source === 'debezium:erp')).toHaveLength(1);
    nowMs = 60_000;
    log(letter('pg:warehouse'));
    expect(lines.slice(-2)).toEqual([
      { message: 'dead letters were not logged (more than the lines logged a minute); all are kept', fields: { source: 'pg:warehouse', unlogged: 150 } },
      { message: 'input set aside as a dead letter', fields: { source: 'pg:warehouse', reason: 'bad', payload: '{}' } },
    ]);
  });
});
