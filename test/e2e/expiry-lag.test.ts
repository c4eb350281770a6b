// A running `stockline serve` reports how long its expired holds wait to be released: with the expiry ticker at
// its slowest (`ledger.expiryIntervalMs: 60000`, its first tick a minute after the start), a one-second hold
// shows up in stockline_expiry_lag_seconds once due, and a tenant with nothing due has no series.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readMetric } from '../support/channel-config.js';
import { pollUntil } from '../support/prometheus.js';
import { processAdminKey, startStockline } from '../support/stockline-process.js';
import type { StocklineProcess } from '../support/stockline-process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'stockline-expiry-lag-'));
let server: StocklineProcess | undefined;

afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('stockline_expiry_lag_seconds on a running Stockline', () => {
  it('reports a hold past its expiry that no tick released, for its tenant only', async () => {
    const config = join(dataDir, 'stockline.yaml');
    writeFileSync(config, 'ledger: { expiryIntervalMs: 60000 }\n');
    server = await startStockline(['--data-dir', dataDir, '--config', config]);
    const url = server.url;
    const post = async (path: string, body: unknown): Promise<number> => (await fetch(`${url}${path}`, {
      method: 'POST', headers: { authorization: `Bearer ${processAdminKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    })).status;
    expect(await post('/v1/tenants/late/adjustments', { sku: 'A', set: 5 })).toBe(200);
    expect(await post('/v1/tenants/calm/adjustments', { sku: 'A', set: 5 })).toBe(200);
    expect(await post('/v1/tenants/late/reservations', { channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlSeconds: 1 })).toBe(201);
    expect(await post('/v1/tenants/calm/reservations', { channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlSeconds: 3_600 })).toBe(201);
    const samples = await pollUntil('the expired hold to show a lag', async () => {
      const found = await readMetric(url, 'stockline_expiry_lag_seconds');
      return found.some((sample) => sample.value > 0) ? found : undefined;
    }, 15_000);
    expect(samples.map((sample) => sample.labels.tenant)).toEqual(['late']);
  }, 60_000);
});
