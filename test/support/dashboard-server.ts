// The test API (test/support/http.ts) listening on 127.0.0.1 with web/ at `/` and /metrics, for the dashboard's browser tests.

import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { LagSource } from '../../src/app/metrics.js';
import { Metrics } from '../../src/app/metrics.js';
import { metricsRoutes } from '../../src/adapters/http/routes/metrics.js';
import { otherTenant, startTestApi, tenant } from './http.js';
import type { TestApi, TestApiOptions } from './http.js';

export { otherTenant, tenant };

export const webRoot = fileURLToPath(new URL('../../web/', import.meta.url));

export interface DashboardServer {
  url: string;
  api: TestApi;
  app: FastifyInstance;
  metrics: Metrics;
  /** A read-write key per tenant (`acme`, `globex`). */
  keys: Record<string, string>;
  /** An admin key for every tenant. */
  adminKey: string;
  /** A JSON request over the network with a key (acme's by default); throws on a non-2xx answer. */
  call(method: string, path: string, body?: unknown, key?: string): Promise<unknown>;
  close(): Promise<void>;
}

export interface DashboardServerOptions {
  /** What `stockline_reconciliation_lag_seconds` reports, per tenant and channel. */
  lag?: { source: LagSource; channels: Array<{ tenant: string; channel: string }> };
  /** Stream bounds (the SKUs one change may send one by one before it is a `refresh`). */
  stream?: TestApiOptions['stream'];
}

export async function startDashboardServer(options: DashboardServerOptions = {}): Promise<DashboardServer> {
  const metrics = new Metrics(Date.now, { processMetrics: false });
  if (options.lag !== undefined) metrics.watchChannels(options.lag.source, options.lag.channels);
  const api = await startTestApi({ webRoot, plugins: [metricsRoutes(metrics)], ...(options.stream === undefined ? {} : { stream: options.stream }) });
  api.engine.subscribe((batch) => metrics.batchCommitted(batch));
  const url = await api.listen();
  const keys = { [tenant]: api.keys.write, [otherTenant]: api.keys.other };

  async function call(method: string, path: string, body?: unknown, key = api.keys.write): Promise<unknown> {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
    return text === '' ? undefined : JSON.parse(text);
  }

  return { url, api, app: api.app, metrics, keys, adminKey: api.keys.admin, call, close: () => api.close() };
}
