// Over real HTTP on loopback: concurrent reservations never oversell, and concurrent retries of one key hold once.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, tenant } from '../../support/http.js';
import type { TestApi } from '../../support/http.js';

const base = `/v1/tenants/${tenant}`;

let api: TestApi;
let url: string;

beforeAll(async () => {
  api = await startTestApi();
  url = await api.listen();
});

afterAll(async () => {
  await api.close();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${api.keys.write}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers };
}

async function sku(name: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}${base}/skus/${name}`, { headers: { authorization: `Bearer ${api.keys.read}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

describe('concurrent reservations over HTTP', () => {
  it('500 holds of 1 unit on 100 units: exactly 100 succeed, 400 are 409, nothing oversold', async () => {
    expect((await post(`${base}/adjustments`, { sku: 'HOT', delta: 100 })).status).toBe(200);
    const answers = await Promise.all(Array.from({ length: 500 }, () =>
      post(`${base}/reservations`, { channel: 'web', lines: [{ sku: 'HOT', quantity: 1 }] })));
    const held = answers.filter((answer) => answer.status === 201);
    const refused = answers.filter((answer) => answer.status === 409);
    expect(held).toHaveLength(100);
    expect(refused).toHaveLength(400);
    expect(new Set(held.map((answer) => answer.body.id)).size).toBe(100);
    for (const answer of refused) expect(answer.body.code).toBe('INSUFFICIENT_STOCK');
    expect(await sku('HOT')).toMatchObject({ onHand: 100, reserved: 100, available: 0 });
  });

  it('50 concurrent retries under one Idempotency-Key hold once and all answer alike', async () => {
    expect((await post(`${base}/adjustments`, { sku: 'RETRY', delta: 10 })).status).toBe(200);
    const answers = await Promise.all(Array.from({ length: 50 }, () =>
      post(`${base}/reservations`, { channel: 'web', lines: [{ sku: 'RETRY', quantity: 3 }] }, { 'idempotency-key': 'flaky-network' })));
    expect(new Set(answers.map((answer) => answer.status))).toEqual(new Set([201]));
    expect(new Set(answers.map((answer) => JSON.stringify(answer.body))).size).toBe(1);
    expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true')).toHaveLength(49);
    expect(await sku('RETRY')).toMatchObject({ reserved: 3, available: 7 });
  });

  it('answers problems with their content type over the wire', async () => {
    const response = await fetch(`${url}${base}/skus/NOPE`, { headers: { authorization: `Bearer ${api.keys.read}` } });
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(await response.json()).toMatchObject({ code: 'UNKNOWN_SKU', status: 404 });
    const unauthenticated = await fetch(`${url}${base}/skus/NOPE`);
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('www-authenticate')).toBe('Bearer realm="stockline"');
  });
});
