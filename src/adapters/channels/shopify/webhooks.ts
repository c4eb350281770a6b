// Shopify webhooks: check their signature, and turn orders, cancellations and refunds into ledger commands.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CommandBus, CommandInput, Submitted } from '../../../app/ports.js';
import type { CartLine } from '../../../core/index.js';
import { firstOutcome, limits, skuPattern, tokenPattern } from '../../../core/index.js';
import { channelLimits } from '../limits.js';
import type { VariantItemLookup } from './variant-items.js';

export const shopifyTopics = ['orders/create', 'orders/cancelled', 'refunds/create'] as const;
export type ShopifyTopic = (typeof shopifyTopics)[number];

/** A base64 HMAC-SHA256 is 44 characters; anything much longer is not one. */
const hmacHeaderLengthMax = 100;
const sha256Bytes = 32;

/** X-Shopify-Hmac-Sha256 is the base64 HMAC-SHA256 of the raw body, keyed with the app's secret. */
export function verifyShopifyHmac(rawBody: Buffer, headerValue: string | undefined, secret: string): boolean {
  if (headerValue === undefined || secret === '' || headerValue.length > hmacHeaderLengthMax) return false;
  const text = headerValue.trim();
  const given = Buffer.from(text, 'base64');
  // Node's decoder skips junk and stops at padding; only the canonical base64 of 32 bytes is a signature.
  // timingSafeEqual throws on different lengths, so the length is checked first.
  if (given.length !== sha256Bytes || given.toString('base64') !== text) return false;
  return timingSafeEqual(given, createHmac('sha256', secret).update(rawBody).digest());
}

/** What the webhook route needs to know about one Shopify channel; built by the channel factory from configuration. */
export interface ShopifyWebhookChannel {
  /** The ledger's channel id; also the last segment of the webhook URL. */
  channel: string;
  tenant: string;
  type: 'shopify';
  /** The app's client secret, which keys X-Shopify-Hmac-Sha256. */
  webhookSecret: string;
  /** When set, deliveries must name this shop: one app secret can sign webhooks of many shops. */
  shopDomain?: string;
  /** The Stockline location that gets units a refund returns to stock; without it, returns are skipped. */
  restockLocation?: string;
  /** Set when the channel maps SKUs under `inventoryItems`: order lines of those items are sold as the mapped SKUs. */
  mappedItems?: MappedItems;
}

/** A channel's `inventoryItems`, both ways, and how to find the inventory item of an order line's variant. */
export interface MappedItems {
  /** Stockline SKU -> Shopify inventory item id (the configuration's `inventoryItems`). */
  itemOfSku: ReadonlyMap<string, string>;
  /** Shopify inventory item id -> the Stockline SKU mapped to it. */
  skuOfItem: ReadonlyMap<string, string>;
  variants: VariantItemLookup;
}

/**
 * What matches the lines of one delivery to Stockline SKUs on a channel with mapped items: the mapping, and the
 * inventory item of each variant the delivery names (looked up beforehand, see `variantIdsOf`).
 */
export interface LineMatching extends Pick<MappedItems, 'itemOfSku' | 'skuOfItem'> {
  /** Variant id (digits) -> inventory item id; a variant Shopify does not have is absent. */
  itemOfVariant: ReadonlyMap<string, string>;
}

export interface ShopifyWebhookContext {
  tenant: string;
  /** The ledger's channel id the shop sells as. */
  channel: string;
  /** X-Shopify-Event-Id: the same on every delivery of one event, so it makes the idempotency key. */
  eventId: string;
  /** The Stockline location that receives units a refund returns to stock; without it, returns are skipped. */
  restockLocation?: string;
  /** The channel maps SKUs under `inventoryItems`; without it a line is sold as the SKU it carries. */
  lines?: LineMatching;
}

/** A line that produced no command, with the reason, so the operator can see what was left out. */
export interface SkippedLine {
  index: number;
  sku: string | null;
  quantity: number | null;
  reason: string;
}

/**
 * For a cancellation's release of an order Stockline has not recorded (yet): what to submit instead. `claim`
 * takes the key the order's sale will carry, so that sale is refused when it arrives; if the sale came first
 * after all (it landed in between), `release` gives its units back.
 */
export interface EarlyCancel {
  claim: CommandInput;
  release: CommandInput;
}

/**
 * `ignored`: nothing to apply (a topic Stockline does not read). `setAside`: a change to stock that Stockline
 * cannot apply (an order edit), kept as a dead letter for an operator. `invalid`: no command can be made of it.
 */
export type ShopifyWebhookMapping =
  | { kind: 'commands'; commands: CommandInput[]; skipped: SkippedLine[]; earlyCancels?: EarlyCancel[] }
  | { kind: 'ignored'; reason: string }
  | { kind: 'setAside'; reason: string }
  | { kind: 'invalid'; error: string };

/** Read, but not applied: the ledger has no command that changes a recorded sale. */
export const orderEditedTopic = 'orders/edited';

type Json = Record<string, unknown>;
type Line = { sku: string; quantity: number };

const skuRegExp = new RegExp(skuPattern);
const tokenRegExp = new RegExp(tokenPattern);

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const invalid = (error: string): ShopifyWebhookMapping => ({ kind: 'invalid', error });

export function shopifyWebhookToCommands(topic: string, payload: unknown, context: ShopifyWebhookContext): ShopifyWebhookMapping {
  if (topic !== orderEditedTopic && !(shopifyTopics as readonly string[]).includes(topic)) return { kind: 'ignored', reason: 'topic not handled by Stockline' };
  if (!isRecord(payload)) return invalid('the payload is not a JSON object');
  if (topic === orderEditedTopic) return orderEdited(payload, context);
  if (!tokenRegExp.test(context.eventId) || context.eventId.length > channelLimits.eventIdLengthMax) {
    return invalid(`the event id must be 1 to ${channelLimits.eventIdLengthMax} printable characters without spaces`);
  }
  const mapping = topic === 'orders/create' ? orderCreated(payload, context)
    : topic === 'orders/cancelled' ? orderCancelled(payload, context)
      : refundCreated(payload, context);
  if (mapping.kind === 'commands' && mapping.commands.length > channelLimits.webhookCommandsMax) {
    return invalid(`the webhook would make ${mapping.commands.length} commands; at most ${channelLimits.webhookCommandsMax} are accepted`);
  }
  return mapping;
}

/**
 * The product variants whose inventory items `lines` must hold for `shopifyWebhookToCommands` to match this
 * delivery's lines: those of an order's lines (a cancellation's only when they may fill more than one cart, as
 * only their count matters there), and of the refund lines that are restocked. Undefined when there are more
 * than `webhookVariantsMax`.
 */
export function variantIdsOf(topic: string, payload: unknown, restockLocation: string | undefined): string[] | undefined {
  if (!isRecord(payload)) return [];
  let items: unknown[] = [];
  if (topic === 'orders/create' || topic === 'orders/cancelled') {
    items = Array.isArray(payload.line_items) ? payload.line_items : [];
    if (topic === 'orders/cancelled' && items.length <= limits.cartLinesMax) items = [];
  } else if (topic === 'refunds/create' && Array.isArray(payload.refund_line_items)) {
    items = payload.refund_line_items.filter((entry: unknown) => isRecord(entry) && restockSkipReason(entry.restock_type, restockLocation) === undefined)
      .map((entry: Json) => entry.line_item);
  }
  const ids = new Set<string>();
  for (const item of items) {
    const id = isRecord(item) && item.gift_card !== true ? variantIdOf(item) : undefined;
    if (id !== undefined) ids.add(id);
  }
  return ids.size > channelLimits.webhookVariantsMax ? undefined : [...ids];
}

/**
 * The numeric id of a Shopify object. Read from `admin_graphql_api_id` first: ids in JSON numbers can exceed
 * 2^53 and lose digits in JSON.parse, the GID string never does.
 */
function shopifyIdOf(payload: Json, type: string): string | undefined {
  const gid = payload.admin_graphql_api_id;
  const match = typeof gid === 'string' ? new RegExp(`^gid://shopify/${type}/([0-9]{1,20})$`).exec(gid) : null;
  if (match?.[1] !== undefined) return match[1];
  const id = payload.id;
  if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return String(id);
  if (typeof id === 'string' && /^[0-9]{1,20}$/.test(id)) return id;
  return undefined;
}

/** A Shopify id given as a number or as digits, as digits; undefined when it is neither, or lost digits in JSON.parse. */
function digitsOf(id: unknown): string | undefined {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return String(id);
  if (typeof id === 'string' && /^[1-9][0-9]{0,19}$/.test(id)) return id;
  return undefined;
}

/** The product variant of a line, as the digits of its `variant_id`; undefined when it has none (a custom item). */
function variantIdOf(item: Json): string | undefined {
  return digitsOf(item.variant_id);
}

/**
 * The Stockline SKU a line sells, or why none. With mapped items, a line whose variant's inventory item is mapped
 * under `inventoryItems` sells the mapped SKU, whatever SKU (or none) the variant carries in Shopify; a line of
 * another item sells its own SKU, unless that SKU is mapped to another item (it is not the item Stockline shows
 * that SKU on). A line whose item is unknown (no variant, or one Shopify no longer has) sells its own SKU.
 */
function skuOfLine(item: Json, lines: LineMatching | undefined): string | { skip: string } {
  const own = typeof item.sku === 'string' && item.sku !== '' ? item.sku : undefined;
  const variant = variantIdOf(item);
  const itemId = lines === undefined || variant === undefined ? undefined : lines.itemOfVariant.get(variant);
  if (lines === undefined || itemId === undefined) return own ?? { skip: 'the line has no SKU' };
  const mapped = lines.skuOfItem.get(itemId);
  if (mapped !== undefined) return mapped;
  if (own !== undefined && lines.itemOfSku.has(own)) {
    return { skip: `SKU ${own} is mapped under inventoryItems to another Shopify inventory item than this line's (${itemId})` };
  }
  return own ?? { skip: 'the line has no SKU' };
}

/** The SKU and quantity of one line, or why it cannot become part of a command. */
function lineOf(item: unknown, quantity: unknown, lines: LineMatching | undefined): Line | string {
  if (!isRecord(item)) return 'the line is not an object';
  const sku = skuOfLine(item, lines);
  if (typeof sku !== 'string') return sku.skip;
  if (item.gift_card === true) return 'gift cards carry no stock';
  if (!skuRegExp.test(sku)) return `SKU does not match ${skuPattern}`;
  if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 1 || quantity > limits.quantityMax) {
    return `quantity must be an integer within 1..${limits.quantityMax}`;
  }
  return { sku, quantity };
}

function skippedOf(item: unknown, quantity: unknown, index: number, reason: string): SkippedLine {
  const sku = isRecord(item) && typeof item.sku === 'string' ? item.sku : null;
  return { index, sku, quantity: typeof quantity === 'number' ? quantity : null, reason };
}

/** Sums lines of the same SKU, so a cart line per SKU reaches the ledger. */
function mergeLines(lines: Line[]): Line[] {
  const merged = new Map<string, number>();
  for (const line of lines) merged.set(line.sku, (merged.get(line.sku) ?? 0) + line.quantity);
  return [...merged].map(([sku, quantity]) => ({ sku, quantity: Math.min(quantity, limits.quantityMax) }));
}

function orderLines(payload: Json, matching: LineMatching | undefined): { lines: Line[]; skipped: SkippedLine[] } | undefined {
  const items = payload.line_items;
  if (!Array.isArray(items)) return undefined;
  const lines: Line[] = [];
  const skipped: SkippedLine[] = [];
  items.forEach((item: unknown, index) => {
    const quantity = isRecord(item) ? item.quantity : undefined;
    const line = lineOf(item, quantity, matching);
    if (typeof line === 'string') skipped.push(skippedOf(item, quantity, index, line));
    else lines.push(line);
  });
  return { lines: mergeLines(lines), skipped };
}

/** An order of more SKUs than a cart may hold is recorded as several sales: `shopify:<id>`, `shopify:<id>:2`, ... */
function reservationIds(orderId: string, lineCount: number): string[] {
  const count = Math.max(1, Math.ceil(lineCount / limits.cartLinesMax));
  return Array.from({ length: count }, (_, index) => (index === 0 ? `shopify:${orderId}` : `shopify:${orderId}:${index + 1}`));
}

/**
 * The idempotency key of an order's sale: from its reservation id, not the delivery's event id, so that a
 * cancellation delivered first can take it (see EarlyCancel).
 */
function orderSaleKey(reservationId: string): string {
  return `shopify-order:${reservationId}`;
}

function keyed(commands: CommandInput[], eventId: string): CommandInput[] {
  return commands.map((command, index) => ({ ...command, idempotencyKey: commands.length === 1 ? `shopify:${eventId}` : `shopify:${eventId}:${index}` }));
}

function orderRefOf(payload: Json): string | undefined {
  const name = payload.name;
  return typeof name === 'string' && tokenRegExp.test(name) && name.length <= limits.orderRefLengthMax ? name : undefined;
}

function orderCreated(payload: Json, context: ShopifyWebhookContext): ShopifyWebhookMapping {
  const orderId = shopifyIdOf(payload, 'Order');
  if (orderId === undefined) return invalid('the order has no usable id');
  const parsed = orderLines(payload, context.lines);
  if (parsed === undefined) return invalid('the order has no line_items array');
  const orderRef = orderRefOf(payload);
  const ids = reservationIds(orderId, parsed.lines.length);
  const commands: CommandInput[] = parsed.lines.length === 0 ? [] : ids.map((reservationId, index) => ({
    type: 'record_sale',
    tenant: context.tenant,
    source: 'shopify',
    reservationId,
    channel: context.channel,
    lines: parsed.lines.slice(index * limits.cartLinesMax, (index + 1) * limits.cartLinesMax) satisfies CartLine[],
    ...(orderRef === undefined ? {} : { orderRef }),
    idempotencyKey: orderSaleKey(reservationId),
  }));
  return { kind: 'commands', commands, skipped: parsed.skipped };
}

/** The units of an order edit's `additions` or `removals`: the sum of their positive integer `delta`s. */
function editedUnits(changes: unknown): number {
  if (!Array.isArray(changes)) return 0;
  let units = 0;
  for (const change of changes) {
    const delta = isRecord(change) ? change.delta : undefined;
    if (typeof delta === 'number' && Number.isSafeInteger(delta) && delta > 0) units += delta;
  }
  return units;
}

/**
 * An order edit that adds or removes units is set aside as a dead letter, not ignored: units it adds leave
 * Shopify's stock but not Stockline's, so the next push would offer them again. Applying it needs a ledger
 * command that changes a recorded sale, which there is not yet; docs/channels.md says what an operator does.
 * An edit that changes no quantity (shipping, discounts) is ignored.
 */
function orderEdited(payload: Json, context: ShopifyWebhookContext): ShopifyWebhookMapping {
  const edit = isRecord(payload.order_edit) ? payload.order_edit : undefined;
  const lineItems = edit !== undefined && isRecord(edit.line_items) ? edit.line_items : undefined;
  if (edit === undefined || lineItems === undefined) return invalid('the order edit has no order_edit.line_items');
  const added = editedUnits(lineItems.additions);
  const removed = editedUnits(lineItems.removals);
  if (added === 0 && removed === 0) return { kind: 'ignored', reason: 'the order edit changes no quantity' };
  const order = digitsOf(edit.order_id) ?? 'with no usable id';
  return {
    kind: 'setAside',
    reason: `order ${order} was edited in Shopify (${added} units added, ${removed} removed) and Stockline does not apply order edits: `
      + `record the units added as a sale of their own (POST /v1/tenants/${context.tenant}/orders, see docs/channels.md)`,
  };
}

/** Cancels every sale the order was recorded as; the ledger gives their committed units back. */
function orderCancelled(payload: Json, context: ShopifyWebhookContext): ShopifyWebhookMapping {
  const orderId = shopifyIdOf(payload, 'Order');
  if (orderId === undefined) return invalid('the order has no usable id');
  // Shopify signs the body, not the topic: the body of orders/create sent again as orders/cancelled would release a
  // live order. A cancelled order's body says when it was cancelled.
  if (typeof payload.cancelled_at !== 'string' || payload.cancelled_at === '') {
    return { kind: 'setAside', reason: `order ${orderId} came as orders/cancelled, but its body is not of a cancelled order (no cancelled_at): nothing was released` };
  }
  const ids = reservationIds(orderId, orderLines(payload, context.lines)?.lines.length ?? 0);
  const release = (reservationId: string): CommandInput => ({ type: 'release', tenant: context.tenant, source: 'shopify', reservationId, reason: 'cancelled' });
  const commands = keyed(ids.map(release), context.eventId);
  const earlyCancels = ids.map((reservationId, index): EarlyCancel => ({
    claim: { ...release(reservationId), idempotencyKey: orderSaleKey(reservationId) },
    release: { ...release(reservationId), idempotencyKey: `${commands[index]?.idempotencyKey ?? ''}:after-sale` },
  }));
  return { kind: 'commands', commands, skipped: [], earlyCancels };
}

/**
 * The result reported for a cancellation of an order not recorded yet (its sale will be refused), and for
 * that sale when it arrives.
 */
export const cancelledBeforeSale = 'CANCELLED_BEFORE_SALE';

/**
 * Shopify does not promise to deliver an order's creation before its cancellation. A release that finds no
 * order takes the key of the order's sale instead (EarlyCancel.claim), remembered for as long as the ledger
 * keeps keys (24 hours): the sale, when it arrives, is refused as a reuse of that key, and no units stay
 * committed for an order that was cancelled. If the sale landed between the two, it is released. Returns
 * the result of each command, `cancelledBeforeSale` where a claim held and for a sale it refused. Every step
 * is keyed, so a repeated delivery repeats nothing.
 */
export async function settleShopifyCommands(
  bus: CommandBus, mapping: { commands: readonly CommandInput[]; earlyCancels?: readonly EarlyCancel[] }, submitted: readonly Submitted[],
): Promise<string[]> {
  const results = submitted.map((item, index) => {
    const code = item.outcome.rejection?.code;
    const sale = mapping.commands[index]?.type === 'record_sale';
    return code === undefined ? 'accepted' : sale && code === 'IDEMPOTENCY_KEY_REUSED' ? cancelledBeforeSale : code;
  });
  for (const [index, early] of (mapping.earlyCancels ?? []).entries()) {
    const first = submitted[index];
    if (first === undefined || firstOutcome(first.outcome).rejection?.code !== 'UNKNOWN_RESERVATION') continue;
    const claim = firstOutcome((await bus.submit(early.claim)).outcome);
    if (claim.rejection?.code === 'UNKNOWN_RESERVATION') {
      results[index] = cancelledBeforeSale;
    } else if (claim.rejection?.code === 'IDEMPOTENCY_KEY_REUSED') {
      const released = await bus.submit(early.release);
      results[index] = released.outcome.rejection?.code ?? 'accepted';
    }
  }
  return results;
}

/** Why a refund line is not restocked by Stockline, by its restock_type; undefined for returns, which are. */
function restockSkipReason(restockType: unknown, restockLocation: string | undefined): string | undefined {
  const type = typeof restockType === 'string' ? restockType.toLowerCase() : 'none';
  if (type === 'return') return restockLocation === undefined ? 'returned units are not restocked: the channel has no restockLocation' : undefined;
  if (type === 'cancel') return 'unfulfilled units: a full cancellation arrives as orders/cancelled; a partial one stays committed';
  if (type === 'no_restock') return 'not restocked';
  return `restock type ${type} does not say whether the units were shipped`;
}

/** Returned units (restock_type `return`) go back on hand at the channel's restock location. */
function refundCreated(payload: Json, context: ShopifyWebhookContext): ShopifyWebhookMapping {
  const refundId = shopifyIdOf(payload, 'Refund');
  if (refundId === undefined) return invalid('the refund has no usable id');
  const items = payload.refund_line_items;
  if (!Array.isArray(items)) return invalid('the refund has no refund_line_items array');
  const lines: Line[] = [];
  const skipped: SkippedLine[] = [];
  items.forEach((entry: unknown, index) => {
    const record = isRecord(entry) ? entry : {};
    const reason = restockSkipReason(record.restock_type, context.restockLocation);
    const line = reason ?? lineOf(record.line_item, record.quantity, context.lines);
    if (typeof line === 'string') skipped.push(skippedOf(record.line_item, record.quantity, index, line));
    else lines.push(line);
  });
  const location = context.restockLocation ?? '';
  const commands: CommandInput[] = mergeLines(lines).map(({ sku, quantity }) => ({
    type: 'adjust_stock', tenant: context.tenant, source: 'shopify', sku, location, delta: quantity, reason: `returned (Shopify refund ${refundId})`,
  }));
  // Keyed by the refund, which the signature covers, not by the delivery's event id, which it does not: the same
  // refund sent again under another event id restocks nothing more.
  return { kind: 'commands', commands: keyed(commands, `refund:${refundId}`), skipped };
}
