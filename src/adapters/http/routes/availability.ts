// Batch availability read: available-to-sell of many SKUs on one channel, what a storefront asks on every page.

import type { FastifyPluginAsync } from 'fastify';
import { absentTenant, availableToSell, channelPolicyOf, defaultChannelPolicy, limits, skuPattern } from '../../../core/index.js';
import type { TenantState } from '../../../core/index.js';
import type { Engine } from '../../../app/engine.js';
import { validationProblem } from '../problem.js';
import type { FieldError } from '../problem.js';
import { bearerSecurity, errorResponses, fields, httpLimits, object, params } from '../schemas.js';

export interface AvailabilityItem {
  sku: string;
  availableToSell: number;
  /** False for a SKU the ledger has never seen: it reads as 0. */
  known: boolean;
  deleted: boolean;
}

const skuShape = new RegExp(skuPattern);

/** The distinct SKUs of `A,B,C`, in order; every malformed one is reported. */
export function parseSkuList(text: string): string[] {
  const skus = [...new Set(text.split(','))];
  const errors: FieldError[] = [];
  if (skus.length > httpLimits.availabilitySkusMax) {
    errors.push({ in: 'query', pointer: '/skus', message: `must list at most ${httpLimits.availabilitySkusMax} SKUs` });
  }
  skus.forEach((sku, index) => {
    if (!skuShape.test(sku)) errors.push({ in: 'query', pointer: '/skus', index, message: `${JSON.stringify(sku)} is not a SKU (letters, digits and ._:/-)` });
  });
  if (errors.length > 0) throw validationProblem(errors);
  return skus;
}

export function availabilityOf(tenant: TenantState, channel: string | undefined, skus: string[]): AvailabilityItem[] {
  const policy = channel === undefined ? defaultChannelPolicy : channelPolicyOf(tenant, channel);
  return skus.map((sku) => {
    const state = tenant.skus.get(sku);
    return { sku, availableToSell: availableToSell(policy, state), known: state !== undefined, deleted: state?.deleted ?? false };
  });
}

const query = object({
  skus: { type: 'string', minLength: 1, maxLength: httpLimits.availabilitySkusMax * (limits.skuLengthMax + 1), description: `Comma-separated SKUs, at most ${httpLimits.availabilitySkusMax}.` },
  channel: { ...fields.channel, description: 'Without it, or for a channel never configured: every location, no buffer, no maximum.' },
}, ['skus']);

const item = object({
  sku: { type: 'string' }, availableToSell: { type: 'integer' }, known: { type: 'boolean' }, deleted: { type: 'boolean' },
}, ['sku', 'availableToSell', 'known', 'deleted']);

export const availabilityRoutes: FastifyPluginAsync<{ engine: Engine }> = async (app, { engine }) => {
  app.get<{ Params: { tenant: string }; Querystring: { skus: string; channel?: string } }>('/v1/tenants/:tenant/availability', {
    config: { scope: 'read' },
    schema: {
      operationId: 'getAvailability', summary: 'Available-to-sell of up to 100 SKUs on one channel', tags: ['availability'], security: bearerSecurity,
      params: params({ tenant: fields.tenant }), querystring: query,
      response: { 200: object({ channel: { type: ['string', 'null'] }, skus: { type: 'array', items: item } }, ['channel', 'skus']), ...errorResponses },
    },
  }, async (request) => {
    const skus = parseSkuList(request.query.skus);
    const tenant = engine.tenant(request.params.tenant) ?? absentTenant;
    return { channel: request.query.channel ?? null, skus: availabilityOf(tenant, request.query.channel, skus) };
  });
};
