// The dashboard's API client: the key in the header (never in a URL but the stream's), problems as errors, who a key is.

import { describe, expect, it } from 'vitest';
import { ApiError, createApi, keyTenantOf, problemMessage, skuPageOf, tenantIdsOf } from '../../web/api.js';

interface Call {
  url: string;
  headers: Record<string, string>;
}

/** A fetch that answers by path from a table, recording each call. */
function fakeFetch(routes: Record<string, { status: number; body?: unknown; text?: string }>) {
  const calls: Call[] = [];
  const fetchImpl = async (url: string, init: { headers: Record<string, string> }) => {
    calls.push({ url, headers: init.headers });
    const route = routes[url.split('?')[0] as string] ?? { status: 404, body: { title: 'No such resource', status: 404, detail: `no route GET ${url}` } };
    const problem = route.status >= 400;
    return {
      ok: route.status < 300,
      status: route.status,
      headers: { get: (name: string) => (name === 'content-type' ? (route.text !== undefined ? 'text/plain' : problem ? 'application/problem+json' : 'application/json') : null) },
      json: async () => route.body,
      text: async () => route.text ?? JSON.stringify(route.body),
    };
  };
  return { calls, fetchImpl };
}

const key = 'sk_0123456789abcdef_secret';

describe('createApi', () => {
  it('sends the key as a bearer token and reads a page of SKUs with its cursor', async () => {
    const { calls, fetchImpl } = fakeFetch({ '/v1/tenants/acme/skus': { status: 200, body: { skus: [{ sku: 'A' }], next: 'A' } } });
    const page = await createApi({ key, fetchImpl }).skuPage('acme', { prefix: 'A', after: '0' });
    expect(page).toEqual({ items: [{ sku: 'A' }], next: 'A' });
    expect(calls[0]?.url).toBe('/v1/tenants/acme/skus?limit=1000&prefix=A&after=0');
    expect(calls[0]?.headers.authorization).toBe(`Bearer ${key}`);
  });

  it('reads /metrics as text, with the key (which a /metrics under a key of its own takes when it is the admin key)', async () => {
    const { calls, fetchImpl } = fakeFetch({ '/metrics': { status: 200, text: 'm 1\n' } });
    expect(await createApi({ key, fetchImpl }).metricsText()).toBe('m 1\n');
    expect(calls[0]?.headers.authorization).toBe(`Bearer ${key}`);
  });

  it('turns a problem answer into an ApiError with the detail as its message', async () => {
    const { fetchImpl } = fakeFetch({ '/v1/tenants/acme/channels': { status: 401, body: { title: 'Unauthenticated', status: 401, detail: 'the API key is not valid or was revoked' } } });
    const error = await createApi({ key, fetchImpl }).channels('acme').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as ApiError).message).toBe('the API key is not valid or was revoked');
    expect((error as ApiError).message).not.toContain(key);
  });

  it('puts the key in the stream URL only, percent-encoded, since EventSource cannot send headers', () => {
    expect(createApi({ key: 'a b&c', baseUrl: 'http://h' }).streamUrl('acme')).toBe('http://h/v1/tenants/acme/stream?access_token=a%20b%26c');
  });

  it('encodes path segments', async () => {
    const { calls, fetchImpl } = fakeFetch({});
    await createApi({ key, fetchImpl }).sku('acme', 'A/B 1').catch(() => undefined);
    expect(calls[0]?.url).toBe('/v1/tenants/acme/skus/A%2FB%201');
  });
});

describe('identify', () => {
  it('uses /v1/whoami when the server has it', async () => {
    const { fetchImpl } = fakeFetch({ '/v1/whoami': { status: 200, body: { keyId: 'k', tenant: 'acme', admin: false, scopes: ['read'] } } });
    expect(await createApi({ key, fetchImpl }).identify()).toEqual({ tenant: 'acme', admin: false });
  });

  it('knows an admin key from whoami', async () => {
    const { fetchImpl } = fakeFetch({ '/v1/whoami': { status: 200, body: { keyId: 'k', tenant: null, admin: true, scopes: ['admin'] } } });
    expect(await createApi({ key, fetchImpl }).identify()).toEqual({ tenant: undefined, admin: true });
  });

  it("without whoami, learns a tenant key's tenant from the 403 of a tenant that cannot exist", async () => {
    const { calls, fetchImpl } = fakeFetch({
      '/v1/tenants/_/channels': { status: 403, body: { title: 'Forbidden', status: 403, code: 'FORBIDDEN_TENANT', detail: 'this API key belongs to tenant acme, not _' } },
    });
    expect(await createApi({ key, fetchImpl }).identify()).toMatchObject({ tenant: 'acme', admin: false });
    expect(calls.map((call) => call.url)).toEqual(['/v1/whoami', '/v1/tenants/_/channels']);
  });

  it('without whoami, takes a key that passes the tenant check for an admin key', async () => {
    const { fetchImpl } = fakeFetch({ '/v1/tenants/_/channels': { status: 400, body: { title: 'Invalid request', status: 400 } } });
    expect(await createApi({ key, fetchImpl }).identify()).toEqual({ tenant: undefined, admin: true });
  });

  it('lets a refused key fail', async () => {
    const { fetchImpl } = fakeFetch({ '/v1/whoami': { status: 401, body: { title: 'Unauthenticated', status: 401 } } });
    await expect(createApi({ key, fetchImpl }).identify()).rejects.toMatchObject({ status: 401 });
  });

  it('lists tenants, or answers undefined when the route is absent', async () => {
    const listed = fakeFetch({ '/v1/tenants': { status: 200, body: { tenants: ['acme', 'globex'] } } });
    expect(await createApi({ key, fetchImpl: listed.fetchImpl }).tenants()).toEqual(['acme', 'globex']);
    expect(await createApi({ key, fetchImpl: fakeFetch({}).fetchImpl }).tenants()).toBeUndefined();
  });
});

describe('answer shapes', () => {
  it('reads SKU pages under any usual name, and a null cursor as the end', () => {
    expect(skuPageOf({ skus: [1], next: null })).toEqual({ items: [1], next: undefined });
    expect(skuPageOf({ items: [1, 2], next: 'b' })).toEqual({ items: [1, 2], next: 'b' });
    expect(skuPageOf([1])).toEqual({ items: [1], next: undefined });
    expect(skuPageOf(null)).toEqual({ items: [], next: undefined });
  });

  it('reads tenant lists of ids or of objects', () => {
    expect(tenantIdsOf({ tenants: ['a', { id: 'b' }, { tenant: 'c' }, 4] })).toEqual(['a', 'b', 'c']);
  });

  it("finds the key's own tenant in a problem, from a member or from the detail", () => {
    expect(keyTenantOf({ keyTenant: 'acme' })).toBe('acme');
    expect(keyTenantOf({ detail: 'this API key belongs to tenant globex-2, not acme' })).toBe('globex-2');
    expect(keyTenantOf({ detail: 'something else' })).toBeUndefined();
    expect(keyTenantOf(undefined)).toBeUndefined();
  });

  it('words a status without problem details', () => {
    expect(problemMessage(401, undefined)).toBe('The server did not accept this key.');
    expect(problemMessage(503, { title: 'Unavailable' })).toBe('Unavailable');
    expect(problemMessage(500, {})).toBe('The server answered 500.');
  });
});
