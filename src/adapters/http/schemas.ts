// The HTTP API's own bounds and the JSON Schemas of its requests and responses, built from the ledger's limits.

import type { FastifyRequest } from 'fastify';
import {
  limits, namePattern, reservationIdPattern, skuPattern, sourceSeqPattern, tenantIdPattern, tokenPattern,
} from '../../core/index.js';

export type Schema = Record<string, unknown>;

const mebibyte = 1_048_576;

/** Every bound of the HTTP layer, in one place. */
export const httpLimits = {
  bodyBytesMax: mebibyte,
  /** Event imports carry up to `eventsPerImportMax` events, so their bodies may be larger. */
  importBodyBytesMax: 32 * mebibyte,
  adjustmentsPerRequestMax: 1_000,
  eventsPerImportMax: 10_000,
  availabilitySkusMax: 100,
  skuPageDefault: 100,
  skuPageMax: 1_000,
  eventPageDefault: 100,
  eventPageMax: 1_000,
  /** A validation answer lists at most this many violations (a 10,000-event batch could have far more). */
  fieldErrorsReportedMax: 100,
  apiKeyLengthMax: 256,
  requestIdLengthMax: 128,
  /** Long enough for a percent-encoded SKU or reservation id in a path. */
  pathParamLengthMax: 512,
  ttlSecondsMin: limits.ttlMsMin / 1_000,
  ttlSecondsMax: limits.ttlMsMax / 1_000,
  ttlSecondsDefault: limits.ttlMsDefault / 1_000,
  streamHeartbeatMs: 15_000,
  /** Past this many unsent bytes a stream waits for its client to read before it writes more. */
  streamClientBufferBytesMax: mebibyte,
  /** A stream client that reads nothing for this long while the stream waits for it is disconnected; it resumes with Last-Event-ID. */
  streamClientStallMsMax: 10_000,
  streamClientsMax: 1_000,
  /** One tenant's share of `streamClientsMax`, so that one tenant's key cannot take every stream. */
  streamClientsPerTenantMax: 250,
  /** How often the key of every open stream is verified again, so that a revoked key's streams close. */
  streamKeyCheckMs: 500,
  /** A resuming client further behind than this many events gets every SKU of the tenant instead. */
  streamCatchUpEventsMax: 100_000,
  /** Committed batches a stream holds while it catches up or waits for its client to read; past this the client is dropped and resumes. */
  streamCatchUpBatchesMax: 10_000,
  /** Above this many SKUs in one batch (a channel policy change on a large tenant) clients get `refresh`. */
  streamSkusPerBatchMax: 10_000,
  streamRetryMs: 2_000,
} as const;

const text = (pattern: string, maxLength: number, description: string): Schema => ({ type: 'string', pattern, minLength: 1, maxLength, description });

export const fields = {
  tenant: text(tenantIdPattern, limits.tenantIdLengthMax, 'Tenant id: lower-case letters, digits, _ and -.'),
  sku: text(skuPattern, limits.skuLengthMax, 'SKU: letters, digits and ._:/-.'),
  location: text(namePattern, limits.locationIdLengthMax, 'Location id: letters, digits and ._-.'),
  channel: text(namePattern, limits.channelIdLengthMax, 'Channel id: letters, digits and ._-.'),
  reservationId: text(reservationIdPattern, limits.reservationIdLengthMax, 'Reservation or order id: printable ASCII without spaces, not `.` or `..`.'),
  orderRef: text(tokenPattern, limits.orderRefLengthMax, "The channel's order reference."),
  reason: { type: 'string', minLength: 1, maxLength: limits.reasonLengthMax, description: 'Free text kept on the event.' },
  source: text(tokenPattern, limits.sourceLengthMax, 'Who sends the change (default `api`); sequences are kept per source.'),
  sourceSeq: { type: 'string', pattern: sourceSeqPattern, description: "The source's sequence number (e.g. an LSN) as a decimal string, for `set`." },
  quantity: { type: 'integer', minimum: 1, maximum: limits.quantityMax },
  onHand: { type: 'integer', minimum: 0, maximum: limits.quantityMax },
  delta: { type: 'integer', minimum: -limits.quantityMax, maximum: limits.quantityMax },
  time: { type: 'string', description: 'RFC 3339 date-time.' },
} as const;

export function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', additionalProperties: false, required, properties };
}

export function params(properties: Record<string, Schema>): Schema {
  return object(properties, Object.keys(properties));
}

export const tenantParams = params({ tenant: fields.tenant });

export const idempotencyHeaders: Schema = {
  type: 'object',
  properties: {
    'idempotency-key': text(tokenPattern, limits.idempotencyKeyLengthMax, 'Retries with the same key return the first answer.'),
  },
};

export const cartLine = object({ sku: fields.sku, quantity: fields.quantity, location: fields.location }, ['sku', 'quantity']);

export const cartLines: Schema = { type: 'array', minItems: 1, maxItems: limits.cartLinesMax, items: cartLine };

const allocatedLine = object({ sku: fields.sku, location: fields.location, quantity: fields.quantity }, ['sku', 'location', 'quantity']);

const totals = {
  onHand: { type: 'integer' }, committed: { type: 'integer' }, reserved: { type: 'integer' }, available: { type: 'integer' },
};

export const channelsAvailable: Schema = {
  type: 'object', additionalProperties: { type: 'integer' }, description: 'Available-to-sell per configured channel.',
};

/** A SKU's quantities as the stream and the list send them: totals over locations, per channel. */
export const skuSummary = object({
  sku: { type: 'string' }, ...totals, deleted: { type: 'boolean' }, version: { type: 'integer' }, channels: channelsAvailable,
}, ['sku', 'onHand', 'committed', 'reserved', 'available', 'deleted', 'version', 'channels']);

export const skuView = object({
  ...(skuSummary.properties as Record<string, Schema>),
  locations: { type: 'object', additionalProperties: object(totals, Object.keys(totals)) },
}, [...(skuSummary.required as string[]), 'locations']);

export const reservationView = object({
  id: { type: 'string' },
  status: { enum: ['held', 'committed', 'fulfilled', 'released', 'expired', 'cancelled'] },
  channel: { type: 'string' },
  expiresAt: { type: ['string', 'null'], description: 'When a hold expires; null for a sale recorded without a hold.' },
  createdAt: { type: 'string' },
  orderRef: { type: ['string', 'null'] },
  lines: { type: 'array', items: allocatedLine },
}, ['id', 'status', 'channel', 'expiresAt', 'createdAt', 'orderRef', 'lines']);

export const channelPolicyView = object({
  channel: { type: 'string' },
  locations: { type: ['array', 'null'], items: { type: 'string' } },
  bufferUnits: { type: 'integer' },
  maxUnits: { type: ['integer', 'null'] },
  backorder: { type: 'boolean' },
  configured: { type: 'boolean', description: 'False for a channel that was never configured: it sells from every location with no buffer.' },
}, ['channel', 'locations', 'bufferUnits', 'maxUnits', 'backorder', 'configured']);

/** RFC 9457 problem details; extension members vary by code (see docs/errors.md). */
export const problemSchema: Schema = {
  type: 'object',
  additionalProperties: true,
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' },
    instance: { type: 'string' }, code: { type: 'string' },
  },
};

/**
 * Response headers, for the OpenAPI document: @fastify/swagger reads `headers` beside a response schema, and the
 * serialiser of the body does not (it is not a keyword of the body's schema). X-Request-Id is on every answer, so
 * `documentRequestIds` adds it to the whole document rather than each route to its own.
 */
export const responseHeaders = {
  location: { Location: { type: 'string', description: 'The path of the reservation or order.' } },
  idempotentReplayed: {
    'Idempotent-Replayed': { type: 'string', enum: ['true'], description: 'Sent with the first answer, replayed, to a retry under a known Idempotency-Key.' },
  },
  retryAfter: { 'Retry-After': { type: 'string', description: 'Seconds to wait before retrying; sent with every 503 that a retry can mend.' } },
} as const satisfies Record<string, Record<string, Schema>>;

/** A response schema with the headers sent beside its body. */
export function withHeaders(schema: Schema, ...headers: Array<Record<string, Schema>>): Schema {
  return { ...schema, headers: Object.assign({}, schema.headers, ...headers) as Schema };
}

/** A problem answer for the OpenAPI document: `description` says when it is sent and with which codes. */
export function problemAnswer(description: string, ...headers: Array<Record<string, Schema>>): Schema {
  const answer: Schema = { description, content: { 'application/problem+json': { schema: problemSchema } } };
  return headers.length === 0 ? answer : withHeaders(answer, ...headers);
}

/** Error responses every authenticated route can give, for the OpenAPI document. */
export const errorResponses: Record<string, Schema> = {
  '4xx': problemAnswer('A problem (RFC 9457): validation, authentication, a business refusal; see `code`.'),
  '5xx': problemAnswer('A problem (RFC 9457): the engine is unavailable; retry when `Retry-After` is sent.', responseHeaders.retryAfter),
};

/** The error responses of a route that takes an Idempotency-Key: the retry of a refused request is answered with the refusal, replayed. */
export const idempotentErrorResponses: Record<string, Schema> = {
  ...errorResponses,
  '4xx': withHeaders(errorResponses['4xx'] as Schema, responseHeaders.idempotentReplayed),
};

const requestIdHeader = {
  description: 'Your X-Request-Id when it is 1 to 128 printable ASCII characters, else a new UUID: it finds the request in the logs.',
  schema: { type: 'string' },
};

/** Adds X-Request-Id to every response of the document: the auth hook sets it on every answer (the stream writes its own). */
export function documentRequestIds<T>(document: T): T {
  const paths = (document as { paths?: Record<string, Record<string, { responses?: Record<string, { headers?: Record<string, unknown> }> }>> }).paths ?? {};
  for (const operations of Object.values(paths)) {
    for (const operation of Object.values(operations)) {
      for (const response of Object.values(operation.responses ?? {})) response.headers = { 'X-Request-Id': requestIdHeader, ...response.headers };
    }
  }
  return document;
}

export const bearerSecurity: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { apiKeyHeader: [] }];

/** In a route's schema beside `bodyDefaultsToEmpty`: the OpenAPI document then says the body may be left out. */
export const optionalBody = { 'x-optional-body': true } as const;

/** Marks the request bodies of the operations that carry `optionalBody` as not required, and drops the mark. */
export function markOptionalBodies<T>(document: T): T {
  const paths = (document as { paths?: Record<string, Record<string, Record<string, unknown>>> }).paths ?? {};
  for (const operations of Object.values(paths)) {
    for (const operation of Object.values(operations)) {
      if (operation[optionalBodyMark] !== true) continue;
      delete operation[optionalBodyMark];
      const requestBody = operation.requestBody as { required?: boolean } | undefined;
      if (requestBody !== undefined) requestBody.required = false;
    }
  }
  return document;
}

const optionalBodyMark = 'x-optional-body';

/**
 * A preValidation hook for routes whose body is optional: no body reads as `{}`, so the schema and its defaults apply.
 * Only an absent or empty body is no body; JSON `null` is a body, and the schema refuses it as it refuses `[]`
 * (read as `{}`, it would reset a channel's policy to its defaults).
 */
export async function bodyDefaultsToEmpty(request: FastifyRequest): Promise<void> {
  if (request.body === undefined) request.body = {};
}
