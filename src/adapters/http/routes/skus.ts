// SKU reads (one SKU, a paged list) and soft delete and restore; also the SKU views the stream sends.

import type { FastifyPluginAsync } from 'fastify';
import { absentTenant, availableOf, availableToSell, limits, skuTotals } from '../../../core/index.js';
import type { SkuState, SkuTotals, TenantState } from '../../../core/index.js';
import type { Engine } from '../../../app/engine.js';
import { problem, settle } from '../problem.js';
import {
  bearerSecurity, errorResponses, fields, httpLimits, object, params, skuSummary, skuView,
} from '../schemas.js';

export interface SkuSummary extends SkuTotals {
  sku: string;
  deleted: boolean;
  version: number;
  /** Available-to-sell per configured channel. */
  channels: Record<string, number>;
}

export interface SkuView extends SkuSummary {
  locations: Record<string, SkuTotals>;
}

function channelsOf(tenant: TenantState, state: SkuState | undefined): Record<string, number> {
  const channels: Record<string, number> = {};
  if (tenant.channels.size === 0) return channels;
  for (const name of [...tenant.channels.keys()].sort()) {
    const policy = tenant.channels.get(name);
    if (policy !== undefined) channels[name] = availableToSell(policy, state);
  }
  return channels;
}

function locationsOf(state: SkuState | undefined): Record<string, SkuTotals> {
  const locations: Record<string, SkuTotals> = {};
  if (state === undefined) return locations;
  const entries = state.locations.size > 1 ? [...state.locations].sort(([a], [b]) => (a < b ? -1 : 1)) : state.locations;
  for (const [location, stock] of entries) {
    locations[location] = { onHand: stock.onHand, committed: stock.committed, reserved: stock.reserved, available: availableOf(stock) };
  }
  return locations;
}

/** Built field by field, no spreads: a hot SKU is read on every page view of a flash sale. */
export function skuSummaryOf(tenant: TenantState, sku: string): SkuSummary {
  const state = tenant.skus.get(sku);
  const totals = skuTotals(state);
  return {
    sku, onHand: totals.onHand, committed: totals.committed, reserved: totals.reserved, available: totals.available,
    deleted: state?.deleted ?? false, version: state?.version ?? 0, channels: channelsOf(tenant, state),
  };
}

export function skuViewOf(tenant: TenantState, sku: string): SkuView {
  const view = skuSummaryOf(tenant, sku) as SkuView;
  view.locations = locationsOf(tenant.skus.get(sku));
  return view;
}

/** SKUs are only ever added to a tenant (deletion is soft), so a sorted copy stays valid while the count is unchanged. */
const sortedCache = new WeakMap<TenantState, { size: number; skus: string[] }>();

function sortedSkus(tenant: TenantState): string[] {
  const cached = sortedCache.get(tenant);
  if (cached !== undefined && cached.size === tenant.skus.size) return cached.skus;
  const skus = [...tenant.skus.keys()].sort();
  sortedCache.set(tenant, { size: skus.length, skus });
  return skus;
}

/** Index of the first entry not below `key` (or above it, when `strict`). */
function searchFrom(sorted: string[], key: string, strict: boolean): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    const value = sorted[middle] as string;
    if (value < key || (strict && value === key)) low = middle + 1;
    else high = middle;
  }
  return low;
}

export interface SkuPage {
  skus: SkuSummary[];
  next: string | null;
}

export function skuPage(tenant: TenantState, query: { prefix?: string; after?: string; limit: number }): SkuPage {
  const sorted = sortedSkus(tenant);
  const prefix = query.prefix ?? '';
  let index = Math.max(searchFrom(sorted, prefix, false), query.after === undefined ? 0 : searchFrom(sorted, query.after, true));
  const skus: SkuSummary[] = [];
  for (; index < sorted.length && skus.length < query.limit; index += 1) {
    const sku = sorted[index] as string;
    if (!sku.startsWith(prefix)) break;
    skus.push(skuSummaryOf(tenant, sku));
  }
  const more = index < sorted.length && (sorted[index] as string).startsWith(prefix);
  return { skus, next: more ? (skus[skus.length - 1]?.sku ?? null) : null };
}

const skuParams = params({ tenant: fields.tenant, sku: fields.sku });

const listQuery = object({
  prefix: { type: 'string', pattern: '^[A-Za-z0-9._:/-]*$', maxLength: limits.skuLengthMax, description: 'Only SKUs starting with this.' },
  after: { ...fields.sku, description: 'The `next` of the previous page.' },
  limit: { type: 'integer', minimum: 1, maximum: httpLimits.skuPageMax, default: httpLimits.skuPageDefault },
});

export const skuRoutes: FastifyPluginAsync<{ engine: Engine }> = async (app, { engine }) => {
  const tenantOf = (tenant: string): TenantState => engine.tenant(tenant) ?? absentTenant;

  app.get<{ Params: { tenant: string; sku: string } }>('/v1/tenants/:tenant/skus/:sku', {
    config: { scope: 'read' },
    schema: {
      operationId: 'getSku', summary: "A SKU's quantities: totals, per location, and available-to-sell per configured channel",
      tags: ['skus'], security: bearerSecurity, params: skuParams, response: { 200: skuView, ...errorResponses },
    },
  }, async (request) => {
    const tenant = tenantOf(request.params.tenant);
    if (!tenant.skus.has(request.params.sku)) throw problem('UNKNOWN_SKU', `no SKU ${request.params.sku}`, { sku: request.params.sku });
    return skuViewOf(tenant, request.params.sku);
  });

  app.get<{ Params: { tenant: string }; Querystring: { prefix?: string; after?: string; limit: number } }>('/v1/tenants/:tenant/skus', {
    config: { scope: 'read' },
    schema: {
      operationId: 'listSkus', summary: 'SKUs in order, a page at a time (deleted ones included, flagged)', tags: ['skus'], security: bearerSecurity,
      params: params({ tenant: fields.tenant }), querystring: listQuery,
      response: { 200: object({ skus: { type: 'array', items: skuSummary }, next: { type: ['string', 'null'] } }, ['skus', 'next']), ...errorResponses },
    },
  }, async (request) => skuPage(tenantOf(request.params.tenant), request.query));

  app.delete<{ Params: { tenant: string; sku: string } }>('/v1/tenants/:tenant/skus/:sku', {
    config: { scope: 'write' },
    schema: {
      operationId: 'deleteSku', summary: 'Soft-deletes a SKU: every channel sells zero of it until it is restored', tags: ['skus'], security: bearerSecurity,
      params: skuParams, response: { 200: skuView, ...errorResponses },
    },
  }, async (request, reply) => {
    const { tenant, sku } = request.params;
    settle(reply, await engine.submit({ type: 'delete_sku', tenant, sku }));
    return skuViewOf(tenantOf(tenant), sku);
  });

  app.post<{ Params: { tenant: string; sku: string } }>('/v1/tenants/:tenant/skus/:sku/restore', {
    config: { scope: 'write' },
    schema: {
      operationId: 'restoreSku', summary: 'Restores a deleted SKU', tags: ['skus'], security: bearerSecurity,
      params: skuParams, response: { 200: skuView, ...errorResponses },
    },
  }, async (request, reply) => {
    const { tenant, sku } = request.params;
    settle(reply, await engine.submit({ type: 'restore_sku', tenant, sku }));
    return skuViewOf(tenantOf(tenant), sku);
  });
};
