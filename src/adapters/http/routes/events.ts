// The event log of a tenant: read it in pages, or import a batch of events (validated whole, applied all or nothing).

import type { FastifyPluginAsync } from 'fastify';
import { limits } from '../../../core/index.js';
import type { InventoryEvent } from '../../../core/index.js';
import type { Engine } from '../../../app/engine.js';
import { validateEvent } from '../../../app/event-validation.js';
import { importCommandKeys } from '../../../app/import-events.js';
import type { ImportResult } from '../../../app/import-events.js';
import { problem, refuseWhenHeapFull, validationProblem } from '../problem.js';
import type { HeapFullReason } from '../problem.js';
import type { HttpProblem } from '../problem.js';
import type { FieldError } from '../problem.js';
import { bearerSecurity, errorResponses, fields, httpLimits, idempotencyHeaders, object, params, responseHeaders, withHeaders } from '../schemas.js';

/**
 * An imported hold is re-decided as a reservation of the length its event shows, which must be one the API
 * could have made: an expiry years ahead, or before the hold was made, is not a hold the ledger can reach.
 */
function holdLengthError(candidate: unknown): string | undefined {
  const event = candidate as { type?: unknown; time?: unknown; data?: { expiresAt?: unknown } } | null;
  if (event?.type !== 'order_reserved' || typeof event.time !== 'string' || typeof event.data?.expiresAt !== 'string') return undefined;
  const lengthMs = Date.parse(event.data.expiresAt) - Date.parse(event.time);
  if (!Number.isFinite(lengthMs) || (lengthMs >= limits.ttlMsMin && lengthMs <= limits.ttlMsMax)) return undefined;
  return `must be ${limits.ttlMsMin / 1_000} s to ${limits.ttlMsMax / 86_400_000} days after the event's time, as a hold's ttlSeconds is; it is ${lengthMs / 1_000} s after it`;
}

/**
 * How far ahead of this server's clock an imported event may be dated: the clocks of the system that exported
 * it and of this one may differ by this much. Later is a date the ledger has not reached: a hold dated next
 * year would hold its stock until then, and its time would make the tenant forget finished reservations and
 * idempotency records by a clock that is not the ledger's.
 */
export const importClockSkewMs = limits.timeAheadMsMax;

function futureTimeError(candidate: unknown, nowMs: number): string | undefined {
  const { time, type, data } = (candidate ?? {}) as { time?: unknown; type?: unknown; data?: { reason?: unknown } };
  if (typeof time !== 'string') return undefined;
  const timeMs = Date.parse(time);
  if (!Number.isFinite(timeMs)) return undefined;
  // A hold's expiry is decided at the event's time: dated ahead, it would release a hold still running here.
  if (type === 'reservation_released' && data?.reason === 'expired' && timeMs > nowMs) {
    return `must not be later than this server's clock (${new Date(nowMs).toISOString()}) for an expiry: the hold is still running here`;
  }
  if (timeMs <= nowMs + importClockSkewMs) return undefined;
  return `must not be later than this server's clock (${new Date(nowMs).toISOString()}, allowing ${importClockSkewMs / 60_000} minutes for clocks that differ)`;
}

/** Every violation of every event (up to the reporting bound), with its index; empty when all are valid. */
export function eventBatchErrors(tenant: string, events: unknown[], nowMs = Date.now()): FieldError[] {
  const errors: FieldError[] = [];
  // An event's id names one change: a dump that holds it twice (pages joined with an overlap) would apply it twice.
  const firstIndexOfId = new Map<string, number>();
  for (let index = 0; index < events.length && errors.length < httpLimits.fieldErrorsReportedMax; index += 1) {
    const candidate = events[index];
    const id = (candidate as { id?: unknown } | null)?.id;
    const earlier = typeof id === 'string' ? firstIndexOfId.get(id) : undefined;
    if (earlier !== undefined) errors.push({ in: 'body', index, pointer: `/events/${index}/id`, message: `repeats the id of event ${earlier}: each event is one change, imported once` });
    else if (typeof id === 'string') firstIndexOfId.set(id, index);
    for (const violation of validateEvent(candidate)) {
      errors.push({ in: 'body', index, pointer: `/events/${index}${violation.pointer === '/' ? '' : violation.pointer}`, message: violation.message });
    }
    const eventTenant = (candidate as { tenant?: unknown } | null)?.tenant;
    if (typeof eventTenant === 'string' && eventTenant !== tenant) {
      errors.push({ in: 'body', index, pointer: `/events/${index}/tenant`, message: `must be ${tenant}, the tenant in the path` });
    }
    const future = futureTimeError(candidate, nowMs);
    if (future !== undefined) errors.push({ in: 'body', index, pointer: `/events/${index}/time`, message: future });
    const holdLength = holdLengthError(candidate);
    if (holdLength !== undefined) errors.push({ in: 'body', index, pointer: `/events/${index}/data/expiresAt`, message: holdLength });
  }
  return errors.slice(0, httpLimits.fieldErrorsReportedMax);
}

/** An import refused as a whole: every event the ledger refused is listed with its code (the others read NOT_APPLIED). */
export function importRefusal(result: ImportResult): HttpProblem {
  const refused = result.items.flatMap((item) => {
    const rejection = item.outcome?.rejection;
    return rejection === undefined || rejection.code === 'NOT_APPLIED' ? [] : [{ index: item.index, code: rejection.code, message: rejection.message }];
  });
  const first = refused[0];
  const detail = first === undefined ? 'the import was refused' : `event ${first.index} was refused (${first.code}: ${first.message})`;
  return problem('IMPORT_REFUSED', `${detail}; nothing was imported`, { refused });
}

const pageQuery = object({
  after: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'A log position: read events after it.' },
  limit: { type: 'integer', minimum: 1, maximum: httpLimits.eventPageMax, default: httpLimits.eventPageDefault },
});

const loggedEvent = object({
  position: { type: 'integer' },
  event: { type: 'object', additionalProperties: true, description: 'An event as schema/inventory-event.schema.json describes it.' },
}, ['position', 'event']);

export const eventRoutes: FastifyPluginAsync<{ engine: Engine; heapFullReason?: HeapFullReason }> = async (app, { engine, heapFullReason = () => undefined }) => {
  app.get<{ Params: { tenant: string }; Querystring: { after: number; limit: number } }>('/v1/tenants/:tenant/events', {
    config: { scope: 'read' },
    schema: {
      operationId: 'listEvents', summary: "The tenant's events after a log position, oldest first", tags: ['events'], security: bearerSecurity,
      params: params({ tenant: fields.tenant }), querystring: pageQuery,
      response: { 200: object({ events: { type: 'array', items: loggedEvent }, next: { type: 'integer' } }, ['events', 'next']), ...errorResponses },
    },
  }, async (request) => engine.eventsAfter(request.params.tenant, request.query.after, request.query.limit));

  app.post<{ Params: { tenant: string }; Body: { events: unknown[] }; Headers: { 'idempotency-key'?: string } }>('/v1/tenants/:tenant/events', {
    config: { scope: 'admin' },
    bodyLimit: httpLimits.importBodyBytesMax,
    schema: {
      operationId: 'importEvents', summary: 'Imports events (vendor onboarding, migration): all are validated first, then applied all or nothing',
      description: 'Needs the admin scope. Each event is re-decided as the command that would have produced it, so an import cannot break the ledger rules; derived events (conflicts) are skipped and recomputed. One refusal refuses the whole batch (409 IMPORT_REFUSED; `refused` lists the events with their codes). Under an Idempotency-Key, a retry of an applied import applies nothing and answers as the first time, with Idempotent-Replayed: true; another import under the same key is 422 IDEMPOTENCY_KEY_REUSED.',
      tags: ['events'], security: bearerSecurity, params: params({ tenant: fields.tenant }), headers: idempotencyHeaders,
      body: object({ events: { type: 'array', minItems: 1, maxItems: httpLimits.eventsPerImportMax, items: { type: 'object', additionalProperties: true, description: 'An event as schema/inventory-event.schema.json describes it.' } } }, ['events']),
      response: {
        // A refused import is remembered by nothing, so only the answer to an applied one is ever replayed.
        200: withHeaders(object({
          imported: { type: 'integer' },
          skipped: { type: 'array', items: object({ index: { type: 'integer' }, reason: { type: 'string' } }, ['index', 'reason']) },
          position: { type: 'integer', description: 'The log position after the import.' },
        }, ['imported', 'skipped', 'position']), responseHeaders.idempotentReplayed),
        ...errorResponses,
      },
    },
  }, async (request, reply) => {
    const { tenant } = request.params;
    const key = request.headers['idempotency-key'];
    // The retry of an import already applied grows nothing: it is answered even while the heap is nearly full.
    refuseWhenHeapFull(heapFullReason, () => key !== undefined && engine.tenant(tenant)?.idempotency.has(importCommandKeys(key)(0)) === true);
    const errors = eventBatchErrors(tenant, request.body.events);
    if (errors.length > 0) throw validationProblem(errors);
    const result = await engine.importEvents(tenant, request.body.events as InventoryEvent[], key);
    if (result.keyReused === true) {
      throw problem('IDEMPOTENCY_KEY_REUSED', `idempotency key ${key} was used for a different import, or for this one longer ago than keys are kept; nothing was imported`, { idempotencyKey: key });
    }
    if (!result.applied) throw importRefusal(result);
    if (result.replayed === true) reply.header('idempotent-replayed', 'true');
    const skipped = result.items.flatMap((item) => (item.skipped === undefined ? [] : [{ index: item.index, reason: item.skipped }]));
    return { imported: result.items.length - skipped.length, skipped, position: engine.position() };
  });
};
