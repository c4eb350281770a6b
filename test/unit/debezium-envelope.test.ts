// Debezium change events -> ledger changes, and the file ingestion and CLI around them, against the real ledger.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandInput, DeadLetter } from '../../src/app/ports.js';
import { parseDebeziumEvent } from '../../src/adapters/debezium/envelope.js';
import { ingestDebeziumFile } from '../../src/adapters/debezium/file-source.js';
import type { DebeziumSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
import { validateSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
import { applyChanges } from '../../src/adapters/postgres-cdc/apply.js';
import type { RowChange } from '../../src/adapters/postgres-cdc/row-mapping.js';
import { ingestCommand } from '../../src/cli/ingest.js';
import { LedgerBus } from '../support/ledger-bus.js';

const config: DebeziumSourceConfig = {
  type: 'debezium', name: 'shop', table: 'public.stock',
  columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'deleted_at' },
};

type RowValues = Record<string, unknown>;

function row(sku: string | null, qty: unknown, extra: RowValues = {}): RowValues {
  return { id: 1, tenant: 'acme', sku, location: 'main', qty, deleted_at: null, ...extra };
}

/** Each event is its own transaction unless `txId` says otherwise (as autocommitted statements are). */
function event(op: string, before: RowValues | null, after: RowValues | null, lsn: unknown, table = 'stock', txId: number = typeof lsn === 'number' ? 700_000 + lsn : 750): Record<string, unknown> {
  return {
    before, after, op, ts_ms: 1_700_000_000_100, transaction: null,
    source: { version: '2.7.0.Final', connector: 'postgresql', name: 'shop', ts_ms: 1_700_000_000_000, snapshot: op === 'r' ? 'true' : 'false', db: 'shop', schema: 'public', table, txId, lsn, xmin: null },
  };
}

/** The JSON converter with schemas enabled wraps the same payload. */
function wrapped(payload: unknown): Record<string, unknown> {
  return { schema: { type: 'struct', optional: false, name: 'shop.public.stock.Envelope', fields: [] }, payload };
}

/** When the ledger records every change, so its events are the same on every run. */
const ledgerTimeMs = 1_700_000_000_000;

function changesOf(value: unknown): RowChange[] {
  const result = parseDebeziumEvent(value, config);
  if (result.kind !== 'changes') throw new Error(`expected changes, got ${JSON.stringify(result)}`);
  return result.changes;
}

async function applyEvents(bus: LedgerBus, events: unknown[]): Promise<void> {
  for (const value of events) await applyChanges(bus, changesOf(value));
}

describe('Debezium envelope', () => {
  it('maps a create to a sequenced set and the soft-delete state', () => {
    const [change, ...rest] = changesOf(event('c', null, row('SKU-1', 10), 23_456));
    expect(rest).toEqual([]);
    expect(change?.set).toEqual({ type: 'adjust_stock', tenant: 'acme', sku: 'SKU-1', location: 'main', set: 10, source: 'debezium:shop', sourceSeq: '23456', reason: 'cdc' });
    expect(change?.flag).toEqual({ type: 'restore_sku', tenant: 'acme', sku: 'SKU-1', source: 'debezium:shop' });
    const deleted = changesOf(event('u', null, row('SKU-1', 10, { deleted_at: 1_700_000_000_000_000 }), 23_500));
    expect(deleted[0]?.flag?.type).toBe('delete_sku');
  });

  it('maps an update, and a row that moved location empties its old place', () => {
    expect(changesOf(event('u', null, row('SKU-1', 7), 30_000)).map((change) => change.set)).toMatchObject([{ sku: 'SKU-1', location: 'main', set: 7, sourceSeq: '30000' }]);
    const moved = changesOf(event('u', row('SKU-1', 7), row('SKU-1', 7, { location: 'north' }), 31_000));
    expect(moved.map((change) => [change.set.type === 'adjust_stock' ? change.set.location : '', change.set.type === 'adjust_stock' ? change.set.set : -1])).toEqual([['main', 0], ['north', 7]]);
  });

  it('maps a delete to zero units at that location, from the before image', () => {
    const [change] = changesOf(event('d', row('SKU-1', 7), null, 40_000));
    expect(change?.set).toMatchObject({ type: 'adjust_stock', sku: 'SKU-1', location: 'main', set: 0, sourceSeq: '40000' });
    expect(change?.flag).toBeUndefined();
  });

  it('maps a snapshot read like a create', () => {
    expect(changesOf(event('r', null, row('SKU-9', 3), 10_000))[0]?.set).toMatchObject({ sku: 'SKU-9', set: 3, sourceSeq: '10000' });
  });

  it('reads the same event with or without the schema wrapper, and an LSN given as a string', () => {
    const plain = event('u', null, row('SKU-1', 5), 12_345);
    expect(changesOf(wrapped(plain))).toEqual(changesOf(plain));
    const big = event('u', null, row('SKU-1', 5), '18446744073709551615');
    expect(changesOf(big)[0]?.set).toMatchObject({ sourceSeq: '18446744073709551615' });
  });

  it('skips tombstones, other tables and logical decoding messages', () => {
    expect(parseDebeziumEvent(null, config)).toEqual({ kind: 'skip', reason: 'tombstone' });
    expect(parseDebeziumEvent({ schema: null, payload: null }, config)).toEqual({ kind: 'skip', reason: 'tombstone' });
    expect(parseDebeziumEvent(event('c', null, row('SKU-1', 1), 1, 'orders'), config).kind).toBe('skip');
    expect(parseDebeziumEvent({ op: 'm', source: {}, message: {} }, config).kind).toBe('skip');
  });

  it('dead-letters what it cannot map, with the reason', () => {
    const reasonOf = (value: unknown): string => {
      const result = parseDebeziumEvent(value, config);
      if (result.kind !== 'dead') throw new Error(`expected a dead letter, got ${result.kind}`);
      return result.reason;
    };
    expect(reasonOf(event('c', null, null, 1))).toMatch(/without an after image/);
    expect(reasonOf(event('c', null, row(null, 1), 1))).toMatch(/sku \(column sku\) is NULL/);
    expect(reasonOf(event('c', null, row('bad sku', 1), 1))).toMatch(/does not match/);
    expect(reasonOf(event('c', null, row('SKU-1', -4), 1))).toMatch(/-4: it must be within 0\.\./);
    expect(reasonOf(event('c', null, row('SKU-1', 2.5), 1))).toMatch(/not a whole number/);
    expect(reasonOf(event('c', null, row('SKU-1', 1, { tenant: null }), 1))).toMatch(/tenant \(column tenant\) is NULL/);
    expect(reasonOf(event('c', null, row('SKU-1', 1), undefined))).toMatch(/source\.lsn/);
    expect(reasonOf(event('c', null, row('SKU-1', 1), 2 ** 60))).toMatch(/source\.lsn/);
    expect(reasonOf(event('x', null, row('SKU-1', 1), 1))).toMatch(/not one of c, u, d, r/);
    expect(reasonOf(event('t', null, null, 1))).toMatch(/TRUNCATE/);
    expect(reasonOf(event('d', { id: 1, tenant: null, sku: null, location: null, qty: null, deleted_at: null }, null, 1))).toMatch(/REPLICA IDENTITY FULL/);
    expect(reasonOf(42)).toMatch(/not an object/);
    const dead = parseDebeziumEvent(event('c', null, row('SKU-1', -4), 77), config);
    expect(dead).toMatchObject({ kind: 'dead', payload: { op: 'c', lsn: 77, after: { sku: 'SKU-1', qty: -4 } } });
  });
});

describe('Debezium redelivery through the ledger', () => {
  it('absorbs duplicates and older redeliveries, and an older event cannot flip the deleted flag back', async () => {
    const bus = new LedgerBus({ timeMs: ledgerTimeMs });
    await applyEvents(bus, [
      event('c', null, row('SKU-1', 10), 100),
      event('u', null, row('SKU-1', 7), 200),
      event('u', null, row('SKU-1', 7), 200),
      event('u', null, row('SKU-1', 99), 150),
      event('u', null, row('SKU-1', 6, { deleted_at: 1_700_000_000_000_000 }), 300),
      event('u', null, row('SKU-1', 5), 250),
      event('c', null, row('SKU-1', 10), 100),
    ]);
    expect(bus.onHand('SKU-1')).toBe(6);
    expect(bus.deleted('SKU-1')).toBe(true);
    expect(bus.stale).toBe(4);
  });

  it('an exact redelivery still brings its flag (it may have been lost with a crash)', async () => {
    const bus = new LedgerBus({ timeMs: ledgerTimeMs });
    const soft = event('u', null, row('SKU-2', 3, { deleted_at: 1 }), 500);
    const [change] = changesOf(soft);
    await bus.submitMany([change?.set as CommandInput]);
    expect(bus.deleted('SKU-2')).toBe(false);
    await applyEvents(bus, [soft]);
    expect(bus.deleted('SKU-2')).toBe(true);
  });

  it('a delete after the create leaves zero; the create redelivered after it changes nothing', async () => {
    const bus = new LedgerBus({ timeMs: ledgerTimeMs });
    await applyEvents(bus, [event('c', null, row('SKU-3', 4), 10), event('d', row('SKU-3', 4), null, 20), event('c', null, row('SKU-3', 4), 10)]);
    expect(bus.onHand('SKU-3')).toBe(0);
  });
});

describe('Debezium transactions in which a place changes hands', () => {
  const inTx = (op: string, before: RowValues | null, after: RowValues | null, lsn: number): Record<string, unknown> => event(op, before, after, lsn, 'stock', 900);
  const at = (id: number, location: string, qty: number, sku = 'X'): RowValues => row(sku, qty, { id, location });

  async function ingest(values: unknown[]): Promise<{ bus: LedgerBus; letters: DeadLetter[]; summary: Awaited<ReturnType<typeof ingestDebeziumFile>> }> {
    const bus = new LedgerBus({ timeMs: ledgerTimeMs });
    const letters: DeadLetter[] = [];
    const summary = await ingestDebeziumFile({ path: '-', stdin: Readable.from([`${ndjson(values)}\n`]), config, bus, deadLetters: { deadLetter: (letter) => letters.push(letter) } });
    return { bus, letters, summary };
  }

  it('two rows swapping locations in one transaction leave both locations their new stock', async () => {
    const swap = [inTx('u', at(1, 'main', 5), at(1, 'north', 5), 2000), inTx('u', at(2, 'north', 7), at(2, 'main', 7), 2100)];
    const { bus, summary } = await ingest([event('c', null, at(1, 'main', 5), 1000), event('c', null, at(2, 'north', 7), 1100), ...swap]);
    expect(summary.deadLetters).toBe(0);
    expect({ main: bus.onHand('X', 'main'), north: bus.onHand('X', 'north') }).toEqual({ main: 7, north: 5 });
  });

  it('new counts inserted before the old rows are deleted, in one transaction, stay; the transaction redelivered changes nothing', async () => {
    const reload = [inTx('c', null, at(3, 'main', 9, 'A'), 2000), inTx('c', null, at(4, 'main', 4, 'B'), 2010), inTx('d', at(1, 'main', 5, 'A'), null, 2020), inTx('d', at(2, 'main', 3, 'B'), null, 2030)];
    const { bus, summary } = await ingest([event('c', null, at(1, 'main', 5, 'A'), 1000), event('c', null, at(2, 'main', 3, 'B'), 1100), ...reload, ...reload]);
    expect({ A: bus.onHand('A'), B: bus.onHand('B') }).toEqual({ A: 9, B: 4 });
    expect(summary).toMatchObject({ applied: 4, stale: 2, deadLetters: 0 });
  });

  it('a transaction that goes on past a full batch is still reduced as one', async () => {
    const filler = Array.from({ length: 497 }, (_, index) => event('c', null, at(100 + index, 'main', 1, `F-${index}`), 10 + index));
    const swap = [inTx('u', at(1, 'main', 5), at(1, 'north', 5), 2000), inTx('u', at(2, 'north', 7), at(2, 'main', 7), 2100)];
    const { bus } = await ingest([event('c', null, at(1, 'main', 5), 1000), event('c', null, at(2, 'north', 7), 1100), ...filler, ...swap]);
    expect({ main: bus.onHand('X', 'main'), north: bus.onHand('X', 'north') }).toEqual({ main: 7, north: 5 });
  });

  it('a row moved to a place that cannot be mapped empties its old place and goes to dead letters', async () => {
    const result = parseDebeziumEvent(event('u', row('TEE-1', 5), row('TEE 1', 5), 3000), config);
    expect(result).toMatchObject({ kind: 'changes', dead: { reason: expect.stringMatching(/does not match/) as unknown } });
    const { bus, letters, summary } = await ingest([event('c', null, row('TEE-1', 5), 1000), event('u', row('TEE-1', 5), row('TEE 1', 5), 3000)]);
    expect(bus.onHand('TEE-1')).toBe(0);
    expect(summary.deadLetters).toBe(1);
    expect(letters[0]?.reason).toMatch(/event 2: .*does not match/);
  });
});

const scratch = mkdtempSync(join(tmpdir(), 'stockline-debezium-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function ndjson(values: unknown[]): string {
  return values.map((value) => JSON.stringify(value)).join('\n');
}

describe('Debezium file ingestion', () => {
  const events = [
    wrapped(event('r', null, row('F-1', 5), 100)),
    event('c', null, row('F-2', 2), 110),
    null,
    event('u', null, row('F-1', 4), 120),
    event('u', null, row('F-1', 4), 120),
    event('c', null, row('F-3', -1), 130),
  ];

  it('reads NDJSON with blank lines and a broken line, and counts what happened', async () => {
    const path = join(scratch, 'events.ndjson');
    writeFileSync(path, `${ndjson(events)}\n\n{not json\n`);
    const bus = new LedgerBus({ timeMs: ledgerTimeMs });
    const letters: DeadLetter[] = [];
    const summary = await ingestDebeziumFile({ path, stdin: Readable.from([]), config, bus, deadLetters: { deadLetter: (letter) => letters.push(letter) } });
    expect(summary).toEqual({ events: 7, applied: 3, stale: 1, rejected: 0, deadLetters: 2, skipped: 1 });
    expect(bus.onHand('F-1')).toBe(4);
    expect(bus.onHand('F-2')).toBe(2);
    expect(letters.map((letter) => letter.reason)).toEqual([expect.stringMatching(/event 6: onHand/), expect.stringMatching(/line 8: not JSON/)]);
    expect(letters.every((letter) => letter.source === 'debezium:shop')).toBe(true);
  });

  it('reads a JSON array from stdin, split across chunks', async () => {
    const text = JSON.stringify(events.slice(0, 5));
    const stdin = Readable.from([text.slice(0, 17), text.slice(17, 200), text.slice(200)]);
    const bus = new LedgerBus({ timeMs: ledgerTimeMs });
    const summary = await ingestDebeziumFile({ path: '-', stdin, config, bus, deadLetters: { deadLetter: () => undefined } });
    expect(summary).toEqual({ events: 5, applied: 3, stale: 1, rejected: 0, deadLetters: 0, skipped: 1 });
  });
});

describe('stockline ingest debezium', () => {
  const configFile = join(scratch, 'stockline.yaml');
  writeFileSync(configFile, [
    'sources:',
    '  - type: debezium',
    '    name: shop',
    '    table: public.stock',
    '    columns: { tenant: tenant, sku: sku, location: location, onHand: qty }',
  ].join('\n'));

  function io(stdinText = ''): { io: Parameters<typeof ingestCommand>[1]; out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    return { io: { stdout: (text) => out.push(text), stderr: (text) => err.push(text), stdin: Readable.from([stdinText]) }, out, err };
  }

  it('prints a summary and exits 0 when everything applied or was absorbed', async () => {
    const run = io(ndjson([event('c', null, row('C-1', 1), 1), event('c', null, row('C-1', 1), 1)]));
    const code = await ingestCommand(['debezium', '-', '--config', configFile], run.io, new LedgerBus({ timeMs: ledgerTimeMs }), { deadLetter: () => undefined });
    expect(run.err).toEqual([]);
    expect(code).toBe(0);
    expect(run.out.join('')).toBe('ingested 2 events from stdin: 1 applied, 1 stale (duplicates), 0 dead letters, 0 skipped\n');
  });

  it('exits 1 when any event went to dead letters', async () => {
    const run = io(ndjson([event('c', null, row(null, 1), 1)]));
    const letters: DeadLetter[] = [];
    const code = await ingestCommand(['debezium', '-', '--config', configFile], run.io, new LedgerBus({ timeMs: ledgerTimeMs }), { deadLetter: (letter) => letters.push(letter) });
    expect(code).toBe(1);
    expect(letters).toHaveLength(1);
    expect(run.out.join('')).toMatch(/1 dead letters/);
  });

  it('exits 2 on bad usage, a missing source or an unreadable file', async () => {
    const bus = new LedgerBus({ timeMs: ledgerTimeMs });
    const sink = { deadLetter: () => undefined };
    expect(await ingestCommand(['kafka', '-', '--config', configFile], io().io, bus, sink)).toBe(2);
    expect(await ingestCommand(['debezium', '-', '--config', configFile, '--source', 'other'], io().io, bus, sink)).toBe(2);
    expect(await ingestCommand(['debezium', '-', '--bogus'], io().io, bus, sink)).toBe(2);
    const missing = io();
    expect(await ingestCommand(['debezium', join(scratch, 'nope.ndjson'), '--config', configFile], missing.io, bus, sink)).toBe(2);
    expect(missing.err.join('')).toMatch(/cannot read/);
  });
});

describe('source configuration', () => {
  const postgres = {
    type: 'postgres', name: 'warehouse', connectionString: 'postgres://cdc@127.0.0.1:5432/erp', table: 'inventory.stock',
    columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, slot: 'stockline_wh', publication: 'stockline_wh',
  };
  const messageOf = (value: unknown): string => {
    try {
      validateSourceConfig(value, 'sources[2]');
    } catch (error) {
      return (error as Error).message;
    }
    return 'valid';
  };

  it('accepts both kinds of source', () => {
    expect(validateSourceConfig(postgres, 'sources[0]')).toEqual(postgres);
    expect(validateSourceConfig(config, 'sources[1]')).toEqual(config);
  });

  it('names the key path of what is wrong', () => {
    expect(messageOf({ ...postgres, columns: { tenant: 'tenant', location: 'location', onHand: 'qty' } })).toBe('sources[2].columns.sku: is required');
    expect(messageOf({ ...postgres, columns: { ...postgres.columns, locationConstant: 'main' } })).toBe('sources[2].columns: needs exactly one of location, locationConstant');
    expect(messageOf({ ...postgres, columns: { sku: 'sku', location: 'location', onHand: 'qty' } })).toBe('sources[2].columns: needs exactly one of tenant, tenantConstant');
    expect(messageOf({ ...postgres, slot: 'Has-Caps' })).toMatch(/^sources\[2\]\.slot: "Has-Caps" does not match/);
    expect(messageOf({ ...postgres, temporary: true })).toBe('sources[2].temporary: is not allowed here (unknown key)');
    expect(messageOf({ ...postgres, connectionString: 'mysql://x@y/z' })).toMatch(/^sources\[2\]\.connectionString: /);
    expect(messageOf({ ...config, slot: 'x' })).toBe('sources[2].slot: is not allowed here (unknown key)');
    expect(messageOf({ type: 'oracle' })).toBe('sources[2].type: must be one of "postgres", "debezium"');
    expect(messageOf({ ...postgres, table: 'a.b.c' })).toMatch(/^sources\[2\]\.table: /);
  });

  it('refuses errors as non-retryable with a stable code', () => {
    expect(() => validateSourceConfig({}, 'sources[0]')).toThrow(expect.objectContaining({ code: 'INVALID_SOURCE_CONFIG', retryable: false }));
  });
});
