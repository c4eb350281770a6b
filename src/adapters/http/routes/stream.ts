// Server-Sent Events of a tenant's availability, conflicts and reservations, resumable with Last-Event-ID.

import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { InventoryEvent, TenantState } from '../../../core/index.js';
import { absentTenant } from '../../../core/index.js';
import { allSkus } from '../../../app/engine.js';
import type { CommittedBatch, Engine } from '../../../app/engine.js';
import { problem } from '../problem.js';
import { bearerSecurity, errorResponses, fields, httpLimits, object, params } from '../schemas.js';
import { skuSummaryOf } from './skus.js';

export interface StreamOptions {
  heartbeatMs: number;
  clientBufferBytesMax: number;
  clientStallMsMax: number;
  clientsMax: number;
  clientsPerTenantMax: number;
  keyCheckMs: number;
  catchUpEventsMax: number;
  catchUpBatchesMax: number;
  skusPerBatchMax: number;
  retryMs: number;
}

export const streamDefaults: StreamOptions = {
  heartbeatMs: httpLimits.streamHeartbeatMs,
  clientBufferBytesMax: httpLimits.streamClientBufferBytesMax,
  clientStallMsMax: httpLimits.streamClientStallMsMax,
  clientsMax: httpLimits.streamClientsMax,
  clientsPerTenantMax: httpLimits.streamClientsPerTenantMax,
  keyCheckMs: httpLimits.streamKeyCheckMs,
  catchUpEventsMax: httpLimits.streamCatchUpEventsMax,
  catchUpBatchesMax: httpLimits.streamCatchUpBatchesMax,
  skusPerBatchMax: httpLimits.streamSkusPerBatchMax,
  retryMs: httpLimits.streamRetryMs,
};

const reservationEvents = new Set<InventoryEvent['type']>(['order_reserved', 'order_committed', 'reservation_released', 'order_fulfilled']);

/** One SSE message; JSON never holds a raw newline, so `data` is one line. */
export function sseMessage(event: string, data: unknown, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The SKUs whose quantities an event may change; `allSkus` for a channel policy. */
function skusOf(event: InventoryEvent): string[] {
  switch (event.type) {
    case 'stock_adjustment':
    case 'sku_deleted':
    case 'sku_restored':
      return [event.data.sku];
    case 'order_reserved':
    case 'order_committed':
    case 'reservation_released':
    case 'order_fulfilled':
      return event.data.lines.map((line) => line.sku);
    case 'channel_policy_set':
      return [allSkus];
    default:
      return [];
  }
}

/**
 * Availability of the given SKUs (every SKU of the tenant for `allSkus`), or one `refresh` when there are too many
 * to send. Only the last message carries the id: a client cut off inside a batch resumes before it. Each message is
 * made as it is written, from the state then, so a client that reads slowly holds SKU names, not messages.
 */
function* availabilityMessages(tenantState: () => TenantState, skus: Set<string>, id: number, options: StreamOptions): Generator<string> {
  const all = skus.has(allSkus);
  const tenant = tenantState();
  const count = all ? tenant.skus.size : skus.size;
  if (count > options.skusPerBatchMax) {
    yield sseMessage('refresh', { reason: 'too many SKUs changed at once; read /skus again', skus: count }, id);
    return;
  }
  const names = [...(all ? tenant.skus.keys() : skus)].filter((sku) => sku !== allSkus).sort();
  for (const [index, sku] of names.entries()) yield sseMessage('availability', skuSummaryOf(tenantState(), sku), index === names.length - 1 ? id : undefined);
}

/** The messages of one committed batch for one tenant: its conflicts and reservation changes, then availability. */
export function* batchMessages(tenantState: () => TenantState, batch: CommittedBatch, tenant: string, options: StreamOptions): Generator<string> {
  const skus = batch.touched.get(tenant);
  const events = batch.events.filter((logged) => logged.event.tenant === tenant);
  // A tenant touched without events (a Kafka replica took it again from the changelog) is as of the batch's position.
  const position = events.at(-1)?.position ?? batch.position;
  if (skus === undefined || position === undefined) return;
  for (const { event } of events) {
    if (event.type === 'conflict_detected') yield sseMessage('conflict', event);
    else if (reservationEvents.has(event.type)) yield sseMessage('reservation', event);
  }
  let withId = false;
  for (const message of availabilityMessages(tenantState, skus, position, options)) {
    withId = message.startsWith('id: ');
    yield message;
  }
  if (!withId) yield `id: ${position}\n\n`;
}

/**
 * One connected client and its heartbeat. Writes are paced: past a bound of unsent bytes the stream waits for the
 * client to read, and a client that reads nothing for `clientStallMsMax` is dropped (it resumes with Last-Event-ID).
 */
class StreamClient {
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly cleanups: Array<() => void> = [];

  constructor(private readonly raw: ServerResponse, private readonly options: StreamOptions, readonly keyStillValid: () => boolean) {
    this.heartbeat = setInterval(() => raw.write(': heartbeat\n\n'), options.heartbeatMs);
    this.heartbeat.unref();
    raw.on('close', () => this.close());
    // A client gone before the stream began listening has closed already, and will not close again.
    if (raw.destroyed) this.close(true);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(cleanup: () => void): void {
    if (this.closed) cleanup();
    else this.cleanups.push(cleanup);
  }

  /** Writes messages until they run out (true), or until more than `bytesMax` waits for the client (false). */
  write(messages: Iterator<string>, bytesMax: number): boolean {
    // 'drain' follows only a write that found the buffer full, so the stream stops only after one.
    while (!this.closed && (this.raw.writableLength <= bytesMax || !this.raw.writableNeedDrain)) {
      const next = messages.next();
      if (next.done === true) return true;
      this.raw.write(next.value);
    }
    return false;
  }

  /** Writes messages as the client reads them; one that reads nothing for `clientStallMsMax` is dropped. */
  async sendPaced(messages: Iterator<string>): Promise<void> {
    while (!this.write(messages, 0)) {
      if (this.closed) return;
      if (!await this.drained()) {
        this.close(true);
        return;
      }
    }
  }

  /** Whether the client read what waited for it within `clientStallMsMax`. */
  private drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (read: boolean): void => {
        clearTimeout(timer);
        this.raw.off('drain', onDrain).off('close', onGone);
        resolve(read);
      };
      const onDrain = (): void => done(true);
      const onGone = (): void => done(false);
      const timer = setTimeout(onGone, this.options.clientStallMsMax);
      timer.unref();
      this.raw.once('drain', onDrain).once('close', onGone);
    });
  }

  close(drop = false): void {
    // Ending would wait behind the unread bytes; destroying frees them now.
    if (drop) this.raw.destroy();
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    if (!drop) this.raw.end();
  }
}

/**
 * The SKUs changed after `after`, read from the log; `allSkus` when the client is too far behind to list them, or
 * its position is not one this engine gave (ahead of it, or from before a Kafka node's restart).
 */
async function changedSince(engine: Engine, tenant: string, after: number, head: number, options: StreamOptions): Promise<Set<string>> {
  const skus = new Set<string>();
  if (after > head || after < (engine.positionFloor?.() ?? 0)) return new Set([allSkus]);
  let cursor = after;
  let read = 0;
  while (cursor < head) {
    const page = await engine.eventsAfter(tenant, cursor, httpLimits.eventPageMax);
    if (page.events.length === 0) break;
    for (const { position, event } of page.events) if (position <= head) for (const sku of skusOf(event)) skus.add(sku);
    read += page.events.length;
    if (read > options.catchUpEventsMax || skus.has(allSkus)) return new Set([allSkus]);
    cursor = page.next;
  }
  return skus;
}

/**
 * Subscribes first, then (when resuming) sends the current availability of what changed since the client's id up to
 * the committed position, then goes live. While it waits for the client to read (a catch-up, a large batch, a slow
 * reader), batches queue and are sent after, paced the same way; too many queued drops the client.
 */
async function follow(client: StreamClient, engine: Engine, tenant: string, resumeAfter: number | undefined, options: StreamOptions): Promise<void> {
  const tenantState = (): TenantState => engine.tenant(tenant) ?? absentTenant;
  const messagesOf = (batch: CommittedBatch): Iterator<string> => batchMessages(tenantState, batch, tenant, options);
  const queued: CommittedBatch[] = [];
  let pacing = true;
  const pace = async (messages: Iterator<string>): Promise<void> => {
    pacing = true;
    await client.sendPaced(messages);
    for (let batch = queued.shift(); batch !== undefined && !client.isClosed; batch = queued.shift()) await client.sendPaced(messagesOf(batch));
    pacing = false;
  };
  client.onClose(engine.subscribe((batch) => {
    if (pacing) {
      if (queued.push(batch) > options.catchUpBatchesMax) client.close(true);
      return;
    }
    const messages = messagesOf(batch);
    if (!client.write(messages, options.clientBufferBytesMax)) pace(messages).catch(() => client.close(true));
  }));
  // Committed, not decided: the log holds only what is committed, and every batch told from now on comes after it.
  const head = engine.committedPosition();
  const skus = resumeAfter === undefined ? new Set<string>() : await changedSince(engine, tenant, resumeAfter, head, options);
  // Every stream starts with an id: a client that loses the connection before the tenant's next change then
  // resumes from it and is sent what changed meanwhile, instead of starting afresh with nothing.
  await pace(skus.size === 0 ? [`id: ${head}\n\n`].values() : availabilityMessages(tenantState, skus, head, options));
}

interface StreamRoute {
  Params: { tenant: string };
  Querystring: { access_token?: string; lastEventId?: number };
  Headers: { 'last-event-id'?: string };
}

const positionText = '^(0|[1-9][0-9]{0,15})$';

export const streamRoutes: FastifyPluginAsync<{ engine: Engine; stream?: Partial<StreamOptions> }> = async (app, { engine, stream }) => {
  const options: StreamOptions = { ...streamDefaults, ...stream };
  const clients = new Set<StreamClient>();
  const openPerTenant = new Map<string, number>();
  // A revoked key's requests are refused within about a second; its open streams are closed as soon.
  const keyCheck = setInterval(() => { for (const client of clients) if (!client.keyStillValid()) client.close(true); }, options.keyCheckMs);
  keyCheck.unref();
  app.addHook('preClose', async () => {
    clearInterval(keyCheck);
    for (const client of clients) client.close();
  });

  app.get<StreamRoute>('/v1/tenants/:tenant/stream', {
    // A HEAD of the stream would be hijacked like a GET and never answered, holding a place.
    exposeHeadRoute: false,
    config: { scope: 'read', tokenInQuery: true, longLived: true },
    schema: {
      operationId: 'followStream', summary: 'Server-Sent Events: availability, conflict and reservation messages; resumable with Last-Event-ID',
      description: 'EventSource cannot send headers, so this route also takes the key as `?access_token=`.',
      tags: ['stream'], security: [...bearerSecurity, { accessTokenQuery: [] }], params: params({ tenant: fields.tenant }),
      querystring: object({
        access_token: { type: 'string', maxLength: httpLimits.apiKeyLengthMax },
        lastEventId: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Same as the Last-Event-ID header.' },
      }),
      headers: { type: 'object', properties: { 'last-event-id': { type: 'string', pattern: positionText } } },
      response: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errorResponses },
    },
  }, async (request, reply) => {
    const { tenant } = request.params;
    if (clients.size >= options.clientsMax) throw problem('TOO_MANY_STREAMS', `at most ${options.clientsMax} streams may be open; retry later`);
    const open = openPerTenant.get(tenant) ?? 0;
    if (open >= options.clientsPerTenantMax) throw problem('TOO_MANY_STREAMS', `at most ${options.clientsPerTenantMax} streams of one tenant may be open; retry later`);
    const header = request.headers['last-event-id'];
    const resumeAfter = header === undefined ? request.query.lastEventId : Number(header);
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store',
      'x-accel-buffering': 'no', 'x-request-id': request.id,
    });
    reply.raw.write(`retry: ${options.retryMs}\n\n`);
    // No key check on the route fails closed: the stream is closed at the first check.
    const client = new StreamClient(reply.raw, options, request.keyStillValid ?? (() => false));
    clients.add(client);
    openPerTenant.set(tenant, open + 1);
    client.onClose(() => {
      clients.delete(client);
      const left = (openPerTenant.get(tenant) ?? 1) - 1;
      if (left === 0) openPerTenant.delete(tenant);
      else openPerTenant.set(tenant, left);
    });
    try {
      await follow(client, engine, tenant, resumeAfter, options);
    } catch (error) {
      request.log.warn({ err: error }, 'stream catch-up failed; closing the stream');
      client.close();
    }
  });
};
