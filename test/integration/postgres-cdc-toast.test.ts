// PostgreSQL change data capture of a soft-delete column whose value is TOASTed: pgoutput does not send an unchanged
// TOASTed value in an UPDATE (default replica identity), and the row must still reach the ledger, with the right flag.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandBus, CommandInput, DeadLetter, SourceOffsets, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';
import type { ColumnMapping, PostgresSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
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
  onHand(sku: string, location: string): number | undefined {
    return this.state.tenants.get('acme')?.skus.get(sku)?.locations.get(location)?.onHand;
  }
  deleted(sku: string): boolean | undefined {
    return this.state.tenants.get('acme')?.skus.get(sku)?.deleted;
  }
}

class MemoryOffsets implements SourceOffsets {
  readonly values = new Map<string, string>();
  get(source: string): string | undefined { return this.values.get(source); }
  set(source: string, value: string): void { this.values.set(source, value); }
}

/** The soft-delete column holds why a SKU was discontinued: any value marks it deleted. */
const mapping: ColumnMapping = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'discontinued' };
/** About 6.6 kB, stored out of line (STORAGE EXTERNAL: no compression), so an UPDATE that leaves it alone sends it as unchanged. */
const longReason = "(SELECT string_agg(md5(g::text), ' ') FROM generate_series(1, 200) g)";
const run = randomBytes(3).toString('hex');
let database: ThrowawayDatabase;
let source: PostgresCdcSource;
const bus = new LedgerBus();
const letters: DeadLetter[] = [];

async function sql(text: string): Promise<void> {
  await database.client.query(text);
}

/** Commits a marker row and waits for it: every change committed before it has then been handled. */
async function settled(marker: string): Promise<void> {
  await sql(`INSERT INTO cdcfix2_toast VALUES ('acme', '${marker}', 'main', 1, NULL)`);
  expect(await eventually(() => bus.onHand(marker, 'main') === 1)).toBe(true);
}

beforeAll(async () => {
  if (await serverSetting('wal_level') !== 'logical') throw new Error('PostgreSQL needs wal_level=logical; run scripts/pg-enable-logical.sh first');
  database = await createThrowawayDatabase('cdcfix2_toast');
  await sql('CREATE TABLE cdcfix2_toast (tenant text, sku text, location text, qty integer, discontinued text, PRIMARY KEY (tenant, sku, location))');
  await sql('ALTER TABLE cdcfix2_toast ALTER COLUMN discontinued SET STORAGE EXTERNAL');
  await sql(`INSERT INTO cdcfix2_toast VALUES ('acme', 'OLD-1', 'main', 5, ${longReason}), ('acme', 'OLD-2', 'main', 3, ${longReason}), ('acme', 'LIVE-1', 'main', 4, NULL)`);
  const name = `cdcfix2_${run}_toast`;
  const config: PostgresSourceConfig = { type: 'postgres', name, connectionString: database.connectionString, table: 'public.cdcfix2_toast', columns: mapping, slot: name, publication: name };
  source = new PostgresCdcSource({ config, bus, offsets: new MemoryOffsets(), deadLetters: { deadLetter: (letter) => letters.push(letter) } });
  await source.start();
});

afterAll(async () => {
  await source?.stop();
  await database?.drop();
});

describe('an UPDATE that leaves a TOASTed soft-delete value unchanged', () => {
  it('applies the stock and leaves the SKU deleted', async () => {
    expect([bus.onHand('OLD-1', 'main'), bus.deleted('OLD-1')]).toEqual([5, true]);
    await sql("UPDATE cdcfix2_toast SET qty = 2 WHERE sku = 'OLD-1'");
    expect(await eventually(() => bus.onHand('OLD-1', 'main') === 2 || letters.length > 0)).toBe(true);
    expect(letters).toEqual([]);
    expect(bus.onHand('OLD-1', 'main')).toBe(2);
    expect(bus.deleted('OLD-1')).toBe(true);
  });

  it('keeps a soft delete made earlier in the same transaction', async () => {
    await sql('BEGIN');
    await sql(`UPDATE cdcfix2_toast SET discontinued = ${longReason} WHERE sku = 'LIVE-1'`);
    await sql("UPDATE cdcfix2_toast SET qty = 1 WHERE sku = 'LIVE-1'");
    await sql('COMMIT');
    await settled('MARK-1');
    expect(letters).toEqual([]);
    expect([bus.onHand('LIVE-1', 'main'), bus.deleted('LIVE-1')]).toEqual([1, true]);
  });

  it('marks the SKU a deleted row moves to as deleted, and empties the old place', async () => {
    await sql("UPDATE cdcfix2_toast SET sku = 'NEW-2' WHERE sku = 'OLD-2'");
    await settled('MARK-2');
    expect(letters).toEqual([]);
    expect([bus.onHand('OLD-2', 'main'), bus.onHand('NEW-2', 'main'), bus.deleted('NEW-2')]).toEqual([0, 3, true]);
  });
});
