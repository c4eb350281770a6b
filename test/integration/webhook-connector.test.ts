// The signed webhook connector against a receiver on loopback: signatures, replay window, retry classification, reads.

import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChannelPush } from '../../src/adapters/channels/connector.js';
import { SignedWebhookConnector } from '../../src/adapters/channels/webhook/connector.js';
import type { SignedWebhookOptions } from '../../src/adapters/channels/webhook/connector.js';
import { signStocklinePayload, verifyStocklineSignature } from '../../src/adapters/channels/webhook/signature.js';

const secret = 'whsec_stockline_test';
const nowMs = 1_767_225_600_000;
const nowSeconds = nowMs / 1000;

interface Received { method: string; url: string; headers: IncomingHttpHeaders; body: string }
interface Answer { status: number; headers?: Record<string, string>; body?: string; delayMs?: number }

let server: Server;
let baseUrl: string;
const sockets = new Set<Socket>();
const received: Received[] = [];
let answers: Answer[] = [];

beforeEach(async () => {
  received.length = 0;
  answers = [];
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      const answer = answers.shift() ?? { status: 204 };
      const timer = setTimeout(() => {
        response.writeHead(answer.status, answer.headers);
        response.end(answer.body);
      }, answer.delayMs ?? 0);
      response.on('close', () => clearTimeout(timer));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A loopback port nobody listens on: bound, then released. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function connect(options: Partial<SignedWebhookOptions> = {}): SignedWebhookConnector {
  return new SignedWebhookConnector({ channel: 'portal', tenant: 'acme', url: `${baseUrl}/stock`, secret, timeoutMs: 1_000, nowMs: () => nowMs, ...options });
}

const push: ChannelPush = { tenant: 'acme', channel: 'portal', sku: 'tee-m', quantity: 12, previousQuantity: 10, version: 42, idempotencyKey: 'key-42' };

describe('signature', () => {
  it('signs each push so a receiver can verify it with verifyStocklineSignature', async () => {
    expect(await connect().push(push)).toEqual({ kind: 'ok' });
    const [delivery] = received;
    expect(delivery?.method).toBe('POST');
    expect(JSON.parse(delivery?.body ?? '')).toEqual({ tenant: 'acme', channel: 'portal', sku: 'tee-m', quantity: 12, version: 42, time: new Date(nowMs).toISOString() });
    expect(delivery?.headers['stockline-event-id']).toBe('key-42');
    const header = delivery?.headers['stockline-signature'] as string;
    expect(header).toMatch(/^t=1767225600,v1=[0-9a-f]{64}$/);
    expect(verifyStocklineSignature(delivery?.body ?? '', header, secret, nowSeconds)).toBe(true);
    expect(verifyStocklineSignature(Buffer.from(delivery?.body ?? ''), header, secret, nowSeconds + 299)).toBe(true);
  });

  it('rejects a tampered body, another secret, or a replayed timestamp', () => {
    const body = JSON.stringify({ sku: 'tee-m', quantity: 12, version: 42 });
    const header = signStocklinePayload(body, secret, nowSeconds);
    expect(verifyStocklineSignature(body.replace('12', '99'), header, secret, nowSeconds)).toBe(false);
    expect(verifyStocklineSignature(body, header, 'another-secret', nowSeconds)).toBe(false);
    expect(verifyStocklineSignature(body, header, secret, nowSeconds + 301)).toBe(false);
    expect(verifyStocklineSignature(body, header, secret, nowSeconds - 301)).toBe(false);
    expect(verifyStocklineSignature(body, header, secret, nowSeconds + 60, 30)).toBe(false);
    // A fresh timestamp on an old signature does not help: the timestamp is signed too.
    const old = signStocklinePayload(body, secret, nowSeconds - 3_600);
    expect(verifyStocklineSignature(body, old.replace(/^t=\d+/, `t=${nowSeconds}`), secret, nowSeconds)).toBe(false);
  });

  it('rejects malformed headers without throwing, and accepts any of several v1 values (secret rotation)', () => {
    const body = '{}';
    const good = signStocklinePayload(body, secret, nowSeconds);
    const v1 = good.split('v1=')[1] ?? '';
    for (const header of [undefined, '', 'v1=abc', `t=${nowSeconds}`, `t=abc,v1=${v1}`, `t=${nowSeconds},v1=${v1.slice(2)}`, `t=${nowSeconds},v1=${v1}=x`, 'x'.repeat(5_000)]) {
      expect(verifyStocklineSignature(body, header, secret, nowSeconds)).toBe(false);
    }
    expect(verifyStocklineSignature(body, good, '', nowSeconds)).toBe(false);
    const oldSecretV1 = signStocklinePayload(body, 'old-secret', nowSeconds).split('v1=')[1] ?? '';
    expect(verifyStocklineSignature(body, `t=${nowSeconds},v1=${oldSecretV1},v1=${v1}`, secret, nowSeconds)).toBe(true);
    expect(verifyStocklineSignature(body, `t=${nowSeconds},v1=${'0'.repeat(64)},v1=${v1}`, secret, nowSeconds)).toBe(true);
  });
});

describe('retry classification', () => {
  it('treats any 2xx as acknowledged', async () => {
    answers = [{ status: 200, body: 'ok' }, { status: 202 }];
    expect(await connect().push(push)).toEqual({ kind: 'ok' });
    expect(await connect().push(push)).toEqual({ kind: 'ok' });
  });

  it('retries 429 and 5xx, honouring Retry-After', async () => {
    answers = [
      { status: 429, headers: { 'retry-after': '3' } },
      { status: 429 },
      { status: 503, headers: { 'retry-after': new Date(nowMs + 10_000).toUTCString() } },
      { status: 500, body: 'database down' },
    ];
    const connector = connect();
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'receiver answered 429', retryAfterMs: 3_000 });
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'receiver answered 429', retryAfterMs: 1_000 });
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'receiver answered 503', retryAfterMs: 10_000 });
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'receiver answered 500: database down' });
  });

  it('fails for good on other 4xx and on redirects', async () => {
    answers = [{ status: 400, body: 'unknown sku' }, { status: 401 }, { status: 404 }, { status: 301, headers: { location: 'https://elsewhere.test/' } }];
    const connector = connect();
    expect(await connector.push(push)).toEqual({ kind: 'failed', reason: 'receiver answered 400: unknown sku' });
    expect(await connector.push(push)).toMatchObject({ kind: 'failed', reason: 'receiver answered 401' });
    expect(await connector.push(push)).toMatchObject({ kind: 'failed', reason: 'receiver answered 404' });
    expect(await connector.push(push)).toMatchObject({ kind: 'failed', reason: expect.stringContaining('redirects are not followed') });
    expect(received).toHaveLength(4);
  });

  it('retries on timeouts and unreachable receivers', async () => {
    answers = [{ status: 200, delayMs: 2_000 }];
    expect(await connect({ timeoutMs: 150 }).push(push)).toEqual({ kind: 'retry', reason: 'no answer within 150 ms' });
    const closed = connect({ url: `http://127.0.0.1:${await freePort()}/stock` });
    expect(await closed.push(push)).toMatchObject({ kind: 'retry', reason: expect.stringContaining('network error') });
  });

  it('refuses pushes of another tenant, and retries once closed', async () => {
    const connector = connect();
    expect(await connector.push({ ...push, tenant: 'other' })).toMatchObject({ kind: 'failed' });
    await connector.close();
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'connector closed' });
    expect(received).toHaveLength(0);
  });
});

describe('read', () => {
  it('asks the read endpoint with a signed GET and keeps only integer quantities of the SKUs asked for', async () => {
    answers = [{ status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ 'tee-m': 3, mug: 0, extra: 9, cap: 'many' }) }];
    const shown = await connect({ readUrl: `${baseUrl}/stock/levels` }).read('acme', ['tee-m', 'mug', 'cap', 'gone']);
    expect([...shown]).toEqual([['tee-m', 3], ['mug', 0]]);
    const [request] = received;
    expect(request?.method).toBe('GET');
    const url = new URL(request?.url ?? '', baseUrl);
    expect(url.searchParams.getAll('sku')).toEqual(['tee-m', 'mug', 'cap', 'gone']);
    expect(verifyStocklineSignature(url.search.slice(1), request?.headers['stockline-signature'] as string, secret, nowSeconds)).toBe(true);
  });

  it('asks in batches, and says when reading is not supported or fails', async () => {
    const skus = Array.from({ length: 120 }, (_, index) => `sku-${index}`);
    answers = [0, 1, 2].map(() => ({ status: 200, body: '{}' }));
    expect((await connect({ readUrl: `${baseUrl}/levels` }).read('acme', skus)).size).toBe(0);
    expect(received).toHaveLength(3);
    await expect(connect().read('acme', ['tee-m'])).rejects.toMatchObject({ code: 'CHANNEL_READ_UNSUPPORTED', retryable: false });
    answers = [{ status: 502 }, { status: 200, body: 'not json' }];
    await expect(connect({ readUrl: `${baseUrl}/levels` }).read('acme', ['tee-m'])).rejects.toMatchObject({ code: 'CHANNEL_UNAVAILABLE', retryable: true });
    await expect(connect({ readUrl: `${baseUrl}/levels` }).read('acme', ['tee-m'])).rejects.toMatchObject({ code: 'CHANNEL_REJECTED', retryable: false });
    await expect(connect({ readUrl: `${baseUrl}/levels` }).read('other', ['tee-m'])).rejects.toMatchObject({ code: 'CHANNEL_TENANT_MISMATCH' });
  });
});
