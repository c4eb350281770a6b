// Fulfilment: a committed order has shipped, so its units leave on-hand and committed.

import type { FastifyPluginAsync } from 'fastify';
import type { Engine } from '../../../app/engine.js';
import { settle } from '../problem.js';
import {
  bearerSecurity, fields, idempotencyHeaders, idempotentErrorResponses, object, params, responseHeaders, reservationView, withHeaders,
} from '../schemas.js';
import { idempotencyKeyOf, locationOf, reservationAfter } from './reservations.js';

interface Route {
  Params: { tenant: string };
  Body: { reservationId: string };
  Headers: { 'idempotency-key'?: string };
}

export const fulfillmentRoutes: FastifyPluginAsync<{ engine: Engine }> = async (app, { engine }) => {
  app.post<Route>('/v1/tenants/:tenant/fulfillments', {
    config: { scope: 'write' },
    schema: {
      operationId: 'fulfillReservation', summary: 'Marks a committed order as shipped', tags: ['reservations'], security: bearerSecurity,
      params: params({ tenant: fields.tenant }), headers: idempotencyHeaders, body: object({ reservationId: fields.reservationId }, ['reservationId']),
      response: { 201: withHeaders(reservationView, responseHeaders.location, responseHeaders.idempotentReplayed), ...idempotentErrorResponses },
    },
  }, async (request, reply) => {
    const { tenant } = request.params;
    const { reservationId } = request.body;
    const submitted = await engine.submit({ type: 'fulfil', tenant, reservationId, ...idempotencyKeyOf(request.headers) });
    const view = reservationAfter(engine.tenant(tenant), settle(reply, submitted));
    return reply.code(201).header('location', locationOf(tenant, reservationId)).send(view);
  });
};
