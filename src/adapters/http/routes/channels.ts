// Channel policies: which locations a channel sells from, its buffer, its maximum, whether it may backorder.

import type { FastifyPluginAsync } from 'fastify';
import { defaultChannelPolicy, limits } from '../../../core/index.js';
import type { ChannelPolicy, TenantState } from '../../../core/index.js';
import type { Engine } from '../../../app/engine.js';
import { settle } from '../problem.js';
import { bearerSecurity, bodyDefaultsToEmpty, channelPolicyView, errorResponses, fields, object, optionalBody, params } from '../schemas.js';

export interface ChannelPolicyViewBody extends ChannelPolicy {
  channel: string;
  configured: boolean;
}

export function channelPolicyViewOf(tenant: TenantState | undefined, channel: string): ChannelPolicyViewBody {
  const policy = tenant?.channels.get(channel);
  const { locations, bufferUnits, maxUnits, backorder } = policy ?? defaultChannelPolicy;
  return { channel, locations, bufferUnits, maxUnits, backorder, configured: policy !== undefined };
}

const policyBody = object({
  locations: {
    type: ['array', 'null'], minItems: 1, maxItems: limits.channelLocationsMax, uniqueItems: true, items: fields.location,
    default: null, description: 'The locations the channel sells from, in the order holds are filled; null: every location.',
  },
  bufferUnits: { type: 'integer', minimum: 0, maximum: limits.quantityMax, default: 0, description: 'Units held back from this channel.' },
  maxUnits: { type: ['integer', 'null'], minimum: 0, maximum: limits.quantityMax, default: null, description: 'The most the channel is shown; null: no maximum.' },
  backorder: { type: 'boolean', default: false, description: 'Holds may exceed available stock.' },
});

const channelParams = params({ tenant: fields.tenant, channel: fields.channel });

interface PutRoute {
  Params: { tenant: string; channel: string };
  Body: ChannelPolicy;
}

export const channelRoutes: FastifyPluginAsync<{ engine: Engine }> = async (app, { engine }) => {
  app.put<PutRoute>('/v1/tenants/:tenant/channels/:channel', {
    config: { scope: 'write' },
    preValidation: bodyDefaultsToEmpty,
    schema: {
      operationId: 'setChannelPolicy', summary: "Sets a channel's policy; fields left out take their defaults", tags: ['channels'], security: bearerSecurity,
      params: channelParams, body: policyBody, ...optionalBody, response: { 200: channelPolicyView, ...errorResponses },
    },
  }, async (request, reply) => {
    const { tenant, channel } = request.params;
    const { locations, bufferUnits, maxUnits, backorder } = request.body;
    settle(reply, await engine.submit({ type: 'set_channel_policy', tenant, channel, locations, bufferUnits, maxUnits, backorder }));
    return channelPolicyViewOf(engine.tenant(tenant), channel);
  });

  app.get<{ Params: { tenant: string; channel: string } }>('/v1/tenants/:tenant/channels/:channel', {
    config: { scope: 'read' },
    schema: {
      operationId: 'getChannelPolicy', summary: "A channel's policy (the default one when it was never configured)", tags: ['channels'], security: bearerSecurity,
      params: channelParams, response: { 200: channelPolicyView, ...errorResponses },
    },
  }, async (request) => channelPolicyViewOf(engine.tenant(request.params.tenant), request.params.channel));

  app.get<{ Params: { tenant: string } }>('/v1/tenants/:tenant/channels', {
    config: { scope: 'read' },
    schema: {
      operationId: 'listChannels', summary: 'Every configured channel, by name', tags: ['channels'], security: bearerSecurity, params: params({ tenant: fields.tenant }),
      response: { 200: object({ channels: { type: 'array', items: channelPolicyView } }, ['channels']), ...errorResponses },
    },
  }, async (request) => {
    const tenant = engine.tenant(request.params.tenant);
    const names = [...(tenant?.channels.keys() ?? [])].sort();
    return { channels: names.map((name) => channelPolicyViewOf(tenant, name)) };
  });
};
