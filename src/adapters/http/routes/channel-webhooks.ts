// POST /v1/webhooks/shopify/:channel: a signed Shopify order webhook becomes ledger commands, or is refused untouched.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../../app/engine.js';
import type { CommandBus, DeadLetterSink, Submitted } from '../../../app/ports.js';
import type { ErrorCode } from '../../../errors.js';
import { channelLimits } from '../../channels/limits.js';
import type { ShopifyWebhookChannel, ShopifyWebhookMapping } from '../../channels/shopify/webhooks.js';
import { settleShopifyCommands, shopifyWebhookToCommands, verifyShopifyHmac } from '../../channels/shopify/webhooks.js';
import { HttpProblem, problemOf, sendProblem } from '../problem.js';

export type { ShopifyWebhookChannel };

export interface ChannelWebhookOptions {
  bus: CommandBus;
  channels: ShopifyWebhookChannel[];
  bodyBytesMax?: number;
  /** Receives deliveries that are signed but cannot become commands, for an operator to look at. */
  deadLetters?: DeadLetterSink;
  nowMs?: () => number;
}

interface Handling {
  channels: Map<string, ShopifyWebhookChannel>;
  bus: CommandBus;
  deadLetters: DeadLetterSink | undefined;
  nowMs: () => number;
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

export async function channelWebhookRoutes(app: FastifyInstance, options: ChannelWebhookOptions): Promise<void> {
  const bodyLimit = options.bodyBytesMax ?? channelLimits.webhookBodyBytesMax;
  const handling: Handling = {
    channels: new Map(options.channels.map((channel) => [channel.channel, channel])),
    bus: options.bus,
    deadLetters: options.deadLetters,
    nowMs: options.nowMs ?? Date.now,
  };
  // The signature covers the exact bytes sent, so bodies stay raw here; encapsulation keeps other routes' JSON parsing.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));
  // Scoped like the parser, so the plugin answers problems (413 above all) even outside Stockline's server.
  app.setErrorHandler((error, request, reply) => sendProblem(reply, request, problemOf(error, request, request.log)));
  // Public: Shopify sends no API key; the HMAC signature is the authentication.
  app.post('/v1/webhooks/shopify/:channel', { bodyLimit, config: { public: true } }, (request: WebhookRequest, reply) => receive(request, reply, handling));
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
  let payload: unknown;
  try {
    payload = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return refusal(request, reply, 'WEBHOOK_PAYLOAD_INVALID', 'the body is not JSON');
  }
  const mapping = shopifyWebhookToCommands(topic, payload, {
    tenant: target.tenant, channel: target.channel, eventId,
    ...(target.restockLocation === undefined ? {} : { restockLocation: target.restockLocation }),
  });
  return apply(request, reply, handling, { target, topic, eventId, payload, mapping });
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
  if (mapping.kind === 'unsupported') return reply.code(202).send({ status: 'ignored', topic, reason: 'topic not handled by Stockline' });
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

/** A signed delivery that can never become commands: kept as a dead letter and answered 422. */
function refuseUnusable(request: FastifyRequest, reply: FastifyReply, handling: Handling, delivery: Delivery, reason: string): FastifyReply {
  request.log.warn({ channel: delivery.target.channel, topic: delivery.topic, eventId: delivery.eventId, reason }, 'shopify webhook refused');
  handling.deadLetters?.deadLetter({ source: `shopify:${delivery.target.channel}`, reason, payload: delivery.payload, timeMs: handling.nowMs() });
  return refusal(request, reply, 'WEBHOOK_PAYLOAD_UNUSABLE', reason);
}
