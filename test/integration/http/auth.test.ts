// Authentication and authorisation: every route refuses missing, wrong and foreign keys; scopes; the key store.

import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyPluginAsync } from 'fastify';
import { buildServer } from '../../../src/adapters/http/server.js';
import { ApiKeyStore, keyRecheckMs } from '../../../src/adapters/sqlite/api-keys.js';
import { envAdminKey, json, otherTenant, startTestApi, tenant } from '../../support/http.js';
import type { TestApi } from '../../support/http.js';

const base = `/v1/tenants/${tenant}`;

interface Route {
  method: string;
  url: string;
  body?: unknown;
  scope: 'read' | 'write' | 'admin';
}

/** Every authenticated route of the API, with a body that would be valid. */
const routes: Route[] = [
  { method: 'GET', url: `${base}/skus/A`, scope: 'read' },
  { method: 'GET', url: `${base}/skus`, scope: 'read' },
  { method: 'DELETE', url: `${base}/skus/A`, scope: 'write' },
  { method: 'POST', url: `${base}/skus/A/restore`, scope: 'write' },
  { method: 'GET', url: `${base}/availability?skus=A`, scope: 'read' },
  { method: 'POST', url: `${base}/adjustments`, body: { sku: 'A', delta: 1 }, scope: 'write' },
  { method: 'POST', url: `${base}/reservations`, body: { channel: 'web', lines: [{ sku: 'A', quantity: 1 }] }, scope: 'write' },
  { method: 'GET', url: `${base}/reservations/r1`, scope: 'read' },
  { method: 'POST', url: `${base}/reservations/r1/commit`, body: {}, scope: 'write' },
  { method: 'POST', url: `${base}/reservations/r1/release`, body: {}, scope: 'write' },
  { method: 'POST', url: `${base}/fulfillments`, body: { reservationId: 'r1' }, scope: 'write' },
  { method: 'POST', url: `${base}/orders`, body: { channel: 'web', lines: [{ sku: 'A', quantity: 1 }] }, scope: 'write' },
  { method: 'PUT', url: `${base}/channels/web`, body: {}, scope: 'write' },
  { method: 'GET', url: `${base}/channels/web`, scope: 'read' },
  { method: 'GET', url: `${base}/channels`, scope: 'read' },
  { method: 'GET', url: `${base}/events`, scope: 'read' },
  { method: 'POST', url: `${base}/events`, body: { events: [{}] }, scope: 'admin' },
  { method: 'GET', url: `${base}/stream`, scope: 'read' },
];

const tenantless = ['/v1/whoami', '/v1/tenants'];

const wellFormedUnknownKey = `sk_0123456789abcdef_${'A'.repeat(43)}`;

/** The same key with its last character changed: as long, and as well formed. */
const flipLast = (key: string): string => `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;

let api: TestApi;

// Refusals write nothing, so one server serves every case; the writes a few cases let through do not matter to the others.
beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api.close();
});

describe.each(routes)('$method $url', (route) => {
  const call = (key: string | null, headers: Record<string, string> = {}): ReturnType<TestApi['inject']> =>
    api.inject(route.method, route.url, { key, headers, ...(route.body === undefined ? {} : { body: route.body }) });

  it('refuses a missing key with 401 UNAUTHENTICATED and a Bearer challenge', async () => {
    const response = await call(null);
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(response.headers['www-authenticate']).toBe('Bearer realm="stockline"');
    expect(json(response).code).toBe('UNAUTHENTICATED');
  });

  it('refuses a wrong key with 401 (well-formed, malformed, in X-Api-Key, revoked)', async () => {
    // The write key and the admin key from the environment were accepted before: changed by one character,
    // or by their length, they are refused all the same.
    const wrong = [
      wellFormedUnknownKey, 'not-a-key', `${api.keys.write}x`, api.keys.write.slice(0, -1), flipLast(api.keys.write),
      `${envAdminKey}x`, envAdminKey.slice(0, -1), flipLast(envAdminKey),
    ];
    for (const key of [api.keys.write, envAdminKey]) expect((await api.inject('GET', '/v1/whoami', { key })).statusCode).toBe(200);
    for (const key of wrong) {
      const response = await call(key);
      expect(response.statusCode, key).toBe(401);
      expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
    }
    expect((await call(null, { 'x-api-key': wellFormedUnknownKey })).statusCode).toBe(401);
    const revoked = api.store.create({ tenant, scopes: ['admin'] });
    api.store.revoke(revoked.id);
    expect((await call(revoked.key)).statusCode).toBe(401);
  });

  it("refuses another tenant's key with 403 FORBIDDEN_TENANT", async () => {
    const response = await call(api.keys.other);
    expect(response.statusCode).toBe(403);
    expect(json(response)).toMatchObject({ code: 'FORBIDDEN_TENANT', keyTenant: otherTenant });
    const foreignAdmin = api.store.create({ tenant: otherTenant, scopes: ['admin'] }).key;
    expect((await call(foreignAdmin)).statusCode).toBe(403);
  });

  it('refuses a key without the scope, and lets the right one past the auth check', async () => {
    const weaker = route.scope === 'admin' ? api.keys.write : route.scope === 'write' ? api.keys.read : undefined;
    if (weaker !== undefined) {
      const response = await call(weaker);
      expect(response.statusCode).toBe(403);
      expect(json(response)).toMatchObject({ code: 'INSUFFICIENT_SCOPE', requiredScope: route.scope });
    }
    if (route.url.endsWith('/stream')) return; // a stream that opens would not end; the stream tests cover it
    for (const key of [api.keys.tenantAdmin, api.keys.admin, envAdminKey]) {
      expect([401, 403]).not.toContain((await call(key)).statusCode);
    }
  });

  it('writes nothing when it refuses', async () => {
    const before = api.engine.position();
    await call(null);
    await call(api.keys.other);
    await call(route.scope === 'read' ? wellFormedUnknownKey : api.keys.read);
    expect(api.engine.position()).toBe(before);
  });
});

describe('keys', () => {
  it('accepts the key in X-Api-Key as well as Authorization', async () => {
    expect((await api.inject('GET', `${base}/skus`, { key: null, headers: { 'x-api-key': api.keys.read } })).statusCode).toBe(200);
  });

  it("ignores another Authorization scheme (a proxy's Basic credentials) when the key comes in X-Api-Key", async () => {
    const basic = { authorization: 'Basic cHJveHk6c2VjcmV0' };
    expect((await api.inject('GET', `${base}/skus`, { key: null, headers: { ...basic, 'x-api-key': api.keys.read } })).statusCode).toBe(200);
    const alone = await api.inject('GET', `${base}/skus`, { key: null, headers: basic });
    expect(alone.statusCode).toBe(401);
    expect(alone.headers['www-authenticate']).toContain('error="invalid_token"');
    // Still checked as any key: another tenant's is 403, a wrong one 401.
    expect((await api.inject('GET', `${base}/skus`, { key: null, headers: { ...basic, 'x-api-key': api.keys.other } })).statusCode).toBe(403);
    expect((await api.inject('GET', `${base}/skus`, { key: null, headers: { ...basic, 'x-api-key': wellFormedUnknownKey } })).statusCode).toBe(401);
  });

  it('a valid key sent without Bearer is 401 saying how to send it, not that the key is revoked', async () => {
    for (const authorization of [api.keys.read, `Token ${api.keys.read}`]) {
      const response = await api.inject('GET', `${base}/skus`, { key: null, headers: { authorization } });
      expect(response.statusCode).toBe(401);
      expect(json(response).detail).toBe('the Authorization header is not of the Bearer scheme: send Authorization: Bearer <key>');
    }
    const wrong = await api.inject('GET', `${base}/skus`, { key: null, headers: { authorization: `Bearer ${wellFormedUnknownKey}` } });
    expect(json(wrong).detail).toBe('the API key is not valid or was revoked');
  });

  it('refuses a Bearer key and an X-Api-Key that differ, even when both are valid; the same key twice is fine', async () => {
    for (const other of [api.keys.write, wellFormedUnknownKey, flipLast(api.keys.read)]) {
      const response = await api.inject('GET', `${base}/skus`, { key: api.keys.read, headers: { 'x-api-key': other } });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer realm="stockline", error="invalid_request"');
      expect(json(response)).toMatchObject({ code: 'UNAUTHENTICATED', detail: expect.stringMatching(/two different API keys/) });
    }
    expect((await api.inject('GET', `${base}/skus`, { key: api.keys.read, headers: { 'x-api-key': api.keys.read } })).statusCode).toBe(200);
    expect((await api.inject('GET', `${base}/skus`, { key: null, headers: { authorization: `bearer  ${api.keys.read} `, 'x-api-key': api.keys.read } })).statusCode).toBe(200);
    // An empty header is no second key: the other one stands.
    expect((await api.inject('GET', `${base}/skus`, { key: api.keys.read, headers: { 'x-api-key': '' } })).statusCode).toBe(200);
    expect((await api.inject('GET', `${base}/skus`, { key: null, headers: { authorization: 'Bearer', 'x-api-key': api.keys.read } })).statusCode).toBe(200);
    expect((await api.inject('GET', `${base}/skus`, { key: null, headers: { 'x-api-key': '' } })).statusCode).toBe(401);
  });

  it('applies the same rules to ?access_token= on the stream', async () => {
    const url = `${await api.listen()}${base}/stream?access_token=${encodeURIComponent(api.keys.read)}`;
    // Over HTTP: a stream that opens does not end, so each is dropped once its status is known.
    const status = async (headers: Record<string, string>): Promise<{ status: number; challenge: string | null }> => {
      const abort = new AbortController();
      try {
        const response = await fetch(url, { headers, signal: abort.signal });
        return { status: response.status, challenge: response.headers.get('www-authenticate') };
      } finally {
        abort.abort();
      }
    };
    expect(await status({ authorization: `Bearer ${api.keys.write}` })).toEqual({ status: 401, challenge: 'Bearer realm="stockline", error="invalid_request"' });
    expect((await status({ 'x-api-key': api.keys.write })).status).toBe(401);
    expect((await status({ authorization: `Bearer ${api.keys.read}` })).status).toBe(200);
    expect((await status({ authorization: 'Basic cHJveHk6c2VjcmV0' })).status).toBe(200);
    const emptyToken = `${url.split('?')[0] as string}?access_token=`;
    const abort = new AbortController();
    try {
      expect((await fetch(emptyToken, { headers: { authorization: `Bearer ${api.keys.read}` }, signal: abort.signal })).status).toBe(200);
    } finally {
      abort.abort();
    }
  });

  it('accepts ?access_token= on the stream only', async () => {
    const response = await api.inject('GET', `${base}/skus?access_token=${api.keys.read}`, { key: null });
    expect(response.statusCode).toBe(401);
  });

  it('keeps ?access_token= out of the request log', async () => {
    const lines: string[] = [];
    const stream = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done(); } });
    const logged = await buildServer({ engine: api.engine, keys: api.store, logger: pino({ level: 'debug' }, stream) });
    try {
      await logged.inject({ method: 'GET', url: `${base}/stream?access_token=${api.keys.other}` });
    } finally {
      await logged.close();
    }
    expect(lines.join('')).toContain(`"url":"${base}/stream"`);
    expect(lines.join('')).not.toContain(api.keys.other);
  });

  it('logs each request once at debug, and none at info, the default', async () => {
    const logged = (level: string) => async (): Promise<Array<{ msg: string; level: number; reqId?: string }>> => {
      const lines: string[] = [];
      const stream = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done(); } });
      const app = await buildServer({ engine: api.engine, keys: api.store, logger: pino({ level }, stream) });
      try {
        await app.inject({ method: 'GET', url: `${base}/skus`, headers: { authorization: `Bearer ${api.keys.read}` } });
      } finally {
        await app.close();
      }
      return lines.map((line) => JSON.parse(line) as { msg: string; level: number; reqId?: string });
    };
    const debug = await logged('debug')();
    expect(debug.filter((line) => line.msg === 'request completed')).toHaveLength(1);
    expect(debug.find((line) => line.msg === 'request completed')?.reqId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await logged('info')()).filter((line) => line.msg.startsWith('request'))).toEqual([]);
  });

  it('logs an unexpected failure at error with its request id, at the default level', async () => {
    const lines: string[] = [];
    const stream = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done(); } });
    const failing: FastifyPluginAsync = async (app) => {
      app.get('/v1/broken', { config: { public: true } }, async () => { throw new Error('disk on fire'); });
    };
    const app = await buildServer({ engine: api.engine, keys: api.store, logger: pino({ level: 'info' }, stream), plugins: [failing] });
    try {
      const response = await app.inject({ method: 'GET', url: '/v1/broken', headers: { 'x-request-id': 'trace-42' } });
      expect(response.statusCode).toBe(500);
      expect(response.json()).toMatchObject({ code: 'INTERNAL_ERROR', status: 500 });
      expect(response.body).not.toContain('disk on fire');
    } finally {
      await app.close();
    }
    const errors = lines.map((line) => JSON.parse(line) as { level: number; reqId?: string; err?: { message: string } }).filter((line) => line.level === 50);
    expect(errors.some((line) => line.reqId === 'trace-42' && line.err?.message === 'disk on fire')).toBe(true);
  });

  it('the environment admin key reads and writes every tenant', async () => {
    for (const name of [tenant, otherTenant]) {
      const response = await api.inject('POST', `/v1/tenants/${name}/adjustments`, { key: envAdminKey, body: { sku: 'A', delta: 1 } });
      expect(response.statusCode).toBe(200);
    }
  });

  it.each(tenantless)('%s needs a key', async (url) => {
    expect((await api.inject('GET', url, { key: null })).statusCode).toBe(401);
    expect((await api.inject('GET', url, { key: wellFormedUnknownKey })).statusCode).toBe(401);
    expect((await api.inject('GET', url, { key: api.keys.read })).statusCode).toBe(200);
  });
});

describe('public routes and plugins', () => {
  let withPlugins: TestApi;
  const plugin: FastifyPluginAsync = async (app) => {
    app.get('/metrics', async () => 'metrics 1\n');
    app.get('/v1/plugin/no-scope', async () => ({ ok: true }));
    app.post('/v1/plugin/webhook', { config: { public: true } }, async () => ({ ok: true }));
  };

  beforeEach(async () => {
    withPlugins = await startTestApi({ plugins: [plugin] });
  });

  afterEach(async () => {
    await withPlugins.close();
  });

  it('health, readiness, OpenAPI and /metrics need no key', async () => {
    for (const url of ['/healthz', '/readyz', '/openapi.json', '/metrics']) {
      expect((await withPlugins.inject('GET', url, { key: null })).statusCode, url).toBe(200);
    }
  });

  it('a plugin route that names no scope needs admin (fails closed); one marked public needs nothing', async () => {
    expect((await withPlugins.inject('GET', '/v1/plugin/no-scope', { key: null })).statusCode).toBe(401);
    expect((await withPlugins.inject('GET', '/v1/plugin/no-scope', { key: withPlugins.keys.write })).statusCode).toBe(403);
    expect((await withPlugins.inject('GET', '/v1/plugin/no-scope', { key: withPlugins.keys.admin })).statusCode).toBe(200);
    expect((await withPlugins.inject('POST', '/v1/plugin/webhook', { key: null })).statusCode).toBe(200);
  });
});

describe('ApiKeyStore', () => {
  it('creates sk_<id>_<secret> keys and stores only their SHA-256', () => {
    const { id, key } = api.store.create({ tenant, scopes: ['read', 'read', 'write'] });
    expect(key).toMatch(new RegExp(`^sk_${id}_[A-Za-z0-9_-]{43}$`));
    const row = api.engine.db.prepare('SELECT * FROM api_keys WHERE id = ?').get(id) as Record<string, unknown>;
    expect(row.hash).toBe(createHash('sha256').update(key).digest('hex'));
    expect(JSON.stringify(row)).not.toContain(key.slice(20));
    expect(row.scopes).toBe('read,write');
    expect(api.store.verify(key)).toEqual({ keyId: id, tenant, scopes: ['read', 'write'] });
  });

  it('verifies nothing but the exact key', () => {
    const { key } = api.store.create({ tenant: null, scopes: ['admin'] });
    const secret = key.slice(-43);
    const flipped = `${key.slice(0, -43)}${secret[0] === 'A' ? 'B' : 'A'}${secret.slice(1)}`;
    expect(api.store.verify(flipped)).toBeUndefined();
    expect(api.store.verify(wellFormedUnknownKey)).toBeUndefined();
    expect(api.store.verify('')).toBeUndefined();
    expect(api.store.verify(key)).toMatchObject({ tenant: null, scopes: ['admin'] });
    // Once verified, the key is compared as it is, not hashed again: a near miss is still refused.
    expect(api.store.verify(flipped)).toBeUndefined();
    expect(api.store.verify(flipLast(key))).toBeUndefined();
    expect(api.store.verify(key)).toMatchObject({ tenant: null, scopes: ['admin'] });
  });

  it('lists and revokes keys; revoking twice keeps the first time; unknown ids are reported', () => {
    const { id, key } = api.store.create({ tenant, scopes: ['read'] });
    expect(api.store.revoke(id)).toBe(true);
    const first = api.store.list().find((info) => info.id === id)?.revokedMs;
    expect(first).toEqual(expect.any(Number));
    expect(api.store.revoke(id)).toBe(true);
    expect(api.store.list().find((info) => info.id === id)?.revokedMs).toBe(first);
    expect(api.store.verify(key)).toBeUndefined();
    expect(api.store.revoke('0000000000000000')).toBe(false);
  });

  it('trusts a verified key for keyRecheckMs: a revocation elsewhere (the CLI) lands within it, a new key at once', () => {
    let nowMs = 1_000_000;
    const server = new ApiKeyStore(api.engine.db, () => nowMs);
    const cli = new ApiKeyStore(api.engine.db);
    const { id, key } = cli.create({ tenant, scopes: ['read'] });
    expect(server.verify(key)).toEqual({ keyId: id, tenant, scopes: ['read'] });
    cli.revoke(id);
    nowMs += keyRecheckMs - 1;
    expect(server.verify(key), 'still within the recheck interval').toBeDefined();
    nowMs += 1;
    expect(server.verify(key)).toBeUndefined();
    const created = cli.create({ tenant, scopes: ['write'] });
    expect(server.verify(created.key)).toEqual({ keyId: created.id, tenant, scopes: ['write'] });
    // A revocation through the store that verifies takes effect at once.
    server.revoke(created.id);
    expect(server.verify(created.key)).toBeUndefined();
  });

  it('refuses a malformed tenant or no scopes', () => {
    expect(() => api.store.create({ tenant: 'Not A Tenant', scopes: ['read'] })).toThrow(/tenant/);
    expect(() => api.store.create({ tenant, scopes: [] })).toThrow(/scopes/);
  });
});
