// The event contract as a JSON Schema (draft 2020-12), built from the ledger's limits.

import {
  limits, namePattern, reservationIdPattern, skuPattern, sourceSeqPattern, tenantIdPattern, tokenPattern,
} from '../core/index.js';

type Schema = Record<string, unknown>;

const string = (pattern: string, maxLength: number, description: string): Schema => ({ type: 'string', pattern, minLength: 1, maxLength, description });
const ref = (name: string): Schema => ({ $ref: `#/$defs/${name}` });
const object = (properties: Record<string, Schema>, required: string[]): Schema => ({ type: 'object', additionalProperties: false, required, properties });

function defs(): Record<string, Schema> {
  const allocatedLine = object({ sku: ref('sku'), location: ref('location'), quantity: ref('positiveQuantity') }, ['sku', 'location', 'quantity']);
  return {
    tenant: string(tenantIdPattern, limits.tenantIdLengthMax, 'Tenant id: lower-case letters, digits, _ and -, 1 to 64 characters, starting with a letter or digit.'),
    sku: string(skuPattern, limits.skuLengthMax, 'SKU: letters, digits and ._:/-, 1 to 128 characters, starting with a letter or digit.'),
    location: string(namePattern, limits.locationIdLengthMax, 'Location id: letters, digits and ._-, 1 to 64 characters.'),
    channel: string(namePattern, limits.channelIdLengthMax, 'Channel id: letters, digits and ._-, 1 to 64 characters.'),
    reservationId: string(reservationIdPattern, limits.reservationIdLengthMax, 'Reservation or order id: printable ASCII without spaces, not `.` or `..`.'),
    orderRef: string(tokenPattern, limits.orderRefLengthMax, 'The order reference of the channel.'),
    quantity: { type: 'integer', minimum: -limits.quantityMax, maximum: limits.quantityMax },
    nonNegativeQuantity: { type: 'integer', minimum: 0, maximum: limits.quantityMax },
    positiveQuantity: { type: 'integer', minimum: 1, maximum: limits.quantityMax },
    sequence: { type: 'string', pattern: sourceSeqPattern, description: 'A source sequence number (e.g. a PostgreSQL LSN) as a decimal unsigned integer.' },
    time: { type: 'string', format: 'date-time', maxLength: 40 },
    lines: { type: 'array', minItems: 1, maxItems: limits.cartLinesMax * 8, items: allocatedLine },
  };
}

function payloads(): Record<string, Schema> {
  return {
    stock_adjustment: object({
      sku: ref('sku'), location: ref('location'), mode: { enum: ['delta', 'set'] },
      delta: { type: 'integer', minimum: -2 * limits.quantityMax, maximum: 2 * limits.quantityMax },
      onHand: ref('nonNegativeQuantity'), reason: { type: 'string', minLength: 1, maxLength: limits.reasonLengthMax },
    }, ['sku', 'location', 'mode', 'delta', 'onHand']),
    order_reserved: object({
      reservationId: ref('reservationId'), channel: ref('channel'), orderRef: ref('orderRef'), expiresAt: ref('time'), lines: ref('lines'),
    }, ['reservationId', 'channel', 'expiresAt', 'lines']),
    reservation_released: object({
      reservationId: ref('reservationId'), reason: { enum: ['released', 'expired', 'cancelled'] }, from: { enum: ['held', 'committed'] }, lines: ref('lines'),
    }, ['reservationId', 'reason', 'from', 'lines']),
    order_committed: object({
      reservationId: ref('reservationId'), channel: ref('channel'), orderRef: ref('orderRef'), direct: { type: 'boolean' }, lines: ref('lines'),
    }, ['reservationId', 'channel', 'direct', 'lines']),
    order_fulfilled: object({ reservationId: ref('reservationId'), lines: ref('lines') }, ['reservationId', 'lines']),
    sku_deleted: object({ sku: ref('sku') }, ['sku']),
    sku_restored: object({ sku: ref('sku') }, ['sku']),
    channel_policy_set: object({
      channel: ref('channel'),
      locations: { oneOf: [{ type: 'null' }, { type: 'array', minItems: 1, maxItems: limits.channelLocationsMax, uniqueItems: true, items: ref('location') }] },
      bufferUnits: ref('nonNegativeQuantity'),
      maxUnits: { oneOf: [{ type: 'null' }, ref('nonNegativeQuantity')] },
      backorder: { type: 'boolean' },
      version: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'How many times the policy has been set, this time included.' },
    }, ['channel', 'locations', 'bufferUnits', 'maxUnits', 'backorder']),
    sync_complete: object({
      channel: ref('channel'), sku: ref('sku'), quantity: ref('nonNegativeQuantity'),
      latencyMs: { type: 'integer', minimum: 0, maximum: limits.ttlMsMax },
    }, ['channel', 'sku', 'quantity', 'latencyMs']),
    conflict_detected: object({
      kind: { enum: ['stale_sequence', 'oversell'] }, sku: ref('sku'), location: ref('location'),
      conflictSource: { type: 'string', minLength: 1, maxLength: limits.sourceLengthMax }, appliedSeq: ref('sequence'), incomingSeq: ref('sequence'),
      shortfall: ref('positiveQuantity'), channel: ref('channel'), orderRef: ref('orderRef'),
    }, ['kind', 'sku', 'location']),
  };
}

export function eventSchema(): Schema {
  const byType = payloads();
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'urn:stockline:schema:inventory-event',
    title: 'Stockline inventory event',
    description: 'One event of the Stockline ledger: an envelope and a payload typed by `type`.',
    type: 'object',
    additionalProperties: false,
    required: ['id', 'type', 'tenant', 'time', 'source', 'data'],
    properties: {
      id: string(tokenPattern, 160, 'Unique event id.'),
      type: { enum: Object.keys(byType) },
      tenant: ref('tenant'),
      time: ref('time'),
      source: { type: 'string', pattern: tokenPattern, minLength: 1, maxLength: limits.sourceLengthMax, description: 'Who caused the event: api, pg:<slot>, shopify, ...' },
      sourceSeq: ref('sequence'),
      data: { type: 'object' },
    },
    allOf: Object.entries(byType).map(([type, data]) => ({
      if: { properties: { type: { const: type } }, required: ['type'] },
      then: { properties: { data } },
    })),
    $defs: defs(),
  };
}
