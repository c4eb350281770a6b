// Imported events are dated no later than the server's clock allows: a date the ledger has not reached would
// hold stock until then and make the tenant forget finished reservations by a clock that is not the ledger's.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { importClockSkewMs } from '../../src/adapters/http/routes/events.js';
import { json, startTestApi, tenant } from '../support/http.js';
import type { TestApi } from '../support/http.js';

const base = `/v1/tenants/${tenant}`;
let api: TestApi;

beforeEach(async () => { api = await startTestApi(); });
afterEach(async () => { await api.close(); });

const at = (ms: number): string => new Date(ms).toISOString();

function hold(id: string, timeMs: number, ttlMs = 15 * 60_000): Record<string, unknown> {
  return {
    id, type: 'order_reserved', tenant, time: at(timeMs), source: 'import',
    data: { reservationId: id, channel: 'web', expiresAt: at(timeMs + ttlMs), lines: [{ sku: 'A', location: 'wh1', quantity: 1 }] },
  };
}

const stock = (timeMs: number): Record<string, unknown> => ({
  id: 'stock', type: 'stock_adjustment', tenant, time: at(timeMs), source: 'import', data: { sku: 'A', location: 'wh1', mode: 'set', delta: 10, onHand: 10 },
});

describe('POST /v1/tenants/{tenant}/events and the dates of its events', () => {
  it('refuses an event dated past the server clock and its allowance, naming it, and imports nothing', async () => {
    const now = Date.now();
    const events = [stock(now - 60_000), hold('next-year', now + 365 * 86_400_000), hold('in-an-hour', now + 3_600_000)];
    const response = await api.inject('POST', `${base}/events`, { key: api.keys.admin, body: { events } });
    expect(response.statusCode).toBe(400);
    const body = json(response);
    expect(body.code).toBe('VALIDATION_FAILED');
    expect(body.errors).toEqual([
      { in: 'body', index: 1, pointer: '/events/1/time', message: expect.stringMatching(/^must not be later than this server's clock \(.+, allowing 5 minutes/) as unknown },
      { in: 'body', index: 2, pointer: '/events/2/time', message: expect.stringContaining('allowing 5 minutes') as unknown },
    ]);
    expect(api.engine.position()).toBe(0);
    expect(api.engine.tenant(tenant)).toBeUndefined();
  });

  it('takes events dated up to the allowance ahead, for clocks that differ, and in the past', async () => {
    const now = Date.now();
    const events = [stock(now - 86_400_000), hold('skewed', now + importClockSkewMs - 30_000), hold('yesterday', now - 3_600_000, 2 * 86_400_000)];
    const response = await api.inject('POST', `${base}/events`, { key: api.keys.admin, body: { events } });
    expect(response.statusCode, response.body).toBe(200);
    expect(json(response)).toMatchObject({ imported: 3 });
    expect([...(api.engine.tenant(tenant)?.reservations.keys() ?? [])].sort()).toEqual(['skewed', 'yesterday']);
  });
});
