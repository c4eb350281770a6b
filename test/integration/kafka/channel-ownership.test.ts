// Channel sync on two Kafka-engine nodes against the real development broker: each change reaches a
// compare-and-set channel (the Shopify Admin API, faked from its contract) once, from the node that owns the
// tenant's commands partition, and the other node takes over when the owner stops. A version-ordered channel
// (a webhook) is pushed by both nodes, so its receiver always has the node furthest ahead.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncLimits } from '../../../src/app/channel-sync.js';
import { Metrics } from '../../../src/app/metrics.js';
import type { ChannelConfig } from '../../../src/adapters/channels/factory.js';
import { partitionOfKey } from '../../../src/adapters/kafka/clients.js';
import type { KafkaConfig } from '../../../src/adapters/kafka/config.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import { openDatabase } from '../../../src/cli/context.js';
import { startChannels } from '../../../src/main.js';
import { startFakeShopify } from '../../fakes/fake-shopify.js';
import type { FakeShopify } from '../../fakes/fake-shopify.js';
import type { Channels } from '../../../src/main.js';
import { ensureKafkaBroker, kafkaTestLimits, uniqueTopicPrefix } from '../../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig } from '../../support/kafka-node.js';

const prefix = uniqueTopicPrefix('channel-owner');
const partitions = 3;
const tenant = 'acme';
const channel = 'portal';
const shopChannel = 'shop';
const sku = 'TEE-M';
const secretEnv = 'STOCKLINE_TEST_CHANNEL_OWNER_SECRET';
const shopTokenEnv = 'STOCKLINE_TEST_CHANNEL_OWNER_SHOP_TOKEN';
const shopToken = 'shpat_channel_owner_test';
const waitMsMax = 60_000;

interface Push { node: string; sku: string; quantity: number }

interface Node {
  name: string;
  engine: KafkaEngine;
  db: Database;
  dir: string;
  metrics: Metrics;
  channels: Channels;
  stopped: boolean;
}

let bootstrap: string | undefined;
let config: KafkaConfig;
let receiver: Server;
let shop: FakeShopify;
const received: Push[] = [];
const nodes: Node[] = [];

/** A channel receiver that records which node each push came from (the node's name is in its push URL). */
async function startReceiver(): Promise<string> {
  receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { sku: string; quantity: number };
      const node = new URL(request.url ?? '/', 'http://receiver').searchParams.get('node') ?? '?';
      received.push({ node, sku: body.sku, quantity: body.quantity });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/push`;
}

async function startNode(name: string, url: string): Promise<Node> {
  const engine = await KafkaEngine.start({ config, nodeId: `${prefix}-${name}`.slice(0, 64), startTimeoutMs: 60_000 });
  const dir = mkdtempSync(join(tmpdir(), `stockline-${name}-`));
  const db = openDatabase(dir, 'stockline-node.db');
  const metrics = new Metrics(Date.now, { processMetrics: false });
  const channelConfigs: ChannelConfig[] = [
    { id: channel, tenant, type: 'webhook', webhook: { url: `${url}?node=${name}`, secretEnv } },
    {
      id: shopChannel, tenant, type: 'shopify',
      shopify: { shop: 'acme.myshopify.com', accessTokenEnv: shopTokenEnv, webhookSecretEnv: secretEnv, baseUrl: shop.url, locationId: shop.locationId },
    },
  ];
  const channels = startChannels(engine, { db, offsets: { get: () => undefined, set: () => undefined } }, channelConfigs, metrics);
  const node: Node = { name, engine, db, dir, metrics, channels, stopped: false };
  nodes.push(node);
  return node;
}

async function stopNode(node: Node): Promise<void> {
  if (node.stopped) return;
  node.stopped = true;
  await node.channels.stop();
  await node.engine.close();
  node.db.close();
  rmSync(node.dir, { recursive: true, force: true });
}

async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + waitMsMax;
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${waitMsMax} ms: ${what}; pushes ${JSON.stringify(received)}`);
    await sleep(100);
  }
}

/** The tenants and channels whose lag a node reports. */
async function lagSeries(node: Node): Promise<string[]> {
  const metric = await node.metrics.registry.getSingleMetric('stockline_reconciliation_lag_seconds')?.get();
  return (metric?.values ?? []).map((value) => `${String(value.labels.tenant)}/${String(value.labels.channel)}`);
}

beforeAll(async () => {
  ({ bootstrap } = await ensureKafkaBroker());
  config = kafkaTestConfig({ bootstrap, prefix, partitions });
  process.env[secretEnv] = 'whsec_channel_owner_test';
  process.env[shopTokenEnv] = shopToken;
  shop = await startFakeShopify({ accessToken: shopToken, items: [{ sku, available: 0 }] });
  const url = await startReceiver();
  await startNode('a', url);
  await startNode('b', url);
  await until('the two nodes share the partitions', () => {
    const sets = nodes.map((node) => node.engine.ownedPartitions());
    const all = sets.flat();
    return sets.every((set) => set.length > 0) && all.length === partitions && new Set(all).size === partitions;
  });
}, kafkaTestLimits.upTimeoutMs);

afterAll(async () => {
  for (const node of nodes) await stopNode(node).catch(() => undefined);
  await new Promise<void>((resolve) => receiver?.close(() => resolve()) ?? resolve());
  await shop?.stop();
  if (bootstrap !== undefined) await deleteTestTopics(bootstrap, prefix);
}, 60_000);

/** The quantities Stockline set on the fake shop, in order. */
function shopSets(): number[] {
  return shop.requests.filter((request) => request.operation === 'inventorySetQuantities' && request.outcome === 'ok').map((request) => {
    const input = (request.variables as { input: { quantities: Array<{ quantity: number }> } }).input;
    return input.quantities[0]?.quantity as number;
  });
}

describe('channel sync on two Kafka nodes', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  const partition = partitionOfKey(tenant, partitions);
  const ownerOf = (): Node => nodes.find((node) => !node.stopped && node.engine.ownedPartitions().includes(partition)) as Node;

  it('pushes a change to the shop once, from the node that owns the tenant, which alone reports its lag; the webhook from both', async () => {
    const owner = ownerOf();
    const other = nodes.find((node) => node !== owner) as Node;
    expect(owner.engine.ownsTenant(tenant)).toBe(true);
    expect(other.engine.ownsTenant(tenant)).toBe(false);
    // Sent through the node that does not decide the tenant: it is routed to the owner's partition.
    const submitted = await other.engine.submit({ type: 'adjust_stock', tenant, sku, location: 'default', set: 7 });
    expect(submitted.outcome.rejection).toBeUndefined();
    await until('the owner pushed the change and the other node has it', () => shopSets().includes(7)
      && owner.channels.outbox.get(tenant, shopChannel, sku)?.ackedQuantity === 7 && other.channels.outbox.get(tenant, shopChannel, sku)?.quantity === 7);
    await until('both nodes pushed the webhook', () => received.filter((push) => push.quantity === 7).length === 2);
    // The other node was kicked by the same change and looks at its channel again every recheck: give it two.
    await sleep(2 * syncLimits.notOwnedRecheckMs);

    expect(shopSets()).toEqual([7]);
    expect(other.channels.outbox.get(tenant, shopChannel, sku)?.pushedVersion).toBeNull();
    expect(received.map((push) => push.node).sort()).toEqual([owner.name, other.name].sort());
    expect(await lagSeries(owner)).toEqual([`${tenant}/${channel}`, `${tenant}/${shopChannel}`]);
    expect(await lagSeries(other)).toEqual([`${tenant}/${channel}`]);
  });

  it('moves the shop\'s pushes to the other node when the owner stops', async () => {
    const owner = ownerOf();
    const survivor = nodes.find((node) => node !== owner) as Node;
    await stopNode(owner);
    await until(`${survivor.name} owns partition ${partition}`, () => survivor.engine.ownedPartitions().includes(partition));
    const submitted = await survivor.engine.submit({ type: 'adjust_stock', tenant, sku, location: 'default', set: 3 });
    expect(submitted.outcome.rejection).toBeUndefined();
    await until('the survivor pushed the change', () => survivor.channels.outbox.get(tenant, shopChannel, sku)?.ackedQuantity === 3);

    // The survivor may first push the 7 its row held due (already on the shop: an absolute set, harmless).
    expect(shopSets().slice(1).every((quantity) => quantity === 7 || quantity === 3)).toBe(true);
    expect(shopSets().at(-1)).toBe(3);
    expect(shop.levels.get(shop.idOf(sku) as string)).toBe(3);
    expect(await lagSeries(survivor)).toEqual([`${tenant}/${channel}`, `${tenant}/${shopChannel}`]);
  });
});
