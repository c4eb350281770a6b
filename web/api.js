// Talks to the Stockline HTTP API: authenticated JSON reads, problem details as errors, the stream URL.
/* global fetch, AbortSignal, URLSearchParams */

export const skuPageSize = 1000;
export const requestTimeoutMs = 10_000;

/** An HTTP answer other than 2xx, with its RFC 9457 problem details when the server sent them. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problemMessage(status, problem));
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
  }
}

/** A sentence for people from a status and problem details (never includes the key). */
export function problemMessage(status, problem) {
  if (problem !== undefined && typeof problem.detail === 'string' && problem.detail !== '') return problem.detail;
  if (problem !== undefined && typeof problem.title === 'string' && problem.title !== '') return problem.title;
  if (status === 401) return 'The server did not accept this key.';
  if (status === 403) return 'This key may not read that tenant.';
  if (status === 404) return 'Not found.';
  return `The server answered ${status}.`;
}

/**
 * The tenant a refused key belongs to, from a 403 problem: an extension member if the server sends one,
 * else the detail "this API key belongs to tenant <id>, not <other>".
 */
export function keyTenantOf(problem) {
  if (problem === undefined || problem === null) return undefined;
  for (const member of ['keyTenant', 'tenant']) if (typeof problem[member] === 'string') return problem[member];
  const match = typeof problem.detail === 'string' ? /belongs to tenant ([a-z0-9][a-z0-9_-]*)/.exec(problem.detail) : null;
  return match?.[1];
}

/** A tenant id no tenant can have (ids start with a letter or digit): reading it tells what the key is. */
export const probeTenant = '_';

/** A page of SKUs from the list route, whatever name its array and cursor go by. */
export function skuPageOf(body) {
  const items = Array.isArray(body) ? body : body?.items ?? body?.skus ?? body?.data ?? [];
  const next = Array.isArray(body) ? undefined : body?.next ?? body?.nextAfter ?? body?.after ?? undefined;
  return { items: Array.isArray(items) ? items : [], next: typeof next === 'string' && next !== '' ? next : undefined };
}

/** The tenant ids in a /v1/tenants answer (an array of ids or of objects with `id` or `tenant`). */
export function tenantIdsOf(body) {
  const list = Array.isArray(body) ? body : body?.tenants ?? body?.items ?? [];
  if (!Array.isArray(list)) return [];
  return list.map((item) => (typeof item === 'string' ? item : item?.id ?? item?.tenant)).filter((id) => typeof id === 'string');
}

/**
 * An API client bound to one key. `baseUrl` is '' when the page is served by the same server.
 * `fetchImpl` is for tests.
 */
export function createApi({ key, baseUrl = '', fetchImpl = (...args) => fetch(...args) }) {
  const tenantPath = (tenant) => `/v1/tenants/${encodeURIComponent(tenant)}`;

  async function request(path, { authenticated = true, accept = 'application/json', signal } = {}) {
    const headers = { accept };
    if (authenticated) headers.authorization = `Bearer ${key}`;
    const timeout = AbortSignal.timeout(requestTimeoutMs);
    const response = await fetchImpl(`${baseUrl}${path}`, { headers, signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) });
    if (!response.ok) throw new ApiError(response.status, await readProblem(response));
    return accept === 'application/json' ? response.json() : response.text();
  }

  async function whoami() {
    try {
      const body = await request('/v1/whoami');
      const tenant = typeof body?.tenant === 'string' ? body.tenant : undefined;
      return { tenant, admin: body?.admin === true || body?.role === 'admin' || (body?.tenant === null) };
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return undefined;
      throw error;
    }
  }

  /**
   * Without a whoami route: reads a tenant that cannot exist. A tenant key is refused (403) with its own
   * tenant named; an admin key gets past the tenant check (then 400 or 404); a bad key gets 401.
   */
  async function probe() {
    try {
      await request(`${tenantPath(probeTenant)}/channels`);
      return { tenant: undefined, admin: true };
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      if (error.status === 403) {
        const tenant = keyTenantOf(error.problem);
        return { tenant, admin: false, known: tenant !== undefined };
      }
      return { tenant: undefined, admin: error.status === 400 || error.status === 404 };
    }
  }

  return {
    /** Who the key is: `{ tenant?, admin }` from /v1/whoami if the server has it, else from a probe. */
    async identify() {
      return (await whoami()) ?? probe();
    },
    /** The tenants an admin key may read, or undefined if the route is absent or the key is not admin. */
    async tenants() {
      try {
        return tenantIdsOf(await request('/v1/tenants'));
      } catch (error) {
        if (error instanceof ApiError && [403, 404, 405].includes(error.status)) return undefined;
        throw error;
      }
    },
    channels: (tenant, options) => request(`${tenantPath(tenant)}/channels`, options),
    async skuPage(tenant, { prefix, after, limit = skuPageSize, signal } = {}) {
      const query = new URLSearchParams({ limit: String(limit) });
      if (prefix) query.set('prefix', prefix);
      if (after) query.set('after', after);
      return skuPageOf(await request(`${tenantPath(tenant)}/skus?${query}`, { signal }));
    },
    sku: (tenant, sku, options) => request(`${tenantPath(tenant)}/skus/${encodeURIComponent(sku)}`, options),
    /** With the key: a public /metrics ignores it, and one under server.metricsKeyEnv takes the admin key. */
    metricsText: (options) => request('/metrics', { ...options, accept: 'text/plain' }),
    /** EventSource cannot send headers, so the key goes in the query, as the API allows for streams. */
    streamUrl: (tenant) => `${baseUrl}${tenantPath(tenant)}/stream?access_token=${encodeURIComponent(key)}`,
  };
}

async function readProblem(response) {
  try {
    const type = response.headers.get('content-type') ?? '';
    if (!type.includes('json')) return undefined;
    const body = await response.json();
    return body !== null && typeof body === 'object' ? body : undefined;
  } catch {
    return undefined;
  }
}
