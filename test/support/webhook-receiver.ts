// A signed-webhook channel for end-to-end tests (a storefront, a B2B portal): it verifies Stockline-Signature, keeps
// per SKU the highest version as docs/channels.md tells receivers to, records every arrival, and answers reads.

import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verifyStocklineSignature } from '../../src/adapters/channels/webhook/signature.js';
import { readBody } from '../../src/app/demo/webhook-receiver.js';

export interface ReceivedPush {
  sku: string;
  quantity: number;
  version: number;
  atMs: number;
}

export interface ShownQuantity {
  quantity: number;
  version: number;
}

export interface WebhookReceiver {
  channel: string;
  tenant: string;
  /** Where Stockline pushes (the channel's `webhook.url`). */
  url: string;
  /** Where reconciliation reads what the channel shows (`webhook.readUrl`). */
  readUrl: string;
  /** Every verified push, in arrival order, duplicates and stale versions included. */
  received: ReceivedPush[];
  /** Why requests were refused: bad signature, another channel, a malformed body. */
  refused: string[];
  shown(sku: string): ShownQuantity | undefined;
  /** Answers every request with `status` (e.g. 503) and stores nothing, until called with undefined. */
  setDown(status: number | undefined): void;
  /** Forgets a SKU, as a receiver restored from an old backup would. */
  forget(sku: string): void;
  stop(): Promise<void>;
}

export const receiverLimits = {
  bodyBytesMax: 64 * 1024,
  receivedMax: 200_000,
  refusedMax: 1_000,
} as const;

interface Update {
  tenant: string;
  channel: string;
  sku: string;
  quantity: number;
  version: number;
}

function parseUpdate(text: string): Update | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { tenant, channel, sku, quantity, version } = value as Record<string, unknown>;
  if (typeof tenant !== 'string' || typeof channel !== 'string' || typeof sku !== 'string') return undefined;
  if (!Number.isSafeInteger(quantity) || !Number.isSafeInteger(version)) return undefined;
  return { tenant, channel, sku, quantity: quantity as number, version: version as number };
}

/**
 * For each SKU, arrivals whose version is lower than one that arrived before, or whose version arrived before with
 * another quantity: Stockline keeps one push per SKU in flight, so neither should ever happen.
 */
export function arrivalViolations(received: readonly ReceivedPush[]): string[] {
  const highest = new Map<string, ShownQuantity>();
  const quantityOfVersion = new Map<string, number>();
  const violations: string[] = [];
  for (const push of received) {
    const before = highest.get(push.sku);
    if (before !== undefined && push.version < before.version) {
      violations.push(`${push.sku}: version ${push.version} (${push.quantity}) arrived after version ${before.version}`);
    }
    const versionKey = `${push.sku}\u0000${push.version}`;
    const earlier = quantityOfVersion.get(versionKey);
    if (earlier !== undefined && earlier !== push.quantity) {
      violations.push(`${push.sku}: version ${push.version} arrived with ${push.quantity} after ${earlier}`);
    }
    quantityOfVersion.set(versionKey, push.quantity);
    if (before === undefined || push.version > before.version) highest.set(push.sku, { quantity: push.quantity, version: push.version });
  }
  return violations;
}

export async function startWebhookReceiver(options: { tenant: string; channel: string; secret: string }): Promise<WebhookReceiver> {
  const shown = new Map<string, ShownQuantity>();
  const received: ReceivedPush[] = [];
  const refused: string[] = [];
  const sockets = new Set<Socket>();
  let downStatus: number | undefined;

  const refuse = (response: ServerResponse, status: number, reason: string): void => {
    if (refused.length < receiverLimits.refusedMax) refused.push(reason);
    response.writeHead(status, { 'content-type': 'text/plain' }).end(reason);
  };

  const receivePush = (body: Buffer, request: IncomingMessage, response: ServerResponse): void => {
    const signature = request.headers['stockline-signature'];
    if (!verifyStocklineSignature(body, typeof signature === 'string' ? signature : undefined, options.secret, Math.floor(Date.now() / 1000))) {
      refuse(response, 401, 'bad signature');
      return;
    }
    const update = parseUpdate(body.toString('utf8'));
    if (update === undefined) return refuse(response, 400, 'malformed update');
    if (update.tenant !== options.tenant || update.channel !== options.channel) return refuse(response, 400, `update for ${update.tenant}/${update.channel}`);
    if (received.length < receiverLimits.receivedMax) received.push({ sku: update.sku, quantity: update.quantity, version: update.version, atMs: Date.now() });
    const current = shown.get(update.sku);
    // A late or replayed push changes nothing: the newest version wins.
    if (current === undefined || update.version > current.version) shown.set(update.sku, { quantity: update.quantity, version: update.version });
    response.writeHead(204).end();
  };

  const answerRead = (url: URL, response: ServerResponse, request: IncomingMessage): void => {
    const signature = request.headers['stockline-signature'];
    if (!verifyStocklineSignature(url.search.slice(1), typeof signature === 'string' ? signature : undefined, options.secret, Math.floor(Date.now() / 1000))) {
      refuse(response, 401, 'bad read signature');
      return;
    }
    const answer: Record<string, number> = {};
    for (const sku of url.searchParams.getAll('sku')) {
      const quantity = shown.get(sku)?.quantity;
      if (quantity !== undefined) answer[sku] = quantity;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  };

  const server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request, receiverLimits.bodyBytesMax);
      if (downStatus !== undefined) return refuse(response, downStatus, 'receiver is down');
      const url = new URL(request.url ?? '/', 'http://receiver');
      if (request.method === 'POST' && url.pathname === '/push') {
        if (body === undefined) return refuse(response, 413, 'body too large');
        return receivePush(body, request, response);
      }
      if (request.method === 'GET' && url.pathname === '/levels') return answerRead(url, response, request);
      return refuse(response, 404, `no route ${request.method ?? ''} ${url.pathname}`);
    })().catch(() => request.socket.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    channel: options.channel,
    tenant: options.tenant,
    url: `${base}/push`,
    readUrl: `${base}/levels`,
    received,
    refused,
    shown: (sku) => shown.get(sku),
    setDown: (status) => { downStatus = status; },
    forget: (sku) => { shown.delete(sku); },
    stop: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}
