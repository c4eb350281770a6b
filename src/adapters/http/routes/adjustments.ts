// Stock adjustments: a delta (received, damaged) or an absolute count (`set`, with a source sequence), one or a batch.

import type { FastifyPluginAsync } from 'fastify';
import { defaultLocation, defaultSource } from '../../../core/index.js';
import type { Outcome, StockAdjustment } from '../../../core/index.js';
import type { Engine } from '../../../app/engine.js';
import type { CommandInput } from '../../../app/ports.js';
import { problemBody, refuseWhenHeapFull, rejectionProblem, settle, validationProblem } from '../problem.js';
import type { FieldError, HeapFullReason, Problem } from '../problem.js';
import {
  bearerSecurity, fields, httpLimits, idempotencyHeaders, idempotentErrorResponses, object, params, problemSchema, responseHeaders, withHeaders,
} from '../schemas.js';

export interface AdjustmentRequest {
  sku: string;
  location?: string;
  delta?: number;
  set?: number;
  reason?: string;
  source?: string;
  sourceSeq?: string;
}

export interface AdjustmentResult {
  sku: string;
  location: string;
  mode: 'delta' | 'set';
  delta: number;
  onHand: number;
  /** Oversell incidents the change caused (a recount below what is already sold). */
  conflicts: Array<{ kind: string; shortfall?: number }>;
}

type BatchItem = { index: number; status: 'applied' } & AdjustmentResult | { index: number; status: 'rejected'; error: Problem };

const adjustment = object({
  sku: fields.sku,
  location: { ...fields.location, description: 'Default: `default`.' },
  delta: { ...fields.delta, description: 'Units to add (negative to remove). Exactly one of `delta` and `set`.' },
  set: { ...fields.onHand, description: 'The counted on-hand quantity. Exactly one of `delta` and `set`.' },
  reason: fields.reason,
  source: fields.source,
  sourceSeq: { ...fields.sourceSeq, description: 'With `set` only: a change not newer than the last applied from this source is refused (409 STALE_SEQUENCE).' },
}, ['sku']);

const batch = object({ adjustments: { type: 'array', minItems: 1, maxItems: httpLimits.adjustmentsPerRequestMax, items: adjustment } }, ['adjustments']);

/** Validated as one branch or the other, so an error names the field of the form that was meant. */
const body = { type: 'object', if: { required: ['adjustments'] }, then: batch, else: adjustment };

/** The same body for the OpenAPI document: code generators read anyOf, not if/then/else. */
const documentedBody = { anyOf: [adjustment, batch] };

/**
 * The names change-data-capture sources write under (`pg:<slot>`, `debezium:<name>`). Their sequences are LSNs: a
 * `set` sent through the API under one of them with a larger sequence would refuse every later change of that
 * source for the SKU and location as stale.
 */
const reservedSourcePrefixes = ['pg:', 'debezium:'];

/** What the schema cannot say: exactly one of delta and set; a sequence only with set. */
function checkItem(item: AdjustmentRequest, base: string, index?: number): FieldError[] {
  const at = (pointer: string, message: string): FieldError => ({ in: 'body', pointer: `${base}${pointer}`, message, ...(index === undefined ? {} : { index }) });
  if ((item.delta === undefined) === (item.set === undefined)) return [at('/delta', 'give exactly one of delta and set')];
  if (item.sourceSeq !== undefined && item.set === undefined) return [at('/sourceSeq', 'is only allowed with set')];
  const reserved = reservedSourcePrefixes.find((prefix) => item.source?.startsWith(prefix) === true);
  if (reserved !== undefined) return [at('/source', `names a change-data-capture source (${reserved}...): only that source writes under its name; name the sender otherwise`)];
  return [];
}

function commandOf(tenant: string, item: AdjustmentRequest, idempotencyKey: string | undefined): CommandInput {
  return {
    type: 'adjust_stock', tenant, sku: item.sku, location: item.location ?? defaultLocation,
    ...(item.delta === undefined ? {} : { delta: item.delta }),
    ...(item.set === undefined ? {} : { set: item.set }),
    ...(item.reason === undefined ? {} : { reason: item.reason }),
    // The default written out is the same command as the default left out, so a retry that fills it in replays.
    ...(item.source === undefined || item.source === defaultSource ? {} : { source: item.source }),
    ...(item.sourceSeq === undefined ? {} : { sourceSeq: item.sourceSeq }),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  };
}

export function adjustmentResultOf(outcome: Outcome): AdjustmentResult {
  const adjusted = outcome.events.find((event): event is StockAdjustment => event.type === 'stock_adjustment');
  if (adjusted === undefined) throw new Error('an accepted adjustment has a stock_adjustment event');
  const { sku, location, mode, delta, onHand } = adjusted.data;
  const conflicts = outcome.events.flatMap((event) => (event.type === 'conflict_detected'
    ? [{ kind: event.data.kind, ...(event.data.shortfall === undefined ? {} : { shortfall: event.data.shortfall }) }]
    : []));
  return { sku, location, mode, delta, onHand, conflicts };
}

function batchItemOf(index: number, outcome: Outcome): BatchItem {
  if (outcome.rejection === undefined) return { index, status: 'applied', ...adjustmentResultOf(outcome) };
  return { index, status: 'rejected', error: problemBody(rejectionProblem(outcome.rejection)) };
}

const adjustmentResultProperties = {
  sku: { type: 'string' }, location: { type: 'string' }, mode: { enum: ['delta', 'set'] }, delta: { type: 'integer' }, onHand: { type: 'integer' },
  conflicts: { type: 'array', items: object({ kind: { type: 'string' }, shortfall: { type: 'integer' } }, ['kind']) },
};
const adjustmentResultRequired = ['sku', 'location', 'mode', 'delta', 'onHand', 'conflicts'];

/** One adjustment's result, or a batch's: every item applied (with its result) or rejected (with its problem). */
const adjustmentAnswer = {
  description: 'The adjustment applied, or for a batch every item in order, applied or rejected.',
  anyOf: [
    object(adjustmentResultProperties, adjustmentResultRequired),
    object({
      applied: { type: 'integer' }, rejected: { type: 'integer' },
      results: {
        type: 'array',
        items: {
          anyOf: [
            object({ index: { type: 'integer' }, status: { const: 'applied' }, ...adjustmentResultProperties }, ['index', 'status', ...adjustmentResultRequired]),
            object({ index: { type: 'integer' }, status: { const: 'rejected' }, error: problemSchema }, ['index', 'status', 'error']),
          ],
        },
      },
    }, ['applied', 'rejected', 'results']),
  ],
};

interface Route {
  Params: { tenant: string };
  Body: AdjustmentRequest | { adjustments: AdjustmentRequest[] };
  Headers: { 'idempotency-key'?: string };
}

export const adjustmentRoutes: FastifyPluginAsync<{ engine: Engine; heapFullReason?: HeapFullReason }> = async (app, { engine, heapFullReason = () => undefined }) => {
  app.post<Route>('/v1/tenants/:tenant/adjustments', {
    config: { scope: 'write', swaggerTransform: ({ schema, url }) => ({ schema: { ...schema, body: documentedBody }, url }) },
    schema: {
      operationId: 'adjustStock', summary: 'Adjusts on-hand stock: one adjustment, or `adjustments` (up to 1000) applied in order',
      description: 'A batch is validated whole first (400 and nothing applied), then applied in order; each item is accepted or refused on its own and the answer lists every result. Idempotency-Key applies to single adjustments.',
      tags: ['stock'], security: bearerSecurity, params: params({ tenant: fields.tenant }), headers: idempotencyHeaders, body,
      response: { 200: withHeaders(adjustmentAnswer, responseHeaders.idempotentReplayed), ...idempotentErrorResponses },
    },
  }, async (request, reply) => {
    const { tenant } = request.params;
    const key = request.headers['idempotency-key'];
    refuseWhenHeapFull(heapFullReason, () => key !== undefined && engine.tenant(tenant)?.idempotency.has(key) === true);
    if (!('adjustments' in request.body)) {
      const errors = checkItem(request.body, '');
      if (errors.length > 0) throw validationProblem(errors);
      return adjustmentResultOf(settle(reply, await engine.submit(commandOf(tenant, request.body, key))));
    }
    const items = request.body.adjustments;
    const errors = items.flatMap((item, index) => checkItem(item, `/adjustments/${index}`, index));
    if (key !== undefined) errors.unshift({ in: 'header', pointer: '/idempotency-key', message: 'applies to single adjustments only, not to batches' });
    if (errors.length > 0) throw validationProblem(errors);
    const submitted = await engine.submitMany(items.map((item) => commandOf(tenant, item, undefined)));
    const results = submitted.map((one, index) => batchItemOf(index, one.outcome));
    const applied = results.filter((result) => result.status === 'applied').length;
    return { applied, rejected: results.length - applied, results };
  });
};
