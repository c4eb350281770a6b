// The composition root: the only place that wires the engine, the HTTP API, channels, sources and metrics together.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { StocklineConfig } from './app/config.js';
import type { Engine } from './app/engine.js';
import { validateEvent } from './app/event-validation.js';
import { Metrics } from './app/metrics.js';
import { packagePath } from './app/paths.js';
import type { InventoryEvent } from './core/index.js';
import { buildServer } from './adapters/http/server.js';
import { metricsRoutes } from './adapters/http/routes/metrics.js';
import { ApiKeyStore } from './adapters/sqlite/api-keys.js';
import { EmbeddedEngine } from './adapters/sqlite/embedded-engine.js';
import type { CliIo } from './cli/io.js';

export interface StartOptions {
  config: StocklineConfig;
  adminKey?: string | undefined;
  /** Load the demo tenant on first run and print how to call it. */
  demo?: boolean;
  io: Pick<CliIo, 'stdout' | 'stderr'>;
}

export interface Running {
  url: string;
  engine: Engine;
  app: FastifyInstance;
  metrics: Metrics;
  close(): Promise<void>;
}

export const demoTenant = 'demo';

export async function start(options: StartOptions): Promise<Running> {
  const { config, io } = options;
  mkdirSync(config.dataDir, { recursive: true });
  const metrics = new Metrics();
  const engine = new EmbeddedEngine({
    path: join(config.dataDir, 'stockline.db'),
    expiryIntervalMs: config.ledger.expiryIntervalMs,
    snapshotEveryEvents: config.ledger.snapshotEveryEvents,
    batchCommandsMax: config.ledger.batchCommandsMax,
    onDecided: (command, outcome, latencyMs) => metrics.commandDecided(command, outcome, latencyMs),
    onDeadLetter: (letter) => metrics.deadLettered(letter.source),
  });
  engine.subscribe((batch) => metrics.batchCommitted(batch));
  const keys = new ApiKeyStore(engine.db);
  const app = await buildServer({
    engine, keys, adminKey: options.adminKey,
    logger: { level: config.logLevel },
    plugins: [metricsRoutes(metrics)],
    webRoot: packagePath('web'),
  });
  const address = await app.listen({ port: config.server.port, host: config.server.host });
  const url = address.replace('0.0.0.0', 'localhost').replace('[::]', 'localhost');
  io.stdout(`stockline: serving on ${url} (engine: embedded, data: ${join(config.dataDir, 'stockline.db')})\n`);
  if (options.demo === true) await loadDemo(engine, keys, config.dataDir, url, io);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await app.close();
      await engine.close();
    })();
    return closing;
  };
  return { url, engine, app, metrics, close };
}

/** First run: the demo catalogue and a key for it; later runs: the same key again, from the data folder. */
async function loadDemo(engine: EmbeddedEngine, keys: ApiKeyStore, dataDir: string, url: string, io: StartOptions['io']): Promise<void> {
  const keyFile = join(dataDir, 'demo-key');
  if (engine.tenant(demoTenant) === undefined) {
    const document = JSON.parse(readFileSync(packagePath('examples', 'demo-catalogue.json'), 'utf8')) as { events: unknown[] };
    const invalid = document.events.findIndex((event) => validateEvent(event).length > 0);
    if (invalid >= 0) throw new Error(`examples/demo-catalogue.json: event ${invalid} is not valid`);
    const result = await engine.importEvents(demoTenant, document.events as InventoryEvent[]);
    if (!result.applied) throw new Error('the demo catalogue could not be loaded');
  }
  if (!existsSync(keyFile)) {
    writeFileSync(keyFile, `${keys.create({ tenant: demoTenant, scopes: ['read', 'write'] }).key}\n`, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
  }
  const key = readFileSync(keyFile, 'utf8').trim();
  io.stdout(`
demo tenant "${demoTenant}" is loaded. Its API key (kept in ${keyFile}):
  ${key}
try:
  curl -s -H 'Authorization: Bearer ${key}' ${url}/v1/tenants/${demoTenant}/skus/TEE-BLK-M
  curl -s -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\
       -d '{"channel":"storefront","lines":[{"sku":"TEE-BLK-M","quantity":1}]}' ${url}/v1/tenants/${demoTenant}/reservations
dashboard: ${url}/?tenant=${demoTenant}
`);
}
