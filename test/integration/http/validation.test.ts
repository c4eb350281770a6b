// Input validation at the edge: unknown fields, wrong types, out-of-range values and oversized bodies are refused, named, and write nothing.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, startTestApi, tenant } from '../../support/http.js';
import type { TestApi } from '../../support/http.js';

const base = `/v1/tenants/${tenant}`;
const cart = { channel: 'web', lines: [{ sku: 'A', quantity: 1 }] };

let api: TestApi;

// Every request here is refused before the engine, so one server serves them all; afterAll checks nothing was written.
beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  expect(api.engine.position()).toBe(0);
  await api.close();
});

interface Case {
  name: string;
  method?: string;
  url?: string;
  body?: unknown;
  headers?: Record<string, string>;
  key?: string;
  error: { in: string; index?: number; pointer: string; message: string | RegExp };
}

const cases: Case[] = [
  { name: 'unknown field', body: { ...cart, colour: 'red' }, error: { in: 'body', pointer: '/colour', message: 'is not allowed (unknown field)' } },
  { name: 'unknown field in a line', body: { channel: 'web', lines: [{ sku: 'A', quantity: 1, size: 'M' }] }, error: { in: 'body', pointer: '/lines/0/size', message: 'is not allowed (unknown field)' } },
  { name: 'missing field', body: { lines: cart.lines }, error: { in: 'body', pointer: '/channel', message: 'is required' } },
  { name: 'string for an integer (no coercion)', body: { channel: 'web', lines: [{ sku: 'A', quantity: '1' }] }, error: { in: 'body', pointer: '/lines/0/quantity', message: 'must be integer' } },
  { name: 'fraction for an integer', body: { ...cart, ttlSeconds: 1.5 }, error: { in: 'body', pointer: '/ttlSeconds', message: 'must be integer' } },
  { name: 'number for a string', body: { ...cart, orderRef: 42 }, error: { in: 'body', pointer: '/orderRef', message: 'must be string' } },
  { name: 'TTL below 1 s', body: { ...cart, ttlSeconds: 0 }, error: { in: 'body', pointer: '/ttlSeconds', message: 'must be >= 1' } },
  { name: 'TTL above 31 days', body: { ...cart, ttlSeconds: 2_678_401 }, error: { in: 'body', pointer: '/ttlSeconds', message: 'must be <= 2678400' } },
  { name: 'zero quantity', body: { channel: 'web', lines: [{ sku: 'A', quantity: 0 }] }, error: { in: 'body', pointer: '/lines/0/quantity', message: 'must be >= 1' } },
  { name: 'quantity above the bound', body: { channel: 'web', lines: [{ sku: 'A', quantity: 1_000_000_001 }] }, error: { in: 'body', pointer: '/lines/0/quantity', message: 'must be <= 1000000000' } },
  { name: 'no lines', body: { channel: 'web', lines: [] }, error: { in: 'body', pointer: '/lines', message: 'must NOT have fewer than 1 items' } },
  {
    name: 'more than 100 lines', body: { channel: 'web', lines: Array.from({ length: 101 }, (_, index) => ({ sku: `S${index}`, quantity: 1 })) },
    error: { in: 'body', pointer: '/lines', message: 'must NOT have more than 100 items' },
  },
  { name: 'malformed channel', body: { ...cart, channel: 'the web' }, error: { in: 'body', pointer: '/channel', message: /must match pattern/ } },
  { name: 'malformed SKU', body: { channel: 'web', lines: [{ sku: '-A', quantity: 1 }] }, error: { in: 'body', pointer: '/lines/0/sku', message: /must match pattern/ } },
  { name: 'array body', body: [cart], error: { in: 'body', pointer: '', message: 'must be object' } },
  { name: 'Idempotency-Key too long', body: cart, headers: { 'idempotency-key': 'k'.repeat(256) }, error: { in: 'header', pointer: '/idempotency-key', message: 'must NOT have more than 255 characters' } },
  { name: 'Idempotency-Key with a space', body: cart, headers: { 'idempotency-key': 'a b' }, error: { in: 'header', pointer: '/idempotency-key', message: /must match pattern/ } },
  { name: 'adjustment with both delta and set', url: `${base}/adjustments`, body: { sku: 'A', delta: 1, set: 2 }, error: { in: 'body', pointer: '/delta', message: 'give exactly one of delta and set' } },
  { name: 'adjustment with a sequence on a delta', url: `${base}/adjustments`, body: { sku: 'A', delta: 1, sourceSeq: '5' }, error: { in: 'body', pointer: '/sourceSeq', message: 'is only allowed with set' } },
  { name: 'negative set', url: `${base}/adjustments`, body: { sku: 'A', set: -1 }, error: { in: 'body', pointer: '/set', message: 'must be >= 0' } },
  { name: 'malformed sequence', url: `${base}/adjustments`, body: { sku: 'A', set: 1, sourceSeq: '0x10' }, error: { in: 'body', pointer: '/sourceSeq', message: /must match pattern/ } },
  { name: 'unknown field in a batch item', url: `${base}/adjustments`, body: { adjustments: [{ sku: 'A', delta: 1 }, { sku: 'A', delta: 1, why: 'x' }] }, error: { in: 'body', index: 1, pointer: '/adjustments/1/why', message: 'is not allowed (unknown field)' } },
  {
    name: 'more than 1000 adjustments', url: `${base}/adjustments`, body: { adjustments: Array.from({ length: 1001 }, () => ({ sku: 'A', delta: 1 })) },
    error: { in: 'body', pointer: '/adjustments', message: 'must NOT have more than 1000 items' },
  },
  { name: 'Idempotency-Key on a batch', url: `${base}/adjustments`, body: { adjustments: [{ sku: 'A', delta: 1 }] }, headers: { 'idempotency-key': 'k1' }, error: { in: 'header', pointer: '/idempotency-key', message: 'applies to single adjustments only, not to batches' } },
  { name: 'empty channel locations', method: 'PUT', url: `${base}/channels/web`, body: { locations: [] }, error: { in: 'body', pointer: '/locations', message: 'must NOT have fewer than 1 items' } },
  { name: 'repeated channel locations', method: 'PUT', url: `${base}/channels/web`, body: { locations: ['a', 'a'] }, error: { in: 'body', pointer: '/locations', message: /must NOT have duplicate items/ } },
  { name: 'negative buffer', method: 'PUT', url: `${base}/channels/web`, body: { bufferUnits: -1 }, error: { in: 'body', pointer: '/bufferUnits', message: 'must be >= 0' } },
  { name: 'unknown release reason', url: `${base}/reservations/r1/release`, body: { reason: 'expired' }, error: { in: 'body', pointer: '/reason', message: 'must be one of "released", "cancelled"' } },
  { name: 'query limit not a number', method: 'GET', url: `${base}/skus?limit=ten`, error: { in: 'query', pointer: '/limit', message: 'must be integer' } },
  { name: 'query limit above 1000', method: 'GET', url: `${base}/events?limit=1001`, error: { in: 'query', pointer: '/limit', message: 'must be <= 1000' } },
  { name: 'unknown query parameter', method: 'GET', url: `${base}/skus?sort=desc`, error: { in: 'query', pointer: '/sort', message: 'is not allowed (unknown field)' } },
  { name: 'malformed tenant in the path', method: 'GET', url: '/v1/tenants/ACME/skus', key: 'admin', error: { in: 'path', pointer: '/tenant', message: /must match pattern/ } },
  { name: 'malformed Last-Event-ID', method: 'GET', url: `${base}/stream`, headers: { 'last-event-id': 'abc' }, error: { in: 'header', pointer: '/last-event-id', message: /must match pattern/ } },
];

describe('validation', () => {
  it.each(cases)('$name is 400 VALIDATION_FAILED naming the field', async ({ method = 'POST', url = `${base}/reservations`, body, headers, key, error }) => {
    const response = await api.inject(method, url, { body, headers, ...(key === 'admin' ? { key: api.keys.admin } : {}) });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    const problem = json(response);
    expect(problem.code).toBe('VALIDATION_FAILED');
    const errors = problem.errors as Array<{ in: string; pointer: string; message: string }>;
    expect(errors[0]).toMatchObject({ in: error.in, pointer: error.pointer });
    // A batch item's error says which item; others have no index.
    expect((errors[0] as { index?: number }).index).toBe(error.index);
    expect(errors[0]?.message).toMatch(error.message);
    expect(problem.detail).toContain(error.pointer === '' ? '(root)' : error.pointer);
  });

  it('query strings coerce: limit=2 is a number', async () => {
    const response = await api.inject('GET', `${base}/skus?limit=2`);
    expect(response.statusCode).toBe(200);
  });

  it('an oversized body is 413 PAYLOAD_TOO_LARGE with the limit', async () => {
    const response = await api.inject('POST', `${base}/reservations`, { body: { ...cart, orderRef: 'x'.repeat(1_100_000) } });
    expect(response.statusCode).toBe(413);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(json(response)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limitBytes: 1_048_576 });
  });

  it('an event import may be larger than 1 MiB', async () => {
    const event = { id: 'x', type: 'sku_deleted', tenant, time: '2025-01-01T00:00:00Z', source: 'import', data: { sku: 'A' }, pad: 'p'.repeat(2_000) };
    const events = Array.from({ length: 800 }, (_, index) => ({ ...event, id: `x${index}` }));
    const response = await api.inject('POST', `${base}/events`, { key: api.keys.admin, body: { events } });
    expect(response.statusCode).toBe(400);
    expect(json(response)).toMatchObject({ code: 'VALIDATION_FAILED', errors: expect.arrayContaining([{ in: 'body', index: 0, pointer: '/events/0/pad', message: 'is not allowed here (unknown property)' }]) });
    expect((json(response).errors as unknown[]).length).toBe(100);
  });

  it('malformed JSON is 400 MALFORMED_REQUEST', async () => {
    const response = await api.inject('POST', `${base}/reservations`, { body: '{"channel":', headers: { 'content-type': 'application/json' } });
    expect(response.statusCode).toBe(400);
    expect(json(response).code).toBe('MALFORMED_REQUEST');
  });

  it('a body that is not JSON is 415 UNSUPPORTED_MEDIA_TYPE, text/plain included', async () => {
    const response = await api.inject('POST', `${base}/reservations`, { body: 'channel=web', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(response.statusCode).toBe(415);
    expect(json(response).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const text = await api.inject('POST', `${base}/adjustments`, { body: '{"sku":"A","delta":1}', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    expect(json(text).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('optional bodies', () => {
  it('a POST with Content-Type: application/json and no body reads as no body', async () => {
    const commit = await api.inject('POST', `${base}/reservations/none/commit`, { headers: { 'content-type': 'application/json' } });
    expect(json(commit).code).toBe('UNKNOWN_RESERVATION');
    const reserve = await api.inject('POST', `${base}/reservations`, { headers: { 'content-type': 'application/json' } });
    expect(json(reserve)).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ in: 'body', pointer: '', message: 'must be object' }] });
  });
});
