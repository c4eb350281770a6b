// Server-Sent Events of a tenant's availability, conflicts and reservations, resumable with Last-Event-ID.

import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { InventoryEvent, TenantState } from '../../../core/index.js';
import { absentTenant } from '../../../core/index.js';
import { allSkus } from '../../../app/engine.js';
import type { CommittedBatch, Engine, LoggedEvent } from '../../../app/engine.js';
import { problem } from '../problem.js';
import { bearerSecurity, errorResponses, fields, httpLimits, object, params } from '../schemas.js';
import { skuSummaryOf } from './skus.js';

export interface StreamOptions {
  heartbeatMs: number;
  clientBufferBytesMax: number;
  clientsMax: number;
  catchUpEventsMax: number;
  catchUpBatchesMax: number;
  skusPerBatchMax: number;
  retryMs: number;
}

export const streamDefaults: StreamOptions = {
  heartbeatMs: httpLimits.streamHeartbeatMs,
  clientBufferBytesMax: httpLimits.streamClientBufferBytesMax,
  clientsMax: httpLimits.streamClientsMax,
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
 * to send. Only the last message carries the id: a client cut off inside a batch resumes before it.
 */
function availabilityMessages(tenant: TenantState, skus: Set<string>, id: number, options: StreamOptions): string[] {
  const all = skus.has(allSkus);
  const count = all ? tenant.skus.size : skus.size;
  if (count > options.skusPerBatchMax) {
    return [sseMessage('refresh', { reason: 'too many SKUs changed at once; read /skus again', skus: count }, id)];
  }
  const names = [...(all ? tenant.skus.keys() : skus)].filter((sku) => sku !== allSkus).sort();
  return names.map((sku, index) => sseMessage('availability', skuSummaryOf(tenant, sku), index === names.length - 1 ? id : undefined));
}

/** The messages of one committed batch for one tenant: its conflicts and reservation changes, then availability. */
export function batchMessages(tenant: TenantState, events: LoggedEvent[], skus: Set<string>, options: StreamOptions): string {
  const last = events[events.length - 1];
  if (last === undefined) return '';
  const messages: string[] = [];
  for (const { event } of events) {
    if (event.type === 'conflict_detected') messages.push(sseMessage('conflict', event));
    else if (reservationEvents.has(event.type)) messages.push(sseMessage('reservation', event));
  }
  messages.push(...availabilityMessages(tenant, skus, last.position, options));
  if (!messages[messages.length - 1]?.startsWith('id: ')) messages.push(`id: ${last.position}\n\n`);
  return messages.join('');
}

/** One connected client: a bounded buffer (a slow reader is dropped and resumes later) and a heartbeat. */
class StreamClient {
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly cleanups: Array<() => void> = [];

  constructor(private readonly raw: ServerResponse, private readonly options: StreamOptions) {
    this.heartbeat = setInterval(() => this.send(': heartbeat\n\n'), options.heartbeatMs);
    this.heartbeat.unref();
    raw.on('close', () => this.close());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(cleanup: () => void): void {
    if (this.closed) cleanup();
    else this.cleanups.push(cleanup);
  }

  send(text: string): void {
    if (this.closed || text === '') return;
    this.raw.write(text);
    // Ending would wait behind the unread bytes; destroying frees them now. The client resumes with Last-Event-ID.
    if (this.raw.writableLength > this.options.clientBufferBytesMax) this.close(true);
  }

  /** Writes a long catch-up without the buffer bound: it waits for the client to read instead. */
  async sendPaced(messages: string[]): Promise<void> {
    for (const message of messages) {
      if (this.closed) return;
      if (!this.raw.write(message)) await new Promise<void>((resolve) => { this.raw.once('drain', resolve); this.onClose(resolve); });
    }
  }

  close(drop = false): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    if (drop) this.raw.destroy();
    else this.raw.end();
  }
}

/** The SKUs changed after `after`, read from the log; `allSkus` when the client is too far behind to list them. */
async function changedSince(engine: Engine, tenant: string, after: number, head: number, options: StreamOptions): Promise<Set<string>> {
  const skus = new Set<string>();
  if (after > head) return new Set([allSkus]);
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
 * Subscribes first, then (when resuming) sends the current availability of what changed since the client's id,
 * then what arrived meanwhile, then goes live; batches already covered by the catch-up are skipped.
 */
async function follow(client: StreamClient, engine: Engine, tenant: string, resumeAfter: number | undefined, options: StreamOptions): Promise<void> {
  const tenantState = (): TenantState => engine.tenant(tenant) ?? absentTenant;
  let live = false;
  let sentThrough = engine.position();
  const pending: CommittedBatch[] = [];
  const deliver = (batch: CommittedBatch): void => {
    const skus = batch.touched.get(tenant);
    const events = skus === undefined ? [] : batch.events.filter((logged) => logged.event.tenant === tenant);
    const last = events[events.length - 1];
    if (skus === undefined || last === undefined || last.position <= sentThrough) return;
    client.send(batchMessages(tenantState(), events, skus, options));
  };
  client.onClose(engine.subscribe((batch) => {
    if (live) deliver(batch);
    else if (pending.push(batch) > options.catchUpBatchesMax) client.close(true);
  }));
  if (resumeAfter !== undefined) {
    const skus = await changedSince(engine, tenant, resumeAfter, sentThrough, options);
    sentThrough = engine.position();
    if (skus.size > 0) await client.sendPaced(availabilityMessages(tenantState(), skus, sentThrough, options));
  }
  for (const batch of pending.splice(0)) deliver(batch);
  live = true;
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
  app.addHook('preClose', async () => { for (const client of clients) client.close(); });

  app.get<StreamRoute>('/v1/tenants/:tenant/stream', {
    config: { scope: 'read', tokenInQuery: true },
    schema: {
      summary: 'Server-Sent Events: availability, conflict and reservation messages; resumable with Last-Event-ID',
      description: 'EventSource cannot send headers, so this route also takes the key as `?access_token=`.',
      tags: ['stream'], security: bearerSecurity, params: params({ tenant: fields.tenant }),
      querystring: object({
        access_token: { type: 'string', maxLength: httpLimits.apiKeyLengthMax },
        lastEventId: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Same as the Last-Event-ID header.' },
      }),
      headers: { type: 'object', properties: { 'last-event-id': { type: 'string', pattern: positionText } } },
      response: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errorResponses },
    },
  }, async (request, reply) => {
    if (clients.size >= options.clientsMax) throw problem('TOO_MANY_STREAMS', `at most ${options.clientsMax} streams may be open; retry later`);
    const header = request.headers['last-event-id'];
    const resumeAfter = header === undefined ? request.query.lastEventId : Number(header);
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store',
      'x-accel-buffering': 'no', 'x-request-id': request.id,
    });
    reply.raw.write(`retry: ${options.retryMs}\n\n`);
    const client = new StreamClient(reply.raw, options);
    clients.add(client);
    client.onClose(() => clients.delete(client));
    try {
      await follow(client, engine, request.params.tenant, resumeAfter, options);
    } catch (error) {
      request.log.warn({ err: error }, 'stream catch-up failed; closing the stream');
      client.close();
    }
  });
};
