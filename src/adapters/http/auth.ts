// API-key authentication and tenant and scope checks: one onRequest hook that every route passes through.

import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Engine } from '../../app/engine.js';
import { problem } from './problem.js';
import type { HttpProblem } from './problem.js';
import { bearerSecurity, errorResponses, httpLimits, object } from './schemas.js';

/** `read` reads; `write` also changes stock and reservations; `admin` also imports raw events. */
export type Scope = 'read' | 'write' | 'admin';

export const scopes: readonly Scope[] = ['read', 'write', 'admin'];

export interface Principal {
  keyId: string;
  /** `null`: an admin key, valid for every tenant. */
  tenant: string | null;
  scopes: readonly Scope[];
}

/** What the HTTP layer needs from a key store (the SQLite `ApiKeyStore` is one): it compares keys in constant time. */
export interface ApiKeyVerifier {
  verify(key: string): Principal | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a route needs; a route that names none needs `admin`, so a forgotten scope fails closed. */
    scope?: Scope;
    /** No key needed (health, OpenAPI, static files, metrics, signed webhooks). */
    public?: boolean;
    /** Also accept the key as `?access_token=` (EventSource cannot send headers). */
    tokenInQuery?: boolean;
    /** Stays open (the stream): the request gets `keyStillValid`, to stop once its key is revoked. */
    longLived?: boolean;
  }
  interface FastifyRequest {
    principal?: Principal;
    /** On `longLived` routes: whether the request's key still verifies, for its tenant and scope. */
    keyStillValid?: () => boolean;
  }
}

/** Public whatever their route config says: `/metrics` is scraped by Prometheus without a key. */
const publicPaths = new Set(['/healthz', '/readyz', '/openapi.json', '/metrics']);

const scopeRank: Record<Scope, number> = { read: 1, write: 2, admin: 3 };

export function grants(principal: Principal, needed: Scope): boolean {
  return principal.scopes.some((scope) => scopeRank[scope] >= scopeRank[needed]);
}

/**
 * Whether the presented key is the admin key, in time that depends only on what was presented: a key of another
 * length is compared with itself, so neither the admin key's bytes nor its length show in how long a refusal takes.
 */
function isKey(presented: Buffer, expected: Buffer): boolean {
  if (presented.length === expected.length) return timingSafeEqual(presented, expected);
  timingSafeEqual(presented, presented);
  return false;
}

/** Matches the presented key against the admin key from the environment, else asks the key store. */
function keyVerifier(keys: ApiKeyVerifier, adminKey: string | undefined): (presented: string) => Principal | undefined {
  const expected = adminKey === undefined || adminKey === '' ? undefined : Buffer.from(adminKey);
  const admin: Principal = { keyId: 'env:STOCKLINE_ADMIN_KEY', tenant: null, scopes: ['admin'] };
  return (presented) => {
    if (expected !== undefined && isKey(Buffer.from(presented), expected)) return admin;
    return keys.verify(presented);
  };
}

/** `Authorization: Bearer <key>`; `''` for a Bearer header that holds no single key; undefined for another scheme. */
function bearerOf(authorization: string): string | undefined {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
  if (match !== null) return match[1];
  return /^Bearer(?:\s|$)/i.test(authorization) ? '' : undefined;
}

/**
 * For a route outside the tenants' keys (`/metrics` under a key of its own): the request must present one of
 * `keys` as `Authorization: Bearer`, else a 401 problem. Each key is compared, in constant time, whichever matches.
 */
export function requireOneOf(request: FastifyRequest, keys: readonly string[], what: string): void {
  const authorization = request.headers.authorization;
  if (authorization === undefined) throw problem('UNAUTHENTICATED', `${what}: send Authorization: Bearer <key>`, {}, { 'www-authenticate': challenge });
  const presented = Buffer.from(bearerOf(authorization) ?? '');
  let matched = false;
  for (const key of keys) matched = isKey(presented, Buffer.from(key)) || matched;
  if (!matched || presented.length === 0) {
    throw problem('UNAUTHENTICATED', `${what}: the key sent is not it`, {}, { 'www-authenticate': `${challenge}, error="invalid_token"` });
  }
}

/** Whether two presented keys are the same, in time that does not show where they differ. */
function sameKey(first: string, second: string): boolean {
  return isKey(Buffer.from(first), Buffer.from(second));
}

const challenge = 'Bearer realm="stockline"';

const twoKeys = (): HttpProblem => problem('UNAUTHENTICATED', 'two different API keys were sent (in Authorization: Bearer, X-Api-Key or access_token): send one',
  {}, { 'www-authenticate': `${challenge}, error="invalid_request"` });

/**
 * The key the request presents, from `Authorization: Bearer`, `X-Api-Key` or (the stream) `?access_token=`. Another
 * Authorization scheme is not Stockline's (a proxy's Basic credentials, say) and gives way to a key sent another
 * way; alone, it is a key that is not valid. Two different keys are ambiguous and refused, whichever would pass.
 */
function presentedKey(request: FastifyRequest, tokenInQuery: boolean): string | undefined {
  const authorization = request.headers.authorization;
  const header = request.headers['x-api-key'];
  const bearer = authorization === undefined ? undefined : bearerOf(authorization);
  const apiKey = typeof header === 'string' ? oneKey(bearer, header) : bearer;
  const presented = tokenInQuery ? oneKey(apiKey, queryToken(request)) : apiKey;
  // Alone, another scheme is still a key that is not valid, not a missing one.
  return presented === undefined && authorization !== undefined ? '' : presented;
}

/** The key both ways present, when they agree; refused when they differ. An empty one gives way to the other. */
function oneKey(first: string | undefined, second: string | undefined): string | undefined {
  if (first === undefined || (first === '' && second !== undefined)) return second;
  if (second !== undefined && second !== '' && !sameKey(first, second)) throw twoKeys();
  return first;
}

function queryToken(request: FastifyRequest): string | undefined {
  const token = (request.query as Record<string, unknown> | undefined)?.access_token;
  return typeof token === 'string' ? token : undefined;
}

function authenticate(request: FastifyRequest, verify: (key: string) => Principal | undefined, tokenInQuery: boolean): Principal {
  const presented = presentedKey(request, tokenInQuery);
  if (presented === undefined) {
    throw problem('UNAUTHENTICATED', 'no API key: send Authorization: Bearer <key>', {}, { 'www-authenticate': challenge });
  }
  const principal = presented.length > 0 && presented.length <= httpLimits.apiKeyLengthMax ? verify(presented) : undefined;
  if (principal === undefined) {
    // Only another scheme was sent (a key without `Bearer `, say): say how to send one rather than call it revoked.
    const { authorization } = request.headers;
    const detail = presented === '' && authorization !== undefined && bearerOf(authorization) === undefined
      ? 'the Authorization header is not of the Bearer scheme: send Authorization: Bearer <key>'
      : 'the API key is not valid or was revoked';
    throw problem('UNAUTHENTICATED', detail, {}, { 'www-authenticate': `${challenge}, error="invalid_token"` });
  }
  return principal;
}

function authorise(request: FastifyRequest, principal: Principal, needed: Scope): void {
  const tenant = (request.params as Record<string, string | undefined> | undefined)?.tenant;
  if (tenant !== undefined && principal.tenant !== null && principal.tenant !== tenant) {
    throw problem('FORBIDDEN_TENANT', `this API key belongs to tenant ${principal.tenant}, not ${tenant}`, { keyTenant: principal.tenant });
  }
  if (!grants(principal, needed)) {
    throw problem('INSUFFICIENT_SCOPE', `this route needs the ${needed} scope`, { requiredScope: needed },
      { 'www-authenticate': `${challenge}, error="insufficient_scope", scope="${needed}"` });
  }
}

function passes(check: () => void): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

/** The hook: public routes and unknown paths pass; every other route needs a key of its tenant with its scope. */
/** A callback hook, not an async one: it runs on every request, and needs no promise. */
export function authHook(keys: ApiKeyVerifier, adminKey?: string): onRequestHookHandler {
  const verify = keyVerifier(keys, adminKey);
  return (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // Read once: Fastify builds a new routeOptions object on every access.
    const route = request.routeOptions;
    const config = route.config;
    if (request.is404 || config.public === true || publicPaths.has(route.url ?? '')) {
      done();
      return;
    }
    const tokenInQuery = config.tokenInQuery === true;
    const scope = config.scope ?? 'admin';
    try {
      const principal = authenticate(request, verify, tokenInQuery);
      authorise(request, principal, scope);
      request.principal = principal;
      if (config.longLived === true) request.keyStillValid = () => passes(() => authorise(request, authenticate(request, verify, tokenInQuery), scope));
    } catch (error) {
      done(error as Error);
      return;
    }
    done();
  };
}

/** Who a key is, and which tenants it may read: what a dashboard asks before it shows anything. */
export const identityRoutes: FastifyPluginAsync<{ engine: Engine }> = async (app, { engine }) => {
  app.get('/v1/whoami', {
    config: { scope: 'read' },
    schema: {
      operationId: 'whoAmI', summary: 'The key presented: its tenant (null for an admin key) and scopes', tags: ['auth'], security: bearerSecurity,
      response: {
        200: object({
          keyId: { type: 'string' }, tenant: { type: ['string', 'null'] }, admin: { type: 'boolean' },
          scopes: { type: 'array', items: { enum: [...scopes] } },
        }, ['keyId', 'tenant', 'admin', 'scopes']),
        ...errorResponses,
      },
    },
  }, async (request) => {
    const principal = request.principal as Principal;
    return { keyId: principal.keyId, tenant: principal.tenant, admin: principal.tenant === null, scopes: principal.scopes };
  });

  app.get('/v1/tenants', {
    config: { scope: 'read' },
    schema: {
      operationId: 'listTenants', summary: "The tenants the key may read: every tenant with events for an admin key, else the key's own", tags: ['auth'],
      security: bearerSecurity, response: { 200: object({ tenants: { type: 'array', items: { type: 'string' } } }, ['tenants']), ...errorResponses },
    },
  }, async (request) => {
    const tenant = (request.principal as Principal).tenant;
    return { tenants: tenant === null ? [...engine.state().tenants.keys()].sort() : [tenant] };
  });
};
