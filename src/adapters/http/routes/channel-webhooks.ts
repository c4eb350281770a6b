// POST /v1/webhooks/shopify/:channel: a signed Shopify order webhook becomes ledger commands, or is refused untouched.

import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import type { SwaggerTransform } from '@fastify/swagger';
import { AppError } from '../../../app/engine.js';
import type { CommandBus, DeadLetterSink, Submitted } from '../../../app/ports.js';
import type { ErrorCode } from '../../../errors.js';
import { ChannelError } from '../../channels/errors.js';
import { channelLimits } from '../../channels/limits.js';
import type { LineMatching, ShopifyWebhookChannel, ShopifyWebhookMapping } from '../../channels/shopify/webhooks.js';
import { settleShopifyCommands, shopifyWebhookToCommands, variantIdsOf, verifyShopifyHmac } from '../../channels/shopify/webhooks.js';
import { HttpProblem, problem, problemOf, refuseWhenHeapFull, sendProblem } from '../problem.js';
import type { HeapFullReason } from '../problem.js';
import { errorResponses, object, problemAnswer, responseHeaders } from '../schemas.js';
import type { Schema } from '../schemas.js';

export type { ShopifyWebhookChannel };

export interface ChannelWebhookOptions {
  bus: CommandBus;
  channels: ShopifyWebhookChannel[];
  bodyBytesMax?: number;
  /** Receives deliveries that are signed but cannot become commands, for an operator to look at. */
  deadLetters?: DeadLetterSink;
  nowMs?: () => number;
  /** Why deliveries are refused now (the heap is almost out), or undefined: Shopify sends them again later. */
  heapFullReason?: HeapFullReason;
}

interface Handling {
  channels: Map<string, ShopifyWebhookChannel>;
  bus: CommandBus;
  deadLetters: DeadLetterSink | undefined;
  nowMs: () => number;
  heapFullReason: HeapFullReason;
}

type WebhookRequest = FastifyRequest<{ Params: { channel: string } }>;

/** The refusals of this route: the WEBHOOK_* codes of the error catalogue (src/errors.ts). */
export type WebhookErrorCode = Extract<ErrorCode, `WEBHOOK_${string}`>;

/** Answers with an RFC 9457 problem, in the same shape as every other error of the API. */
function refusal(request: FastifyRequest, reply: FastifyReply, code: WebhookErrorCode, detail: string): FastifyReply {
  return sendProblem(reply, request, new HttpProblem(code, detail));
}

/** One header value; absent or repeated headers count as missing, never as "any of them". */
function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

const shopifyHeaders: Schema = {
  type: 'object',
  properties: {
    'X-Shopify-Hmac-Sha256': { type: 'string', description: "Base64 HMAC-SHA256 of the raw body, keyed with the channel's app secret. Missing or wrong: 401 WEBHOOK_SIGNATURE_INVALID." },
    'X-Shopify-Shop-Domain': { type: 'string', description: "The shop that sent it; when the channel names a `shop`, it must be that one (else 403 WEBHOOK_SHOP_MISMATCH)." },
    'X-Shopify-Topic': { type: 'string', description: '`orders/create`, `orders/cancelled` or `refunds/create`; `orders/edited` is set aside (202) when it changes quantities; another topic is answered 202 and changes nothing. Missing: 400 WEBHOOK_TOPIC_MISSING.' },
    'X-Shopify-Event-Id': { type: 'string', description: 'The same on every retry of a delivery: commands are de-duplicated by it. Missing, with no X-Shopify-Webhook-Id: 400 WEBHOOK_EVENT_ID_MISSING.' },
    'X-Shopify-Webhook-Id': { type: 'string', description: 'Read instead of X-Shopify-Event-Id when that is absent (older deliveries).' },
  },
};

const shopifyLine = {
  type: 'object', additionalProperties: true,
  properties: {
    sku: { type: ['string', 'null'] }, quantity: { type: 'integer' },
    variant_id: { type: ['integer', 'string', 'null'], description: "On a channel with `inventoryItems`, a line of a mapped item's variant is sold as the mapped SKU." },
  },
};

const shopifyPayload: Schema = {
  type: 'object',
  additionalProperties: true,
  description: 'The JSON Shopify sends for the topic, taken as raw bytes whatever its Content-Type: the HMAC is checked over them before '
    + 'they are parsed, and only the fields below are read. A body that is not JSON is 400 WEBHOOK_PAYLOAD_INVALID; one no command can be made of is 422.',
  properties: {
    id: { type: ['integer', 'string'], description: 'The order (orders/create, orders/cancelled) or refund id.' },
    admin_graphql_api_id: { type: 'string', description: 'Read before `id`: a GID keeps every digit.' },
    name: { type: 'string', description: "The order's name (`#1001`), kept as the order reference." },
    line_items: { type: 'array', items: shopifyLine, description: 'orders/create: one line per variant and quantity.' },
    order_id: { type: ['integer', 'string'], description: 'refunds/create: the refunded order.' },
    refund_line_items: {
      type: 'array', description: 'refunds/create: lines with `restock_type` `return` go back on hand at the restock location.',
      items: { type: 'object', additionalProperties: true, properties: { quantity: { type: 'integer' }, restock_type: { type: 'string' }, line_item: shopifyLine } },
    },
  },
};

const skippedLine = object({
  index: { type: 'integer' }, sku: { type: ['string', 'null'] }, quantity: { type: ['integer', 'null'] }, reason: { type: 'string' },
}, ['index', 'sku', 'quantity', 'reason']);

/**
 * The route as the OpenAPI document shows it. Only the document gets it (through `swaggerTransform`): on the route
 * a schema would be enforced, and Shopify's deliveries must reach the HMAC check as sent, then be answered as built.
 */
function webhookDocumentation(bodyLimit: number): FastifySchema {
  return {
    operationId: 'receiveShopifyWebhook', summary: 'Receives a Shopify webhook (orders/create, orders/cancelled, refunds/create), verified by its HMAC signature',
    description: 'Needs no API key: the signature over the raw body is the authentication. Nothing is applied when a delivery is refused; a '
      + 'repeated delivery (same X-Shopify-Event-Id) changes nothing again. See docs/channels.md.',
    tags: ['channels'],
    security: [],
    params: { type: 'object', properties: { channel: { type: 'string', description: 'The id of a configured Shopify channel.' } }, required: ['channel'] },
    headers: shopifyHeaders,
    body: shopifyPayload,
    response: {
      200: {
        ...object({
          status: { const: 'applied' }, topic: { type: 'string' }, eventId: { type: 'string' }, commands: { type: 'integer' },
          results: { type: 'array', items: { type: 'string' }, description: "Each command's result: `accepted`, `DUPLICATE`, `RESERVATION_EXISTS`, `CANCELLED_BEFORE_SALE`, ..." },
          skipped: { type: 'array', items: skippedLine, description: 'Lines that could not become part of a command, and why.' },
        }, ['status', 'topic', 'eventId', 'commands', 'results', 'skipped']),
        description: 'The commands were submitted (a repeated delivery is answered from the ledger and changes nothing).',
      },
      202: {
        ...object({ status: { enum: ['ignored', 'set aside'] }, topic: { type: 'string' }, reason: { type: 'string' } }, ['status', 'topic', 'reason']),
        description: 'Nothing applied: `ignored`, a topic Stockline does not handle (or an order edit that changes no quantity); '
          + '`set aside`, an order edit that adds or removes units, kept as a dead letter for an operator to apply.',
      },
      400: problemAnswer('WEBHOOK_TOPIC_MISSING, WEBHOOK_EVENT_ID_MISSING (signed, but without the header), or WEBHOOK_PAYLOAD_INVALID (the body is not JSON).'),
      401: problemAnswer('WEBHOOK_SIGNATURE_INVALID: X-Shopify-Hmac-Sha256 is missing or does not match the body.'),
      403: problemAnswer('WEBHOOK_SHOP_MISMATCH: signed for another shop than the channel\'s.'),
      404: problemAnswer('WEBHOOK_CHANNEL_UNKNOWN: no Shopify channel with this id is configured.'),
      413: problemAnswer(`PAYLOAD_TOO_LARGE: the body is over ${bodyLimit} bytes (\`limitBytes\`).`),
      422: problemAnswer('WEBHOOK_PAYLOAD_UNUSABLE: signed, but no ledger command can be made of it, or the ledger refused its commands for good; kept as a dead letter.'),
      502: problemAnswer('WEBHOOK_ITEMS_REFUSED: on a channel with `inventoryItems`, Shopify refused to say which inventory items the lines are; nothing applied.'),
      503: problemAnswer('WEBHOOK_ITEMS_UNAVAILABLE: on a channel with `inventoryItems`, Shopify could not be asked which inventory items the lines are; nothing applied, delivered again. Also any 503 of the engine (see `code`).', responseHeaders.retryAfter),
      '5xx': errorResponses['5xx'] as Schema,
    },
  };
}

export async function channelWebhookRoutes(app: FastifyInstance, options: ChannelWebhookOptions): Promise<void> {
  const bodyLimit = options.bodyBytesMax ?? channelLimits.webhookBodyBytesMax;
  const handling: Handling = {
    channels: new Map(options.channels.map((channel) => [channel.channel, channel])),
    bus: options.bus,
    deadLetters: options.deadLetters,
    nowMs: options.nowMs ?? Date.now,
    heapFullReason: options.heapFullReason ?? ((): undefined => undefined),
  };
  // The signature covers the exact bytes sent, so bodies stay raw here; encapsulation keeps other routes' JSON parsing.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));
  // Scoped like the parser, so the plugin answers problems (413 above all) even outside Stockline's server.
  app.setErrorHandler((error, request, reply) => sendProblem(reply, request, problemOf(error, request, request.log)));
  // Public: Shopify sends no API key; the HMAC signature is the authentication.
  const documentation = webhookDocumentation(bodyLimit);
  const swaggerTransform: SwaggerTransform = ({ url }) => ({ schema: documentation, url });
  app.post('/v1/webhooks/shopify/:channel', { bodyLimit, config: { public: true, swaggerTransform } }, (request: WebhookRequest, reply) => receive(request, reply, handling));
}

async function receive(request: WebhookRequest, reply: FastifyReply, handling: Handling): Promise<FastifyReply> {
  const target = handling.channels.get(request.params.channel);
  if (target === undefined) return refusal(request, reply, 'WEBHOOK_CHANNEL_UNKNOWN', `no Shopify channel ${request.params.channel} is configured`);
  const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  if (!verifyShopifyHmac(rawBody, header(request, 'x-shopify-hmac-sha256'), target.webhookSecret)) {
    return refusal(request, reply, 'WEBHOOK_SIGNATURE_INVALID', 'X-Shopify-Hmac-Sha256 is missing or does not match the body');
  }
  const shop = header(request, 'x-shopify-shop-domain');
  if (target.shopDomain !== undefined && shop !== target.shopDomain) {
    return refusal(request, reply, 'WEBHOOK_SHOP_MISMATCH', `channel ${target.channel} receives webhooks of ${target.shopDomain} only`);
  }
  const topic = header(request, 'x-shopify-topic');
  if (topic === undefined) return refusal(request, reply, 'WEBHOOK_TOPIC_MISSING', 'X-Shopify-Topic is required');
  // Older deliveries carry only X-Shopify-Webhook-Id, which Shopify also keeps across retries.
  const eventId = header(request, 'x-shopify-event-id') ?? header(request, 'x-shopify-webhook-id');
  if (eventId === undefined) return refusal(request, reply, 'WEBHOOK_EVENT_ID_MISSING', 'X-Shopify-Event-Id is required to de-duplicate deliveries');
  refuseWhenHeapFull(handling.heapFullReason);
  let payload: unknown;
  try {
    payload = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return refusal(request, reply, 'WEBHOOK_PAYLOAD_INVALID', 'the body is not JSON');
  }
  const matching = await lineMatchingOf(target, topic, payload);
  if (matching instanceof HttpProblem) {
    request.log.error({ channel: target.channel, tenant: target.tenant, topic, eventId, reason: matching.message }, 'shopify webhook lines could not be matched');
    return sendProblem(reply, request, matching);
  }
  const mapping = typeof matching === 'string' ? { kind: 'invalid' as const, error: matching } : shopifyWebhookToCommands(topic, payload, {
    tenant: target.tenant, channel: target.channel, eventId,
    ...(target.restockLocation === undefined ? {} : { restockLocation: target.restockLocation }),
    ...(matching === undefined ? {} : { lines: matching }),
  });
  return apply(request, reply, handling, { target, topic, eventId, payload, mapping });
}

/**
 * On a channel that maps SKUs under `inventoryItems`, what matches the delivery's lines: the inventory item of
 * each product variant they name, from the Admin API (remembered). When Shopify cannot say, a problem that makes
 * Shopify deliver again (503 while it may answer later, 502 when it refused, a bad token say), rather than a line
 * sold as a SKU it may not be; a string when the delivery names too many variants to match.
 */
async function lineMatchingOf(target: ShopifyWebhookChannel, topic: string, payload: unknown): Promise<LineMatching | HttpProblem | string | undefined> {
  const mapped = target.mappedItems;
  if (mapped === undefined) return undefined;
  const variantIds = variantIdsOf(topic, payload, target.restockLocation);
  if (variantIds === undefined) return `the delivery names more than ${channelLimits.webhookVariantsMax} product variants to match`;
  try {
    const itemOfVariant = variantIds.length === 0 ? new Map<string, string>() : await mapped.variants.itemsOf(variantIds);
    return { itemOfSku: mapped.itemOfSku, skuOfItem: mapped.skuOfItem, itemOfVariant };
  } catch (error) {
    if (!(error instanceof ChannelError)) throw error;
    const retryAfterSeconds = Math.max(1, Math.ceil((error.retryAfterMs ?? 1_000) / 1_000));
    const detail = `Shopify could not say which inventory items the order lines are (${error.message}); nothing was applied`;
    return error.retryable
      ? problem('WEBHOOK_ITEMS_UNAVAILABLE', detail, {}, { 'retry-after': String(retryAfterSeconds) })
      : problem('WEBHOOK_ITEMS_REFUSED', detail);
  }
}

interface Delivery {
  target: ShopifyWebhookChannel;
  topic: string;
  eventId: string;
  payload: unknown;
  mapping: ShopifyWebhookMapping;
}

async function apply(request: FastifyRequest, reply: FastifyReply, handling: Handling, delivery: Delivery): Promise<FastifyReply> {
  const { target, topic, eventId, mapping } = delivery;
  const where = { channel: target.channel, tenant: target.tenant, topic, eventId };
  if (mapping.kind === 'ignored') return reply.code(202).send({ status: 'ignored', topic, reason: mapping.reason });
  if (mapping.kind === 'setAside') return setAside(request, reply, handling, delivery, mapping.reason);
  if (mapping.kind === 'invalid') return refuseUnusable(request, reply, handling, delivery, mapping.error);
  if (mapping.skipped.length > 0) request.log.warn({ ...where, skipped: mapping.skipped }, 'shopify webhook lines skipped');
  let submitted: Submitted[];
  try {
    submitted = mapping.commands.length === 0 ? [] : await handling.bus.submitMany(mapping.commands);
  } catch (error) {
    if (error instanceof AppError && !error.retryable) return refuseUnusable(request, reply, handling, delivery, `the ledger refused the commands: ${error.message}`);
    // A retryable failure answers 503: Shopify delivers again, and the event id keeps the repeat harmless.
    request.log.error({ ...where, err: error }, 'shopify webhook not applied');
    return sendProblem(reply, request, problemOf(error, request, request.log));
  }
  let results: string[];
  try {
    results = await settleShopifyCommands(handling.bus, mapping, submitted);
  } catch (error) {
    request.log.error({ ...where, err: error }, 'shopify webhook not applied');
    return sendProblem(reply, request, problemOf(error, request, request.log));
  }
  request.log.info({ ...where, commands: mapping.commands.length, results }, 'shopify webhook applied');
  return reply.code(200).send({ status: 'applied', topic, eventId, commands: mapping.commands.length, results, skipped: mapping.skipped });
}

/** Kept as a dead letter and answered 202: delivering it again would not help, an operator applies it. */
function setAside(request: FastifyRequest, reply: FastifyReply, handling: Handling, delivery: Delivery, reason: string): FastifyReply {
  request.log.warn({ channel: delivery.target.channel, tenant: delivery.target.tenant, topic: delivery.topic, eventId: delivery.eventId, reason }, 'shopify webhook set aside');
  handling.deadLetters?.deadLetter({ source: `shopify:${delivery.target.channel}`, reason, payload: delivery.payload, timeMs: handling.nowMs() });
  return reply.code(202).send({ status: 'set aside', topic: delivery.topic, reason });
}

/** A signed delivery that can never become commands: kept as a dead letter and answered 422. */
function refuseUnusable(request: FastifyRequest, reply: FastifyReply, handling: Handling, delivery: Delivery, reason: string): FastifyReply {
  request.log.warn({ channel: delivery.target.channel, topic: delivery.topic, eventId: delivery.eventId, reason }, 'shopify webhook refused');
  handling.deadLetters?.deadLetter({ source: `shopify:${delivery.target.channel}`, reason, payload: delivery.payload, timeMs: handling.nowMs() });
  return refusal(request, reply, 'WEBHOOK_PAYLOAD_UNUSABLE', reason);
}
