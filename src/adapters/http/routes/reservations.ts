// Reservations: hold stock for a cart, read a hold, commit it to an order, release it; retries by Idempotency-Key.

import { hash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { flattened, formatTime, limits, parseTime } from '../../../core/index.js';
import type { CartLine, InventoryEvent, Outcome, Reservation, ReservationStatus, TenantState } from '../../../core/index.js';
import type { Engine } from '../../../app/engine.js';
import type { CommandInput } from '../../../app/ports.js';
import { problem, refuseWhenHeapFull, settle } from '../problem.js';
import type { HeapFullReason } from '../problem.js';
import {
  bearerSecurity, bodyDefaultsToEmpty, cartLines, errorResponses, fields, httpLimits, idempotencyHeaders, idempotentErrorResponses, object, optionalBody, params,
  responseHeaders, reservationView, withHeaders,
} from '../schemas.js';

export interface ReservationViewBody {
  id: string;
  status: ReservationStatus;
  channel: string;
  expiresAt: string | null;
  createdAt: string;
  orderRef: string | null;
  lines: Array<{ sku: string; location: string; quantity: number }>;
}

export function reservationViewOf(reservation: Reservation): ReservationViewBody {
  return {
    id: reservation.id,
    status: reservation.status,
    channel: reservation.channel,
    expiresAt: reservation.expiresAtMs === 0 ? null : formatTime(reservation.expiresAtMs),
    createdAt: formatTime(reservation.createdAtMs),
    orderRef: reservation.orderRef ?? null,
    lines: reservation.lines,
  };
}

const statusAfter = (event: InventoryEvent): ReservationStatus | undefined => {
  switch (event.type) {
    case 'order_reserved': return 'held';
    case 'order_committed': return 'committed';
    case 'reservation_released': return event.data.reason;
    case 'order_fulfilled': return 'fulfilled';
    default: return undefined;
  }
};

/**
 * The reservation as the command left it. Built from the command's own event, not the current state, so a
 * replayed request answers exactly as the first did even if the reservation moved on since. A replay that
 * comes after the reservation finished and was forgotten answers 404, as a read would.
 */
export function reservationAfter(tenant: TenantState | undefined, outcome: Outcome): ReservationViewBody {
  for (const event of outcome.events) {
    const status = statusAfter(event);
    if (status === undefined || !('reservationId' in event.data)) continue;
    const { reservationId } = event.data;
    const reservation = tenant?.reservations.get(reservationId);
    if (reservation === undefined || isLaterLife(reservation, event)) {
      throw problem('UNKNOWN_RESERVATION', `no reservation ${reservationId}`, { reservationId });
    }
    // Reserve and commit events carry the order reference as it then was; release and fulfil never change it.
    const orderRef = event.type === 'order_reserved' || event.type === 'order_committed' ? event.data.orderRef ?? null : reservation.orderRef ?? null;
    // A fresh view, changed in place rather than spread: this answers every reservation.
    const view = reservationViewOf(reservation);
    view.status = status;
    view.orderRef = orderRef;
    view.lines = event.data.lines;
    return view;
  }
  throw new Error('an accepted reservation command has a reservation event');
}

/**
 * Whether the reservation under the event's id is a newer one that took the id after the event's own was
 * forgotten. An id is free again only once its reservation has been finished for reservationRetentionMs, so a
 * newer one is created about that long after any event of the old one, while a reservation is never created
 * after its own events. Half the retention leaves a wide margin either side for clocks that differ between nodes.
 */
function isLaterLife(reservation: Reservation, event: InventoryEvent): boolean {
  return reservation.createdAtMs - parseTime(event.time) > limits.reservationRetentionMs / 2;
}

/**
 * The id of a new reservation or order. Under an Idempotency-Key it derives from the key, so the retry of a
 * request that named no id is the same command as the first and replays its answer. The id is flattened
 * before it is decided: every map of the tenant hashes it, and the expiry heap compares ids of holds that
 * expire in the same millisecond (0.25-0.6 µs more a reservation in the ledger as a tree of pieces).
 */
export function newReservationId(given: string | undefined, idempotencyKey: string | undefined): string {
  if (given !== undefined) return given;
  if (idempotencyKey === undefined) return flattened(randomUUID());
  const hex = hash('sha256', `stockline:reservation:${idempotencyKey}`, 'hex');
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return flattened(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`);
}

export function locationOf(tenant: string, id: string): string {
  return `/v1/tenants/${tenant}/reservations/${encodeURIComponent(id)}`;
}

interface ReserveBody {
  channel: string;
  lines: CartLine[];
  ttlSeconds: number;
  orderRef?: string;
  reservationId?: string;
}

interface IdempotentRoute {
  Headers: { 'idempotency-key'?: string };
}

const reservationParams = params({ tenant: fields.tenant, id: fields.reservationId });

export const reserveBody = object({
  channel: fields.channel,
  lines: cartLines,
  ttlSeconds: { type: 'integer', minimum: httpLimits.ttlSecondsMin, maximum: httpLimits.ttlSecondsMax, default: httpLimits.ttlSecondsDefault },
  orderRef: fields.orderRef,
  reservationId: { ...fields.reservationId, description: 'Default: a new UUID (derived from the Idempotency-Key when one is sent).' },
}, ['channel', 'lines']);

export function idempotencyKeyOf(headers: { 'idempotency-key'?: string }): { idempotencyKey?: string } {
  const key = headers['idempotency-key'];
  return key === undefined ? {} : { idempotencyKey: key };
}

function answer(engine: Engine, tenant: string, outcome: Outcome): ReservationViewBody {
  return reservationAfter(engine.tenant(tenant), outcome);
}

/** Holding stock and reading a hold. */
function holdRoutes(app: FastifyInstance, engine: Engine, heapFullReason: HeapFullReason): void {
  app.post<IdempotentRoute & { Params: { tenant: string }; Body: ReserveBody }>('/v1/tenants/:tenant/reservations', {
    config: { scope: 'write' },
    schema: {
      operationId: 'createReservation', summary: 'Holds stock for a cart; all lines or none', tags: ['reservations'], security: bearerSecurity,
      params: params({ tenant: fields.tenant }), headers: idempotencyHeaders, body: reserveBody,
      response: { 201: withHeaders(reservationView, responseHeaders.location, responseHeaders.idempotentReplayed), ...idempotentErrorResponses },
    },
  }, async (request, reply) => {
    const { tenant } = request.params;
    const idempotencyKey = request.headers['idempotency-key'];
    // A retry under a key already recorded is answered from its record and grows nothing: only new holds wait.
    refuseWhenHeapFull(heapFullReason, () => idempotencyKey !== undefined && engine.tenant(tenant)?.idempotency.has(idempotencyKey) === true);
    const { channel, lines, ttlSeconds, orderRef } = request.body;
    const reservationId = newReservationId(request.body.reservationId, idempotencyKey);
    // Built field by field, no spreads: this is the flash sale's hot path.
    const command: CommandInput & { type: 'reserve' } = { type: 'reserve', tenant, reservationId, channel, lines, ttlMs: ttlSeconds * 1_000 };
    if (orderRef !== undefined) command.orderRef = orderRef;
    if (idempotencyKey !== undefined) command.idempotencyKey = idempotencyKey;
    const submitted = await engine.submit(command);
    const view = answer(engine, tenant, settle(reply, submitted));
    return reply.code(201).header('location', locationOf(tenant, view.id)).send(view);
  });

  app.get<{ Params: { tenant: string; id: string } }>('/v1/tenants/:tenant/reservations/:id', {
    config: { scope: 'read' },
    schema: {
      operationId: 'getReservation', summary: 'A reservation or recorded order', tags: ['reservations'], security: bearerSecurity,
      params: reservationParams, response: { 200: reservationView, ...errorResponses },
    },
  }, async (request) => {
    const reservation = engine.tenant(request.params.tenant)?.reservations.get(request.params.id);
    if (reservation === undefined) throw problem('UNKNOWN_RESERVATION', `no reservation ${request.params.id}`, { reservationId: request.params.id });
    return reservationViewOf(reservation);
  });

}

const replayable = withHeaders(reservationView, responseHeaders.idempotentReplayed);

/** Moving a hold on: to an order, or back to stock. */
function transitionRoutes(app: FastifyInstance, engine: Engine): void {
  app.post<IdempotentRoute & { Params: { tenant: string; id: string }; Body: { orderRef?: string } }>('/v1/tenants/:tenant/reservations/:id/commit', {
    config: { scope: 'write' },
    preValidation: bodyDefaultsToEmpty,
    schema: {
      operationId: 'commitReservation', summary: 'Turns a held reservation into an order (its units become committed)', tags: ['reservations'], security: bearerSecurity,
      params: reservationParams, headers: idempotencyHeaders, body: object({ orderRef: fields.orderRef }), ...optionalBody,
      response: { 200: replayable, ...idempotentErrorResponses },
    },
  }, async (request, reply) => {
    const { tenant, id } = request.params;
    const { orderRef } = request.body;
    const submitted = await engine.submit({
      type: 'commit', tenant, reservationId: id, ...(orderRef === undefined ? {} : { orderRef }), ...idempotencyKeyOf(request.headers),
    });
    return answer(engine, tenant, settle(reply, submitted));
  });

  app.post<IdempotentRoute & { Params: { tenant: string; id: string }; Body: { reason?: 'released' | 'cancelled' } }>('/v1/tenants/:tenant/reservations/:id/release', {
    config: { scope: 'write' },
    preValidation: bodyDefaultsToEmpty,
    schema: {
      operationId: 'releaseReservation', summary: 'Gives back a held reservation (`released`), or cancels a committed order (`cancelled`)', tags: ['reservations'],
      security: bearerSecurity, params: reservationParams, headers: idempotencyHeaders,
      body: object({ reason: { enum: ['released', 'cancelled'], default: 'released' } }), ...optionalBody,
      response: { 200: replayable, ...idempotentErrorResponses },
    },
  }, async (request, reply) => {
    const { tenant, id } = request.params;
    const submitted = await engine.submit({
      type: 'release', tenant, reservationId: id, reason: request.body.reason ?? 'released', ...idempotencyKeyOf(request.headers),
    });
    return answer(engine, tenant, settle(reply, submitted));
  });
}

export const reservationRoutes: FastifyPluginAsync<{ engine: Engine; heapFullReason?: HeapFullReason }> = async (app, { engine, heapFullReason = () => undefined }) => {
  holdRoutes(app, engine, heapFullReason);
  transitionRoutes(app, engine);
};
