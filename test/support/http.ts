// An embedded engine in memory with the HTTP API over it, keys for two tenants, and helpers to call it and read its stream.

import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { CommittedBatch, Engine } from '../../src/app/engine.js';
import { buildServer } from '../../src/adapters/http/server.js';
import type { ServerOptions } from '../../src/adapters/http/server.js';
import { ApiKeyStore } from '../../src/adapters/sqlite/api-keys.js';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';

export const tenant = 'acme';
export const otherTenant = 'globex';
export const envAdminKey = 'test-admin-key-0123456789';

export interface TestKeys {
  /** acme, scopes read and write. */
  write: string;
  /** acme, read only. */
  read: string;
  /** acme, admin scope (may import events for acme only). */
  tenantAdmin: string;
  /** globex, read and write. */
  other: string;
  /** An admin key for every tenant, from the key store. */
  admin: string;
}

export interface TestApi {
  engine: EmbeddedEngine;
  app: FastifyInstance;
  store: ApiKeyStore;
  keys: TestKeys;
  /** How many engine subscriptions are open (the stream subscribes once per client). */
  subscribers(): number;
  inject(method: string, url: string, options?: { key?: string | null; body?: unknown; headers?: Record<string, string> }): Promise<LightMyRequestResponse>;
  /** Listens on 127.0.0.1 on a free port; returns the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

/** The engine as the server sees it, counting live subscriptions. */
function tracking(engine: EmbeddedEngine, counter: { open: number }): Engine {
  const subscribe = (listener: (batch: CommittedBatch) => void): (() => void) => {
    const unsubscribe = engine.subscribe(listener);
    counter.open += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      counter.open -= 1;
      unsubscribe();
    };
  };
  return new Proxy(engine, {
    get(target, property) {
      if (property === 'subscribe') return subscribe;
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as Engine;
}

export interface TestApiOptions extends Partial<Pick<ServerOptions, 'webRoot' | 'stream' | 'plugins' | 'heapFullReason' | 'heapExhaustedReason'>> {
  /** The engine's clock (default Date.now): tests that need time to pass move it. */
  clock?: () => number;
  /** The engine's file (default in memory): a file's writes are made durable on another thread, as in production. */
  path?: string;
}

export async function startTestApi({ clock, path = ':memory:', ...options }: TestApiOptions = {}): Promise<TestApi> {
  const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0, ...(clock === undefined ? {} : { clock }) });
  const store = new ApiKeyStore(engine.db);
  const keys: TestKeys = {
    write: store.create({ tenant, scopes: ['read', 'write'] }).key,
    read: store.create({ tenant, scopes: ['read'] }).key,
    tenantAdmin: store.create({ tenant, scopes: ['admin'] }).key,
    other: store.create({ tenant: otherTenant, scopes: ['write'] }).key,
    admin: store.create({ tenant: null, scopes: ['admin'] }).key,
  };
  const counter = { open: 0 };
  const app = await buildServer({ engine: tracking(engine, counter), keys: store, adminKey: envAdminKey, logger: false, ...options });
  return {
    engine, app, store, keys,
    subscribers: () => counter.open,
    inject(method, url, { key = keys.write, body, headers = {} } = {}) {
      return app.inject({
        method: method as 'GET',
        url,
        headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...headers },
        ...(body === undefined ? {} : { payload: body as object }),
      });
    },
    listen: () => app.listen({ host: '127.0.0.1', port: 0 }),
    async close() {
      const closing = app.close();
      // fetch may keep a spare connection open that never sends a request; it would hold close() for seconds.
      if (app.server.listening) app.server.closeAllConnections();
      await closing;
      await engine.close();
    },
  };
}

export function json(response: LightMyRequestResponse): Record<string, unknown> {
  return JSON.parse(response.body) as Record<string, unknown>;
}

export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** Reads Server-Sent Events from a fetch response, one message at a time. */
export class SseReader {
  private buffer = '';
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Comment lines seen (heartbeats). */
  comments = 0;

  constructor(response: Response) {
    if (response.body === null) throw new Error('the stream has no body');
    this.reader = response.body.getReader();
  }

  /** The next message (a block with an event or an id), or undefined at the end of the stream. */
  async next(): Promise<SseMessage | undefined> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const message = this.parse(block);
        if (message !== undefined) return message;
        continue;
      }
      const chunk = await this.reader.read();
      if (chunk.done) return undefined;
      this.buffer += this.decoder.decode(chunk.value, { stream: true });
    }
  }

  /** The first message matching `match`, skipping others; fails after `timeoutMs`. */
  async find(match: (message: SseMessage) => boolean, timeoutMs = 5_000): Promise<SseMessage> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error('no matching stream message in time')), timeoutMs); });
    const search = (async () => {
      for (;;) {
        const message = await this.next();
        if (message === undefined) throw new Error('the stream ended before a matching message');
        if (match(message)) return message;
      }
    })();
    try {
      return await Promise.race([search, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private parse(block: string): SseMessage | undefined {
    const message: SseMessage = { event: 'message', data: '' };
    let fields = 0;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        this.comments += 1;
        continue;
      }
      const colon = line.indexOf(':');
      const name = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (name === 'id') message.id = value;
      else if (name === 'event') message.event = value;
      else if (name === 'data') message.data = value;
      else continue;
      fields += 1;
    }
    return fields > 0 && (message.id !== undefined || message.data !== '') ? message : undefined;
  }
}
