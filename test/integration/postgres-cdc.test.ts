// PostgreSQL logical replication into the real ledger: the ledger's stock must equal the table after every change.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandBus, CommandInput, DeadLetter, Submitted } from '../../src/app/ports.js';
import type { Command } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';
import type { LedgerState } from '../../src/core/index.js';
import type { ColumnMapping, PostgresSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
import { PostgresCdcSource } from '../../src/adapters/postgres-cdc/source.js';
import { createThrowawayDatabase, createThrowawayRole, eventually, serverSetting } from '../support/pg.js';
import type { ThrowawayDatabase, ThrowawayRole } from '../support/pg.js';
import { MemoryOffsets } from '../support/ledger-bus.js';
import { startError } from '../support/postgres-cdc.js';

/** Runs the real ledger in memory; can be told to fail before appending, or after it (as a crash before the acknowledgement). */
class LedgerBus implements CommandBus {
  readonly state: LedgerState = initialState();
  readonly accepted: Command[] = [];
  stale = 0;
  crashesAfterAppend = 0;
  crashesBeforeAppend = 0;
  /** Each crashes once, after the append of the first call it matches. */
  crashAfterAppendOf: Array<(commands: CommandInput[]) => boolean> = [];
  beforeAppend: ((commands: CommandInput[]) => Promise<void>) | undefined;
  private counter = 0;

  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }

  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    await this.beforeAppend?.(commands);
    if (this.crashesBeforeAppend > 0) {
      this.crashesBeforeAppend -= 1;
      throw new Error('simulated failure before anything was appended');
    }
    const results = commands.map((input) => {
      this.counter += 1;
      const command = { ...input, id: `cmd-${this.counter}`, timeMs: input.timeMs ?? Date.now() } as Command;
      const { outcome } = execute(this.state, command);
      if (outcome.rejection === undefined) this.accepted.push(command);
      else if (outcome.rejection.code === 'STALE_SEQUENCE') this.stale += 1;
      return { outcome };
    });
    const match = this.crashAfterAppendOf.findIndex((matches) => matches(commands));
    if (match >= 0) this.crashAfterAppendOf.splice(match, 1);
    if (this.crashesAfterAppend > 0 || match >= 0) {
      this.crashesAfterAppend = Math.max(0, this.crashesAfterAppend - 1);
      throw new Error('simulated crash after the append, before the acknowledgement');
    }
    return results;
  }
}

interface Harness {
  table: string;
  bus: LedgerBus;
  letters: DeadLetter[];
  offsets: MemoryOffsets;
  lags: number[];
  source: PostgresCdcSource;
  config: PostgresSourceConfig;
  newSource(): PostgresCdcSource;
}

let database: ThrowawayDatabase;
let role: ThrowawayRole | undefined;
let tableCounter = 0;
const started: PostgresCdcSource[] = [];

const mapping: ColumnMapping = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'deleted_at' };

async function sql(text: string, values: unknown[] = []): Promise<void> {
  await database.client.query(text, values);
}

/** A table with the given column definitions, and a source over it (not started). */
async function harness(columnsSql: string, columns: ColumnMapping = mapping, identityFull = true, connectionString = database.connectionString, partitionBy?: string): Promise<Harness> {
  tableCounter += 1;
  const table = `stock_${tableCounter}`;
  await sql(`CREATE TABLE ${table} (${columnsSql})${partitionBy === undefined ? '' : ` PARTITION BY ${partitionBy}`}`);
  if (identityFull) await sql(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
  const config: PostgresSourceConfig = {
    type: 'postgres', name: `warehouse-${tableCounter}`, connectionString,
    table: `public.${table}`, columns, slot: `stockline_${tableCounter}`, publication: `stockline_${tableCounter}`,
  };
  const bus = new LedgerBus();
  const letters: DeadLetter[] = [];
  const offsets = new MemoryOffsets();
  const lags: number[] = [];
  const newSource = (): PostgresCdcSource => {
    const source = new PostgresCdcSource({ config, bus, offsets, deadLetters: { deadLetter: (letter) => letters.push(letter) }, onLag: (_source, lagMs) => lags.push(lagMs) });
    started.push(source);
    return source;
  };
  return { table, bus, letters, offsets, lags, config, source: newSource(), newSource };
}

const validSku = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const quantityMax = 1_000_000_000;

/** tenant/sku/location -> units, and tenant/sku -> deleted, as the table says (rows the mapping accepts). */
async function tableView(h: Harness): Promise<{ stock: Map<string, number>; deleted: Map<string, boolean> }> {
  const deletedSql = h.config.columns.deletedAt === undefined ? 'false' : 'deleted_at IS NOT NULL';
  const result = await database.client.query<{ tenant: string | null; sku: string | null; location: string; qty: string | null; deleted: boolean }>(
    `SELECT tenant, sku, location, qty::text AS qty, ${deletedSql} AS deleted FROM ${h.table}`);
  const stock = new Map<string, number>();
  const deleted = new Map<string, boolean>();
  for (const row of result.rows) {
    if (row.tenant === null || row.sku === null || !validSku.test(row.sku) || row.qty === null || !/^\d+$/.test(row.qty) || Number(row.qty) > quantityMax) continue;
    stock.set(`${row.tenant}/${row.sku}/${row.location}`, Number(row.qty));
    deleted.set(`${row.tenant}/${row.sku}`, row.deleted);
  }
  return { stock, deleted };
}

/** Differences between the ledger and the table; a location the table no longer has must hold 0. */
async function differences(h: Harness): Promise<string[]> {
  const expected = await tableView(h);
  const diffs: string[] = [];
  const seen = new Set<string>();
  for (const [tenant, tenantState] of h.bus.state.tenants) {
    for (const [sku, skuState] of tenantState.skus) {
      const wantDeleted = expected.deleted.get(`${tenant}/${sku}`);
      if (wantDeleted !== undefined && wantDeleted !== skuState.deleted) diffs.push(`${tenant}/${sku} deleted: ledger ${skuState.deleted}, table ${wantDeleted}`);
      for (const [location, stock] of skuState.locations) {
        const key = `${tenant}/${sku}/${location}`;
        seen.add(key);
        const want = expected.stock.get(key) ?? 0;
        if (stock.onHand !== want) diffs.push(`${key}: ledger ${stock.onHand}, table ${want}`);
      }
    }
  }
  for (const [key, want] of expected.stock) if (!seen.has(key)) diffs.push(`${key}: missing from the ledger, table ${want}`);
  return diffs;
}

async function expectLedgerEqualsTable(h: Harness): Promise<void> {
  await eventually(async () => (await differences(h)).length === 0);
  expect(await differences(h)).toEqual([]);
}

/** No (tenant, sku, location, sequence) was taken twice: redelivery was absorbed. */
function appliedTwice(bus: LedgerBus): string[] {
  const seen = new Set<string>();
  const twice: string[] = [];
  for (const command of bus.accepted) {
    if (command.type !== 'adjust_stock' || command.sourceSeq === undefined) continue;
    const key = `${command.tenant}/${command.sku}/${command.location}@${command.sourceSeq}`;
    if (seen.has(key)) twice.push(key);
    seen.add(key);
  }
  return twice;
}

beforeAll(async () => {
  const level = await serverSetting('wal_level');
  if (level !== 'logical') throw new Error(`PostgreSQL runs with wal_level=${String(level)}; run scripts/pg-enable-logical.sh first`);
  database = await createThrowawayDatabase('stockline_cdc');
});

afterAll(async () => {
  await Promise.all(started.map((source) => source.stop()));
  await database?.drop();
  await role?.drop();
});

/** Stops a source and drops its slot: the server has a fixed number of slots for the whole file. */
async function retire(h: Harness, source: PostgresCdcSource = h.source): Promise<void> {
  await source.stop();
  // The server ends the walsender a moment after the connection closes; the slot is busy until then.
  const released = async (): Promise<boolean> => {
    const result = await database.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [h.config.slot]);
    return result.rowCount === 0;
  };
  expect(await eventually(released)).toBe(true);
  await sql('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [h.config.slot]);
}

const stockColumns = 'id serial PRIMARY KEY, tenant text, sku text, location text NOT NULL, qty numeric, deleted_at timestamptz';

describe('PostgreSQL change data capture', () => {
  it('takes an initial snapshot, records it, and does not take it again on restart', async () => {
    const h = await harness(stockColumns);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'A-1', 'main', 5), ('acme', 'B-2', 'main', 7), ('acme', 'B-2', 'north', 3)`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty, deleted_at) VALUES ('acme', 'GONE', 'main', 1, now())`);
    await h.source.start();
    expect(h.source.status().snapshotDone).toBe(true);
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('GONE')?.deleted).toBe(true);
    const offset = JSON.parse(h.offsets.get(h.source.source) ?? '{}') as { snapshotDone?: boolean; consistentPoint?: string };
    expect(offset.snapshotDone).toBe(true);
    const snapshotSeq = offset.consistentPoint;
    expect(h.bus.accepted.filter((command) => command.type === 'adjust_stock' && command.sourceSeq === snapshotSeq)).toHaveLength(4);

    await h.source.stop();
    const before = h.bus.accepted.length;
    const again = h.newSource();
    await again.start();
    await sql(`UPDATE ${h.table} SET qty = 6 WHERE sku = 'A-1'`);
    await expectLedgerEqualsTable(h);
    expect(h.bus.accepted.slice(before).some((command) => command.type === 'adjust_stock' && command.sourceSeq === snapshotSeq)).toBe(false);
    await again.stop();
  });

  it('follows inserts, updates, soft deletes, restores, hard deletes and multi-row transactions', async () => {
    const h = await harness(stockColumns);
    await h.source.start();
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'SKU-1', 'main', 10), ('acme', 'SKU-2', 'main', 4)`);
    await expectLedgerEqualsTable(h);
    await sql(`UPDATE ${h.table} SET qty = 12 WHERE sku = 'SKU-1'`);
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('SKU-1')?.locations.get('main')?.onHand).toBe(12);

    await sql(`UPDATE ${h.table} SET deleted_at = now() WHERE sku = 'SKU-2'`);
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('SKU-2')?.deleted).toBe(true);
    await sql(`UPDATE ${h.table} SET deleted_at = NULL WHERE sku = 'SKU-2'`);
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('SKU-2')?.deleted).toBe(false);

    await sql(`DELETE FROM ${h.table} WHERE sku = 'SKU-2'`);
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('SKU-2')?.locations.get('main')?.onHand).toBe(0);

    // One transaction touching a row twice, moving another, and inserting and deleting in between.
    await sql('BEGIN');
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'SKU-3', 'main', 1), ('acme', 'SKU-4', 'main', 9)`);
    await sql(`UPDATE ${h.table} SET qty = 20 WHERE sku = 'SKU-1'`);
    await sql(`UPDATE ${h.table} SET qty = 21 WHERE sku = 'SKU-1'`);
    await sql(`UPDATE ${h.table} SET location = 'north' WHERE sku = 'SKU-4'`);
    await sql(`DELETE FROM ${h.table} WHERE sku = 'SKU-3'`);
    await sql('COMMIT');
    await expectLedgerEqualsTable(h);
    const skus = h.bus.state.tenants.get('acme')?.skus;
    expect(skus?.get('SKU-1')?.locations.get('main')?.onHand).toBe(21);
    expect(skus?.get('SKU-4')?.locations.get('north')?.onHand).toBe(9);
    expect(skus?.get('SKU-4')?.locations.get('main')?.onHand).toBe(0);
    expect(h.letters).toEqual([]);

    const status = h.source.status();
    expect(status.connected).toBe(true);
    expect(status.lastLsn).toMatch(/^[1-9][0-9]*$/);
    expect(status.lagMs).not.toBeNull();
    expect(h.lags.length).toBeGreaterThan(0);
    expect(h.lags.every((lag) => Number.isFinite(lag) && lag >= 0)).toBe(true);
  });

  it('applies transactions in commit order, whatever order they began in', async () => {
    const h = await harness(stockColumns);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'ORD', 'main', 1)`);
    await h.source.start();
    const other = new (await import('pg')).default.Client({ connectionString: database.connectionString });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'EARLY', 'main', 1)`);
      await sql(`UPDATE ${h.table} SET qty = 2 WHERE sku = 'ORD'`);
      await other.query(`UPDATE ${h.table} SET qty = 3 WHERE sku = 'ORD'`);
      await other.query('COMMIT');
    } finally {
      await other.end();
    }
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('ORD')?.locations.get('main')?.onHand).toBe(3);
  });

  it('catches up from the slot after a stop', async () => {
    const h = await harness(stockColumns);
    await h.source.start();
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'C-1', 'main', 1)`);
    await expectLedgerEqualsTable(h);
    await h.source.stop();
    await sql(`UPDATE ${h.table} SET qty = 2 WHERE sku = 'C-1'`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'C-2', 'main', 8)`);
    await sql(`UPDATE ${h.table} SET deleted_at = now() WHERE sku = 'C-1'`);
    expect(await differences(h)).not.toEqual([]);
    const again = h.newSource();
    await again.start();
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('C-1')?.deleted).toBe(true);
    await again.stop();
  });

  it('loses nothing and applies nothing twice when the bus fails before the append or between append and acknowledgement', async () => {
    const h = await harness(stockColumns);
    await h.source.start();
    h.bus.crashesBeforeAppend = 1;
    h.bus.crashesAfterAppend = 1;
    // The soft delete's stock is durable, its delete_sku is not: the redelivery must still bring it.
    h.bus.crashAfterAppendOf.push((commands) => commands.some((command) => command.type === 'adjust_stock' && command.sku === 'K-1' && command.set === 5));
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'K-1', 'main', 1), ('acme', 'K-2', 'main', 2)`);
    await sql(`UPDATE ${h.table} SET qty = 5, deleted_at = now() WHERE sku = 'K-1'`);
    await sql(`UPDATE ${h.table} SET qty = 6 WHERE sku = 'K-2'`);
    await expectLedgerEqualsTable(h);
    expect(await eventually(() => h.bus.crashesAfterAppend === 0 && h.bus.crashesBeforeAppend === 0 && h.bus.crashAfterAppendOf.length === 0 && h.source.status().connected)).toBe(true);
    expect(h.bus.stale).toBeGreaterThan(0);
    expect(appliedTwice(h.bus)).toEqual([]);
    expect(h.bus.state.tenants.get('acme')?.skus.get('K-1')?.deleted).toBe(true);
    expect(h.source.status().reconnects).toBeGreaterThan(0);
    expect(h.letters).toEqual([]);

    // And a full restart after the last crash still agrees.
    await h.source.stop();
    await sql(`UPDATE ${h.table} SET qty = 7 WHERE sku = 'K-2'`);
    const again = h.newSource();
    await again.start();
    await expectLedgerEqualsTable(h);
    expect(appliedTwice(h.bus)).toEqual([]);
    await again.stop();
  });

  it('reconnects on its own when the server ends the replication connection', async () => {
    const h = await harness(stockColumns);
    await h.source.start();
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'T-1', 'main', 1)`);
    await expectLedgerEqualsTable(h);
    await sql('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1', [h.config.slot]);
    await sql(`UPDATE ${h.table} SET qty = 2 WHERE sku = 'T-1'`);
    await expectLedgerEqualsTable(h);
    expect(h.source.status().reconnects).toBe(1);
    expect(h.source.status().lastError?.code).toBe('PG_CONNECTION');
  });

  it('backs off a stream the server refuses right after it starts, instead of reconnecting at the first delay for ever', async () => {
    const h = await harness(stockColumns);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'P-1', 'main', 1)`);
    const source = new PostgresCdcSource({ config: h.config, bus: h.bus, offsets: h.offsets, deadLetters: { deadLetter: () => undefined }, random: () => 0 });
    started.push(source);
    await source.start();
    // Made again by the source at its next start, the publication is newer than the slot's position: the server then
    // refuses every stream from that slot as soon as it decodes a change, after answering with a keepalive.
    await sql(`DROP PUBLICATION ${h.config.publication}`);
    await sql(`UPDATE ${h.table} SET qty = 2 WHERE sku = 'P-1'`);
    expect(await eventually(() => source.status().reconnects >= 2, 15_000)).toBe(true);
    const from = source.status().reconnects;
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    // Delays of 125, 250, 500, 1000 and 2000 ms: a handful of attempts, not one every 125 ms (about 30).
    expect(source.status().reconnects - from).toBeLessThanOrEqual(8);
    await source.stop();
    await sql('SELECT pg_drop_replication_slot($1)', [h.config.slot]).catch(() => undefined);
  });

  it('refuses a slot another ledger made, leaving it to that ledger, which loses nothing', async () => {
    const h = await harness(stockColumns);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'T-1', 'main', 1)`);
    await h.source.start();
    await expectLedgerEqualsTable(h);
    await h.source.stop();
    await sql(`UPDATE ${h.table} SET qty = 4242 WHERE sku = 'T-1'`);
    // A second Stockline with the same configuration: another ledger, with no record of this slot.
    const other = new LedgerBus();
    const intruder = new PostgresCdcSource({ config: h.config, bus: other, offsets: new MemoryOffsets(), deadLetters: { deadLetter: () => undefined } });
    started.push(intruder);
    const refused = await startError(intruder);
    expect(refused).toMatchObject({ code: 'PG_SLOT_MISMATCH', retryable: false });
    expect(refused.message).toContain(`replication slot ${h.config.slot} exists, but this ledger did not make it`);
    expect(other.accepted).toEqual([]);
    const again = h.newSource();
    await again.start();
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('T-1')?.locations.get('main')?.onHand).toBe(4242);
    await retire(h, again);
  });

  it('redoes a snapshot interrupted by a crash, and still sees rows deleted in between', async () => {
    const h = await harness(stockColumns);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'S-1', 'main', 1), ('acme', 'S-2', 'main', 2), ('acme', 'S-3', 'main', 3)`);
    let crashed = false;
    h.bus.beforeAppend = async () => {
      if (crashed) return;
      crashed = true;
      h.bus.crashesAfterAppend = 1;
      // Changed after the first snapshot, before the second one: S-2's row is gone, S-3 changed.
      await sql(`DELETE FROM ${h.table} WHERE sku = 'S-2'`);
      await sql(`UPDATE ${h.table} SET qty = 30 WHERE sku = 'S-3'`);
    };
    await h.source.start();
    expect(crashed).toBe(true);
    expect(h.source.status().snapshotDone).toBe(true);
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('acme')?.skus.get('S-2')?.locations.get('main')?.onHand).toBe(0);
    expect(appliedTwice(h.bus)).toEqual([]);
    const slots = await database.client.query(`SELECT slot_name FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE '${h.config.slot}%'`);
    expect(slots.rows.map((row) => row.slot_name as string)).toEqual([h.config.slot]);
  });

  it('says with a dead letter that the table was truncated, and leaves the stock as it was', async () => {
    const h = await harness(stockColumns);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'TR-1', 'main', 6)`);
    await h.source.start();
    await sql(`TRUNCATE ${h.table}`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'TR-2', 'main', 1)`);
    expect(await eventually(() => h.bus.state.tenants.get('acme')?.skus.get('TR-2')?.locations.get('main')?.onHand === 1)).toBe(true);
    expect(h.letters.map((letter) => letter.reason)).toEqual(['TRUNCATE is not applied to the ledger: the stock of the truncated rows is unchanged']);
    expect(h.bus.state.tenants.get('acme')?.skus.get('TR-1')?.locations.get('main')?.onHand).toBe(6);
    await retire(h);
  });

  it('sends malformed rows to dead letters and keeps streaming', async () => {
    const h = await harness(stockColumns);
    await h.source.start();
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', NULL, 'main', 1)`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'has space', 'main', 1)`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'NEG', 'main', -1)`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'HALF', 'main', 1.5)`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'HUGE', 'main', 1000000001)`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES (NULL, 'NOTENANT', 'main', 1)`);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'FINE', 'main', 3)`);
    await expectLedgerEqualsTable(h);
    expect(await eventually(() => h.letters.length === 6)).toBe(true);
    const reasons = h.letters.map((letter) => letter.reason);
    expect(reasons[0]).toMatch(/sku \(column sku\) is NULL/);
    expect(reasons[1]).toMatch(/does not match/);
    expect(reasons[2]).toMatch(/-1: it must be within 0\.\./);
    expect(reasons[3]).toMatch(/not a whole number/);
    expect(reasons[4]).toMatch(/1000000001: it must be within/);
    expect(reasons[5]).toMatch(/tenant \(column tenant\) is NULL/);
    expect(h.letters.every((letter) => letter.source === h.source.source && Number.isFinite(letter.timeMs))).toBe(true);
    expect((h.letters[2]?.payload as { row: { sku: string } }).row.sku).toBe('NEG');
    expect(h.source.status().deadLetters).toBe(6);
    expect(h.bus.state.tenants.get('acme')?.skus.has('NEG')).toBe(false);
    expect(h.bus.state.tenants.get('acme')?.skus.get('FINE')?.locations.get('main')?.onHand).toBe(3);
  });

  it('keeps two tenants of one table apart', async () => {
    const h = await harness(stockColumns);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'SAME', 'main', 5), ('globex', 'SAME', 'main', 50)`);
    await h.source.start();
    await sql(`UPDATE ${h.table} SET qty = 4 WHERE tenant = 'acme'`);
    await sql(`UPDATE ${h.table} SET deleted_at = now() WHERE tenant = 'globex'`);
    await expectLedgerEqualsTable(h);
    const acme = h.bus.state.tenants.get('acme')?.skus.get('SAME');
    const globex = h.bus.state.tenants.get('globex')?.skus.get('SAME');
    expect(acme?.locations.get('main')?.onHand).toBe(4);
    expect(acme?.deleted).toBe(false);
    expect(globex?.locations.get('main')?.onHand).toBe(50);
    expect(globex?.deleted).toBe(true);
  });

  it('maps hard deletes through a primary key on (tenant, sku, location)', async () => {
    const keyed = await harness('tenant text, sku text, location text, qty integer, PRIMARY KEY (tenant, sku, location)',
      { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, false);
    await keyed.source.start();
    await sql(`INSERT INTO ${keyed.table} VALUES ('acme', 'P-1', 'main', 3)`);
    await expectLedgerEqualsTable(keyed);
    await sql(`DELETE FROM ${keyed.table} WHERE sku = 'P-1'`);
    await expectLedgerEqualsTable(keyed);
    expect(keyed.bus.state.tenants.get('acme')?.skus.get('P-1')?.locations.get('main')?.onHand).toBe(0);
  });

  it('refuses a replica identity that leaves out a mapped tenant, SKU or location column, and names the fix', async () => {
    const byId = await harness('id serial PRIMARY KEY, sku text, qty integer',
      { tenantConstant: 'acme', sku: 'sku', locationConstant: 'main', onHand: 'qty' }, false);
    const error = await startError(byId.source);
    expect(error).toMatchObject({ code: 'PG_NO_REPLICA_IDENTITY', retryable: false });
    expect(error.message).toMatch(/primary key \(id\) does not include the mapped column\(s\) sku/);
    expect(error.message).toMatch(/REPLICA IDENTITY FULL/);
    expect(byId.source.status().state).toBe('failed');

    const partial = await harness('tenant text, sku text, location text, qty integer, PRIMARY KEY (sku, location)',
      { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, false);
    expect((await startError(partial.source)).message).toMatch(/does not include the mapped column\(s\) tenant/);

    // With FULL, or with constants for what the key leaves out, the same tables are fine.
    const full = await harness('id serial PRIMARY KEY, sku text, qty integer',
      { tenantConstant: 'acme', sku: 'sku', locationConstant: 'main', onHand: 'qty' }, true);
    await full.source.start();
    await retire(full);
    const constants = await harness('tenant text, sku text, location text, qty integer, PRIMARY KEY (sku, location)',
      { tenantConstant: 'acme', sku: 'sku', location: 'location', onHand: 'qty' }, false);
    await constants.source.start();
    await retire(constants);
  });

  it('dead-letters updates and deletes it cannot place when the replica identity is narrowed after setup', async () => {
    const h = await harness('id serial PRIMARY KEY, tenant text, sku text, location text, qty integer',
      { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, true);
    await sql(`INSERT INTO ${h.table} (tenant, sku, location, qty) VALUES ('acme', 'M-1', 'main', 4)`);
    await h.source.start();
    await expectLedgerEqualsTable(h);
    await sql(`ALTER TABLE ${h.table} REPLICA IDENTITY DEFAULT`);
    await sql(`UPDATE ${h.table} SET location = 'north' WHERE sku = 'M-1'`);
    await sql(`DELETE FROM ${h.table} WHERE sku = 'M-1'`);
    expect(await eventually(() => h.letters.length === 2)).toBe(true);
    expect(h.letters[0]?.reason).toMatch(/UPDATE whose move .* cannot be checked.*REPLICA IDENTITY FULL/);
    expect((h.letters[0]?.payload as { op: string; row: { location: string } })).toMatchObject({ op: 'update', row: { location: 'north' } });
    expect(h.letters[1]?.reason).toMatch(/REPLICA IDENTITY FULL/);
    // Nothing half-applied: the old place is not silently kept while the new one is set.
    const sku = h.bus.state.tenants.get('acme')?.skus.get('M-1');
    expect(sku?.locations.get('main')?.onHand).toBe(4);
    expect(sku?.locations.has('north')).toBe(false);
    await retire(h);
  });

  it('acknowledges an idle slot so it does not hold WAL', async () => {
    const h = await harness(stockColumns);
    await h.source.start();
    await sql('CREATE TABLE unrelated (n integer)');
    await sql('INSERT INTO unrelated SELECT generate_series(1, 1000)');
    const target = (await database.client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn as string;
    const confirmedPast = async (): Promise<boolean> => {
      const result = await database.client.query<{ past: boolean }>(
        'SELECT confirmed_flush_lsn >= $2::pg_lsn AS past FROM pg_replication_slots WHERE slot_name = $1', [h.config.slot, target]);
      return result.rows[0]?.past === true;
    };
    expect(await eventually(confirmedPast)).toBe(true);
    expect(h.source.status().lagMs).toBe(0);
  });

  it('refuses a table whose UPDATEs publishing would break, or whose columns do not match, without retrying', async () => {
    const keyless = await harness('sku text, qty integer', { tenantConstant: 'acme', sku: 'sku', locationConstant: 'main', onHand: 'qty' }, false);
    const error = await startError(keyless.source);
    expect(error).toMatchObject({ code: 'PG_NO_REPLICA_IDENTITY', retryable: false });
    expect(keyless.source.status().state).toBe('failed');
    const publications = await database.client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [keyless.config.publication]);
    expect(publications.rowCount).toBe(0);
    await sql(`UPDATE ${keyless.table} SET qty = 1`);

    const misnamed = await harness(stockColumns, { ...mapping, onHand: 'quantity' });
    expect(await startError(misnamed.source)).toMatchObject({ code: 'PG_COLUMN_MISSING', retryable: false });
  });

  it('refuses an existing publication that would miss changes: operations, columns or rows left out', async () => {
    const keyedColumns = 'tenant text, sku text, location text, qty integer, note text, PRIMARY KEY (tenant, sku, location)';
    const keyedMapping: ColumnMapping = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' };
    const insertsOnly = await harness(keyedColumns, keyedMapping, false);
    await sql(`CREATE PUBLICATION ${insertsOnly.config.publication} FOR TABLE ${insertsOnly.table} WITH (publish = 'insert')`);
    const error = await startError(insertsOnly.source);
    expect(error).toMatchObject({ code: 'PG_SLOT_MISMATCH', retryable: false });
    expect(error.message).toMatch(/does not publish update, delete.*SET \(publish = 'insert, update, delete'\)/);
    expect(insertsOnly.source.status().state).toBe('failed');

    const someColumns = await harness(keyedColumns, keyedMapping, false);
    await sql(`CREATE PUBLICATION ${someColumns.config.publication} FOR TABLE ${someColumns.table} (tenant, sku, location)`);
    expect(await startError(someColumns.source)).toMatchObject({ code: 'PG_SLOT_MISMATCH', message: expect.stringMatching(/does not publish column\(s\) qty/) });

    const someRows = await harness(keyedColumns, keyedMapping, false);
    await sql(`CREATE PUBLICATION ${someRows.config.publication} FOR TABLE ${someRows.table} WHERE (qty > 0)`);
    expect(await startError(someRows.source)).toMatchObject({ code: 'PG_SLOT_MISMATCH', message: expect.stringMatching(/publishes only the rows .* WHERE/) });

    // A column list with every mapped column (and TRUNCATE published or not) is fine.
    const enough = await harness(keyedColumns, keyedMapping, false);
    await sql(`CREATE PUBLICATION ${enough.config.publication} FOR TABLE ${enough.table} (tenant, sku, location, qty)`);
    await enough.source.start();
    await sql(`INSERT INTO ${enough.table} VALUES ('acme', 'E-1', 'main', 2, 'x')`);
    await sql(`UPDATE ${enough.table} SET qty = 1 WHERE sku = 'E-1'`);
    await expectLedgerEqualsTable(enough);
    await retire(enough);
  });

  it('publishes a partitioned table as itself, and refuses a publication that names only its partitions', async () => {
    const partitionedColumns = 'tenant text, sku text, location text, qty integer, PRIMARY KEY (tenant, sku, location)';
    const keyedMapping: ColumnMapping = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' };
    const h = await harness(partitionedColumns, keyedMapping, false, database.connectionString, 'LIST (tenant)');
    await sql(`CREATE TABLE ${h.table}_acme PARTITION OF ${h.table} FOR VALUES IN ('acme')`);
    await sql(`CREATE TABLE ${h.table}_globex PARTITION OF ${h.table} FOR VALUES IN ('globex')`);
    await sql(`INSERT INTO ${h.table} VALUES ('acme', 'PT-1', 'main', 5), ('globex', 'PT-2', 'main', 6)`);
    await h.source.start();
    await expectLedgerEqualsTable(h);
    await sql(`UPDATE ${h.table} SET qty = 4 WHERE sku = 'PT-1'`);
    await sql(`INSERT INTO ${h.table} VALUES ('globex', 'PT-3', 'north', 1)`);
    await sql(`UPDATE ${h.table} SET tenant = 'acme' WHERE sku = 'PT-2'`);
    await sql(`DELETE FROM ${h.table} WHERE sku = 'PT-3'`);
    await expectLedgerEqualsTable(h);
    expect(h.bus.state.tenants.get('globex')?.skus.get('PT-2')?.locations.get('main')?.onHand).toBe(0);
    expect(h.bus.state.tenants.get('acme')?.skus.get('PT-2')?.locations.get('main')?.onHand).toBe(6);
    expect(h.letters).toEqual([]);
    await retire(h);

    const leaves = await harness(partitionedColumns, keyedMapping, false, database.connectionString, 'LIST (tenant)');
    await sql(`CREATE TABLE ${leaves.table}_acme PARTITION OF ${leaves.table} FOR VALUES IN ('acme')`);
    await sql(`CREATE PUBLICATION ${leaves.config.publication} FOR TABLE ${leaves.table}`);
    const error = await startError(leaves.source);
    expect(error).toMatchObject({ code: 'PG_SLOT_MISMATCH', retryable: false });
    expect(error.message).toMatch(/is partitioned.*SET \(publish_via_partition_root = true\)/);
  });

  it('reads character(n) SKUs and locations the same way in the snapshot and the stream', async () => {
    const h = await harness('tenant text, sku char(8), location char(4), qty integer, PRIMARY KEY (tenant, sku, location)',
      { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, false);
    await sql(`INSERT INTO ${h.table} VALUES ('acme', 'TEE-1', 'WH1', 10), ('acme', 'TEE-9', 'WH1', 2)`);
    await h.source.start();
    await sql(`UPDATE ${h.table} SET qty = 3 WHERE sku = 'TEE-1'`);
    await sql(`INSERT INTO ${h.table} VALUES ('acme', 'TEE-2', 'WH1', 5)`);
    await sql(`UPDATE ${h.table} SET location = 'WH2' WHERE sku = 'TEE-2'`);
    await sql(`DELETE FROM ${h.table} WHERE sku = 'TEE-9'`);
    const onHand = (sku: string, location: string): number | undefined => h.bus.state.tenants.get('acme')?.skus.get(sku)?.locations.get(location)?.onHand;
    expect(await eventually(() => onHand('TEE-9', 'WH1') === 0)).toBe(true);
    expect(h.letters).toEqual([]);
    expect(onHand('TEE-1', 'WH1')).toBe(3);
    expect(onHand('TEE-2', 'WH1')).toBe(0);
    expect(onHand('TEE-2', 'WH2')).toBe(5);
    expect([...(h.bus.state.tenants.get('acme')?.skus.keys() ?? [])].sort()).toEqual(['TEE-1', 'TEE-2', 'TEE-9']);
    await retire(h);
  });

  it('reads a boolean soft-delete column as deleted when true, in the snapshot and the stream', async () => {
    const h = await harness('tenant text, sku text, location text, qty integer, is_deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (tenant, sku, location)',
      { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'is_deleted' }, false);
    await sql(`INSERT INTO ${h.table} VALUES ('acme', 'LIVE-1', 'main', 4, false), ('acme', 'GONE-1', 'main', 1, true), ('acme', 'STAYS-1', 'main', 2, false)`);
    await h.source.start();
    await sql(`INSERT INTO ${h.table} VALUES ('acme', 'LIVE-2', 'main', 5, false)`);
    await sql(`UPDATE ${h.table} SET is_deleted = true WHERE sku = 'LIVE-1'`);
    await sql(`UPDATE ${h.table} SET is_deleted = false WHERE sku = 'GONE-1'`);
    const deleted = (sku: string): boolean | undefined => h.bus.state.tenants.get('acme')?.skus.get(sku)?.deleted;
    expect(await eventually(() => deleted('LIVE-1') === true && deleted('GONE-1') === false)).toBe(true);
    expect(deleted('LIVE-2')).toBe(false);
    expect(deleted('STAYS-1')).toBe(false);
    expect(h.letters).toEqual([]);
    await retire(h);
  });

  it('runs as a role with only REPLICATION, SELECT on the table and a publication made for it', async () => {
    role = await createThrowawayRole('stockline_cdc_reader', 'REPLICATION');
    const limited = await harness(stockColumns, mapping, true, role.connectionStringFor(database.connectionString));
    await sql(`INSERT INTO ${limited.table} (tenant, sku, location, qty) VALUES ('acme', 'R-1', 'main', 2)`);
    await sql(`GRANT SELECT ON ${limited.table} TO ${role.name}`);
    // Without the publication, the role may not create one FOR TABLE (it does not own the table).
    expect(await startError(limited.source)).toMatchObject({ code: 'PG_PRIVILEGE', retryable: false });
    await sql(`CREATE PUBLICATION ${limited.config.publication} FOR TABLE ${limited.table}`);
    const again = limited.newSource();
    await again.start();
    await sql(`UPDATE ${limited.table} SET qty = 3 WHERE sku = 'R-1'`);
    await expectLedgerEqualsTable(limited);
    await again.stop();
  });

  it('refuses a role that cannot read the table before it makes a slot, naming the grants to run', async () => {
    const reader = await createThrowawayRole('stockline_cdc_noread', 'REPLICATION');
    try {
      tableCounter += 1;
      const schema = `inventory_${tableCounter}`;
      await sql(`CREATE SCHEMA ${schema}`);
      await sql(`CREATE TABLE ${schema}.stock (tenant text, sku text, location text, qty integer, deleted_at timestamptz, PRIMARY KEY (tenant, sku, location))`);
      await sql(`INSERT INTO ${schema}.stock VALUES ('acme', 'G-1', 'main', 4, NULL)`);
      await sql(`CREATE PUBLICATION stockline_${tableCounter} FOR TABLE ${schema}.stock`);
      const config: PostgresSourceConfig = {
        type: 'postgres', name: `warehouse-${tableCounter}`, connectionString: reader.connectionStringFor(database.connectionString),
        table: `${schema}.stock`, columns: mapping, slot: `stockline_${tableCounter}`, publication: `stockline_${tableCounter}`,
      };
      const bus = new LedgerBus();
      const sourceAs = (): PostgresCdcSource => {
        const source = new PostgresCdcSource({ config, bus, offsets: new MemoryOffsets(), deadLetters: { deadLetter: () => undefined } });
        started.push(source);
        return source;
      };
      const slots = async (): Promise<number> => (await database.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [config.slot])).rowCount ?? 0;
      const noSchema = await startError(sourceAs());
      expect(noSchema).toMatchObject({ code: 'PG_PRIVILEGE', retryable: false });
      expect(noSchema.message).toContain(`GRANT USAGE ON SCHEMA "${schema}" TO "${reader.name}"`);
      expect(noSchema.message).toContain(`GRANT SELECT ON "${schema}"."stock" TO "${reader.name}"`);
      expect(await slots()).toBe(0);
      await sql(`GRANT USAGE ON SCHEMA ${schema} TO ${reader.name}`);
      // A grant of some columns only is not enough: the snapshot reads every mapped one.
      await sql(`GRANT SELECT (tenant, sku, location, qty) ON ${schema}.stock TO ${reader.name}`);
      const noSelect = await startError(sourceAs());
      expect(noSelect).toMatchObject({ code: 'PG_PRIVILEGE', retryable: false });
      expect(noSelect.message).toContain('no SELECT on column deleted_at');
      expect(noSelect.message).not.toContain('USAGE');
      expect(await slots()).toBe(0);
      await sql(`GRANT SELECT ON ${schema}.stock TO ${reader.name}`);
      const source = sourceAs();
      await source.start();
      expect(await eventually(() => bus.state.tenants.get('acme')?.skus.get('G-1')?.locations.get('main')?.onHand === 4)).toBe(true);
      await source.stop();
      expect(await eventually(async () => (await database.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [config.slot])).rowCount === 0)).toBe(true);
      await sql('SELECT pg_drop_replication_slot($1)', [config.slot]);
      await sql(`DROP SCHEMA ${schema} CASCADE`);
    } finally {
      await database.client.query(`DROP OWNED BY ${reader.name}`).catch(() => undefined);
      await reader.drop();
    }
  });
});
