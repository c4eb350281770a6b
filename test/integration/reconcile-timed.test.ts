// The server's timed reconciliation: a Shopify level changed behind Stockline's back is found and repaired (one
// below the ledger's only when the next run finds it again), and each run that finds drift says so in one log line
// a channel, with how many SKUs and a few of them.

import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelConfig } from '../../src/adapters/channels/factory.js';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { Metrics } from '../../src/app/metrics.js';
import { startChannels } from '../../src/main.js';
import { startFakeShopify } from '../fakes/fake-shopify.js';

const tokenEnv = 'STOCKLINE_TEST_RECONCILE_TIMED_TOKEN';
const secretEnv = 'STOCKLINE_TEST_RECONCILE_TIMED_SECRET';
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function until(what: string, check: () => boolean, waitMsMax = 15_000): Promise<void> {
  for (let waited = 0; !check(); waited += 25) {
    if (waited > waitMsMax) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('timed reconciliation', () => {
  it('repairs a level changed on Shopify and logs what it found', async () => {
    const fake = await startFakeShopify({ accessToken: 'shpat_reconcile_timed', items: [{ sku: 'TEE-M', available: 0 }] });
    cleanups.push(() => fake.stop());
    process.env[tokenEnv] = 'shpat_reconcile_timed';
    process.env[secretEnv] = 'reconcile-timed-secret';
    cleanups.push(() => {
      delete process.env[tokenEnv];
      delete process.env[secretEnv];
    });
    const engine = new EmbeddedEngine({ path: ':memory:' });
    const db = new Database(':memory:');
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const log = { warn: (fields: object, message: string) => { lines.push({ fields: fields as Record<string, unknown>, message }); }, error: () => undefined };
    const configs: ChannelConfig[] = [{
      id: 'shop', tenant: 'acme', type: 'shopify',
      shopify: { shop: 'acme.myshopify.com', accessTokenEnv: tokenEnv, webhookSecretEnv: secretEnv, baseUrl: fake.url, locationId: fake.locationId },
    }];
    const channels = startChannels(engine, { db, offsets: { get: () => undefined, set: () => undefined } }, configs, new Metrics(Date.now, { processMetrics: false }), { reconcileIntervalMs: 200, log });
    cleanups.push(async () => {
      await channels.stop();
      await engine.close();
      db.close();
    });
    const item = fake.idOf('TEE-M') as string;
    await engine.submit({ type: 'adjust_stock', tenant: 'acme', sku: 'TEE-M', location: 'default', set: 10 });
    await until('the push of 10', () => fake.levels.get(item) === 10);
    const found = (shown: number): unknown[] => lines
      .filter((line) => line.message === 'reconciliation found the channel showing other quantities than the ledger')
      .map((line) => line.fields)
      .filter((fields) => (fields.examples as Array<{ shown: number }>)[0]?.shown === shown);
    const example = (shown: number): unknown => ({ sku: 'TEE-M', desired: 10, shown, pending: false });

    // Someone sets the level above the ledger's in Shopify's admin: repaired at the first run that sees it.
    fake.levels.set(item, 15);
    await until('the repair of 15', () => fake.levels.get(item) === 10);
    expect(found(15)[0]).toEqual({ tenant: 'acme', channel: 'shop', drifted: 1, repaired: 1, deferred: 0, examples: [example(15)] });

    // Below the ledger's: most often a sale whose webhook has not arrived. Left for a run, repaired at the next.
    fake.levels.set(item, 3);
    await until('the repair of 3', () => fake.levels.get(item) === 10);
    expect(found(3).slice(0, 2)).toEqual([
      { tenant: 'acme', channel: 'shop', drifted: 1, repaired: 0, deferred: 1, examples: [example(3)] },
      { tenant: 'acme', channel: 'shop', drifted: 1, repaired: 1, deferred: 0, examples: [example(3)] },
    ]);
  });
});
