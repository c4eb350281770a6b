// Contract of every HTTP route through app.inject(): statuses, body shapes, content types, problems on errors.

import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { Ajv } from 'ajv';
import { channelWebhookRoutes } from '../../../src/adapters/http/routes/channel-webhooks.js';
import type { CommandBus } from '../../../src/app/ports.js';
import { errorCatalogue } from '../../../src/errors.js';
import { json, otherTenant, startTestApi, tenant } from '../../support/http.js';
import type { TestApi } from '../../support/http.js';

const base = `/v1/tenants/${tenant}`;
const jsonType = 'application/json; charset=utf-8';
const problemType = 'application/problem+json; charset=utf-8';

function expectProblem(response: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toBe(problemType);
  const body = json(response);
  expect(body).toMatchObject({ status, code, type: `https://stockline.dev/problems/${code.toLowerCase().replaceAll('_', '-')}` });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  expect(body.instance).toBe(response.raw.req.url?.split('?')[0]);
  return body;
}

function expectJson(response: LightMyRequestResponse, status: number): Record<string, unknown> {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toBe(jsonType);
  return json(response);
}

const shopifySecret = 'shopify-app-secret';

/** The API with the Shopify webhook route beside it, as `stockline serve` mounts it, its commands going to the API's own engine. */
async function startWithShopifyWebhooks(): Promise<TestApi> {
  const started: { api?: TestApi } = {};
  const engine = (): TestApi['engine'] => (started.api as TestApi).engine;
  const bus: CommandBus = { submit: (command) => engine().submit(command), submitMany: (commands) => engine().submitMany(commands) };
  const channels = [{ channel: 'shop', tenant, type: 'shopify' as const, webhookSecret: shopifySecret }];
  started.api = await startTestApi({ plugins: [async (scope) => channelWebhookRoutes(scope, { bus, channels })] });
  return started.api;
}

interface DocumentedResponse {
  description?: string;
  headers?: Record<string, { description?: string; schema?: unknown }>;
  content?: Record<string, unknown>;
}

interface DocumentedOperation {
  security?: unknown[];
  parameters?: Array<{ in: string; name: string; required?: boolean }>;
  requestBody?: { required?: boolean; description?: string; content?: Record<string, unknown> };
  responses?: Record<string, DocumentedResponse>;
}

type OpenApiDocument = { openapi: string; paths: Record<string, Record<string, DocumentedOperation>>; components: { securitySchemes: Record<string, unknown> } };

let api: TestApi;
let nowMs = Date.UTC(2025, 0, 1);

beforeEach(async () => {
  nowMs = Date.UTC(2025, 0, 1);
  api = await startTestApi({ clock: () => nowMs });
});

afterEach(async () => {
  await api.close();
});

async function stock(sku: string, delta: number, location?: string): Promise<void> {
  const response = await api.inject('POST', `${base}/adjustments`, { body: { sku, delta, ...(location === undefined ? {} : { location }) } });
  expect(response.statusCode, response.body).toBe(200);
}

async function reserve(body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return api.inject('POST', `${base}/reservations`, { body, headers });
}

describe('health and documentation', () => {
  it('GET /healthz answers without a key', async () => {
    expect(expectJson(await api.inject('GET', '/healthz', { key: null }), 200)).toEqual({ status: 'ok' });
  });

  it('GET /readyz is 200 while the engine runs and 503 NOT_READY with Retry-After once it closed', async () => {
    expect(expectJson(await api.inject('GET', '/readyz', { key: null }), 200)).toEqual({ status: 'ready', position: 0 });
    await api.engine.close();
    const response = await api.inject('GET', '/readyz', { key: null });
    expectProblem(response, 503, 'NOT_READY');
    expect(response.headers['retry-after']).toBe('1');
  });

  it('GET /openapi.json is OpenAPI 3.1 with every route and the bearer scheme', async () => {
    const document = expectJson(await api.inject('GET', '/openapi.json', { key: null }), 200) as {
      openapi: string; paths: Record<string, Record<string, { security?: unknown[] }>>; components: { securitySchemes: Record<string, unknown> };
    };
    expect(document.openapi).toBe('3.1.0');
    expect(document.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    const routes = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    expect(routes).toEqual(expect.arrayContaining([
      'GET /healthz', 'GET /readyz', 'GET /v1/whoami', 'GET /v1/tenants', 'GET /v1/tenants/{tenant}/skus', 'GET /v1/tenants/{tenant}/skus/{sku}',
      'DELETE /v1/tenants/{tenant}/skus/{sku}', 'POST /v1/tenants/{tenant}/skus/{sku}/restore', 'GET /v1/tenants/{tenant}/availability',
      'POST /v1/tenants/{tenant}/adjustments', 'POST /v1/tenants/{tenant}/reservations', 'GET /v1/tenants/{tenant}/reservations/{id}',
      'POST /v1/tenants/{tenant}/reservations/{id}/commit', 'POST /v1/tenants/{tenant}/reservations/{id}/release',
      'POST /v1/tenants/{tenant}/fulfillments', 'POST /v1/tenants/{tenant}/orders', 'PUT /v1/tenants/{tenant}/channels/{channel}',
      'GET /v1/tenants/{tenant}/channels/{channel}', 'GET /v1/tenants/{tenant}/channels', 'GET /v1/tenants/{tenant}/events',
      'POST /v1/tenants/{tenant}/events', 'GET /v1/tenants/{tenant}/stream',
    ]));
    expect(document.paths['/healthz']?.get?.security).toEqual([]);
    expect(document.paths['/v1/tenants/{tenant}/reservations']?.post?.security).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);
    // The stream alone also takes the key in the query (EventSource cannot send headers), and says so.
    expect(document.components.securitySchemes.accessTokenQuery).toMatchObject({ type: 'apiKey', in: 'query', name: 'access_token' });
    expect(document.paths['/v1/tenants/{tenant}/stream']?.get?.security).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }, { accessTokenQuery: [] }]);
    const queryKeyed = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods)
      .filter(([, operation]) => JSON.stringify(operation.security ?? []).includes('accessTokenQuery')).map(([method]) => `${method} ${path}`));
    expect(queryKeyed).toEqual(['get /v1/tenants/{tenant}/stream']);
    // Every operation that answers 2xx says what it answers; the stream is text, not JSON.
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ at: `${method} ${path}`, ...operation as { responses?: Record<string, unknown>; requestBody?: { required?: boolean } } })));
    for (const { at, responses } of operations) expect(Object.keys(responses ?? {}).some((status) => /^2/.test(status)), at).toBe(true);
    // Routes that read no body as {} do not require one; the others do.
    const bodyRequired = Object.fromEntries(operations.filter((operation) => operation.requestBody !== undefined).map(({ at, requestBody }) => [at, requestBody?.required]));
    expect(bodyRequired).toMatchObject({
      'post /v1/tenants/{tenant}/reservations/{id}/commit': false, 'post /v1/tenants/{tenant}/reservations/{id}/release': false,
      'put /v1/tenants/{tenant}/channels/{channel}': false, 'post /v1/tenants/{tenant}/reservations': true, 'post /v1/tenants/{tenant}/adjustments': true,
    });
    expect(JSON.stringify(document)).not.toContain('x-optional-body');
  });

  it('GET /openapi.json names every operation, each name once, for generated clients', async () => {
    const hooked = await startWithShopifyWebhooks();
    try {
      const document = expectJson(await hooked.inject('GET', '/openapi.json', { key: null }), 200) as { paths: Record<string, Record<string, { operationId?: string }>> };
      const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ at: `${method} ${path}`, id: operation.operationId })));
      for (const { at, id } of operations) expect(id, at).toMatch(/^[a-z][A-Za-z]+$/);
      expect(new Set(operations.map(({ id }) => id)).size).toBe(operations.length);
      expect(Object.fromEntries(operations.map(({ at, id }) => [at, id]))).toMatchObject({
        'post /v1/tenants/{tenant}/reservations': 'createReservation', 'post /v1/tenants/{tenant}/adjustments': 'adjustStock', 'get /v1/tenants/{tenant}/skus/{sku}': 'getSku',
      });
    } finally {
      await hooked.close();
    }
  });

  it('GET /openapi.json describes request bodies in keywords code generators read', async () => {
    const document = expectJson(await api.inject('GET', '/openapi.json', { key: null }), 200) as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>>;
    };
    // if/then/else is read by validators, not by generators, which would see a body with no fields.
    expect(JSON.stringify(document)).not.toMatch(/"(if|then|else)":/);
    const bodyOf = (path: string): Record<string, unknown> => document.paths[path]?.post?.requestBody?.content['application/json']?.schema ?? {};
    const adjustments = bodyOf('/v1/tenants/{tenant}/adjustments');
    const validate = new Ajv({ strict: false }).compile(adjustments);
    for (const accepted of [{ sku: 'A', delta: 1 }, { sku: 'A', location: 'wh1', set: 4, source: 'erp', sourceSeq: '7' }, { adjustments: [{ sku: 'A', delta: 1 }] }]) {
      expect(validate(accepted), JSON.stringify(accepted)).toBe(true);
    }
    for (const refused of [{ adjustments: [] }, { sku: 'A', adjustments: [{ sku: 'A', delta: 1 }] }, { delta: 1 }]) expect(validate(refused), JSON.stringify(refused)).toBe(false);
    const imported = bodyOf('/v1/tenants/{tenant}/events') as { properties: { events: { items: Record<string, unknown> } } };
    expect(imported.properties.events.items).toMatchObject({ type: 'object', additionalProperties: true });
  });

  it('GET /openapi.json documents the problems and the response headers of every route', async () => {
    const hooked = await startWithShopifyWebhooks();
    try {
      const document = expectJson(await hooked.inject('GET', '/openapi.json', { key: null }), 200) as unknown as OpenApiDocument;
      const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ at: `${method} ${path}`, path, ...operation })));
      expect(operations.map(({ at }) => at)).toContain('post /v1/webhooks/shopify/{channel}');
      for (const { at, path, responses = {}, parameters = [] } of operations) {
        // Probes answer 200 or 503 only; every other route can refuse a request, with a problem.
        const problems = Object.entries(responses).filter(([status, response]) => /^4/.test(status) && response.content?.['application/problem+json'] !== undefined);
        if (path !== '/healthz' && path !== '/readyz') expect(problems.length, at).toBeGreaterThan(0);
        const idempotent = parameters.some((parameter) => parameter.in === 'header' && parameter.name === 'idempotency-key');
        // A refusal is replayed too, except an import's: a refused import is remembered by nothing.
        if (idempotent && path !== '/v1/tenants/{tenant}/events') expect(Object.keys(responses['4XX']?.headers ?? {}), at).toContain('Idempotent-Replayed');
        for (const [status, response] of Object.entries(responses)) {
          const headers = Object.keys(response.headers ?? {});
          expect(headers, `${at} ${status}`).toContain('X-Request-Id');
          if (status === '201') expect(headers, `${at} ${status}`).toContain('Location');
          // Every answer a retry can mend says when to retry; a 502 (the channel refused for good) cannot be.
          if (/^5/.test(status) && status !== '502') expect(headers, `${at} ${status}`).toContain('Retry-After');
          if (idempotent && /^2/.test(status)) expect(headers, `${at} ${status}`).toContain('Idempotent-Replayed');
          if (!idempotent) expect(headers, `${at} ${status}`).not.toContain('Idempotent-Replayed');
        }
      }
    } finally {
      await hooked.close();
    }
  });

  it('GET /openapi.json documents the Shopify webhook route: the headers it reads, its body, and every answer with its codes', async () => {
    const hooked = await startWithShopifyWebhooks();
    try {
      const document = expectJson(await hooked.inject('GET', '/openapi.json', { key: null }), 200) as unknown as OpenApiDocument;
      const operation = document.paths['/v1/webhooks/shopify/{channel}']?.post;
      expect(operation?.security).toEqual([]);
      const parameters = operation?.parameters ?? [];
      expect(parameters.filter((parameter) => parameter.in === 'path').map((parameter) => parameter.name)).toEqual(['channel']);
      expect(parameters.filter((parameter) => parameter.in === 'header').map((parameter) => parameter.name.toLowerCase())).toEqual(expect.arrayContaining([
        'x-shopify-hmac-sha256', 'x-shopify-topic', 'x-shopify-shop-domain', 'x-shopify-event-id', 'x-shopify-webhook-id',
      ]));
      // The route answers a missing header itself (401, 400 with a WEBHOOK_* code): the document requires none.
      expect(parameters.filter((parameter) => parameter.in === 'header' && parameter.required === true)).toEqual([]);
      expect(operation?.requestBody?.content?.['application/json']).toBeDefined();
      expect(operation?.requestBody?.description).toMatch(/HMAC/);
      const responses = operation?.responses ?? {};
      expect(Object.keys(responses)).toEqual(expect.arrayContaining(['200', '202', '400', '401', '403', '404', '413', '422', '502', '503', '5XX']));
      expect(responses['200']?.content?.['application/json']).toBeDefined();
      expect(responses['202']?.content?.['application/json']).toBeDefined();
      const webhookCodes = Object.entries(errorCatalogue).filter(([code]) => code.startsWith('WEBHOOK_'));
      expect(webhookCodes.length).toBe(9);
      for (const [code, spec] of webhookCodes) {
        const response = responses[String(spec.status)];
        expect(response?.content?.['application/problem+json'], code).toBeDefined();
        expect(response?.description, code).toContain(code);
      }
    } finally {
      await hooked.close();
    }
  });

  it('documented response headers leave the bodies serialised as they were', async () => {
    const adjusted = await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 3 }, headers: { 'idempotency-key': 'k1' } });
    expect(adjusted.body).toBe('{"sku":"A","location":"default","mode":"delta","delta":3,"onHand":3,"conflicts":[]}');
    const replayed = await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 3 }, headers: { 'idempotency-key': 'k1' } });
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.body).toBe(adjusted.body);
    const held = await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1 }], reservationId: 'r1' });
    expect(held.statusCode).toBe(201);
    // The read's schema has no headers: the same reservation is the same bytes.
    expect(held.body).toBe((await api.inject('GET', `${base}/reservations/r1`)).body);
  });

  it('answers an adjustment and a batch in the shapes the OpenAPI document gives', async () => {
    expect(expectJson(await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 3 } }), 200))
      .toEqual({ sku: 'A', location: 'default', mode: 'delta', delta: 3, onHand: 3, conflicts: [] });
    const batch = expectJson(await api.inject('POST', `${base}/adjustments`, { body: { adjustments: [{ sku: 'A', set: 1 }, { sku: 'A', delta: -5 }] } }), 200);
    expect(batch).toMatchObject({
      applied: 1, rejected: 1,
      results: [
        { index: 0, status: 'applied', sku: 'A', location: 'default', mode: 'set', delta: -2, onHand: 1, conflicts: [] },
        { index: 1, status: 'rejected', error: { code: 'INVALID_QUANTITY', status: 409, onHand: 1, delta: -5 } },
      ],
    });
  });

  it('answers an unknown route with a NOT_FOUND problem', async () => {
    expectProblem(await api.inject('GET', '/v1/nothing-here'), 404, 'NOT_FOUND');
  });

  it('echoes a given X-Request-Id and makes one otherwise', async () => {
    const given = await api.inject('GET', '/healthz', { key: null, headers: { 'x-request-id': 'req-42' } });
    expect(given.headers['x-request-id']).toBe('req-42');
    const made = await api.inject('GET', '/healthz', { key: null, headers: { 'x-request-id': 'has spaces' } });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('identity', () => {
  it('GET /v1/whoami describes the key', async () => {
    expect(expectJson(await api.inject('GET', '/v1/whoami'), 200)).toMatchObject({ tenant, admin: false, scopes: ['read', 'write'] });
    expect(expectJson(await api.inject('GET', '/v1/whoami', { key: api.keys.admin }), 200)).toMatchObject({ tenant: null, admin: true, scopes: ['admin'] });
  });

  it("GET /v1/tenants lists the key's own tenant, or every tenant for an admin key", async () => {
    await stock('A', 1);
    await api.inject('POST', `/v1/tenants/${otherTenant}/adjustments`, { key: api.keys.other, body: { sku: 'A', delta: 1 } });
    expect(expectJson(await api.inject('GET', '/v1/tenants'), 200)).toEqual({ tenants: [tenant] });
    expect(expectJson(await api.inject('GET', '/v1/tenants', { key: api.keys.admin }), 200)).toEqual({ tenants: [tenant, otherTenant] });
  });
});

describe('SKUs', () => {
  it('GET a SKU: totals, per location, per configured channel', async () => {
    await stock('TEE-M', 10, 'wh1');
    await stock('TEE-M', 5, 'wh2');
    await api.inject('PUT', `${base}/channels/web`, { body: { locations: ['wh1'], bufferUnits: 2 } });
    await reserve({ channel: 'web', lines: [{ sku: 'TEE-M', quantity: 3 }] });
    const body = expectJson(await api.inject('GET', `${base}/skus/TEE-M`), 200);
    expect(body).toEqual({
      sku: 'TEE-M', onHand: 15, committed: 0, reserved: 3, available: 12, deleted: false, version: 3,
      locations: { wh1: { onHand: 10, committed: 0, reserved: 3, available: 7 }, wh2: { onHand: 5, committed: 0, reserved: 0, available: 5 } },
      channels: { web: 5 },
    });
  });

  it('GET an unknown SKU is 404 UNKNOWN_SKU', async () => {
    expect(expectProblem(await api.inject('GET', `${base}/skus/NOPE`), 404, 'UNKNOWN_SKU').sku).toBe('NOPE');
  });

  it('reads a SKU with a slash in its id when it is percent-encoded', async () => {
    await stock('cat/tee:m', 4);
    expect(expectJson(await api.inject('GET', `${base}/skus/${encodeURIComponent('cat/tee:m')}`), 200)).toMatchObject({ sku: 'cat/tee:m', onHand: 4 });
  });

  it('lists SKUs in order, a page at a time, with a prefix', async () => {
    for (const sku of ['B-2', 'A-1', 'B-1', 'C-1', 'B-3']) await stock(sku, 1);
    const first = expectJson(await api.inject('GET', `${base}/skus?prefix=B-&limit=2`), 200) as { skus: Array<{ sku: string }>; next: string | null };
    expect(first.skus.map((item) => item.sku)).toEqual(['B-1', 'B-2']);
    expect(first.next).toBe('B-2');
    const second = expectJson(await api.inject('GET', `${base}/skus?prefix=B-&limit=2&after=${first.next}`), 200) as typeof first;
    expect(second).toMatchObject({ skus: [{ sku: 'B-3', onHand: 1, available: 1, deleted: false, channels: {} }], next: null });
    const all = expectJson(await api.inject('GET', `${base}/skus`), 200) as typeof first;
    expect(all.skus.map((item) => item.sku)).toEqual(['A-1', 'B-1', 'B-2', 'B-3', 'C-1']);
    expect(expectJson(await api.inject('GET', `/v1/tenants/${otherTenant}/skus`, { key: api.keys.other }), 200)).toEqual({ skus: [], next: null });
  });

  it('DELETE soft-deletes a SKU (channels sell zero) and restore brings it back', async () => {
    await stock('A', 5);
    await api.inject('PUT', `${base}/channels/web`, { body: {} });
    const deleted = expectJson(await api.inject('DELETE', `${base}/skus/A`), 200);
    expect(deleted).toMatchObject({ sku: 'A', deleted: true, onHand: 5, channels: { web: 0 } });
    expectProblem(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1 }] }), 409, 'SKU_DELETED');
    const restored = expectJson(await api.inject('POST', `${base}/skus/A/restore`), 200);
    expect(restored).toMatchObject({ sku: 'A', deleted: false, channels: { web: 5 } });
  });

  it('DELETE and restore of an unknown SKU are 404 UNKNOWN_SKU', async () => {
    expectProblem(await api.inject('DELETE', `${base}/skus/NOPE`), 404, 'UNKNOWN_SKU');
    expectProblem(await api.inject('POST', `${base}/skus/NOPE/restore`), 404, 'UNKNOWN_SKU');
  });
});

describe('availability', () => {
  it('reads available-to-sell of many SKUs on one channel, unknown SKUs as 0 and flagged', async () => {
    await stock('A', 10, 'wh1');
    await stock('B', 3, 'wh2');
    await api.inject('PUT', `${base}/channels/b2b`, { body: { locations: ['wh1'], bufferUnits: 1, maxUnits: 5 } });
    const body = expectJson(await api.inject('GET', `${base}/availability?skus=A,B,ZZ&channel=b2b`), 200);
    expect(body).toEqual({
      channel: 'b2b',
      skus: [
        { sku: 'A', availableToSell: 5, known: true, deleted: false },
        { sku: 'B', availableToSell: 0, known: true, deleted: false },
        { sku: 'ZZ', availableToSell: 0, known: false, deleted: false },
      ],
    });
  });

  it('a channel never configured sells from every location with no buffer', async () => {
    await stock('A', 10, 'wh1');
    await stock('A', 3, 'wh2');
    expect(expectJson(await api.inject('GET', `${base}/availability?skus=A&channel=never-seen`), 200)).toMatchObject({ skus: [{ sku: 'A', availableToSell: 13 }] });
    expect(expectJson(await api.inject('GET', `${base}/availability?skus=A`), 200)).toMatchObject({ channel: null, skus: [{ availableToSell: 13 }] });
  });

  it('refuses more than 100 SKUs and malformed ones, naming the parameter', async () => {
    const many = Array.from({ length: 101 }, (_, index) => `S${index}`).join(',');
    expect(expectProblem(await api.inject('GET', `${base}/availability?skus=${many}`), 400, 'VALIDATION_FAILED').errors)
      .toEqual([{ in: 'query', pointer: '/skus', message: 'must list at most 100 SKUs' }]);
    const bad = expectProblem(await api.inject('GET', `${base}/availability?skus=A,,B`), 400, 'VALIDATION_FAILED');
    expect(bad.errors).toEqual([expect.objectContaining({ in: 'query', pointer: '/skus', index: 1 })]);
  });
});

describe('adjustments', () => {
  it('applies a delta at the default location', async () => {
    const body = expectJson(await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 12, reason: 'received' } }), 200);
    expect(body).toEqual({ sku: 'A', location: 'default', mode: 'delta', delta: 12, onHand: 12, conflicts: [] });
  });

  it('applies a set with a sequence; an older sequence is 409 STALE_SEQUENCE and the conflict is logged', async () => {
    const set = { sku: 'A', location: 'wh1', set: 40, source: 'erp', sourceSeq: '100' };
    expect(expectJson(await api.inject('POST', `${base}/adjustments`, { body: set }), 200)).toMatchObject({ mode: 'set', onHand: 40, delta: 40 });
    const stale = expectProblem(await api.inject('POST', `${base}/adjustments`, { body: { ...set, set: 7, sourceSeq: '99' } }), 409, 'STALE_SEQUENCE');
    expect(stale).toMatchObject({ sku: 'A', location: 'wh1', source: 'erp', appliedSeq: '100', incomingSeq: '99' });
    const page = await api.engine.eventsAfter(tenant, 0, 10);
    expect(page.events.map((logged) => logged.event.type)).toEqual(['stock_adjustment', 'conflict_detected']);
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ onHand: 40 });
  });

  it('a recount below what is held reports an oversell conflict', async () => {
    await stock('A', 5);
    await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 4 }] });
    const body = expectJson(await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', set: 1 } }), 200);
    expect(body).toMatchObject({ onHand: 1, conflicts: [{ kind: 'oversell', shortfall: 3 }] });
  });

  it('removing more than is on hand is 409 INVALID_QUANTITY', async () => {
    expectProblem(await api.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: -1 } }), 409, 'INVALID_QUANTITY');
  });

  it('a batch is applied in order and reports each result; a refused item does not undo the others', async () => {
    const body = expectJson(await api.inject('POST', `${base}/adjustments`, {
      body: { adjustments: [{ sku: 'A', delta: 3 }, { sku: 'B', delta: -1 }, { sku: 'A', delta: 2, location: 'wh2' }] },
    }), 200) as { applied: number; rejected: number; results: Array<Record<string, unknown>> };
    expect(body.applied).toBe(2);
    expect(body.rejected).toBe(1);
    expect(body.results[0]).toMatchObject({ index: 0, status: 'applied', sku: 'A', onHand: 3 });
    expect(body.results[1]).toMatchObject({ index: 1, status: 'rejected', error: { code: 'INVALID_QUANTITY', status: 409 } });
    expect(body.results[2]).toMatchObject({ index: 2, status: 'applied', location: 'wh2', onHand: 2 });
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ onHand: 5 });
  });

  it('a batch with one malformed item is refused whole: every item error is listed and nothing is applied', async () => {
    const response = await api.inject('POST', `${base}/adjustments`, {
      body: { adjustments: [{ sku: 'A', delta: 3 }, { sku: 'B', delta: 1, set: 2 }, { sku: 'C' }] },
    });
    const body = expectProblem(response, 400, 'VALIDATION_FAILED');
    expect(body.errors).toEqual([
      { in: 'body', index: 1, pointer: '/adjustments/1/delta', message: 'give exactly one of delta and set' },
      { in: 'body', index: 2, pointer: '/adjustments/2/delta', message: 'give exactly one of delta and set' },
    ]);
    expect(api.engine.position()).toBe(0);
  });
});

describe('reservations', () => {
  it('POST holds stock: 201, Location, allocated lines, expiry from the TTL', async () => {
    await stock('A', 2, 'wh1');
    await stock('A', 5, 'wh2');
    const response = await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 4 }], ttlSeconds: 60, orderRef: 'cart-1' });
    const body = expectJson(response, 201);
    expect(body).toMatchObject({
      status: 'held', channel: 'web', orderRef: 'cart-1',
      createdAt: '2025-01-01T00:00:00.000Z', expiresAt: '2025-01-01T00:01:00.000Z',
      lines: [{ sku: 'A', location: 'wh1', quantity: 2 }, { sku: 'A', location: 'wh2', quantity: 2 }],
    });
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.location).toBe(`${base}/reservations/${String(body.id)}`);
    expect(expectJson(await api.inject('GET', response.headers.location as string), 200)).toEqual(body);
  });

  it('the default TTL is 15 minutes and a given reservationId is kept', async () => {
    await stock('A', 1);
    const body = expectJson(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1 }], reservationId: 'cart/77' }), 201);
    expect(body).toMatchObject({ id: 'cart/77', expiresAt: '2025-01-01T00:15:00.000Z' });
    expect(expectJson(await api.inject('GET', `${base}/reservations/${encodeURIComponent('cart/77')}`), 200)).toMatchObject({ id: 'cart/77' });
    expectProblem(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1 }], reservationId: 'cart/77' }), 409, 'RESERVATION_EXISTS');
  });

  it('not enough stock is 409 INSUFFICIENT_STOCK with every short line', async () => {
    await stock('A', 2);
    const body = expectProblem(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 3 }, { sku: 'B', quantity: 1, location: 'default' }] }), 409, 'INSUFFICIENT_STOCK');
    expect(body.lines).toEqual([
      { sku: 'A', requested: 3, available: 2 },
      { sku: 'B', location: 'default', requested: 1, available: 0 },
    ]);
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ reserved: 0 });
  });

  it('a location the channel does not sell from is 409 UNKNOWN_LOCATION', async () => {
    await stock('A', 2, 'wh1');
    await api.inject('PUT', `${base}/channels/web`, { body: { locations: ['wh1'] } });
    expectProblem(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1, location: 'wh9' }] }), 409, 'UNKNOWN_LOCATION');
  });

  it('commit, then fulfil: held -> committed -> fulfilled, and quantities follow', async () => {
    await stock('A', 5);
    const { id } = expectJson(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 2 }] }), 201) as { id: string };
    const committed = expectJson(await api.inject('POST', `${base}/reservations/${id}/commit`, { body: { orderRef: 'order-9' } }), 200);
    expect(committed).toMatchObject({ id, status: 'committed', orderRef: 'order-9', channel: 'web' });
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ onHand: 5, committed: 2, reserved: 0, available: 3 });
    const fulfilled = await api.inject('POST', `${base}/fulfillments`, { body: { reservationId: id } });
    expect(expectJson(fulfilled, 201)).toMatchObject({ id, status: 'fulfilled', orderRef: 'order-9' });
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ onHand: 3, committed: 0, available: 3 });
  });

  it('commit without a body works; committing twice is 409 RESERVATION_NOT_HELD', async () => {
    await stock('A', 5);
    const { id } = expectJson(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1 }] }), 201) as { id: string };
    expectJson(await api.inject('POST', `${base}/reservations/${id}/commit`), 200);
    expect(expectProblem(await api.inject('POST', `${base}/reservations/${id}/commit`), 409, 'RESERVATION_NOT_HELD')).toMatchObject({ reservationId: id, reservationStatus: 'committed' });
  });

  it('release gives a hold back; cancel undoes a committed order', async () => {
    await stock('A', 5);
    const first = expectJson(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 2 }] }), 201) as { id: string };
    expect(expectJson(await api.inject('POST', `${base}/reservations/${first.id}/release`, { body: {} }), 200)).toMatchObject({ status: 'released' });
    const second = expectJson(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 3 }] }), 201) as { id: string };
    await api.inject('POST', `${base}/reservations/${second.id}/commit`);
    expectProblem(await api.inject('POST', `${base}/reservations/${second.id}/release`, { body: { reason: 'released' } }), 409, 'RESERVATION_NOT_HELD');
    expect(expectJson(await api.inject('POST', `${base}/reservations/${second.id}/release`, { body: { reason: 'cancelled' } }), 200)).toMatchObject({ status: 'cancelled' });
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ committed: 0, reserved: 0, available: 5 });
  });

  it('fulfilling a held reservation is 409 RESERVATION_NOT_COMMITTED', async () => {
    await stock('A', 5);
    const { id } = expectJson(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1 }] }), 201) as { id: string };
    expectProblem(await api.inject('POST', `${base}/fulfillments`, { body: { reservationId: id } }), 409, 'RESERVATION_NOT_COMMITTED');
  });

  it('committing after the TTL is 409 RESERVATION_EXPIRED with the expiry', async () => {
    await stock('A', 5);
    const { id } = expectJson(await reserve({ channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlSeconds: 1 }), 201) as { id: string };
    nowMs += 1_000;
    const body = expectProblem(await api.inject('POST', `${base}/reservations/${id}/commit`), 409, 'RESERVATION_EXPIRED');
    expect(body.expiredAt).toBe('2025-01-01T00:00:01.000Z');
  });

  it('an unknown reservation is 404 UNKNOWN_RESERVATION on every route', async () => {
    expectProblem(await api.inject('GET', `${base}/reservations/nope`), 404, 'UNKNOWN_RESERVATION');
    expectProblem(await api.inject('POST', `${base}/reservations/nope/commit`), 404, 'UNKNOWN_RESERVATION');
    expectProblem(await api.inject('POST', `${base}/reservations/nope/release`), 404, 'UNKNOWN_RESERVATION');
    expectProblem(await api.inject('POST', `${base}/fulfillments`, { body: { reservationId: 'nope' } }), 404, 'UNKNOWN_RESERVATION');
  });
});

describe('a heap nearly full', () => {
  it('refuses new holds and imports with 503 MEMORY_FULL and writes nothing, while reads, commits, sales and adjustments go on', async () => {
    let reason: string | undefined;
    const guarded = await startTestApi({ heapFullReason: () => reason });
    try {
      const cart = { channel: 'web', lines: [{ sku: 'A', quantity: 1 }] };
      expect((await guarded.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 5 } })).statusCode).toBe(200);
      const held = expectJson(await guarded.inject('POST', `${base}/reservations`, { body: cart }), 201);
      const keyed = await guarded.inject('POST', `${base}/reservations`, { body: cart, headers: { 'idempotency-key': 'cart-1' } });
      expectJson(keyed, 201);
      reason = 'the heap is nearly full (1850 of 2048 MiB live after the last full collection)';
      // A retry of a hold already made is answered as before: it grows nothing.
      const retried = await guarded.inject('POST', `${base}/reservations`, { body: cart, headers: { 'idempotency-key': 'cart-1' } });
      expect(retried.statusCode).toBe(201);
      expect(retried.headers['idempotent-replayed']).toBe('true');
      expect(retried.body).toBe(keyed.body);
      const position = guarded.engine.position();
      const refused = await guarded.inject('POST', `${base}/reservations`, { body: cart, headers: { 'idempotency-key': 'cart-2' } });
      expect(expectProblem(refused, 503, 'MEMORY_FULL').detail).toBe(reason);
      expect(refused.headers['retry-after']).toBe('1');
      expect(guarded.engine.position()).toBe(position);
      expect(expectJson(await guarded.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ reserved: 2, available: 3 });
      expectJson(await guarded.inject('POST', `${base}/reservations/${String(held.id)}/commit`), 200);
      expectJson(await guarded.inject('POST', `${base}/orders`, { body: { channel: 'amazon', lines: [{ sku: 'A', quantity: 1 }] } }), 201);
      expectJson(await guarded.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 1 } }), 200);
      const imported = { events: [{ id: 'i1', type: 'stock_adjustment', tenant, time: '2025-01-01T00:00:00.000Z', source: 'import', data: { sku: 'B', location: 'default', mode: 'set', delta: 3, onHand: 3 } }] };
      expectProblem(await guarded.inject('POST', `${base}/events`, { key: guarded.keys.tenantAdmin, body: imported }), 503, 'MEMORY_FULL');
      expect(guarded.engine.tenant(tenant)?.skus.has('B')).toBe(false);
      // Taken again once the heap has room; the key refused before was never recorded.
      reason = undefined;
      expectJson(await guarded.inject('POST', `${base}/reservations`, { body: cart, headers: { 'idempotency-key': 'cart-2' } }), 201);
      expect(expectJson(await guarded.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ committed: 2, reserved: 2, available: 2 });
      expectJson(await guarded.inject('POST', `${base}/events`, { key: guarded.keys.tenantAdmin, body: imported }), 200);
    } finally {
      await guarded.close();
    }
  });
});

describe('a heap almost out', () => {
  it('refuses recorded sales and adjustments too, writing nothing, and answers their retries; reads and commits go on', async () => {
    let exhausted: string | undefined;
    const guarded = await startTestApi({ heapFullReason: () => exhausted, heapExhaustedReason: () => exhausted });
    try {
      expectJson(await guarded.inject('POST', `${base}/adjustments`, { body: { sku: 'A', delta: 5 } }), 200);
      const held = expectJson(await guarded.inject('POST', `${base}/reservations`, { body: { channel: 'web', lines: [{ sku: 'A', quantity: 1 }] } }), 201);
      const sale = { channel: 'amazon', lines: [{ sku: 'NEW-1', quantity: 1 }] };
      const recorded = await guarded.inject('POST', `${base}/orders`, { body: sale, headers: { 'idempotency-key': 'sale-1' } });
      expectJson(recorded, 201);
      exhausted = 'the heap is almost out (1960 of 2048 MiB live after the last full collection)';
      const position = guarded.engine.position();
      const refusedSale = await guarded.inject('POST', `${base}/orders`, { body: { channel: 'amazon', lines: [{ sku: 'NEW-2', quantity: 1 }] } });
      expect(expectProblem(refusedSale, 503, 'MEMORY_FULL').detail).toBe(exhausted);
      expect(refusedSale.headers['retry-after']).toBe('1');
      expectProblem(await guarded.inject('POST', `${base}/adjustments`, { body: { sku: 'NEW-3', delta: 1 } }), 503, 'MEMORY_FULL');
      expectProblem(await guarded.inject('POST', `${base}/adjustments`, { body: { adjustments: [{ sku: 'NEW-4', delta: 1 }] } }), 503, 'MEMORY_FULL');
      expect(guarded.engine.position()).toBe(position);
      expect(guarded.engine.tenant(tenant)?.skus.has('NEW-2')).toBe(false);
      // A sale already recorded is answered from its record: it grows nothing.
      const retried = await guarded.inject('POST', `${base}/orders`, { body: sale, headers: { 'idempotency-key': 'sale-1' } });
      expect(retried.statusCode).toBe(201);
      expect(retried.body).toBe(recorded.body);
      expectJson(await guarded.inject('POST', `${base}/reservations/${String(held.id)}/commit`), 200);
      expect(expectJson(await guarded.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ committed: 1 });
      exhausted = undefined;
      expectJson(await guarded.inject('POST', `${base}/orders`, { body: { channel: 'amazon', lines: [{ sku: 'NEW-2', quantity: 1 }] } }), 201);
    } finally {
      await guarded.close();
    }
  });
});

describe('orders', () => {
  it('records a channel sale as committed; units it lacked come back as oversell conflicts', async () => {
    await stock('A', 1);
    const response = await api.inject('POST', `${base}/orders`, { body: { channel: 'amazon', lines: [{ sku: 'A', quantity: 3 }], orderRef: 'AMZ-1' } });
    const body = expectJson(response, 201);
    expect(body).toMatchObject({
      status: 'committed', channel: 'amazon', orderRef: 'AMZ-1', expiresAt: null,
      lines: [{ sku: 'A', location: 'default', quantity: 3 }],
      conflicts: [{ sku: 'A', location: 'default', shortfall: 2 }],
    });
    expect(response.headers.location).toBe(`${base}/reservations/${String(body.id)}`);
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ committed: 3, available: -2 });
  });
});

describe('channels', () => {
  it('PUT sets a policy (fields left out take their defaults); GET lists and reads them', async () => {
    const put = expectJson(await api.inject('PUT', `${base}/channels/web`, { body: { locations: ['wh1', 'wh2'], bufferUnits: 2 } }), 200);
    expect(put).toEqual({ channel: 'web', locations: ['wh1', 'wh2'], bufferUnits: 2, maxUnits: null, backorder: false, configured: true });
    expectJson(await api.inject('PUT', `${base}/channels/b2b`), 200);
    const list = expectJson(await api.inject('GET', `${base}/channels`), 200) as { channels: Array<{ channel: string }> };
    expect(list.channels.map((channel) => channel.channel)).toEqual(['b2b', 'web']);
    expect(expectJson(await api.inject('GET', `${base}/channels/web`), 200)).toEqual(put);
    expect(expectJson(await api.inject('GET', `${base}/channels/other`), 200)).toEqual({
      channel: 'other', locations: null, bufferUnits: 0, maxUnits: null, backorder: false, configured: false,
    });
  });

  it('PUT with a body of null is refused and keeps the policy: only an empty body reads as no body', async () => {
    const put = expectJson(await api.inject('PUT', `${base}/channels/market`, { body: { locations: ['wh1'], bufferUnits: 3, maxUnits: 10 } }), 200);
    const refused = expectProblem(await api.inject('PUT', `${base}/channels/market`, { body: 'null', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_FAILED');
    expect(refused.errors).toEqual([{ in: 'body', pointer: '', message: 'must be object' }]);
    expect(expectJson(await api.inject('GET', `${base}/channels/market`), 200)).toEqual(put);
  });

  it('a backorder channel may hold beyond stock', async () => {
    await api.inject('PUT', `${base}/channels/pre`, { body: { backorder: true } });
    expectJson(await reserve({ channel: 'pre', lines: [{ sku: 'NEW', quantity: 5 }] }), 201);
  });
});

describe('events', () => {
  it('GET reads the log after a position, a page at a time', async () => {
    for (const sku of ['A', 'B', 'C']) await stock(sku, 1);
    const first = expectJson(await api.inject('GET', `${base}/events?limit=2`), 200) as { events: Array<{ position: number; event: { type: string; tenant: string } }>; next: number };
    expect(first.events.map((logged) => logged.position)).toEqual([1, 2]);
    expect(first.events[0]?.event).toMatchObject({ type: 'stock_adjustment', tenant });
    expect(first.next).toBe(2);
    const rest = expectJson(await api.inject('GET', `${base}/events?after=2&limit=2`), 200);
    expect(rest).toMatchObject({ events: [{ position: 3 }], next: 3 });
    expect(expectJson(await api.inject('GET', `${base}/events?after=3`), 200)).toEqual({ events: [], next: 3 });
  });

  const event = (id: string, data: Record<string, unknown>, type = 'stock_adjustment'): Record<string, unknown> => ({
    id, type, tenant, time: '2024-12-31T00:00:00.000Z', source: 'import', data,
  });

  it('POST imports a batch all or nothing with an admin-scoped key', async () => {
    const events = [
      event('i1', { sku: 'A', location: 'wh1', mode: 'set', delta: 10, onHand: 10 }),
      event('i2', { kind: 'oversell', sku: 'A', location: 'wh1', shortfall: 1 }, 'conflict_detected'),
      event('i3', { sku: 'A', location: 'wh1', mode: 'delta', delta: 2, onHand: 12 }),
    ];
    const body = expectJson(await api.inject('POST', `${base}/events`, { key: api.keys.tenantAdmin, body: { events } }), 200);
    expect(body).toMatchObject({ imported: 2, skipped: [{ index: 1 }] });
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ onHand: 12 });
  });

  it('POST under an Idempotency-Key imports once: the retry answers as before, another import under the key is 422', async () => {
    const events = [
      event('i1', { sku: 'A', location: 'wh1', mode: 'delta', delta: 10, onHand: 10 }),
      event('i2', { sku: 'A', location: 'wh1', mode: 'delta', delta: 2, onHand: 12 }),
    ];
    const send = (body: unknown, key = 'onboarding-2024-12') => api.inject('POST', `${base}/events`, { key: api.keys.tenantAdmin, body, headers: { 'idempotency-key': key } });
    const first = await send({ events });
    expect(expectJson(first, 200)).toMatchObject({ imported: 2, skipped: [] });
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const retried = await send({ events });
    expect(retried.headers['idempotent-replayed']).toBe('true');
    expect(expectJson(retried, 200)).toEqual(json(first));
    const changed = expectProblem(await send({ events: [events[0], event('i2', { sku: 'A', location: 'wh1', mode: 'delta', delta: 3, onHand: 13 })] }), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(changed).toMatchObject({ idempotencyKey: 'onboarding-2024-12', detail: expect.stringContaining('nothing was imported') });
    expect(expectJson(await api.inject('GET', `${base}/skus/A`), 200)).toMatchObject({ onHand: 12 });
    expect(api.engine.position()).toBe(2);
    expectProblem(await send({ events }, 'has space'), 400, 'VALIDATION_FAILED');
  });

  it('POST refuses the whole batch when the ledger refuses one event (409 IMPORT_REFUSED)', async () => {
    const events = [
      event('i1', { sku: 'A', location: 'wh1', mode: 'set', delta: 10, onHand: 10 }),
      event('i2', { reservationId: 'ghost', lines: [{ sku: 'A', location: 'wh1', quantity: 1 }] }, 'order_fulfilled'),
    ];
    const body = expectProblem(await api.inject('POST', `${base}/events`, { key: api.keys.tenantAdmin, body: { events } }), 409, 'IMPORT_REFUSED');
    expect(body.refused).toEqual([{ index: 1, code: 'UNKNOWN_RESERVATION', message: expect.any(String) }]);
    expect(api.engine.position()).toBe(0);
  });

  it('POST validates every event first: per-item errors, other tenants refused, nothing applied', async () => {
    const events = [
      event('ok', { sku: 'A', location: 'wh1', mode: 'set', delta: 10, onHand: 10 }),
      event('bad', { sku: 'A', location: 'wh1', mode: 'set', delta: 10, onHand: -1 }),
      { ...event('theirs', { sku: 'A', location: 'wh1', mode: 'set', delta: 1, onHand: 1 }), tenant: otherTenant },
    ];
    const body = expectProblem(await api.inject('POST', `${base}/events`, { key: api.keys.admin, body: { events } }), 400, 'VALIDATION_FAILED');
    expect(body.errors).toEqual([
      { in: 'body', index: 1, pointer: '/events/1/data/onHand', message: 'must be >= 0' },
      { in: 'body', index: 2, pointer: '/events/2/tenant', message: `must be ${tenant}, the tenant in the path` },
    ]);
    expect(api.engine.position()).toBe(0);
  });

  it('POST refuses holds of a length the API could not make: before they were made, or past 31 days', async () => {
    const hold = (id: string, expiresAt: string): Record<string, unknown> => event(id, {
      reservationId: id, channel: 'web', expiresAt, lines: [{ sku: 'A', location: 'wh1', quantity: 1 }],
    }, 'order_reserved');
    const events = [
      event('stock', { sku: 'A', location: 'wh1', mode: 'set', delta: 10, onHand: 10 }),
      hold('early', '2024-12-30T23:00:00.000Z'),
      hold('late', '2036-01-01T00:00:00.000Z'),
      hold('longest', '2025-01-31T00:00:00.000Z'),
    ];
    const body = expectProblem(await api.inject('POST', `${base}/events`, { key: api.keys.tenantAdmin, body: { events } }), 400, 'VALIDATION_FAILED');
    expect(body.errors).toEqual([
      { in: 'body', index: 1, pointer: '/events/1/data/expiresAt', message: expect.stringContaining('it is -3600 s after it') },
      { in: 'body', index: 2, pointer: '/events/2/data/expiresAt', message: expect.stringContaining('1 s to 31 days') },
    ]);
    expect(api.engine.position()).toBe(0);
  });
});

describe('the Shopify webhook route beside the API', () => {
  let hooked: TestApi;

  beforeEach(async () => {
    hooked = await startWithShopifyWebhooks();
  });

  afterEach(async () => {
    await hooked.close();
  });

  const deliver = (body: string, headers: Record<string, string | string[]>, signed = true): Promise<LightMyRequestResponse> => hooked.app.inject({
    method: 'POST', url: '/v1/webhooks/shopify/shop', payload: body,
    headers: { ...headers, ...(signed ? { 'x-shopify-hmac-sha256': createHmac('sha256', shopifySecret).update(body).digest('base64') } : {}) },
  });

  it('its documentation leaves what it takes and answers as it was: raw bytes checked by signature, any header shape', async () => {
    const order = JSON.stringify({ id: 7, line_items: [{ sku: 'TEE-M', quantity: 2 }] });
    const shopify = { 'content-type': 'application/json', 'x-shopify-topic': 'orders/create', 'x-shopify-event-id': 'evt-1' };
    expect(expectJson(await deliver(order, shopify), 200)).toMatchObject({ status: 'applied', topic: 'orders/create', eventId: 'evt-1', commands: 1 });
    expect(expectJson(await deliver('[1]', { ...shopify, 'x-shopify-topic': 'products/update' }), 202)).toEqual({ status: 'ignored', topic: 'products/update', reason: 'topic not handled by Stockline' });
    expectProblem(await deliver(order, { 'content-type': 'text/plain', 'x-shopify-topic': 'orders/create' }, false), 401, 'WEBHOOK_SIGNATURE_INVALID');
    expectProblem(await hooked.app.inject({ method: 'POST', url: '/v1/webhooks/shopify/shop' }), 401, 'WEBHOOK_SIGNATURE_INVALID');
    expectProblem(await deliver('not json', shopify), 400, 'WEBHOOK_PAYLOAD_INVALID');
    // Node joins a repeated header into one value: a topic no one handles, not a header a schema could refuse.
    expect(expectJson(await deliver(order, { ...shopify, 'x-shopify-topic': ['orders/create', 'orders/create'] }), 202)).toMatchObject({ status: 'ignored' });
    expectProblem(await deliver(order, { 'content-type': 'application/json', 'x-shopify-topic': 'orders/create' }), 400, 'WEBHOOK_EVENT_ID_MISSING');
    expectProblem(await deliver('null', shopify), 422, 'WEBHOOK_PAYLOAD_UNUSABLE');
    expectProblem(await hooked.app.inject({ method: 'POST', url: `/v1/webhooks/shopify/${'x'.repeat(300)}` }), 404, 'WEBHOOK_CHANNEL_UNKNOWN');
  });
});

describe('static files', () => {
  let root: string;
  let web: TestApi;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'stockline-web-'));
    mkdirSync(join(root, 'css'));
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>Stockline</title>');
    writeFileSync(join(root, 'css', 'site.css'), 'body { margin: 0 }');
    writeFileSync(join(root, 'app.js'), 'export {};');
    web = await startTestApi({ webRoot: root });
  });

  afterEach(async () => {
    await web.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('serves index.html at / and files with their content types, without a key', async () => {
    const index = await web.inject('GET', '/', { key: null });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.body).toContain('<title>Stockline</title>');
    expect((await web.inject('GET', '/css/site.css', { key: null })).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await web.inject('GET', '/app.js?v=1', { key: null })).headers['content-type']).toBe('text/javascript; charset=utf-8');
  });

  it('refuses paths outside the folder and missing files with 404', async () => {
    for (const path of ['/../package.json', '/%2e%2e/%2e%2e/package.json', '/css/..%2f..%2fpackage.json', '/missing.html']) {
      const response = await web.inject('GET', path, { key: null });
      expect(response.statusCode, path).toBe(404);
      expect(response.headers['content-type']).toBe(problemType);
    }
    const malformed = await web.inject('GET', '/%E0%A4%A', { key: null, headers: { 'x-request-id': 'req-bad-url' } });
    expect(malformed.statusCode).toBe(400);
    expect(json(malformed).code).toBe('MALFORMED_REQUEST');
    // Refused before routing, where the auth hook sets it: the id is on the answer all the same.
    expect(malformed.headers['x-request-id']).toBe('req-bad-url');
  });

  it('a path under /v1/ is never a file: an unknown one is 404 no route, as without static files', async () => {
    mkdirSync(join(root, 'v1'));
    writeFileSync(join(root, 'v1', 'index.html'), 'not the API');
    for (const path of ['/v1/nothing-here', '/v1/', '/v1', '/v1/index.html']) {
      const response = await web.inject('GET', `${path}?access_token=SECRET123`, { key: null });
      expect(expectProblem(response, 404, 'NOT_FOUND').detail, path).toBe(`no route GET ${path}`);
    }
    expect(expectProblem(await web.inject('GET', '/missing.html?access_token=SECRET123', { key: null }), 404, 'NOT_FOUND').detail).toBe('no file /missing.html');
  });

  it('API routes still need their key beside the static files', async () => {
    expect((await web.inject('GET', `${base}/skus`, { key: null })).statusCode).toBe(401);
  });
});
