// The GraphQL documents the Shopify connector sends, and the checks that turn Shopify's answers into typed values.

import type { ThrottleStatus } from './cost-bucket.js';

export const availableName = 'available';

const levelSelection = `inventoryLevel(locationId: $locationId) { quantities(names: ["${availableName}"]) { name quantity } }`;

/**
 * Sets `available` with compare-and-set. The idempotency key goes into the @idempotent directive as a
 * string literal, the form Shopify documents; the key is hex, and JSON string escaping is valid GraphQL anyway.
 */
export function setAvailableMutation(idempotencyKey: string): string {
  return `mutation StocklineSetAvailable($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) @idempotent(key: ${JSON.stringify(idempotencyKey)}) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}`;
}

export const itemsBySkuQuery = `query StocklineItemsBySku($query: String!, $first: Int!, $locationId: ID!) {
  inventoryItems(first: $first, query: $query) {
    nodes { id sku ${levelSelection} }
  }
}`;

export const levelsByIdQuery = `query StocklineLevels($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem { id sku ${levelSelection} }
  }
}`;

/** The inventory item of each product variant (a variant has exactly one): how an order line's variant is matched. */
export const variantItemsQuery = `query StocklineVariantItems($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on ProductVariant { id inventoryItem { id } }
  }
}`;

/** The GID of a product variant from the numeric id an order line carries (`variant_id`). */
export function variantGidOf(variantId: string): string {
  return `gid://shopify/ProductVariant/${variantId}`;
}

/** Shopify's search syntax for "any of these SKUs"; values are quoted so `:` and `/` in SKUs stay literal. */
export function skuSearch(skus: string[]): string {
  return skus.map((sku) => `sku:"${sku.replace(/["\\]/g, (char) => `\\${char}`)}"`).join(' OR ');
}

export interface GraphqlError {
  message: string;
  code: string | undefined;
}

export interface Envelope {
  data: Record<string, unknown> | null;
  errors: GraphqlError[];
  requestedCost: number | undefined;
  throttleStatus: ThrottleStatus | undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function finiteNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** The parts of a GraphQL response we act on; undefined when the text is not a GraphQL response at all. */
export function parseEnvelope(text: string): Envelope | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) return undefined;
  const cost = isRecord(parsed.extensions) && isRecord(parsed.extensions.cost) ? parsed.extensions.cost : undefined;
  return {
    data: isRecord(parsed.data) ? parsed.data : null,
    errors: parseErrors(parsed.errors),
    requestedCost: finiteNumber(cost?.requestedQueryCost),
    throttleStatus: parseThrottleStatus(cost?.throttleStatus),
  };
}

function parseErrors(errors: unknown): GraphqlError[] {
  // Some non-GraphQL failures (e.g. a bad token) answer `{"errors": "text"}`.
  if (typeof errors === 'string') return [{ message: errors, code: undefined }];
  if (!Array.isArray(errors)) return [];
  return errors.map((error: unknown) => {
    const record = isRecord(error) ? error : {};
    const code = isRecord(record.extensions) ? record.extensions.code : undefined;
    return { message: typeof record.message === 'string' ? record.message : 'unknown error', code: typeof code === 'string' ? code : undefined };
  });
}

function parseThrottleStatus(value: unknown): ThrottleStatus | undefined {
  if (!isRecord(value)) return undefined;
  const maximumAvailable = finiteNumber(value.maximumAvailable);
  const currentlyAvailable = finiteNumber(value.currentlyAvailable);
  const restoreRate = finiteNumber(value.restoreRate);
  if (maximumAvailable === undefined || currentlyAvailable === undefined || restoreRate === undefined) return undefined;
  return { maximumAvailable, currentlyAvailable, restoreRate };
}

export interface UserError {
  code: string | null;
  message: string;
}

/** `inventorySetQuantities.userErrors`; undefined when the payload is missing or malformed. */
export function parseSetPayload(data: Record<string, unknown> | null): UserError[] | undefined {
  const payload = data?.inventorySetQuantities;
  if (!isRecord(payload) || !Array.isArray(payload.userErrors)) return undefined;
  return payload.userErrors.map((error: unknown) => {
    const record = isRecord(error) ? error : {};
    return {
      code: typeof record.code === 'string' ? record.code : null,
      message: typeof record.message === 'string' ? record.message : 'unknown user error',
    };
  });
}

export interface ItemLevel {
  id: string;
  sku: string | null;
  /** `available` at the connector's location; null when the item is not stocked there. */
  available: number | null;
}

/** Items from `inventoryItems.nodes` or `nodes(ids:)`; nulls (unknown ids) are dropped. Undefined when malformed. */
export function parseItems(list: unknown): ItemLevel[] | undefined {
  if (!Array.isArray(list)) return undefined;
  const items: ItemLevel[] = [];
  for (const node of list) {
    if (node === null) continue;
    if (!isRecord(node) || typeof node.id !== 'string') return undefined;
    items.push({ id: node.id, sku: typeof node.sku === 'string' ? node.sku : null, available: availableOf(node.inventoryLevel) });
  }
  return items;
}

function availableOf(level: unknown): number | null {
  if (!isRecord(level) || !Array.isArray(level.quantities)) return null;
  for (const quantity of level.quantities) {
    if (isRecord(quantity) && quantity.name === availableName && Number.isInteger(quantity.quantity)) return quantity.quantity as number;
  }
  return null;
}

export function itemsOfSearch(data: Record<string, unknown> | null): ItemLevel[] | undefined {
  const connection = data?.inventoryItems;
  return isRecord(connection) ? parseItems(connection.nodes) : undefined;
}

export function itemsOfNodes(data: Record<string, unknown> | null): ItemLevel[] | undefined {
  return parseItems(data?.nodes);
}

/**
 * Variant GID -> inventory item GID from `variantItemsQuery`; unknown ids (null nodes) are left out. Undefined when
 * the answer is malformed.
 */
export function itemsOfVariants(data: Record<string, unknown> | null): Map<string, string> | undefined {
  const list = data?.nodes;
  if (!Array.isArray(list)) return undefined;
  const items = new Map<string, string>();
  for (const node of list) {
    if (node === null) continue;
    if (!isRecord(node) || typeof node.id !== 'string' || !isRecord(node.inventoryItem) || typeof node.inventoryItem.id !== 'string') return undefined;
    items.set(node.id, node.inventoryItem.id);
  }
  return items;
}
