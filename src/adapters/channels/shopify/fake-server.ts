// A development and test double of Shopify's GraphQL Admin API, built from its documented contract. It serves only what
// Stockline sends (inventorySetQuantities, inventoryItems by SKU, nodes by id: inventory items and product variants)
// for one location, on 127.0.0.1.
// Used by the integration tests and by `stockline demo`; never point a real deployment at it.

import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeShopifyItem {
  /** Null: the variant has no SKU, which Shopify allows. */
  sku: string | null;
  /** Available at the fake's location; null or absent: not stocked there. */
  available?: number | null;
  inventoryItemId?: string;
  /** The GID of the product variant the item belongs to (one item per variant, as in Shopify). */
  variantId?: string;
}

export interface FakeShopifyOptions {
  items?: FakeShopifyItem[];
  /** Default `gid://shopify/Location/1`. */
  locationId?: string;
  /** When set, requests must carry it in X-Shopify-Access-Token. */
  accessToken?: string;
  /** Shopify's standard plan by default: 2,000 points, restored at 100 points per second. */
  bucket?: { maximumAvailable?: number; restoreRate?: number };
}

/** `false`: normal; `graphql`: every request is THROTTLED; `http429`: every request gets 429 + Retry-After; an object re-sizes the bucket. */
export type FakeThrottle = false | 'graphql' | 'http429' | { maximumAvailable?: number; restoreRate?: number; currentlyAvailable?: number };

export interface FakeShopifyRequest {
  operation: 'inventorySetQuantities' | 'inventoryItems' | 'nodes' | 'unknown';
  apiVersion: string;
  status: number;
  outcome: 'ok' | 'userError' | 'throttled' | 'injected' | 'unauthorized' | 'invalid' | 'replayed';
  idempotencyKey?: string;
  variables?: unknown;
}

export interface FakeShopify {
  /** Base URL (`http://127.0.0.1:<port>`); the GraphQL endpoint is `<url>/admin/api/<version>/graphql.json`. */
  url: string;
  locationId: string;
  /** Inventory item id -> available at the location; an item missing here is not stocked. */
  levels: Map<string, number>;
  /** Inventory item id -> SKU (null: none). Several items may share a SKU, as in a real shop. */
  inventoryItems: Map<string, string | null>;
  /** Product variant GID -> its inventory item id. */
  variants: Map<string, string>;
  requests: FakeShopifyRequest[];
  /** Adds a product variant with its inventory item; returns the item's id. */
  addItem(sku: string | null, available?: number | null): string;
  idOf(sku: string): string | undefined;
  /** The GID of the product variant an inventory item belongs to. */
  variantOf(inventoryItemId: string): string | undefined;
  /** An order line of the item's variant as Shopify's order webhooks carry it (`variant_id`, `sku`, `quantity`, ...). */
  lineItemOf(inventoryItemId: string, quantity: number): Record<string, unknown>;
  setLevel(inventoryItemId: string, quantity: number | null): void;
  setLatencyMs(latencyMs: number): void;
  failNext(count: number, status?: number): void;
  throttle(mode: FakeThrottle): void;
  setReachable(reachable: boolean): void;
  stop(): Promise<void>;
}

const quantityBound = 1_000_000_000;
const inputArrayMax = 250;
const requestBytesMax = 1024 * 1024;
const retryAfterSecondsWhenThrottled = 2;
const mutationCost = 10;
/** The fake can run for a whole demo: its request log and idempotency memory keep only the newest entries. */
const requestsLoggedMax = 10_000;
const attemptsRememberedMax = 10_000;
const knownReasons = new Set(['correction', 'cycle_count_available', 'damaged', 'movement_created', 'movement_updated', 'movement_received',
  'movement_canceled', 'other', 'promotion', 'quality_control', 'received', 'reservation_created', 'reservation_deleted',
  'reservation_updated', 'restock', 'safety_stock', 'shrinkage']);

interface UserError { field: string[] | null; message: string; code: string | null }
interface Reply { status: number; body: unknown; headers?: Record<string, string>; outcome: FakeShopifyRequest['outcome'] }
interface GraphqlRequest { query: string; variables: Record<string, unknown> }
interface Attempt { fingerprint: string; body: unknown; pending: boolean }

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Versions from 2026-04 on (and `unstable`) require the idempotency key and changeFromQuantity. */
function strictVersion(version: string): boolean {
  return version === 'unstable' || version >= '2026-04';
}

class FakeState {
  readonly levels = new Map<string, number>();
  readonly inventoryItems = new Map<string, string | null>();
  readonly variants = new Map<string, string>();
  readonly requests: FakeShopifyRequest[] = [];
  readonly attempts = new Map<string, Attempt>();
  readonly locationId: string;
  readonly accessToken: string | undefined;
  maximumAvailable: number;
  restoreRate: number;
  available: number;
  availableAtMs = Date.now();
  latencyMs = 0;
  failures: number[] = [];
  throttleMode: 'graphql' | 'http429' | false = false;
  reachable = true;
  nextId = 1;

  constructor(options: FakeShopifyOptions) {
    this.locationId = options.locationId ?? 'gid://shopify/Location/1';
    this.accessToken = options.accessToken;
    this.maximumAvailable = options.bucket?.maximumAvailable ?? 2_000;
    this.restoreRate = options.bucket?.restoreRate ?? 100;
    this.available = this.maximumAvailable;
    for (const item of options.items ?? []) this.addItem(item.sku, item.available ?? null, item.inventoryItemId, item.variantId);
  }

  /** A product variant and its inventory item (Shopify numbers the two apart; so does the fake). */
  addItem(sku: string | null, available: number | null, id?: string, variantId?: string): string {
    const number = this.nextId++;
    const itemId = id ?? `gid://shopify/InventoryItem/${1000 + number}`;
    this.inventoryItems.set(itemId, sku);
    this.variants.set(variantId ?? `gid://shopify/ProductVariant/${10 + number}`, itemId);
    if (available !== null) this.levels.set(itemId, available);
    return itemId;
  }

  variantOf(itemId: string): string | undefined {
    for (const [variantId, ofItem] of this.variants) if (ofItem === itemId) return variantId;
    return undefined;
  }

  /** A node of `nodes(ids:)`: its fields when the query selects its type (`... on Type`), `{}` when not, as GraphQL answers. */
  nodeOf(id: string, query: string, locationId: unknown): Json | null {
    const selected = new Set([...query.matchAll(/\.\.\.\s*on\s+(\w+)/g)].map((match) => match[1]));
    const item = this.variants.get(id);
    if (item !== undefined) return selected.has('ProductVariant') ? { __typename: 'ProductVariant', id, inventoryItem: { id: item } } : {};
    if (!this.inventoryItems.has(id)) return null;
    return selected.has('InventoryItem') ? this.node(id, locationId) : {};
  }

  /** Refills the bucket for the time passed, then reports it as Shopify's throttleStatus does. */
  throttleStatus(): Json {
    const now = Date.now();
    this.available = Math.min(this.maximumAvailable, this.available + ((now - this.availableAtMs) * this.restoreRate) / 1000);
    this.availableAtMs = now;
    return { maximumAvailable: this.maximumAvailable, currentlyAvailable: Math.floor(this.available), restoreRate: this.restoreRate };
  }

  node(itemId: string, locationId: unknown): Json {
    const available = this.levels.get(itemId);
    const level = locationId === this.locationId && available !== undefined
      ? { id: `gid://shopify/InventoryLevel/${itemId.split('/').pop() ?? '0'}`, quantities: [{ name: 'available', quantity: available }] }
      : null;
    return { __typename: 'InventoryItem', id: itemId, sku: this.inventoryItems.get(itemId) ?? null, inventoryLevel: level };
  }
}

function costExtension(state: FakeState, requested: number, actual: number | null): Json {
  return { cost: { requestedQueryCost: requested, actualQueryCost: actual, throttleStatus: state.throttleStatus() } };
}

function graphqlError(message: string, code: string): Json {
  return { errors: [{ message, extensions: { code } }] };
}

function throttled(state: FakeState, requested: number): Reply {
  if (state.throttleMode === 'graphql') {
    state.throttleStatus();
    state.available = 0;
  }
  return { status: 200, outcome: 'throttled', body: { ...graphqlError('Throttled', 'THROTTLED'), extensions: costExtension(state, requested, null) } };
}

/** Charges the bucket; undefined when the request fits, a THROTTLED reply when it does not. */
function charge(state: FakeState, requested: number, actual: number): Reply | undefined {
  if (state.throttleMode === 'graphql') return throttled(state, requested);
  state.throttleStatus();
  if (state.available < requested) return throttled(state, requested);
  state.available -= actual;
  return undefined;
}

function search(state: FakeState, variables: Json): Reply {
  const first = typeof variables.first === 'number' ? variables.first : 0;
  const query = typeof variables.query === 'string' ? variables.query : '';
  if (!Number.isInteger(first) || first < 1 || first > inputArrayMax) {
    return { status: 200, outcome: 'invalid', body: graphqlError(`first must be within 1..${inputArrayMax}`, 'BAD_REQUEST') };
  }
  const wanted = new Set(query.split(/\s+OR\s+/).map(skuOfTerm).filter((sku): sku is string => sku !== undefined));
  const ids = [...state.inventoryItems].filter(([, sku]) => sku !== null && wanted.has(sku)).map(([id]) => id).slice(0, first);
  const requested = 2 + 3 * first;
  const refused = charge(state, requested, 2 + 3 * ids.length);
  if (refused !== undefined) return refused;
  const nodes = ids.map((id) => state.node(id, variables.locationId));
  return { status: 200, outcome: 'ok', body: { data: { inventoryItems: { nodes, edges: nodes.map((node) => ({ node })), pageInfo: { hasNextPage: false } } }, extensions: costExtension(state, requested, 2 + 3 * ids.length) } };
}

function skuOfTerm(term: string): string | undefined {
  const match = /^sku:(?:"((?:[^"\\]|\\.)*)"|(\S+))$/.exec(term.trim());
  if (match === null) return undefined;
  return match[1] === undefined ? match[2] : match[1].replace(/\\(.)/g, '$1');
}

function nodes(state: FakeState, request: GraphqlRequest): Reply {
  const { variables } = request;
  const ids = Array.isArray(variables.ids) ? variables.ids : [];
  if (ids.length > inputArrayMax) return { status: 200, outcome: 'invalid', body: graphqlError(`ids takes at most ${inputArrayMax} items`, 'BAD_REQUEST') };
  const requested = 1 + 3 * ids.length;
  const refused = charge(state, requested, requested);
  if (refused !== undefined) return refused;
  const found = ids.map((id) => (typeof id === 'string' ? state.nodeOf(id, request.query, variables.locationId) : null));
  return { status: 200, outcome: 'ok', body: { data: { nodes: found }, extensions: costExtension(state, requested, requested) } };
}

function checkQuantity(state: FakeState, entry: unknown, index: number, strict: boolean, seen: Set<string>): UserError | undefined {
  const field = (name: string): string[] => ['input', 'quantities', String(index), name];
  if (!isRecord(entry)) return { field: field('inventoryItemId'), message: 'Each quantity must be an object.', code: null };
  const itemId = entry.inventoryItemId;
  if (typeof itemId !== 'string' || !state.inventoryItems.has(itemId)) return { field: field('inventoryItemId'), message: 'The inventory item could not be found.', code: 'INVALID_INVENTORY_ITEM' };
  if (entry.locationId !== state.locationId) return { field: field('locationId'), message: 'The location could not be found.', code: 'INVALID_LOCATION' };
  if (seen.has(itemId)) return { field: field('inventoryItemId'), message: 'An item and location appear twice.', code: 'NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR' };
  seen.add(itemId);
  const current = state.levels.get(itemId);
  if (current === undefined) return { field: field('locationId'), message: 'The item is not stocked at the location.', code: 'ITEM_NOT_STOCKED_AT_LOCATION' };
  const quantity = entry.quantity;
  if (typeof quantity !== 'number' || !Number.isInteger(quantity)) return { field: field('quantity'), message: 'The quantity must be an integer.', code: null };
  if (quantity > quantityBound) return { field: field('quantity'), message: `The quantity cannot exceed ${quantityBound}.`, code: 'INVALID_QUANTITY_TOO_HIGH' };
  if (quantity < -quantityBound) return { field: field('quantity'), message: `The quantity cannot be below -${quantityBound}.`, code: 'INVALID_QUANTITY_TOO_LOW' };
  if (!('changeFromQuantity' in entry)) {
    return strict ? { field: field('changeFromQuantity'), message: 'changeFromQuantity is required; pass null to skip the check.', code: null } : undefined;
  }
  if (entry.changeFromQuantity !== null && entry.changeFromQuantity !== current) {
    return { field: field('changeFromQuantity'), message: 'changeFromQuantity does not match the stored quantity.', code: 'CHANGE_FROM_QUANTITY_STALE' };
  }
  return undefined;
}

function checkInput(state: FakeState, input: unknown, strict: boolean): UserError | undefined {
  if (!isRecord(input)) return { field: ['input'], message: 'input is required.', code: null };
  if (input.name !== 'available') return { field: ['input', 'name'], message: 'This fake supports the name available only.', code: 'INVALID_NAME' };
  if (typeof input.reason !== 'string' || !knownReasons.has(input.reason)) return { field: ['input', 'reason'], message: 'The reason is not valid.', code: 'INVALID_REASON' };
  const uri = input.referenceDocumentUri;
  if (uri !== undefined && uri !== null && (typeof uri !== 'string' || !/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(uri))) {
    return { field: ['input', 'referenceDocumentUri'], message: 'The reference document URI is not valid.', code: 'INVALID_REFERENCE_DOCUMENT' };
  }
  const quantities = input.quantities;
  if (!Array.isArray(quantities) || quantities.length === 0 || quantities.length > inputArrayMax) {
    return { field: ['input', 'quantities'], message: `Between 1 and ${inputArrayMax} quantities are required.`, code: null };
  }
  const seen = new Set<string>();
  for (const [index, entry] of quantities.entries()) {
    const error = checkQuantity(state, entry, index, strict, seen);
    if (error !== undefined) return error;
  }
  return undefined;
}

/** Applies every quantity or none, as Shopify does. */
function applyInput(state: FakeState, input: unknown, strict: boolean): Json {
  const error = checkInput(state, input, strict);
  if (error !== undefined) return { inventoryAdjustmentGroup: null, userErrors: [error] };
  const { quantities, reason, referenceDocumentUri } = input as { quantities: Array<{ inventoryItemId: string; quantity: number }>; reason: string; referenceDocumentUri?: string };
  const changes = quantities.map(({ inventoryItemId, quantity }) => {
    const before = state.levels.get(inventoryItemId) ?? 0;
    state.levels.set(inventoryItemId, quantity);
    return { name: 'available', delta: quantity - before, quantityAfterChange: quantity, item: { id: inventoryItemId } };
  });
  const group = { id: `gid://shopify/InventoryAdjustmentGroup/${state.nextId++}`, reason, referenceDocumentUri: referenceDocumentUri ?? null, changes };
  return { inventoryAdjustmentGroup: group, userErrors: [] };
}

function idempotencyKeyOf(request: GraphqlRequest): string | undefined {
  const match = /@idempotent\s*\(\s*key\s*:\s*("(?:[^"\\]|\\.)*"|\$[A-Za-z_]\w*)\s*\)/.exec(request.query);
  const argument = match?.[1];
  if (argument === undefined) return undefined;
  if (argument.startsWith('$')) {
    const value = request.variables[argument.slice(1)];
    return typeof value === 'string' ? value : undefined;
  }
  return JSON.parse(argument) as string;
}

/** Runs a mutation under its idempotency key: a repeat replays the first answer, a different request is refused. */
async function setQuantities(state: FakeState, request: GraphqlRequest, version: string, log: FakeShopifyRequest): Promise<Reply> {
  const key = idempotencyKeyOf(request);
  const strict = strictVersion(version);
  if (key !== undefined) log.idempotencyKey = key;
  if (key === undefined && strict) return { status: 200, outcome: 'invalid', body: graphqlError('This mutation requires the @idempotent directive.', 'BAD_REQUEST') };
  const refused = charge(state, mutationCost, mutationCost);
  if (refused !== undefined) return refused;
  const fingerprint = JSON.stringify(request.variables.input ?? null);
  const earlier = key === undefined ? undefined : state.attempts.get(key);
  if (earlier !== undefined) return replay(state, earlier, fingerprint);
  const attempt: Attempt = { fingerprint, body: undefined, pending: true };
  if (key !== undefined) remember(state.attempts, key, attempt);
  await delay(state);
  const payload = applyInput(state, request.variables.input, strict);
  attempt.body = { data: { inventorySetQuantities: payload } };
  attempt.pending = false;
  const failed = (payload.userErrors as unknown[]).length > 0;
  return { status: 200, outcome: failed ? 'userError' : 'ok', body: { ...(attempt.body as Json), extensions: costExtension(state, mutationCost, mutationCost) } };
}

function remember(attempts: Map<string, Attempt>, key: string, attempt: Attempt): void {
  attempts.set(key, attempt);
  const oldest = attempts.keys().next();
  if (attempts.size > attemptsRememberedMax && oldest.done !== true) attempts.delete(oldest.value);
}

function userErrorPayload(code: string, message: string): Json {
  return { data: { inventorySetQuantities: { inventoryAdjustmentGroup: null, userErrors: [{ field: null, message, code }] } } };
}

function replay(state: FakeState, earlier: Attempt, fingerprint: string): Reply {
  const extensions = costExtension(state, mutationCost, mutationCost);
  if (earlier.pending) return { status: 200, outcome: 'userError', body: { ...userErrorPayload('IDEMPOTENCY_CONCURRENT_REQUEST', 'A request with this key is in progress.'), extensions } };
  if (earlier.fingerprint !== fingerprint) {
    return { status: 200, outcome: 'userError', body: { ...userErrorPayload('IDEMPOTENCY_KEY_PARAMETER_MISMATCH', 'This key was used with other parameters.'), extensions } };
  }
  return { status: 200, outcome: 'replayed', body: { ...(earlier.body as Json), extensions } };
}

function delay(state: FakeState): Promise<void> {
  return state.latencyMs > 0 ? new Promise((resolve) => setTimeout(resolve, state.latencyMs)) : Promise.resolve();
}

function parseGraphql(text: string): GraphqlRequest | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isRecord(parsed) || typeof parsed.query !== 'string') return undefined;
    return { query: parsed.query, variables: isRecord(parsed.variables) ? parsed.variables : {} };
  } catch {
    return undefined;
  }
}

function operationOf(query: string): FakeShopifyRequest['operation'] {
  if (/\binventorySetQuantities\b/.test(query)) return 'inventorySetQuantities';
  if (/\binventoryItems\s*\(/.test(query)) return 'inventoryItems';
  if (/\bnodes\s*\(/.test(query)) return 'nodes';
  return 'unknown';
}

/** Failures set up by the test come first, in the order a real outage would show them. */
function injected(state: FakeState, request: IncomingMessage): Reply | undefined {
  const status = state.failures.shift();
  if (status !== undefined) {
    const headers: Record<string, string> = status === 429 ? { 'retry-after': '1' } : {};
    return { status, headers, outcome: 'injected', body: { errors: status === 429 ? 'Exceeded the rate limit.' : 'Internal error.' } };
  }
  if (state.accessToken !== undefined && request.headers['x-shopify-access-token'] !== state.accessToken) {
    return { status: 401, outcome: 'unauthorized', body: { errors: 'Invalid access token.' } };
  }
  if (state.throttleMode === 'http429') {
    return { status: 429, headers: { 'retry-after': String(retryAfterSecondsWhenThrottled) }, outcome: 'throttled', body: { errors: 'Exceeded the rate limit.' } };
  }
  return undefined;
}

async function answer(state: FakeState, request: IncomingMessage, text: string, version: string, log: FakeShopifyRequest): Promise<Reply> {
  const failure = injected(state, request);
  if (failure !== undefined) return failure;
  const graphql = parseGraphql(text);
  if (graphql === undefined) return { status: 400, outcome: 'invalid', body: { errors: [{ message: 'The body must be JSON with a query.' }] } };
  log.operation = operationOf(graphql.query);
  log.variables = graphql.variables;
  if (log.operation === 'inventorySetQuantities') return setQuantities(state, graphql, version, log);
  await delay(state);
  if (log.operation === 'inventoryItems') return search(state, graphql.variables);
  if (log.operation === 'nodes') return nodes(state, graphql);
  return { status: 200, outcome: 'invalid', body: graphqlError('This fake serves inventorySetQuantities, inventoryItems and nodes only.', 'BAD_REQUEST') };
}

function readBody(request: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    request.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total <= requestBytesMax) chunks.push(chunk);
    });
    request.on('end', () => resolve(total > requestBytesMax ? undefined : Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

async function handle(state: FakeState, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (!state.reachable) {
    request.socket.destroy();
    return;
  }
  const match = /^\/admin\/api\/([A-Za-z0-9-]+)\/graphql\.json$/.exec(request.url ?? '');
  const text = await readBody(request);
  const version = match?.[1] ?? '';
  const log: FakeShopifyRequest = { operation: 'unknown', apiVersion: version, status: 0, outcome: 'invalid' };
  let reply: Reply;
  if (match === null || request.method !== 'POST') reply = { status: 404, outcome: 'invalid', body: { errors: 'Not Found' } };
  else if (text === undefined) reply = { status: 413, outcome: 'invalid', body: { errors: 'Request too large.' } };
  else reply = await answer(state, request, text, version, log);
  log.status = reply.status;
  log.outcome = reply.outcome;
  state.requests.push(log);
  if (state.requests.length > requestsLoggedMax) state.requests.shift();
  if (!state.reachable) {
    request.socket.destroy();
    return;
  }
  response.writeHead(reply.status, { 'content-type': 'application/json; charset=utf-8', ...reply.headers });
  response.end(JSON.stringify(reply.body));
}

function listen(server: Server): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address() as AddressInfo));
  });
}

export async function startFakeShopify(options: FakeShopifyOptions = {}): Promise<FakeShopify> {
  const state = new FakeState(options);
  const sockets = new Set<Socket>();
  const server = createServer((request, response) => {
    handle(state, request, response).catch(() => request.socket.destroy());
  });
  server.on('connection', (socket) => {
    if (!state.reachable) socket.destroy();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const address = await listen(server);
  return {
    url: `http://127.0.0.1:${address.port}`,
    locationId: state.locationId,
    levels: state.levels,
    inventoryItems: state.inventoryItems,
    variants: state.variants,
    requests: state.requests,
    addItem: (sku, available = 0) => state.addItem(sku, available),
    idOf: (sku) => [...state.inventoryItems].find(([, itemSku]) => itemSku === sku)?.[0],
    variantOf: (itemId) => state.variantOf(itemId),
    lineItemOf: (itemId, quantity) => lineItemOf(state, itemId, quantity),
    setLevel: (itemId, quantity) => {
      if (quantity === null) state.levels.delete(itemId);
      else state.levels.set(itemId, quantity);
    },
    setLatencyMs: (latencyMs) => { state.latencyMs = latencyMs; },
    failNext: (count, status = 500) => { state.failures.push(...Array.from({ length: count }, () => status)); },
    throttle: (mode) => applyThrottle(state, mode),
    setReachable: (reachable) => { state.reachable = reachable; },
    stop: () => stopServer(server, sockets),
  };
}

/** The fields of a REST order line item Stockline reads, with the legacy numeric ids the webhook payloads carry. */
function lineItemOf(state: FakeState, itemId: string, quantity: number): Record<string, unknown> {
  const variant = state.variantOf(itemId);
  const number = state.nextId++;
  return {
    id: number, admin_graphql_api_id: `gid://shopify/LineItem/${number}`, quantity, gift_card: false,
    variant_id: variant === undefined ? null : Number(variant.split('/').pop()), sku: state.inventoryItems.get(itemId) ?? null,
  };
}

function applyThrottle(state: FakeState, mode: FakeThrottle): void {
  if (mode === false || mode === 'graphql' || mode === 'http429') {
    // Turning throttling off leaves the bucket as drained as it was: it refills at the restore rate, as Shopify's does.
    state.throttleMode = mode;
    return;
  }
  state.throttleMode = false;
  state.throttleStatus();
  state.maximumAvailable = mode.maximumAvailable ?? state.maximumAvailable;
  state.restoreRate = mode.restoreRate ?? state.restoreRate;
  state.available = Math.min(mode.currentlyAvailable ?? state.available, state.maximumAvailable);
}

function stopServer(server: Server, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  });
}

/** X-Shopify-Hmac-Sha256 of a body: base64 HMAC-SHA256 keyed with the app's secret. */
export function signShopifyWebhook(rawBody: string | Buffer, secret: string): string {
  return createHmac('sha256', secret).update(rawBody).digest('base64');
}

export interface ShopifyWebhookDelivery {
  shopDomain?: string;
  apiVersion?: string;
  /** Sends this signature instead of the right one (tests of forged deliveries). */
  signature?: string | null;
}

/** Delivers a webhook the way Shopify does: the JSON body signed, with the topic, shop and event id in headers. */
export async function sendShopifyWebhook(url: string, topic: string, payload: unknown, secret: string, eventId: string, delivery: ShopifyWebhookDelivery = {}): Promise<{ status: number; body: string }> {
  const body = JSON.stringify(payload);
  const signature = delivery.signature === undefined ? signShopifyWebhook(body, secret) : delivery.signature;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-shopify-topic': topic,
    'x-shopify-shop-domain': delivery.shopDomain ?? 'stockline-demo.myshopify.com',
    'x-shopify-api-version': delivery.apiVersion ?? '2026-04',
    'x-shopify-event-id': eventId,
    'x-shopify-webhook-id': `${eventId}-delivery`,
    'x-shopify-triggered-at': new Date().toISOString(),
    ...(signature === null ? {} : { 'x-shopify-hmac-sha256': signature }),
  };
  const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: await response.text() };
}
