// The SSE stream over real HTTP: live availability, conflicts and reservations; resume with Last-Event-ID; bounded clients.

import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { otherTenant, SseReader, startTestApi, tenant } from '../../support/http.js';
import type { TestApi, TestApiOptions } from '../../support/http.js';
import type { Engine } from '../../../src/app/engine.js';

const base = `/v1/tenants/${tenant}`;

let api: TestApi;
let url: string;
const aborts: AbortController[] = [];
const sockets: Socket[] = [];

async function start(options: TestApiOptions = {}): Promise<void> {
  api = await startTestApi(options);
  url = await api.listen();
}

afterEach(async () => {
  for (const abort of aborts.splice(0)) abort.abort();
  for (const socket of sockets.splice(0)) socket.destroy();
  await api.close();
});

async function open(query = '', headers: Record<string, string> = {}, key: string | null = api.keys.read, of = tenant): Promise<{ response: Response; reader: SseReader; abort: AbortController }> {
  const abort = new AbortController();
  aborts.push(abort);
  const response = await fetch(`${url}/v1/tenants/${of}/stream${query}`, {
    headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...headers },
    signal: abort.signal,
  });
  const reader = new SseReader(response);
  return { response, reader, abort };
}

async function call(method: string, path: string, body?: unknown, key = api.keys.write): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Waits until `condition` holds, checking on every turn of the event loop, for at most `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const data = (message: { data: string }): Record<string, unknown> => JSON.parse(message.data) as Record<string, unknown>;

/** Stocks `count` SKUs with long names and 20 channels: each availability message is about 1 kB. */
async function stock(count: number): Promise<void> {
  for (let first = 0; first < count; first += 1_000) {
    const adjustments = Array.from({ length: Math.min(1_000, count - first) }, (_, index) => ({ sku: `SKU-${String(first + index).padStart(6, '0')}-${'x'.repeat(100)}`, delta: 1 }));
    await call('POST', `${base}/adjustments`, { adjustments });
  }
  for (let channel = 0; channel < 20; channel += 1) await call('PUT', `${base}/channels/channel-${String(channel).padStart(2, '0')}`, {});
}

/** A stream whose client never reads: the kernel's buffers fill, then the server's. */
function stalledStream(headers: Record<string, string> = {}): Socket {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  sockets.push(socket);
  socket.pause();
  const lines = Object.entries({ host: '127.0.0.1', authorization: `Bearer ${api.keys.read}`, ...headers }).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(`GET ${base}/stream HTTP/1.1\r\n${lines.join('')}\r\n`);
  return socket;
}

describe('stream', () => {
  beforeEach(async () => {
    await start();
  });

  it('is text/event-stream and shows a reservation as a reservation event and the new availability', async () => {
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 5 });
    await call('PUT', `${base}/channels/web`, { bufferUnits: 1 });
    const { response, reader } = await open();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const held = await call('POST', `${base}/reservations`, { channel: 'web', lines: [{ sku: 'A', quantity: 2 }] });
    const reservation = await reader.find((message) => message.event === 'reservation');
    expect(data(reservation)).toMatchObject({ type: 'order_reserved', tenant, data: { reservationId: held.id, channel: 'web' } });
    const availability = await reader.find((message) => message.event === 'availability');
    expect(data(availability)).toEqual({
      sku: 'A', onHand: 5, committed: 0, reserved: 2, available: 3, deleted: false, version: 2, channels: { web: 2 },
    });
    expect(availability.id).toBe(String(api.engine.position()));
  });

  it('sends a conflict when a stale sequence is refused, and nothing of other tenants', async () => {
    const { reader } = await open();
    await call('POST', `/v1/tenants/${otherTenant}/adjustments`, { sku: 'THEIRS', delta: 1 }, api.keys.other);
    await call('POST', `${base}/adjustments`, { sku: 'A', set: 10, sourceSeq: '5' });
    await fetch(`${url}${base}/adjustments`, {
      method: 'POST', headers: { authorization: `Bearer ${api.keys.write}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'A', set: 3, sourceSeq: '4' }),
    });
    const seen: string[] = [];
    const conflict = await reader.find((message) => {
      seen.push(message.data);
      return message.event === 'conflict';
    });
    expect(data(conflict)).toMatchObject({ type: 'conflict_detected', data: { kind: 'stale_sequence', sku: 'A', appliedSeq: '5', incomingSeq: '4' } });
    expect(seen.join('\n')).not.toContain('THEIRS');
  });

  it('a channel policy change sends the availability of every SKU of the tenant', async () => {
    await call('POST', `${base}/adjustments`, { adjustments: [{ sku: 'A', delta: 1 }, { sku: 'B', delta: 2 }] });
    const { reader } = await open();
    await call('PUT', `${base}/channels/web`, { maxUnits: 1 });
    const first = await reader.find((message) => message.event === 'availability');
    const second = await reader.find((message) => message.event === 'availability');
    expect([data(first), data(second)]).toMatchObject([{ sku: 'A', channels: { web: 1 } }, { sku: 'B', channels: { web: 1 } }]);
    expect(first.id).toBeUndefined();
    expect(second.id).toBe(String(api.engine.position()));
  });

  it('resumes with Last-Event-ID: the current availability of the SKUs changed since, with the newest id', async () => {
    await call('POST', `${base}/adjustments`, { adjustments: [{ sku: 'A', delta: 1 }, { sku: 'B', delta: 1 }, { sku: 'C', delta: 1 }] });
    const first = await open();
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    const seen = await first.reader.find((message) => message.event === 'availability');
    expect(data(seen)).toMatchObject({ sku: 'A', onHand: 2 });
    first.abort.abort();
    await call('POST', `${base}/adjustments`, { sku: 'B', delta: 4 });
    await call('POST', `${base}/adjustments`, { sku: 'C', delta: 6 });
    await call('POST', `${base}/adjustments`, { sku: 'B', delta: 1 });
    const resumed = await open('', { 'last-event-id': seen.id as string });
    const b = await resumed.reader.find((message) => message.event === 'availability');
    const c = await resumed.reader.find((message) => message.event === 'availability');
    expect([data(b), data(c)]).toMatchObject([{ sku: 'B', onHand: 6 }, { sku: 'C', onHand: 7 }]);
    expect(c.id).toBe(String(api.engine.position()));
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    expect(data(await resumed.reader.find((message) => message.event === 'availability'))).toMatchObject({ sku: 'A', onHand: 3 });
  });

  it('resumed from a position from before the engine\'s start (a Kafka node numbers anew), sends every SKU', async () => {
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    const old = api.engine.position();
    await call('POST', `${base}/adjustments`, { sku: 'B', delta: 2 });
    await call('POST', `${base}/adjustments`, { sku: 'C', delta: 3 });
    // As a Kafka node restarted since: the client's id is below the floor this process numbers above, so it was given
    // by the process before, in a numbering this one does not share. Read in this one's, it would leave out A.
    (api.engine as Engine).positionFloor = () => old + 1;
    const { reader } = await open('', { 'last-event-id': String(old) });
    const sent = [await reader.find((message) => message.event === 'availability'), await reader.find((message) => message.event === 'availability'),
      await reader.find((message) => message.event === 'availability')];
    expect(sent.map((message) => data(message))).toMatchObject([{ sku: 'A', onHand: 1 }, { sku: 'B', onHand: 2 }, { sku: 'C', onHand: 3 }]);
    expect(sent[2]?.id).toBe(String(api.engine.position()));
  });

  it('resumes with ?lastEventId= and takes the key as ?access_token=', async () => {
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    const mark = api.engine.position();
    await call('POST', `${base}/adjustments`, { sku: 'Z', delta: 9 });
    const { response, reader } = await open(`?lastEventId=${mark}&access_token=${encodeURIComponent(api.keys.read)}`, {}, null);
    expect(response.status).toBe(200);
    expect(data(await reader.find((message) => message.event === 'availability'))).toMatchObject({ sku: 'Z', onHand: 9 });
  });

  it('refuses a missing key before streaming', async () => {
    const response = await fetch(`${url}${base}/stream`);
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
  });

  it('unsubscribes from the engine when the client goes away', async () => {
    const before = api.subscribers();
    const { abort } = await open();
    await until(() => api.subscribers() === before + 1);
    abort.abort();
    await until(() => api.subscribers() === before);
  });

  it('opens every stream with the newest durable id: a client cut off before the next change resumes from it', async () => {
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    const first = await open();
    const opening = await first.reader.next();
    expect(opening).toMatchObject({ id: String(api.engine.committedPosition()), data: '' });
    first.abort.abort();
    // Changed while no stream was open: the resumed stream sends it.
    await call('POST', `${base}/adjustments`, { sku: 'B', delta: 2 });
    const { reader } = await open('', { 'last-event-id': String(opening?.id) });
    expect(data(await reader.find((message) => message.event === 'availability'))).toMatchObject({ sku: 'B', onHand: 2 });
  });

  it('closing the server ends open streams', async () => {
    const { reader } = await open();
    expect(await reader.next()).toMatchObject({ id: String(api.engine.committedPosition()) });
    await until(() => api.subscribers() === 1);
    const closing = api.app.close();
    expect(await reader.next()).toBeUndefined();
    await closing;
    expect(api.subscribers()).toBe(0);
  });
});

describe('stream bounds', () => {
  it('has no HEAD route, which would hold a place and never answer', async () => {
    await start();
    const response = await fetch(`${url}${base}/stream`, { method: 'HEAD', headers: { authorization: `Bearer ${api.keys.read}` } });
    expect(response.status).toBe(404);
    expect(api.subscribers()).toBe(0);
  });

  it('sends a heartbeat comment', async () => {
    await start({ stream: { heartbeatMs: 20 } });
    const { reader } = await open();
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    await reader.find((message) => message.event === 'availability');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    await reader.find((message) => message.event === 'availability');
    expect(reader.comments).toBeGreaterThan(0);
  });

  it('sends refresh instead of too many SKUs at once', async () => {
    await start({ stream: { skusPerBatchMax: 2 } });
    await call('POST', `${base}/adjustments`, { adjustments: [{ sku: 'A', delta: 1 }, { sku: 'B', delta: 1 }, { sku: 'C', delta: 1 }] });
    const { reader } = await open();
    await call('PUT', `${base}/channels/web`, {});
    const refresh = await reader.find((message) => message.event === 'refresh' || message.event === 'availability');
    expect(refresh.event).toBe('refresh');
    expect(data(refresh)).toMatchObject({ skus: 3 });
    expect(refresh.id).toBe(String(api.engine.position()));
  });

  it('drops a client that does not read once its buffer passes the bound and it reads nothing for a while', async () => {
    await start({ stream: { clientBufferBytesMax: 64 * 1024, clientStallMsMax: 50 } });
    const skus = Array.from({ length: 1_000 }, (_, index) => ({ sku: `SKU-${String(index).padStart(5, '0')}`, delta: 1 }));
    await call('POST', `${base}/adjustments`, { adjustments: skus });
    stalledStream();
    await until(() => api.subscribers() === 1);
    // Each policy change sends the availability of 1,000 SKUs (~200 kB); the kernel buffers fill, then the stream's.
    for (let round = 0; round < 400 && api.subscribers() === 1; round += 1) {
      await api.engine.submit({ type: 'set_channel_policy', tenant, channel: 'web', locations: null, bufferUnits: round, maxUnits: null, backorder: false });
    }
    await until(() => api.subscribers() === 0);
  });

  it('drops a resuming client that does not read its catch-up', async () => {
    await start({ stream: { clientStallMsMax: 50 } });
    await stock(10_000);
    stalledStream({ 'last-event-id': '0' });
    await until(() => api.subscribers() === 1);
    await until(() => api.subscribers() === 0);
  });

  it('paces a change larger than the buffer bound to a client that reads, and stays open', async () => {
    await start({ stream: { clientBufferBytesMax: 64 * 1024 } });
    await stock(10_000);
    const { reader } = await open();
    await reader.find((message) => message.id !== undefined);
    await call('PUT', `${base}/channels/web`, { bufferUnits: 1 });
    let sent = 0;
    const last = await reader.find((message) => {
      if (message.event === 'availability') sent += 1;
      return message.id !== undefined;
    }, 20_000);
    expect(sent).toBe(10_000);
    expect(last.id).toBe(String(api.engine.position()));
    await call('POST', `${base}/adjustments`, { sku: 'LATE', delta: 1 });
    expect(data(await reader.find((message) => message.event === 'availability'))).toMatchObject({ sku: 'LATE', onHand: 1 });
  });

  it('gives each tenant a share of the streams, within the bound for all', async () => {
    await start({ stream: { clientsMax: 3, clientsPerTenantMax: 2 } });
    const refusal = async (of: string, key: string): Promise<unknown> => {
      const response = await fetch(`${url}/v1/tenants/${of}/stream`, { headers: { authorization: `Bearer ${key}` } });
      if (response.status === 200) {
        await response.body?.cancel();
        return { status: 200 };
      }
      return { status: response.status, ...await response.json() as object };
    };
    await open();
    await open();
    expect(await refusal(tenant, api.keys.read)).toMatchObject({ status: 503, code: 'TOO_MANY_STREAMS', detail: 'at most 2 streams of one tenant may be open; retry later' });
    expect((await open('', {}, api.keys.other, otherTenant)).response.status).toBe(200);
    expect(await refusal(otherTenant, api.keys.other)).toMatchObject({ status: 503, code: 'TOO_MANY_STREAMS', detail: 'at most 3 streams may be open; retry later' });
  });

  it('closes the streams of a key revoked while they are open', async () => {
    await start({ stream: { keyCheckMs: 20 } });
    const revoked = api.store.create({ tenant, scopes: ['read'] });
    const closing = await open('', {}, revoked.key);
    const kept = await open();
    await until(() => api.subscribers() === 2);
    api.store.revoke(revoked.id);
    await until(() => api.subscribers() === 1);
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    expect(data(await kept.reader.find((message) => message.event === 'availability'))).toMatchObject({ sku: 'A' });
    expect(await closing.reader.next().catch(() => undefined)).toBeUndefined();
  });
});

describe('stream resume on a file', () => {
  let dir: string;

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a batch decided but not yet durable when a resumed stream connected, once it is', async () => {
    dir = mkdtempSync(join(tmpdir(), 'stockline-stream-'));
    const path = join(dir, 'stockline.db');
    await start({ path });
    await call('POST', `${base}/adjustments`, { sku: 'A', delta: 1 });
    const durable = api.engine.position();
    // Another connection holds the write lock: the next batch is decided, in memory, and cannot be made durable yet.
    const lock = new Database(path);
    let landing: Promise<unknown> | undefined;
    let reader: SseReader;
    try {
      lock.exec('BEGIN IMMEDIATE');
      landing = call('POST', `${base}/adjustments`, { sku: 'B', delta: 2 });
      await until(() => api.engine.position() > durable);
      ({ reader } = await open('', { 'last-event-id': '0' }));
      const caughtUp = await reader.find((message) => message.id !== undefined);
      expect(data(caughtUp)).toMatchObject({ sku: 'A' });
      expect(caughtUp.id).toBe(String(durable));
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    await landing;
    await call('POST', `${base}/adjustments`, { sku: 'C', delta: 3 });
    expect(data(await reader.find((message) => message.event === 'availability'))).toMatchObject({ sku: 'B', onHand: 2 });
    expect(data(await reader.find((message) => message.event === 'availability'))).toMatchObject({ sku: 'C', onHand: 3 });
  });
});
