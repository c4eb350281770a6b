// A running `stockline serve` sizes each tenant's idempotency records to its heap: started with a small
// heap (NODE_OPTIONS=--max-old-space-size), it reports the old generation's limit and a bound of a quarter of
// it at a kilobyte a record, and counts the records a tenant keeps.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { metricValue } from '../support/channel-config.js';
import { processAdminKey, startStockline } from '../support/stockline-process.js';
import type { StocklineProcess } from '../support/stockline-process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'stockline-heap-bound-'));
let server: StocklineProcess | undefined;

afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('idempotency records on a running Stockline with a small heap', () => {
  it('are bounded by a quarter of the heap, and counted per tenant', async () => {
    server = await startStockline(['--data-dir', dataDir], { NODE_OPTIONS: '--max-old-space-size=128' });
    const url = server.url;
    // The old generation is what --max-old-space-size sets: the young one is not counted.
    expect(await metricValue(url, 'stockline_heap_old_generation_limit_bytes')).toBe(128 * 2 ** 20);
    expect(await metricValue(url, 'stockline_idempotency_records_max')).toBe(128 * 2 ** 20 / 4 / 1024);
    const used = await metricValue(url, 'stockline_heap_old_generation_used_bytes');
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThan(128 * 2 ** 20);

    const post = async (path: string, body: unknown, key?: string): Promise<number> => (await fetch(`${url}${path}`, {
      method: 'POST', body: JSON.stringify(body),
      headers: { authorization: `Bearer ${processAdminKey}`, 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
    })).status;
    expect(await post('/v1/tenants/keyed/adjustments', { sku: 'A', set: 5 })).toBe(200);
    for (const key of ['k1', 'k2', 'k1']) expect(await post('/v1/tenants/keyed/reservations', { channel: 'web', lines: [{ sku: 'A', quantity: 1 }] }, key)).toBe(201);
    expect(await metricValue(url, 'stockline_idempotency_records', { tenant: 'keyed' })).toBe(2);
  }, 60_000);
});
