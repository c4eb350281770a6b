// What a real `stockline serve` logs when things go wrong around it: a channel that refuses pushes (its answer,
// a bounded number of lines), a dead letter (source and reason), a change-data-capture source that cannot
// connect; every line one JSON object with each key once, and no secret in any of them.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { sendShopifyWebhook } from '../fakes/fake-shopify.js';
import { callApi, channelConfigOf, shopifyAccessToken, shopifyAppSecret, webhookSecretOf } from '../support/channel-config.js';
import { pollUntil } from '../support/prometheus.js';
import { processAdminKey, startStockline } from '../support/stockline-process.js';
import type { StocklineProcess } from '../support/stockline-process.js';
import { startWebhookReceiver } from '../support/webhook-receiver.js';
import type { WebhookReceiver } from '../support/webhook-receiver.js';

const tenant = 'acme';
const sourcePassword = 'ops-fix-cdc-password-0123';
const waitMs = 20_000;
const skus = Array.from({ length: 20 }, (_, index) => `SKU-${index}`);
/** Every SKU pushed, and retried, at once: the retries pile up within seconds. */
const fast = { ratePerSecond: 1_000, maxConcurrency: 20 };

let directory: string;
let receiver: WebhookReceiver;
let stockline: StocklineProcess | undefined;

/** A port nothing listens on: a channel or a database there refuses every connection. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The keys of each object in a JSON text, in order, duplicates included (JSON.parse keeps only the last of two).
 * Throws on anything that is not JSON.
 */
export function duplicateKeys(text: string): string[] {
  JSON.parse(text);
  const duplicates: string[] = [];
  const stack: Array<Set<string> | undefined> = [];
  let expectKey = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (char === '"') {
      let end = index + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const keys = stack.at(-1);
      if (expectKey && keys !== undefined) {
        const key = JSON.parse(text.slice(index, end + 1)) as string;
        if (keys.has(key)) duplicates.push(key);
        keys.add(key);
      }
      expectKey = false;
      index = end;
    } else if (char === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (char === '[') {
      stack.push(undefined);
    } else if (char === '}' || char === ']') {
      stack.pop();
    } else if (char === ',') {
      expectKey = stack.at(-1) !== undefined;
    }
  }
  return duplicates;
}

/** The process's JSON log lines (its stdout, but for the lines it prints for people). */
function logLines(): Array<{ text: string; line: Record<string, unknown> }> {
  return (stockline?.output ?? []).filter((text) => text.startsWith('{')).map((text) => ({ text, line: JSON.parse(text) as Record<string, unknown> }));
}

async function waitForLine(what: string, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return pollUntil(what, async () => logLines().map(({ line }) => line).find(match), waitMs);
}

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'stockline-server-logs-'));
  receiver = await startWebhookReceiver({ tenant, channel: 'portal', secret: webhookSecretOf('portal') });
  receiver.setDown(500);
  const dataDir = join(directory, 'data');
  const { document, env } = channelConfigOf({
    tenant, dataDir,
    shopify: { id: 'shop', url: `http://127.0.0.1:${await closedPort()}`, locationId: 'gid://shopify/Location/1', items: {}, ...fast },
    webhooks: [{ id: 'portal', url: receiver.url, ...fast }],
  });
  document.sources = [{
    type: 'postgres', name: 'warehouse', connectionString: `postgres://stockline_cdc:${sourcePassword}@127.0.0.1:${await closedPort()}/erp`,
    table: 'stock_levels', columns: { tenant: 'merchant', sku: 'sku', location: 'warehouse', onHand: 'quantity' },
    slot: 'ops_fix_logs', publication: 'ops_fix_logs',
  }];
  const configFile = join(directory, 'stockline.yaml');
  writeFileSync(configFile, stringify(document));
  stockline = await startStockline(['--config', configFile, '--data-dir', dataDir], env);
  const answer = await callApi(stockline.url, 'POST', `/v1/tenants/${tenant}/adjustments`, { adjustments: skus.map((sku) => ({ sku, set: 5 })) });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
}, 60_000);

afterAll(async () => {
  await stockline?.stop('SIGTERM');
  await receiver?.stop();
  rmSync(directory, { recursive: true, force: true });
});

describe('the log of a running server', () => {
  it('names a channel\'s refusals and its answer, a line a minute at most, not a line a push', async () => {
    const retried = await waitForLine('a retried push to portal logged', (line) => line.channel === 'portal' && line.msg === 'channel push will be retried');
    expect(retried).toMatchObject({ level: 40, tenant, reason: 'receiver answered 500: receiver is down' });
    receiver.setDown(400);
    const failed = await waitForLine('a failed push to portal logged', (line) => line.channel === 'portal' && line.msg === 'channel push failed; it will be tried again later');
    expect(failed).toMatchObject({ tenant, reason: 'receiver answered 400: receiver is down' });
    const shop = await waitForLine('a retried push to shop logged', (line) => line.channel === 'shop' && line.msg === 'channel push will be retried');
    expect(String(shop.reason)).toMatch(/^Shopify: network error/);
    // 20 SKUs on each channel, retried with backoff from 100 ms: one line of each kind per channel, however many pushes.
    await pollUntil('shop retried each SKU three times', async () => {
      const metrics = await (await fetch(`${stockline?.url}/metrics`)).text();
      const retries = Number(/stockline_channel_pushes_total\{channel="shop",outcome="retry"\} (\d+)/.exec(metrics)?.[1]);
      return retries >= 3 * skus.length ? true : undefined;
    }, waitMs);
    const pushLines = logLines().filter(({ line }) => typeof line.channel === 'string' && String(line.msg).startsWith('channel push'));
    expect(pushLines.map(({ line }) => `${String(line.channel)}: ${String(line.msg)}`).sort()).toEqual([
      'portal: channel push failed; it will be tried again later',
      'portal: channel push will be retried',
      'shop: channel push will be retried',
    ]);
  });

  it('logs a dead letter with its source and reason', async () => {
    const answer = await sendShopifyWebhook(`${stockline?.url}/v1/webhooks/shopify/shop`, 'orders/create', { id: 7, line_items: 'none' }, shopifyAppSecret, 'evt-dead-1', { shopDomain: 'stockline-e2e.myshopify.com' });
    expect(answer.status, answer.body).toBe(422);
    const letter = await waitForLine('the dead letter logged', (line) => line.msg === 'input set aside as a dead letter');
    expect(letter).toMatchObject({ level: 40, source: 'shopify:shop' });
    expect(String(letter.reason)).not.toBe('');
  });

  it('logs a source that cannot connect with its name once, and never its password', async () => {
    const cdc = await waitForLine('the source\'s connection failure logged', (line) => line.source === 'pg:ops_fix_logs');
    expect(cdc.level).toBeGreaterThanOrEqual(40);
    for (const { text } of logLines()) expect(duplicateKeys(text), text).toEqual([]);
    for (const text of stockline?.output ?? []) {
      for (const secret of [sourcePassword, shopifyAccessToken, shopifyAppSecret, webhookSecretOf('portal'), processAdminKey]) expect(text).not.toContain(secret);
    }
  });
});

describe('duplicateKeys', () => {
  it('finds a key given twice in one object, and only there', () => {
    expect(duplicateKeys('{"source":"pg:a","source":"pg:a","n":{"source":1},"list":[{"a":1},{"a":2}]}')).toEqual(['source']);
    expect(duplicateKeys('{"a":"x\\",\\"a","b":[1,"a"],"c":{"a":{"a":2}}}')).toEqual([]);
  });
});
