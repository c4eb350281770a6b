// Idempotency-Key: a retry returns the first answer (status and body) and changes nothing; a different body is 422.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { json, otherTenant, startTestApi, tenant } from '../../support/http.js';
import type { TestApi } from '../../support/http.js';

const base = `/v1/tenants/${tenant}`;
const cart = { channel: 'web', lines: [{ sku: 'A', quantity: 2 }] };

let api: TestApi;

beforeEach(async () => {
  api = await startTestApi();
  await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 10 } });
});

afterEach(async () => {
  await api.close();
});

async function reservedOf(sku: string): Promise<number> {
  return json(await api.inject('GET', `${base}/skus/${sku}`)).reserved as number;
}

describe('Idempotency-Key', () => {
  it('the same reservation twice: the same answer, held once, the retry marked as replayed', async () => {
    const headers = { 'idempotency-key': 'checkout-1' };
    const first = await api.inject('POST', `${base}/reservations`, { body: cart, headers });
    const second = await api.inject('POST', `${base}/reservations`, { body: cart, headers });
    expect(first.statusCode).toBe(201);
    expect(second.statusCode).toBe(201);
    expect(second.body).toBe(first.body);
    expect(second.headers.location).toBe(first.headers.location);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(await reservedOf('A')).toBe(2);
    const types = (await api.engine.eventsAfter(tenant, 0, 100)).events.map((logged) => logged.event.type);
    expect(types.filter((type) => type === 'order_reserved')).toHaveLength(1);
  });

  it('the same key with a different body is 422 IDEMPOTENCY_KEY_REUSED and changes nothing', async () => {
    const headers = { 'idempotency-key': 'checkout-2' };
    await api.inject('POST', `${base}/reservations`, { body: cart, headers });
    const position = api.engine.position();
    const reused = await api.inject('POST', `${base}/reservations`, { body: { ...cart, lines: [{ sku: 'A', quantity: 3 }] }, headers });
    expect(reused.statusCode).toBe(422);
    expect(reused.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(json(reused)).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', idempotencyKey: 'checkout-2' });
    expect(api.engine.position()).toBe(position);
    expect(await reservedOf('A')).toBe(2);
  });

  it('a refusal is the first answer too: the retry is refused the same way even once stock arrived', async () => {
    const headers = { 'idempotency-key': 'checkout-3' };
    const body = { channel: 'web', lines: [{ sku: 'A', quantity: 50 }] };
    const first = await api.inject('POST', `${base}/reservations`, { body, headers });
    expect(first.statusCode).toBe(409);
    await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 100 } });
    const retry = await api.inject('POST', `${base}/reservations`, { body, headers });
    expect(retry.statusCode).toBe(409);
    expect(retry.body).toBe(first.body);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await reservedOf('A')).toBe(0);
  });

  it('commit, release and fulfil replay their first answer under a key', async () => {
    const { id } = json(await api.inject('POST', `${base}/reservations`, { body: cart })) as { id: string };
    const commit = (key?: string): ReturnType<TestApi['inject']> =>
      api.inject('POST', `${base}/reservations/${id}/commit`, { body: { orderRef: 'o-1' }, headers: key === undefined ? {} : { 'idempotency-key': key } });
    const first = await commit('commit-1');
    const again = await commit('commit-1');
    expect([first.statusCode, again.statusCode]).toEqual([200, 200]);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((await commit()).statusCode).toBe(409);
    const fulfil = (): ReturnType<TestApi['inject']> => api.inject('POST', `${base}/fulfillments`, { body: { reservationId: id }, headers: { 'idempotency-key': 'ship-1' } });
    const shipped = await fulfil();
    const shippedAgain = await fulfil();
    expect([shipped.statusCode, shippedAgain.statusCode]).toEqual([201, 201]);
    expect(shippedAgain.body).toBe(shipped.body);
    expect(json(await api.inject('GET', `${base}/skus/A`))).toMatchObject({ onHand: 8, committed: 0 });
  });

  it('a recorded order under a key is recorded once', async () => {
    const order = { channel: 'amazon', lines: [{ sku: 'A', quantity: 1 }], orderRef: 'AMZ-9' };
    const headers = { 'idempotency-key': 'amazon-AMZ-9' };
    const first = await api.inject('POST', `${base}/orders`, { body: order, headers });
    const second = await api.inject('POST', `${base}/orders`, { body: order, headers });
    expect([first.statusCode, second.statusCode]).toEqual([201, 201]);
    expect(second.body).toBe(first.body);
    expect(json(await api.inject('GET', `${base}/skus/A`))).toMatchObject({ committed: 1 });
  });

  it('a single delta under a key is applied once', async () => {
    const headers = { 'idempotency-key': 'receipt-77' };
    const first = await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 5 }, headers });
    const second = await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 5 }, headers });
    expect(second.body).toBe(first.body);
    expect(json(await api.inject('GET', `${base}/skus/A`))).toMatchObject({ onHand: 15 });
  });

  it('an adjustment retried with the default source written out replays, as one with the default location', async () => {
    const headers = { 'idempotency-key': 'count-12' };
    const first = await api.inject('POST', `${base}/adjustments`, { body: { sku: 'SRC-1', set: 7 }, headers });
    expect(first.statusCode).toBe(200);
    for (const body of [{ sku: 'SRC-1', set: 7, source: 'api' }, { sku: 'SRC-1', set: 7, location: 'default', source: 'api' }]) {
      const again = await api.inject('POST', `${base}/adjustments`, { body, headers });
      expect(again.statusCode, again.body).toBe(200);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body).toBe(first.body);
    }
    const otherSource = await api.inject('POST', `${base}/adjustments`, { body: { sku: 'SRC-1', set: 7, source: 'erp' }, headers });
    expect(otherSource.statusCode).toBe(422);
    expect(json(otherSource).code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('keys belong to a tenant: the same key elsewhere is a new request', async () => {
    const headers = { 'idempotency-key': 'shared' };
    await api.inject('POST', `/v1/tenants/${otherTenant}/adjustments`, { key: api.keys.other, body: { sku: 'A', delta: 10 } });
    const mine = await api.inject('POST', `${base}/reservations`, { body: cart, headers });
    const theirs = await api.inject('POST', `/v1/tenants/${otherTenant}/reservations`, { key: api.keys.other, body: cart, headers });
    expect([mine.statusCode, theirs.statusCode]).toEqual([201, 201]);
    expect(theirs.headers['idempotent-replayed']).toBeUndefined();
  });
});
