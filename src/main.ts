// The composition root: the only place that wires the engine, the HTTP API, channels, sources and metrics together.

import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Database as Db } from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { idempotencyRecordsMaxFor } from './core/index.js';
import type { Command, InventoryEvent, Outcome } from './core/index.js';
import { ChannelSync, desiredOfState, desiredProjection } from './app/channel-sync.js';
import type { SyncLogger } from './app/channel-sync.js';
import { ConfigError } from './app/config.js';
import { openDataFile, prepareDataFolder } from './app/data-folder.js';
import { writeFileDurably } from './app/durable-file.js';
import type { StocklineConfig } from './app/config.js';
import type { AppError, Engine } from './app/engine.js';
import { validateEvent } from './app/event-validation.js';
import { HeapWatch, oldGenerationLimitBytes, oldGenerationUsedBytes, youngGenerationWarning } from './app/heap.js';
import { Metrics } from './app/metrics.js';
import { packagePath } from './app/paths.js';
import type { DeadLetter, SourceOffsets } from './app/ports.js';
import { reconcile, RepeatedShortfalls } from './app/reconcile.js';
import type { ReconcileReport } from './app/reconcile.js';
import type { ChannelConnector } from './adapters/channels/connector.js';
import { createConnector, shopifyWebhookChannels } from './adapters/channels/factory.js';
import type { ChannelConfig } from './adapters/channels/factory.js';
import { DebeziumKafkaSource } from './adapters/debezium/kafka-source.js';
import { channelWebhookRoutes } from './adapters/http/routes/channel-webhooks.js';
import { metricsRoutes } from './adapters/http/routes/metrics.js';
import { buildServer } from './adapters/http/server.js';
import { loadKafkaConfig } from './adapters/kafka/config.js';
import { KafkaEngine } from './adapters/kafka/engine.js';
import type { DebeziumSourceConfig, PostgresSourceConfig } from './adapters/postgres-cdc/config.js';
import { PostgresCdcSource } from './adapters/postgres-cdc/source.js';
import { ApiKeyStore } from './adapters/sqlite/api-keys.js';
import { ChannelOutbox } from './adapters/sqlite/channel-outbox.js';
import { EmbeddedEngine } from './adapters/sqlite/embedded-engine.js';
import type { Projection } from './adapters/sqlite/embedded-engine.js';
import { openDatabase } from './cli/context.js';
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
  channels: Channels;
  sources: PostgresCdcSource[];
  close(): Promise<void>;
}

/** The configured channels, their outbox and the worker that pushes to them. */
export interface Channels {
  outbox: ChannelOutbox;
  connectors: Map<string, ChannelConnector>;
  sync: ChannelSync;
  stop(): Promise<void>;
}

export const demoTenant = 'demo';

/**
 * The embedded engine writes a snapshot of memory at close only while the heap is at most this full: building
 * one takes about one and a half times as much heap again as the state (200,000 holds: 67 MB of state, 76 MB
 * more packed and 22 MB more as JSON).
 */
const closeSnapshotHeapShareMax = 0.4;

/** Never logged: keys and signatures in request headers, connection strings with passwords. */
const secretPaths = ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers["x-shopify-hmac-sha256"]', 'connectionString', '*.connectionString'];

/** The shortest admin key taken: it opens every tenant, and 401s are not rate-limited. */
const adminKeyLengthMin = 24;

/** Dead letters logged per source a minute: a mapping that refuses a whole table logs this many, and counts the rest. */
const deadLetterLinesPerMinuteMax = 100;
const deadLetterLogWindowMs = 60_000;
/** The start of a dead letter's payload that is logged; the `dead_letters` table keeps all of it. */
const deadLetterPayloadCharsMax = 500;
/** After a batch that could not be written is logged, the next line about one waits this long; the rest are counted. */
const storageFailureLogWindowMs = 60_000;
/** Sources whose dead-letter counts are kept for that bound; past it they start again (sources are few). */
const deadLetterSourcesMax = 1_000;
/** SKUs named in a timed reconciliation's log line; the line gives how many there were in all. */
const reconcileLogExamplesMax = 10;

export async function start(options: StartOptions): Promise<Running> {
  const { config } = options;
  if (options.adminKey !== undefined && options.adminKey !== '' && options.adminKey.length < adminKeyLengthMin) {
    throw new ConfigError(`STOCKLINE_ADMIN_KEY: must be at least ${adminKeyLengthMin} characters (it opens every tenant); make one with: openssl rand -hex 24`);
  }
  const metricsKey = metricsKeyOf(config, process.env);
  prepareDataFolder(config.dataDir);
  const logger = pino({ level: config.logLevel, redact: secretPaths });
  const metrics = new Metrics();
  const oldGenerationBytes = oldGenerationLimitBytes();
  const recordsMax = idempotencyRecordsMaxFor(oldGenerationBytes);
  const heapWarning = youngGenerationWarning();
  if (heapWarning !== undefined) logger.warn(heapWarning);
  const { engine, local, stopEngineExtras } = await startEngine(config, metrics, logger, recordsMax);
  // What is started is stopped in reverse order, at close or when a later step of the start fails: a failed start
  // leaves no engine holding the folder (its WAL unmerged), no timers and no connections behind it.
  const stops: Array<() => unknown> = [async () => {
    await stopEngineExtras();
    await engine.close();
  }];
  try {
    const running = await startServing(options, { engine, local, metrics, metricsKey, logger, oldGenerationBytes, recordsMax }, stops);
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= stopAll(stops);
      return closing;
    };
    return { ...running, close };
  } catch (error) {
    await stopAll(stops).catch((stopError: unknown) => logger.error({ err: stopError }, 'stopping what had started failed'));
    throw error;
  }
}

/** Runs every stop, newest first, even past one that fails; the first failure is thrown at the end. */
async function stopAll(stops: Array<() => unknown>): Promise<void> {
  let failure: unknown;
  for (const stop of stops.splice(0).reverse()) {
    try {
      await stop();
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure !== undefined) throw failure;
}

/**
 * The key `GET /metrics` requires, from the variable `server.metricsKeyEnv` names; undefined when none is named
 * (the route is public). A name whose variable is unset or short is refused: serving the tenants' ids to anyone
 * because a deployment lost a secret is what the setting is there to prevent.
 */
function metricsKeyOf(config: StocklineConfig, env: NodeJS.ProcessEnv): string | undefined {
  const name = config.server.metricsKeyEnv;
  if (name === undefined) return undefined;
  const key = env[name];
  if (key === undefined || key === '') {
    throw new ConfigError(`server.metricsKeyEnv: ${name} is not set (it holds the key GET /metrics requires); set it, or remove server.metricsKeyEnv to serve /metrics without a key`);
  }
  if (key.length < adminKeyLengthMin) throw new ConfigError(`${name}: must be at least ${adminKeyLengthMin} characters (the key of GET /metrics); make one with: openssl rand -hex 24`);
  return key;
}

interface Started {
  engine: Engine;
  local: LocalStore;
  metrics: Metrics;
  /** The key `/metrics` requires (`server.metricsKeyEnv`), if any. */
  metricsKey: string | undefined;
  logger: Logger;
  oldGenerationBytes: number;
  recordsMax: number;
}

/** Everything after the engine: each part, once started, adds how to stop it to `stops`. */
async function startServing(options: StartOptions, started: Started, stops: Array<() => unknown>): Promise<Omit<Running, 'close'>> {
  const { config, io } = options;
  const { engine, local, metrics, logger, oldGenerationBytes, recordsMax } = started;
  engine.subscribe((batch) => metrics.batchCommitted(batch));
  metrics.watchEngine(() => engine.ready());
  metrics.watchExpiry(() => engine.state().tenants);
  metrics.watchState(() => engine.state().tenants, recordsMax);
  const heap = new HeapWatch({
    limitBytes: oldGenerationBytes,
    onChange: (refusing, live) => {
      const mib = `${Math.round(live / 1_048_576)} of ${Math.round(oldGenerationBytes / 1_048_576)} MiB live`;
      if (refusing) logger.error(`the heap is nearly full (${mib}): new holds and imports are refused (MEMORY_FULL) until it is below 85 %; raise --max-old-space-size`);
      else logger.warn(`the heap has room again (${mib}): new holds and imports are taken`);
    },
    onChangeAll: (refusing, live) => {
      const mib = `${Math.round(live / 1_048_576)} of ${Math.round(oldGenerationBytes / 1_048_576)} MiB live`;
      if (refusing) logger.error(`the heap is almost out (${mib}): recorded sales and adjustments are refused too (MEMORY_FULL) until it is below 90 %; raise --max-old-space-size`);
      else logger.warn(`the heap has room for sales and adjustments again (${mib})`);
    },
  }).start();
  stops.push(() => heap.stop());
  metrics.watchHeap(heap);
  const keys = new ApiKeyStore(local.db);
  const channelConfigs = config.channels as unknown as ChannelConfig[];
  const channels = startChannels(engine, local, channelConfigs, metrics, { reconcileIntervalMs: config.sync.reconcileIntervalMs, log: logger });
  stops.push(() => channels.stop());
  const webhookChannels = shopifyWebhookChannels(channelConfigs, process.env);
  const sources = startSources(engine, local.offsets, config, metrics, logger);
  let topics: DebeziumKafkaSource[] = [];
  stops.push(() => Promise.all([...sources, ...topics].map((source) => source.stop())));
  topics = startDebeziumTopics(engine, config, metrics, logger);
  const app = await buildServer({
    engine, keys, adminKey: options.adminKey,
    logger, bodyBytesMax: config.server.bodyLimitBytes,
    plugins: [
      // Under its own key, /metrics also takes the admin key (an operator's curl); no tenant's key opens it.
      metricsRoutes(metrics, started.metricsKey === undefined ? undefined : [started.metricsKey, ...(options.adminKey ? [options.adminKey] : [])]),
      async (scope) => channelWebhookRoutes(scope, { bus: engine, channels: webhookChannels, deadLetters: engine, heapFullReason: () => heap.heapExhaustedReason() }),
    ],
    heapFullReason: () => heap.heapFullReason(),
    heapExhaustedReason: () => heap.heapExhaustedReason(),
    webRoot: packagePath('web'),
    notReadyReason: () => {
      const waiting = sources.map((source) => source.status()).filter((status) => !status.connected);
      return waiting.length === 0 ? undefined : `waiting for change-data-capture sources: ${waiting.map((status) => `${status.source} (${status.state})`).join(', ')}`;
    },
  });
  stops.push(() => app.close());
  const address = await app.listen({ port: config.server.port, host: config.server.host });
  // Fastify answers with an address to call (a loopback one for a wildcard): the line also says that every interface listens.
  const everywhere = ['0.0.0.0', '::', '[::]'].includes(config.server.host);
  const url = address.replace('0.0.0.0', 'localhost').replace('[::]', 'localhost');
  // The folder in full: a relative dataDir is taken from the current folder, which a service manager may have set elsewhere.
  const where = engine.kind === 'kafka' ? `brokers: ${String((config.kafka as { brokers?: string[] } | undefined)?.brokers ?? [])}, node data: ${resolve(config.dataDir, 'stockline-node.db')}` : `data: ${resolve(config.dataDir, 'stockline.db')}`;
  io.stdout(`stockline: serving on ${url}${everywhere ? ' (every interface)' : ''} (engine: ${engine.kind}, ${where})\n`);
  io.stdout(`stockline: heap for the state ${Math.round(oldGenerationBytes / 1_048_576)} MiB; each tenant keeps at most ${recordsMax.toLocaleString('en-US')} idempotency records\n`);
  if (engine.kind === 'embedded' && config.ledger.durability === 'none') {
    logger.warn('ledger.durability is none: changes are answered before they reach the disk; a power cut or kernel crash may lose the last ones');
  }
  if (options.demo === true) await loadDemo(engine, keys, config.dataDir, url, io);
  return { url, engine, app, metrics, channels, sources };
}

/**
 * What a node keeps on its own disk beside the engine: API keys, the channel outbox, source offsets.
 * The embedded engine keeps them in its own file, changed in the same transactions as the log; on Kafka
 * they live in a node-local SQLite file and the outbox follows the events (see startChannels).
 */
interface LocalStore {
  db: Db;
  offsets: SourceOffsets;
  /** Embedded only: add rows to each batch's write transaction. */
  addProjection?: (projection: Projection) => void;
}

async function startEngine(config: StocklineConfig, metrics: Metrics, logger: Logger, idempotencyRecordsMax: number): Promise<{ engine: Engine; local: LocalStore; stopEngineExtras: () => Promise<void> }> {
  const logDeadLetter = deadLetterLog(logger);
  const hooks = {
    onDecided: (command: Command, outcome: Outcome, latencyMs: number) => metrics.commandDecided(command, outcome, latencyMs),
    onDeadLetter: (letter: DeadLetter) => {
      metrics.deadLettered(letter.source);
      logDeadLetter(letter);
    },
  };
  if (config.engine === 'kafka') {
    const kafkaConfig = loadKafkaConfig({ kafka: config.kafka });
    const engine = await KafkaEngine.start({
      config: kafkaConfig, nodeId: process.env.STOCKLINE_NODE_ID ?? `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64),
      expiryIntervalMs: config.ledger.expiryIntervalMs, idempotencyRecordsMax, log: logger.child({ engine: 'kafka' }), ...hooks,
      startTimeoutMs: kafkaConfig.timeouts.startTimeoutMs,
      onCommandsLost: (partition, count) => metrics.kafkaCommandsLost(partition, count),
    });
    let db: Db;
    try {
      db = openDatabase(config.dataDir, 'stockline-node.db');
    } catch (error) {
      await engine.close();
      throw error;
    }
    const lagTimer = setInterval(() => {
      engine.consumerLag().then((lags) => {
        const byTopic = new Map<string, number>();
        for (const { topic, lag } of lags) byTopic.set(topic, (byTopic.get(topic) ?? 0) + lag);
        metrics.kafkaLagged(byTopic);
        // Unknown, not what it last was: a lag frozen at 0 would say all is read while nothing is.
      }, () => metrics.kafkaLagged(new Map()));
    }, 5_000);
    lagTimer.unref();
    return { engine, local: { db, offsets: sqliteOffsets(db) }, stopEngineExtras: async () => { clearInterval(lagTimer); db.close(); } };
  }
  const path = join(config.dataDir, 'stockline.db');
  const engine = openDataFile(path, () => new EmbeddedEngine({
    path,
    expiryIntervalMs: config.ledger.expiryIntervalMs,
    snapshotEveryEvents: config.ledger.snapshotEveryEvents,
    batchCommandsMax: config.ledger.batchCommandsMax,
    idempotencyRecordsMax,
    durability: config.ledger.durability === 'none' ? 'none' : 'background',
    onStorageFailed: storageFailureLog(logger, metrics),
    onSubscriberFailed: (error) => logger.error({ err: error }, 'a subscriber failed on a committed batch; the others were told and the engine goes on'),
    onSnapshotPassedOver: (reason) => logger.warn(`the snapshot file was passed over (${reason}); the whole log was replayed`),
    onSnapshotFailed: (error) => {
      metrics.snapshotFailed();
      logger.warn({ err: error }, 'a snapshot could not be written; the next is tried an interval later, and a restart replays the log since the last one');
    },
    snapshotOnClose: () => {
      const used = oldGenerationUsedBytes();
      const limit = oldGenerationLimitBytes();
      if (used < closeSnapshotHeapShareMax * limit) return true;
      logger.warn(`no snapshot at close: the heap holds ${Math.round(used / 1_048_576)} of ${Math.round(limit / 1_048_576)} MiB, too little room to build one; the next start replays the log since the last snapshot`);
      return false;
    },
    ...hooks,
  }));
  return {
    engine,
    local: { db: engine.db, offsets: engine.offsets(), addProjection: (projection) => engine.addProjection(projection) },
    stopEngineExtras: async () => undefined,
  };
}

/**
 * Logs each dead letter at warn with its source, reason and the start of its payload, at most
 * `deadLetterLinesPerMinuteMax` a source a minute; the rest are counted (`stockline_dead_letters_total`) and kept
 * (the `dead_letters` table, or the Kafka dead-letter topic), and how many were not logged is logged with the next
 * line. A channel webhook's payload (a marketplace order) holds the buyer's details, so it is left out.
 */
export function deadLetterLog(logger: { warn(fields: object, message: string): void }, nowMs: () => number = Date.now): (letter: DeadLetter) => void {
  const minutes = new Map<string, { startMs: number; lines: number; unlogged: number }>();
  return (letter) => {
    const now = nowMs();
    let minute = minutes.get(letter.source);
    if (minute === undefined || now - minute.startMs >= deadLetterLogWindowMs) {
      if (minute === undefined && minutes.size >= deadLetterSourcesMax) minutes.clear();
      const unlogged = minute?.unlogged ?? 0;
      if (unlogged > 0) logger.warn({ source: letter.source, unlogged }, 'dead letters were not logged (more than the lines logged a minute); all are kept');
      minute = { startMs: now, lines: 0, unlogged: 0 };
      minutes.set(letter.source, minute);
    }
    if (minute.lines >= deadLetterLinesPerMinuteMax) {
      minute.unlogged += 1;
      return;
    }
    minute.lines += 1;
    const fields: Record<string, unknown> = { source: letter.source, reason: letter.reason };
    if (!letter.source.startsWith('shopify:')) fields.payload = payloadStart(letter.payload);
    logger.warn(fields, minute.lines === deadLetterLinesPerMinuteMax
      ? `input set aside as a dead letter; more from ${letter.source} this minute are counted and kept, not logged`
      : 'input set aside as a dead letter');
  };
}

/**
 * Counts the commands of each batch the embedded engine could not write, and logs it: the first at once, then one
 * line a minute at most, with how many batches and commands failed since the last line. On a full disk every write
 * fails, and the log may be on that disk.
 */
export function storageFailureLog(
  logger: { warn(fields: object, message: string): void; error(fields: object, message: string): void },
  metrics: Pick<Metrics, 'commandsUnwritten'>, nowMs: () => number = Date.now,
): (error: AppError, commands: number) => void {
  let lineAtMs: number | undefined;
  let since = { batches: 0, commands: 0 };
  return (error, commands) => {
    metrics.commandsUnwritten(error.code, commands);
    if (!error.retryable) {
      logger.error({ code: error.code, error: error.message, commands }, 'the engine takes no more commands: its log could not be made durable; restart the process once the disk is fixed');
      return;
    }
    since = { batches: since.batches + 1, commands: since.commands + commands };
    const now = nowMs();
    if (lineAtMs !== undefined && now - lineAtMs < storageFailureLogWindowMs) return;
    lineAtMs = now;
    logger.warn({ code: error.code, error: error.message, batches: since.batches, commands: since.commands },
      'batches could not be written: their commands were refused with 503 (retryable) and the state rebuilt from the file; the next line about them waits a minute (stockline_commands_unwritten_total counts them all)');
    since = { batches: 0, commands: 0 };
  };
}

function payloadStart(payload: unknown): string {
  const text = (typeof payload === 'string' ? payload : JSON.stringify(payload)) ?? String(payload);
  return text.length > deadLetterPayloadCharsMax ? `${text.slice(0, deadLetterPayloadCharsMax)}…` : text;
}

function sqliteOffsets(db: Db): SourceOffsets {
  const read = db.prepare('SELECT value FROM source_offsets WHERE source = ?');
  const write = db.prepare('INSERT OR REPLACE INTO source_offsets (source, value) VALUES (?, ?)');
  return {
    get: (source) => (read.get(source) as { value: string } | undefined)?.value,
    set: (source, value) => { write.run(source, value); },
  };
}

/** Debezium change events on a Kafka topic (teams that already run Debezium). */
function startDebeziumTopics(engine: Engine, config: StocklineConfig, metrics: Metrics, logger: Logger): DebeziumKafkaSource[] {
  const debezium = (config.sources as unknown as DebeziumSourceConfig[]).filter((source) => source.type === 'debezium' && source.topic !== undefined);
  metrics.watchSources(debezium.map((source) => `debezium:${source.name}`));
  // Every source is checked before any starts: a refused start then has none to stop.
  const brokersOf = debezium.map((sourceConfig) => {
    const brokers = sourceConfig.brokers ?? (config.kafka as { brokers?: string[] } | undefined)?.brokers;
    if (brokers === undefined) throw new ConfigError(`sources: debezium source ${sourceConfig.name} reads topic ${String(sourceConfig.topic)} but names no brokers (brokers:, or a kafka: section)`);
    return brokers;
  });
  return debezium.map((sourceConfig, index) => {
    const brokers = brokersOf[index] as string[];
    const source = new DebeziumKafkaSource({
      config: { ...sourceConfig, topic: sourceConfig.topic as string }, brokers, groupId: sourceConfig.groupId ?? `stockline-debezium-${sourceConfig.name}`,
      // The source names itself (`source`) on each line it logs: a child bound to it would log the key twice.
      bus: engine, deadLetters: engine, log: logger,
    });
    source.start().catch((error: unknown) => logger.error({ source: `debezium:${sourceConfig.name}`, err: error }, 'the source stopped'));
    metrics.watchSourceUp(`debezium:${sourceConfig.name}`, () => source.status().consuming);
    return source;
  });
}

/** Native logical-replication sources; each connects, snapshots and streams on its own, reconnecting with backoff. */
function startSources(engine: Engine, offsets: SourceOffsets, config: StocklineConfig, metrics: Metrics, logger: Logger): PostgresCdcSource[] {
  const postgres = config.sources.filter((source) => source.type === 'postgres') as unknown as PostgresSourceConfig[];
  metrics.watchSources(postgres.map((source) => `pg:${source.slot}`));
  return postgres.map((sourceConfig) => {
    const source = new PostgresCdcSource({
      config: sourceConfig, bus: engine, deadLetters: engine, offsets,
      onLag: (name, lagMs) => metrics.cdcLagged(name, lagMs),
      // The source names itself (`source`) on each line it logs: a child bound to it would log the key twice.
      log: logger,
    });
    source.start().catch((error: unknown) => logger.error({ source: `pg:${sourceConfig.slot}`, err: error }, 'the source stopped'));
    metrics.watchSourceUp(`pg:${sourceConfig.slot}`, () => source.status().state === 'streaming');
    return source;
  });
}

/**
 * Desired quantities change in the same transaction as the events that change them (embedded), or
 * right after each batch the node's replica applies (Kafka: recomputed from the state at every start, so
 * nothing is missed across a crash); the worker is kicked after each batch, so a push starts within
 * milliseconds of the change. In Kafka mode every node keeps every tenant's rows, but only the node that owns
 * a tenant's commands partition pushes, reconciles and reports lag for its compare-and-set channels; a node
 * that takes a tenant over pushes what its own rows say is due, and compare-and-set corrects what it knew.
 * Version-ordered channels (webhooks) are pushed by every node (see ChannelConnector.versionOrdered).
 */
export function startChannels(engine: Engine, local: LocalStore, configs: ChannelConfig[], metrics: Metrics, options: { reconcileIntervalMs?: number; log?: SyncLogger } = {}): Channels {
  const outbox = new ChannelOutbox(local.db);
  outbox.migrate();
  const byTenant = new Map<string, string[]>();
  for (const config of configs) byTenant.set(config.tenant, [...(byTenant.get(config.tenant) ?? []), config.id]);
  const channelsOf = (tenant: string): readonly string[] => byTenant.get(tenant) ?? [];
  const desired = desiredProjection(channelsOf);
  let unfollow = (): void => undefined;
  if (local.addProjection !== undefined) local.addProjection((batch, state) => ChannelOutbox.upsertWrites(desired(batch, state)));
  else if (configs.length > 0) unfollow = engine.subscribe((batch) => local.db.transaction(() => outbox.upsertDesired(desired(batch, engine.state())))());
  local.db.transaction(() => outbox.upsertDesired(desiredOfState(engine.state(), channelsOf, Date.now(), engine.position())))();
  const connectors = new Map(configs.map((config) => [config.id, createConnector(config, process.env)]));
  const owns = (tenant: string, channel: string): boolean => connectors.get(channel)?.versionOrdered === true || (engine.ownsTenant?.(tenant) ?? true);
  metrics.watchChannels(outbox, configs.map((config) => ({ tenant: config.tenant, channel: config.id })), owns);
  const sync = new ChannelSync({
    outbox, connectors, bus: engine, clock: { nowMs: Date.now }, random: Math.random, owns,
    metrics: { pushed: (channel, outcome, latencyMs) => metrics.pushed(channel, outcome, latencyMs) },
    ...(options.log === undefined ? {} : { log: options.log }),
  });
  const unsubscribe = engine.subscribe(() => sync.kick());
  // A tenant taken over: its due rows go out at once, not at the next look.
  const unwatch = engine.onOwnershipChange?.(() => sync.kick()) ?? ((): void => undefined);
  sync.start();
  let reconcileTimer: NodeJS.Timeout | undefined;
  let reconciling = false;
  const shortfalls = new RepeatedShortfalls((channel) => connectors.get(channel)?.versionOrdered !== true);
  const reconcileOwned = async (): Promise<void> => {
    shortfalls.startRun();
    for (const { tenant, id: channel } of configs) {
      if (!owns(tenant, channel)) continue;
      try {
        const report = await reconcile({ outbox, connectors, tenant, channel, repair: true, defer: (drift) => shortfalls.defer(drift) });
        logReconciliation(options.log, tenant, channel, report);
      } catch (error) {
        options.log?.warn({ tenant, channel, error: (error as Error).message }, 'reconciliation of the channel failed; it runs again at the next interval');
      }
    }
    shortfalls.endRun();
  };
  if ((options.reconcileIntervalMs ?? 0) > 0 && connectors.size > 0) {
    reconcileTimer = setInterval(() => {
      // A run slower than the interval is not overlapped by the next.
      if (reconciling) return;
      reconciling = true;
      void reconcileOwned().finally(() => { reconciling = false; });
    }, options.reconcileIntervalMs);
    reconcileTimer.unref();
  }
  return {
    outbox, connectors, sync,
    async stop() {
      if (reconcileTimer !== undefined) clearInterval(reconcileTimer);
      unsubscribe();
      unwatch();
      unfollow();
      await sync.stop();
      await Promise.all([...connectors.values()].map((connector) => connector.close()));
    },
  };
}

/** How many SKUs each timed reconciliation found drifted, repaired and left for the next run, with a few examples: one line a channel a run, only when it found any. */
function logReconciliation(log: SyncLogger | undefined, tenant: string, channel: string, report: ReconcileReport): void {
  if (report.unchecked.length > 0) log?.warn({ tenant, channel, unchecked: report.unchecked.slice(0, reconcileLogExamplesMax) }, 'reconciliation could not read some SKUs of the channel');
  if (report.drift.length === 0) return;
  const examples = report.drift.slice(0, reconcileLogExamplesMax).map(({ sku, desired, shown, pending }) => ({ sku, desired, shown, pending }));
  log?.warn({ tenant, channel, drifted: report.drift.length, repaired: report.repaired, deferred: report.deferred, examples }, 'reconciliation found the channel showing other quantities than the ledger');
}

/** First run: the demo catalogue and a key for it; later runs: the same key again, from the data folder, while it is a key of it. */
async function loadDemo(engine: Engine, keys: ApiKeyStore, dataDir: string, url: string, io: StartOptions['io']): Promise<void> {
  const keyFile = join(dataDir, 'demo-key');
  if (engine.tenant(demoTenant) === undefined) {
    const document = JSON.parse(readFileSync(packagePath('examples', 'demo-catalogue.json'), 'utf8')) as { events: unknown[] };
    const invalid = document.events.findIndex((event) => validateEvent(event).length > 0);
    if (invalid >= 0) throw new Error(`examples/demo-catalogue.json: event ${invalid} is not valid`);
    const result = await engine.importEvents(demoTenant, document.events as InventoryEvent[]);
    if (!result.applied) throw new Error('the demo catalogue could not be loaded');
  }
  let key = existingDemoKey(keyFile, keys);
  if (key === undefined) {
    if (existsSync(keyFile)) io.stdout(`stockline: ${keyFile} holds no key of this data folder (empty, damaged, or kept from before a reset): a new one is made\n`);
    key = keys.create({ tenant: demoTenant, scopes: ['read', 'write'] }).key;
    writeFileDurably(keyFile, `${key}\n`, 0o600);
  }
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

/**
 * The demo key kept in the data folder, if it is still a key of this folder's store: a key file left empty by a
 * crash, or kept when the database was deleted to start over, would otherwise be printed and answer 401 for ever.
 */
function existingDemoKey(keyFile: string, keys: ApiKeyStore): string | undefined {
  let key: string;
  try {
    key = readFileSync(keyFile, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // verify refuses anything not of the key shape before it looks the key up.
  return keys.verify(key)?.tenant === demoTenant ? key : undefined;
}
