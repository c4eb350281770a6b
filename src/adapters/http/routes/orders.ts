// Channel orders that already happened (a marketplace sale): recorded as facts, even beyond stock, with oversells flagged.

import type { FastifyPluginAsync } from 'fastify';
import type { CartLine, Outcome } from '../../../core/index.js';
import type { Engine } from '../../../app/engine.js';
import { refuseWhenHeapFull, settle } from '../problem.js';
import type { HeapFullReason } from '../problem.js';
import {
  bearerSecurity, cartLines, fields, idempotencyHeaders, idempotentErrorResponses, object, params, responseHeaders, reservationView, withHeaders,
} from '../schemas.js';
import { idempotencyKeyOf, locationOf, newReservationId, reservationAfter } from './reservations.js';

interface Route {
  Params: { tenant: string };
  Body: { channel: string; lines: CartLine[]; orderRef?: string; reservationId?: string };
  Headers: { 'idempotency-key'?: string };
}

export interface OversellConflict {
  sku: string;
  location: string;
  shortfall: number;
}

function conflictsOf(outcome: Outcome): OversellConflict[] {
  return outcome.events.flatMap((event) => (event.type === 'conflict_detected' && event.data.kind === 'oversell'
    ? [{ sku: event.data.sku, location: event.data.location, shortfall: event.data.shortfall ?? 0 }]
    : []));
}

const orderBody = object({
  channel: fields.channel,
  lines: cartLines,
  orderRef: fields.orderRef,
  reservationId: { ...fields.reservationId, description: 'The ledger id of the order (shared with reservations). Default: a new UUID (derived from the Idempotency-Key when one is sent).' },
}, ['channel', 'lines']);

const orderView = {
  ...reservationView,
  required: [...(reservationView.required as string[]), 'conflicts'],
  properties: {
    ...(reservationView.properties as Record<string, unknown>),
    conflicts: {
      type: 'array', description: 'Units sold beyond what was there: oversell incidents; the channel is pushed zero.',
      items: object({ sku: { type: 'string' }, location: { type: 'string' }, shortfall: { type: 'integer' } }, ['sku', 'location', 'shortfall']),
    },
  },
};

export const orderRoutes: FastifyPluginAsync<{ engine: Engine; heapFullReason?: HeapFullReason }> = async (app, { engine, heapFullReason = () => undefined }) => {
  app.post<Route>('/v1/tenants/:tenant/orders', {
    config: { scope: 'write' },
    schema: {
      operationId: 'recordOrder', summary: 'Records a sale a channel already made, without a hold; stock it lacked is reported as oversell conflicts',
      tags: ['reservations'], security: bearerSecurity, params: params({ tenant: fields.tenant }), headers: idempotencyHeaders, body: orderBody,
      response: { 201: withHeaders(orderView, responseHeaders.location, responseHeaders.idempotentReplayed), ...idempotentErrorResponses },
    },
  }, async (request, reply) => {
    const { tenant } = request.params;
    const { channel, lines, orderRef } = request.body;
    const keyed = idempotencyKeyOf(request.headers);
    // A retry of a sale already recorded is answered from its record and grows nothing.
    refuseWhenHeapFull(heapFullReason, () => keyed.idempotencyKey !== undefined && engine.tenant(tenant)?.idempotency.has(keyed.idempotencyKey) === true);
    const reservationId = newReservationId(request.body.reservationId, keyed.idempotencyKey);
    const submitted = await engine.submit({
      type: 'record_sale', tenant, reservationId, channel, lines, ...(orderRef === undefined ? {} : { orderRef }), ...keyed,
    });
    const outcome = settle(reply, submitted);
    const view = { ...reservationAfter(engine.tenant(tenant), outcome), conflicts: conflictsOf(outcome) };
    return reply.code(201).header('location', locationOf(tenant, reservationId)).send(view);
  });
};
