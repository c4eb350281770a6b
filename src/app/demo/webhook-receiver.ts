// The demo's stand-in for the storefront's and the B2B portal's stock endpoints: a loopback receiver of Stockline's
// signed pushes that checks each signature and keeps the newest version per SKU, as docs/channels.md asks receivers to.

import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verifyStocklineSignature } from '../../adapters/channels/webhook/signature.js';

const bodyBytesMax = 64 * 1024;

export interface PushReceiver {
  /** Where Stockline should push, per channel. */
  urlOf(channel: string): string;
  /** What the channel shows for a SKU, or undefined before its first push. */
  shown(channel: string, sku: string): number | undefined;
  counts(): { accepted: number; refused: number };
  close(): Promise<void>;
}

interface Shown {
  version: number;
  quantity: number;
}

/** The body of a request, or undefined when it is longer than `bytesMax` (read to the end, not kept). */
export function readBody(request: IncomingMessage, bytesMax = bodyBytesMax): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    request.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total <= bytesMax) chunks.push(chunk);
    });
    request.on('end', () => resolve(total > bytesMax ? undefined : Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

export async function startPushReceiver(secret: string): Promise<PushReceiver> {
  const levels = new Map<string, Shown>();
  const counts = { accepted: 0, refused: 0 };
  const sockets = new Set<Socket>();
  const answer = (response: ServerResponse, status: number): void => {
    if (status === 204) counts.accepted += 1;
    else counts.refused += 1;
    response.writeHead(status).end();
  };
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const channel = /^\/stock\/([A-Za-z0-9._-]{1,64})$/.exec(request.url ?? '')?.[1];
    const body = await readBody(request);
    if (request.method !== 'POST' || channel === undefined || body === undefined) return answer(response, 404);
    const signature = request.headers['stockline-signature'];
    if (!verifyStocklineSignature(body, typeof signature === 'string' ? signature : undefined, secret, Math.floor(Date.now() / 1000))) {
      return answer(response, 401);
    }
    const push = JSON.parse(body.toString('utf8')) as { channel: string; sku: string; quantity: number; version: number };
    if (push.channel !== channel) return answer(response, 400);
    const key = `${channel}\u0000${push.sku}`;
    const previous = levels.get(key);
    // A late or repeated push carries an older version: it changes nothing.
    if (previous === undefined || push.version > previous.version) levels.set(key, { version: push.version, quantity: push.quantity });
    return answer(response, 204);
  };
  const server = createServer((request, response) => {
    handle(request, response).catch(() => answer(response, 400));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address() as AddressInfo));
  });
  const base = `http://127.0.0.1:${address.port}`;
  return {
    urlOf: (channel) => `${base}/stock/${channel}`,
    shown: (channel, sku) => levels.get(`${channel}\u0000${sku}`)?.quantity,
    counts: () => ({ ...counts }),
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}
