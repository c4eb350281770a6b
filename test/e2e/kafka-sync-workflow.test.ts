// The end-to-end sync workflow on the Kafka engine: `stockline serve` with `engine: kafka` on the development broker,
// a PostgreSQL stock table as its source and the fake Shopify as its channel. A row change becomes an event on
// Kafka (read back with Kafka's own console consumer), the node's state, a push to Shopify acknowledged by
// `sync_complete`, and a reconciliation lag under 5 s; a blocked Shopify makes a real Prometheus fire the lag
// alert, and unblocking it resolves the alert.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startFakeShopify } from '../fakes/fake-shopify.js';
import type { FakeShopify } from '../fakes/fake-shopify.js';
import { callApi, channelConfigOf, metricValue, readMetric, shopifyAccessToken, stackLimits } from '../support/channel-config.js';
import { ensureKafkaBroker, kafkaTool, uniqueTopicPrefix } from '../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig } from '../support/kafka-node.js';
import { createThrowawayDatabase } from '../support/pg.js';
import type { ThrowawayDatabase } from '../support/pg.js';
import { pollUntil, shortenForDurations, startPrometheus } from '../support/prometheus.js';
import type { RunningPrometheus } from '../support/prometheus.js';
import { startStockline } from '../support/stockline-process.js';
import type { StocklineProcess } from '../support/stockline-process.js';

const tenant = 'kflow';
const sku = 'KF-TEE-M';
const location = 'berlin';
const channel = 'shop';
const slot = 'stockline_kafka_flow';
const rulesFile = fileURLToPath(new URL('../../deploy/prometheus/alerts.yaml', import.meta.url));
const lagAlert = 'StocklineReconciliationLagHigh';
const lagSelector = `stockline_reconciliation_lag_seconds{job="stockline",tenant="${tenant}",channel="${channel}"}`;

const limits = {
  /** Topic creation, the group join and the replica's first read, on a busy two-core machine. */
  serveStartMs: 60_000,
  /** A CDC change through Kafka to the replica, and on to Shopify. */
  propagationMs: 20_000,
  /** The console consumer gives up when no record arrives for this long. */
  consumerIdleMs: 20_000,
  /** The lag must pass 5 s, then hold for `for:`; a few scrape and evaluation rounds on top. */
  firingMs: 25_000,
  /** Pushes back off with full jitter while Shopify is down; after ~10 s of failures the next try is at most ~13 s away. */
  recoveryMs: 45_000,
  resolveMs: 15_000,
} as const;

interface LoggedEvent {
  position: number;
  event: { id: string; type: string; tenant: string; source: string; sourceSeq?: string; data: Record<string, unknown> };
}

let database: ThrowawayDatabase | undefined;
let fake: FakeShopify | undefined;
let stockline: StocklineProcess | undefined;
let prometheus: RunningPrometheus | undefined;
let bootstrap: string | undefined;
const prefix = uniqueTopicPrefix('sync-workflow');
const directory = mkdtempSync(join(tmpdir(), 'stockline-kafka-flow-'));

afterAll(async () => {
  await prometheus?.stop();
  if (stockline !== undefined) {
    const running = stockline;
    const kill = setTimeout(() => running.child.kill('SIGKILL'), stackLimits.stopTimeoutMs);
    await running.stop('SIGTERM');
    clearTimeout(kill);
  }
  await fake?.stop();
  await database?.drop();
  if (bootstrap !== undefined) await deleteTestTopics(bootstrap, prefix);
  rmSync(directory, { recursive: true, force: true });
}, 90_000);

/** The position of the WAL insert pointer: a commit made after this call ends above it. */
async function walPosition(db: ThrowawayDatabase): Promise<bigint> {
  const { rows } = await db.client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  const [high, low] = (rows[0]?.lsn ?? '').split('/');
  return (BigInt(`0x${high ?? '0'}`) << 32n) | BigInt(`0x${low ?? '0'}`);
}

/** Runs one statement in its own transaction; returns the WAL positions around it, which bound its commit LSN. */
async function change(db: ThrowawayDatabase, sql: string, values: unknown[]): Promise<{ before: bigint; after: bigint }> {
  const before = await walPosition(db);
  await db.client.query(sql, values);
  const after = await walPosition(db);
  return { before, after };
}

async function api(method: string, path: string): Promise<{ status: number; body: unknown }> {
  return callApi((stockline as StocklineProcess).url, method, path);
}

async function skuView(): Promise<{ onHand: number; available: number } | undefined> {
  const answer = await api('GET', `/v1/tenants/${tenant}/skus/${sku}`);
  return answer.status === 200 ? answer.body as { onHand: number; available: number } : undefined;
}

async function availableToSell(): Promise<number | undefined> {
  const answer = await api('GET', `/v1/tenants/${tenant}/availability?channel=${channel}&skus=${sku}`);
  if (answer.status !== 200) return undefined;
  return (answer.body as { skus: Array<{ sku: string; availableToSell: number }> }).skus.find((item) => item.sku === sku)?.availableToSell;
}

async function loggedEvents(): Promise<LoggedEvent[]> {
  const answer = await api('GET', `/v1/tenants/${tenant}/events?after=0&limit=1000`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return (answer.body as { events: LoggedEvent[] }).events;
}

/** Waits until the node shows `onHand` and Shopify shows the channel's available-to-sell for it. */
async function propagated(itemId: string, onHand: number): Promise<number> {
  await pollUntil(`onHand ${onHand} in the node's state`, async () => ((await skuView())?.onHand === onHand ? true : undefined), limits.propagationMs);
  return pollUntil(`Shopify to show the available-to-sell for onHand ${onHand}`, async () => {
    const wanted = await availableToSell();
    return wanted !== undefined && (fake as FakeShopify).levels.get(itemId) === wanted ? wanted : undefined;
  }, limits.propagationMs);
}

async function lagInPrometheus(server: RunningPrometheus): Promise<number | undefined> {
  return (await server.query(lagSelector))[0]?.value;
}

describe('the sync workflow on the Kafka engine', () => {
  it('carries a PostgreSQL row change through Kafka to the state store and Shopify, and alerts on a blocked channel', async () => {
    bootstrap = (await ensureKafkaBroker()).bootstrap;
    database = await createThrowawayDatabase('stockline_kafka_flow');
    const db = database;
    await db.client.query(`CREATE TABLE stock_levels (merchant text NOT NULL, sku text NOT NULL, warehouse text NOT NULL,
      quantity integer NOT NULL, discontinued_at timestamptz, PRIMARY KEY (merchant, sku, warehouse))`);
    fake = await startFakeShopify({ accessToken: shopifyAccessToken });
    const shopify = fake;
    const itemId = shopify.addItem(sku, 0);

    // The configuration a user writes: the engine, the broker, the source table and the Shopify channel.
    const dataDir = join(directory, 'data');
    const configFile = join(directory, 'stockline.yaml');
    const { document, env } = channelConfigOf({
      tenant, dataDir, shopify: { id: channel, url: shopify.url, locationId: shopify.locationId, items: { [sku]: itemId } },
    });
    const kafka = kafkaTestConfig({ bootstrap, prefix });
    expect(kafka.processing.transactionalIdPrefix.startsWith(prefix), 'transactional ids unique to this run').toBe(true);
    writeFileSync(configFile, stringify({
      ...document,
      engine: 'kafka',
      kafka,
      sources: [{
        type: 'postgres', name: 'warehouse', connectionString: db.connectionString, table: 'stock_levels',
        columns: { tenant: 'merchant', sku: 'sku', location: 'warehouse', onHand: 'quantity', deletedAt: 'discontinued_at' },
        slot, publication: slot,
      }],
    }));

    stockline = await startStockline(['--config', configFile, '--data-dir', dataDir], env, limits.serveStartMs);
    const node = stockline;
    await pollUntil('/readyz 200 (the source connected)', async () => ((await fetch(`${node.url}/readyz`)).status === 200 ? true : undefined), limits.serveStartMs);

    // INSERT, then UPDATE: each becomes an absolute stock_adjustment, on the node and on Shopify.
    const inserted = await change(db, 'INSERT INTO stock_levels VALUES ($1, $2, $3, 40, NULL)', [tenant, sku, location]);
    expect(await propagated(itemId, 40)).toBe(40);
    const updated = await change(db, 'UPDATE stock_levels SET quantity = 33 WHERE merchant = $1 AND sku = $2', [tenant, sku]);
    expect(await propagated(itemId, 33)).toBe(33);
    expect(await skuView()).toMatchObject({ onHand: 33, available: 33 });

    // Shopify's acknowledgement is an event too: sync_complete for this SKU and channel, with the latency.
    const synced = await pollUntil('sync_complete for 33', async () => (await loggedEvents()).find(({ event }) =>
      event.type === 'sync_complete' && event.data.sku === sku && event.data.channel === channel && event.data.quantity === 33), limits.propagationMs);
    expect(synced.event.data.latencyMs).toEqual(expect.any(Number));
    expect(synced.event.data.latencyMs as number).toBeGreaterThanOrEqual(0);

    // The events on Kafka, read by Kafka's own consumer (committed transactions only), keyed by the tenant.
    const served = await loggedEvents();
    const consumed = await kafkaTool([
      'console-consumer', '--bootstrap-server', bootstrap, '--topic', `${prefix}.events`, '--from-beginning',
      '--isolation-level', 'read_committed', '--max-messages', String(served.length), '--timeout-ms', String(limits.consumerIdleMs),
      '--formatter-property', 'print.key=true', '--formatter-property', 'key.separator=|',
    ]);
    const records = consumed.stdout.split('\n').filter((line) => line.trim() !== '').map((line) => {
      const split = line.indexOf('|');
      return { key: line.slice(0, split), event: JSON.parse(line.slice(split + 1)) as LoggedEvent['event'] };
    });
    expect(records.map((record) => record.event.id), 'Kafka holds exactly the events the node serves').toEqual(served.map(({ event }) => event.id));
    expect(records.every((record) => record.key === tenant)).toBe(true);
    const adjustments = records.map((record) => record.event).filter((event) => event.type === 'stock_adjustment' && event.data.sku === sku);
    expect(adjustments).toHaveLength(2);
    const [fromInsert, fromUpdate] = adjustments;
    for (const [event, onHand, around] of [[fromInsert, 40, inserted], [fromUpdate, 33, updated]] as const) {
      expect(event).toMatchObject({ tenant, source: `pg:${slot}`, data: { sku, location, mode: 'set', onHand } });
      expect(event?.sourceSeq, 'the LSN, as a decimal string').toMatch(/^\d{1,20}$/);
      const seq = BigInt(event?.sourceSeq ?? '0');
      expect(seq > around.before && seq <= around.after, `commit LSN ${seq} within (${around.before}, ${around.after}]`).toBe(true);
    }

    // The slot is acknowledged once the change is durable in Kafka, so PostgreSQL can let its WAL go.
    await pollUntil('the slot to confirm the UPDATE', async () => {
      const { rows } = await db.client.query<{ lsn: string | null }>('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      const [high, low] = (rows[0]?.lsn ?? '0/0').split('/');
      const confirmed = (BigInt(`0x${high ?? '0'}`) << 32n) | BigInt(`0x${low ?? '0'}`);
      return confirmed >= BigInt(fromUpdate?.sourceSeq ?? '0') ? true : undefined;
    }, limits.propagationMs);

    // The lag under the threshold, as this node exposes it.
    const lag = (await readMetric(node.url, 'stockline_reconciliation_lag_seconds')).find((sample) => sample.labels.tenant === tenant && sample.labels.channel === channel);
    expect(lag, 'stockline_reconciliation_lag_seconds for the channel').toBeDefined();
    expect(lag?.value).toBeLessThan(5);

    // A real Prometheus scraping this node, with the shipped rules (`for:` shortened).
    prometheus = await startPrometheus({ targets: [new URL(node.url).host], rulesFile, rulesTransform: shortenForDurations('2s') });
    const server = prometheus;
    await pollUntil('Prometheus to scrape a lag of 0', async () => ((await lagInPrometheus(server)) === 0 ? true : undefined), limits.propagationMs);
    expect((await server.alerts()).filter((alert) => alert.name === lagAlert)).toEqual([]);

    // Shopify unreachable while the row changes again: the change waits, the lag grows, the alert fires.
    shopify.setReachable(false);
    await change(db, 'UPDATE stock_levels SET quantity = 30 WHERE merchant = $1 AND sku = $2', [tenant, sku]);
    await pollUntil('onHand 30 in the node\'s state', async () => ((await skuView())?.onHand === 30 ? true : undefined), limits.propagationMs);
    await pollUntil('the lag to pass 5 s in Prometheus', async () => (((await lagInPrometheus(server)) ?? 0) > 5 ? true : undefined), limits.firingMs);
    const firing = await pollUntil('the lag alert to fire', async () => (await server.alerts()).find((alert) => alert.name === lagAlert && alert.state === 'firing'), limits.firingMs);
    expect(firing.labels).toMatchObject({ tenant, channel, severity: 'page' });
    expect(shopify.levels.get(itemId), 'nothing reached Shopify while it was unreachable').toBe(33);
    expect(await metricValue(node.url, 'stockline_channel_pushes_total', { channel, outcome: 'retry' })).toBeGreaterThan(0);

    // Reachable again: the push lands, the lag drops to 0 and the alert resolves.
    shopify.setReachable(true);
    await pollUntil('the lag to drop back to 0 in Prometheus', async () => ((await lagInPrometheus(server)) === 0 ? true : undefined), limits.recoveryMs);
    await pollUntil('the lag alert to resolve', async () => ((await server.alerts()).some((alert) => alert.name === lagAlert) ? undefined : true), limits.resolveMs);
    expect(shopify.levels.get(itemId)).toBe(30);
    expect(await availableToSell()).toBe(30);
    expect(node.child.exitCode, node.output.slice(-20).join('\n')).toBeNull();
    await prometheus.stop();
    prometheus = undefined;

    // A crash, and a change while the node is down: the restarted node resumes from its source offset (kept in
    // <dataDir>/stockline-node.db on Kafka), so the change arrives once and nothing is snapshotted again.
    await node.stop('SIGKILL');
    stockline = undefined;
    const whileDown = await change(db, 'UPDATE stock_levels SET quantity = 25 WHERE merchant = $1 AND sku = $2', [tenant, sku]);
    stockline = await startStockline(['--config', configFile, '--data-dir', dataDir], env, limits.serveStartMs);
    expect(await propagated(itemId, 25)).toBe(25);
    const afterRestart = (await loggedEvents()).map(({ event }) => event).filter((event) => event.type === 'stock_adjustment' && event.data.sku === sku);
    expect(afterRestart.map((event) => event.data.onHand), 'each row change applied once, in order').toEqual([40, 33, 30, 25]);
    const seq = BigInt(afterRestart[3]?.sourceSeq ?? '0');
    expect(seq > whileDown.before && seq <= whileDown.after, `commit LSN ${seq} within (${whileDown.before}, ${whileDown.after}]`).toBe(true);
  }, 150_000);
});
