// `stockline serve` with a PostgreSQL source: the table's rows become stock readable over HTTP, through a crash.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createThrowawayDatabase, eventually } from '../support/pg.js';
import type { ThrowawayDatabase } from '../support/pg.js';
import { adminHeaders, startStockline } from '../support/stockline-process.js';
import type { StocklineProcess } from '../support/stockline-process.js';

let database: ThrowawayDatabase;
const dataDir = mkdtempSync(join(tmpdir(), 'stockline-cdc-serve-'));
const configFile = join(dataDir, 'stockline.yaml');

beforeAll(async () => {
  database = await createThrowawayDatabase('stockline_cdc_serve');
  await database.client.query(`CREATE TABLE stock_levels (merchant text NOT NULL, sku text NOT NULL, warehouse text NOT NULL,
    quantity integer NOT NULL, discontinued_at timestamptz, PRIMARY KEY (merchant, sku, warehouse))`);
  await database.client.query(`INSERT INTO stock_levels VALUES ('acme', 'TEE-M', 'berlin', 40, NULL), ('acme', 'CAP', 'berlin', 5, NULL), ('globex', 'TEE-M', 'paris', 7, NULL)`);
  writeFileSync(configFile, `sources:
  - type: postgres
    name: warehouse
    connectionString: ${database.connectionString}
    table: stock_levels
    columns: { tenant: merchant, sku: sku, location: warehouse, onHand: quantity, deletedAt: discontinued_at }
    slot: stockline_e2e
    publication: stockline_e2e
`);
}, 60_000);

afterAll(async () => {
  await database?.drop();
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

async function sku(server: StocklineProcess, tenant: string, name: string): Promise<{ onHand: number; deleted: boolean } | undefined> {
  const response = await fetch(`${server.url}/v1/tenants/${tenant}/skus/${name}`, { headers: adminHeaders() });
  return response.status === 200 ? (await response.json()) as { onHand: number; deleted: boolean } : undefined;
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  expect(await eventually(check, 20_000, 50), what).toBe(true);
}

describe('a PostgreSQL stock table feeding a running Stockline', () => {
  it('snapshots, streams, soft-deletes, and catches up after a crash', async () => {
    const first = await startStockline(['--data-dir', dataDir, '--config', configFile]);
    try {
      await until(async () => (await fetch(`${first.url}/readyz`)).status === 200, 'ready once the source is connected');
      await until(async () => (await (await fetch(`${first.url}/metrics`)).text()).includes('stockline_cdc_source_up{source="pg:'), 'the source reported');
      expect(await (await fetch(`${first.url}/metrics`)).text()).toMatch(/^stockline_cdc_source_up\{source="pg:[^"]+"\} 1$/m);
      await until(async () => (await sku(first, 'acme', 'TEE-M'))?.onHand === 40, 'the initial snapshot');
      expect((await sku(first, 'globex', 'TEE-M'))?.onHand).toBe(7);

      await database.client.query(`UPDATE stock_levels SET quantity = 31 WHERE sku = 'TEE-M' AND merchant = 'acme'`);
      await until(async () => (await sku(first, 'acme', 'TEE-M'))?.onHand === 31, 'an update');
      expect((await sku(first, 'globex', 'TEE-M'))?.onHand, 'another tenant is untouched').toBe(7);

      await database.client.query(`UPDATE stock_levels SET discontinued_at = now() WHERE sku = 'CAP'`);
      await until(async () => (await sku(first, 'acme', 'CAP'))?.deleted === true, 'a soft delete');
    } finally {
      await first.stop('SIGKILL');
    }

    // Changes made while Stockline is down are kept by the slot and applied on restart.
    await database.client.query(`UPDATE stock_levels SET quantity = 12 WHERE sku = 'TEE-M' AND merchant = 'acme'`);
    await database.client.query(`UPDATE stock_levels SET discontinued_at = NULL WHERE sku = 'CAP'`);
    await database.client.query(`INSERT INTO stock_levels VALUES ('acme', 'HOODIE', 'berlin', 3, NULL)`);
    const second = await startStockline(['--data-dir', dataDir, '--config', configFile]);
    try {
      await until(async () => (await sku(second, 'acme', 'HOODIE'))?.onHand === 3, 'a row inserted while down');
      expect((await sku(second, 'acme', 'TEE-M'))?.onHand).toBe(12);
      expect((await sku(second, 'acme', 'CAP'))?.deleted).toBe(false);
      const events = await (await fetch(`${second.url}/v1/tenants/acme/events?after=0&limit=1000`, { headers: adminHeaders() })).json() as { events: Array<{ event: { type: string; data: { sku?: string } } }> };
      const teeSets = events.events.filter(({ event }) => event.type === 'stock_adjustment' && event.data.sku === 'TEE-M');
      expect(teeSets.length, 'each change applied once: snapshot, update, update while down').toBe(3);
    } finally {
      await second.stop('SIGTERM');
    }
  }, 120_000);
});
