// PostgreSQL change data capture after a move to another server (dump/restore, blue/green): the offset records which
// server the snapshot came from, and positions of another server, which the ledger cannot compare, are refused.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandBus, CommandInput, DeadLetter, SourceOffsets, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';
import type { PostgresSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
import { CdcError } from '../../src/adapters/postgres-cdc/errors.js';
import { PostgresCdcSource } from '../../src/adapters/postgres-cdc/source.js';
import { createThrowawayDatabase, eventually, serverSetting } from '../support/pg.js';
import type { ThrowawayDatabase } from '../support/pg.js';

class LedgerBus implements CommandBus {
  readonly state: LedgerState = initialState();
  private counter = 0;
  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    return commands.map((input) => {
      this.counter += 1;
      return { outcome: execute(this.state, { ...input, id: `cmd-${this.counter}`, timeMs: input.timeMs ?? Date.now() } as Command).outcome };
    });
  }
  onHand(sku: string): number | undefined {
    return this.state.tenants.get('acme')?.skus.get(sku)?.locations.get('main')?.onHand;
  }
}

class MemoryOffsets implements SourceOffsets {
  readonly values = new Map<string, string>();
  get(source: string): string | undefined { return this.values.get(source); }
  set(source: string, value: string): void { this.values.set(source, value); }
}

const run = randomBytes(3).toString('hex');
let database: ThrowawayDatabase;
let systemId: string;
let counter = 0;
const sources: PostgresCdcSource[] = [];

async function sql(text: string): Promise<Array<Record<string, unknown>>> {
  return (await database.client.query(text)).rows as Array<Record<string, unknown>>;
}

async function harness(): Promise<{ bus: LedgerBus; offsets: MemoryOffsets; config: PostgresSourceConfig; newSource(): PostgresCdcSource }> {
  counter += 1;
  const table = `cdcfix_stock_${counter}`;
  await sql(`CREATE TABLE ${table} (tenant text, sku text, location text, qty integer, PRIMARY KEY (tenant, sku, location))`);
  await sql(`INSERT INTO ${table} VALUES ('acme', 'A', 'main', 5)`);
  const name = `cdcfix_${run}_${counter}`;
  const config: PostgresSourceConfig = {
    type: 'postgres', name, connectionString: database.connectionString, table: `public.${table}`,
    columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, slot: name, publication: name,
  };
  const bus = new LedgerBus();
  const offsets = new MemoryOffsets();
  const letters: DeadLetter[] = [];
  const newSource = (): PostgresCdcSource => {
    const source = new PostgresCdcSource({ config, bus, offsets, deadLetters: { deadLetter: (letter) => letters.push(letter) } });
    sources.push(source);
    return source;
  };
  return { bus, offsets, config, newSource };
}

async function slotExists(slot: string): Promise<boolean> {
  return (await database.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount === 1;
}

async function startError(source: PostgresCdcSource): Promise<CdcError> {
  const error = await source.start().then(() => undefined, (thrown: unknown) => thrown);
  if (!(error instanceof CdcError)) throw new Error(`expected a CdcError, got ${String(error)}`);
  return error;
}

beforeAll(async () => {
  if (await serverSetting('wal_level') !== 'logical') throw new Error('PostgreSQL needs wal_level=logical; run scripts/pg-enable-logical.sh first');
  database = await createThrowawayDatabase('cdcfix_server');
  systemId = String((await sql('SELECT system_identifier FROM pg_control_system()'))[0]?.system_identifier);
});

afterAll(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  await database?.drop();
});

describe('the server a source streams from', () => {
  it('is recorded with the snapshot: system identifier and timeline', async () => {
    const h = await harness();
    const source = h.newSource();
    await source.start();
    const offset = JSON.parse(h.offsets.get(source.source) ?? '{}') as Record<string, unknown>;
    expect(offset).toMatchObject({ snapshotDone: true, systemId, timeline: expect.any(Number) as unknown });
    await source.stop();
  });

  it('refuses, without retrying or creating a slot, a server other than the one the snapshot came from', async () => {
    const h = await harness();
    // What the offset says after the table moved here from another cluster, whose positions ran far ahead.
    h.offsets.set(`pg:${h.config.slot}`, JSON.stringify({ snapshotDone: true, consistentPoint: '98765432100', systemId: '7000000000000000001', timeline: 1 }));
    const source = h.newSource();
    const error = await startError(source);
    expect(error).toMatchObject({ code: 'PG_SERVER_CHANGED', retryable: false });
    expect(error.message).toMatch(/system 7000000000000000001.*new slot name/);
    expect(source.status()).toMatchObject({ state: 'failed', applied: 0, stale: 0 });
    expect(await slotExists(h.config.slot)).toBe(false);
    expect(h.bus.onHand('A')).toBeUndefined();
  });

  it('refuses an offset of an earlier version (no system identifier) whose slot is gone and whose positions are ahead of this server', async () => {
    const h = await harness();
    h.offsets.set(`pg:${h.config.slot}`, JSON.stringify({ snapshotDone: true, consistentPoint: '18446744073709551000' }));
    const source = h.newSource();
    expect(await startError(source)).toMatchObject({ code: 'PG_SERVER_CHANGED', retryable: false });
    expect(await slotExists(h.config.slot)).toBe(false);
  });

  it('keeps an offset of an earlier version working where its slot is, and records the server in it', async () => {
    const h = await harness();
    const first = h.newSource();
    await first.start();
    await first.stop();
    const key = `pg:${h.config.slot}`;
    const { consistentPoint } = JSON.parse(h.offsets.get(key) ?? '{}') as { consistentPoint: string };
    h.offsets.set(key, JSON.stringify({ snapshotDone: true, consistentPoint }));
    expect(await eventually(async () => (await database.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [h.config.slot])).rowCount === 0)).toBe(true);
    const again = h.newSource();
    await again.start();
    expect(JSON.parse(h.offsets.get(key) ?? '{}')).toMatchObject({ snapshotDone: true, consistentPoint, systemId });
    await sql(`UPDATE ${h.config.table} SET qty = 2`);
    expect(await eventually(() => h.bus.onHand('A') === 2)).toBe(true);
    await again.stop();
  });
});
