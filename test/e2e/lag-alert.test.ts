// The reconciliation-lag alert end to end: a real Prometheus with deploy/prometheus/alerts.yaml (`for:` shortened)
// scrapes a real `stockline serve`; an unreachable Shopify leaves a push pending, the lag grows past 5 s and
// StocklineReconciliationLagHigh fires; once Shopify answers again the lag drops and the alert resolves.

import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startChannelStack } from '../support/channel-config.js';
import type { ChannelStack } from '../support/channel-config.js';
import { pollUntil, shortenForDurations, startPrometheus } from '../support/prometheus.js';
import type { RunningPrometheus } from '../support/prometheus.js';

const rulesFile = fileURLToPath(new URL('../../deploy/prometheus/alerts.yaml', import.meta.url));
const lagAlert = 'StocklineReconciliationLagHigh';
const alertForDuration = '2s';
const lagSelector = 'stockline_reconciliation_lag_seconds{job="stockline",tenant="lag",channel="shop"}';
/** The lag must pass 5 s, then hold for `for:`; a few scrape and evaluation rounds on top. */
const firingTimeoutMs = 25_000;
/** Pushes back off with full jitter while Shopify is down; after ~10 s of failures the next try is at most ~13 s away. */
const recoveryTimeoutMs = 45_000;

let stack: ChannelStack | undefined;
let prometheus: RunningPrometheus | undefined;

afterAll(async () => {
  await prometheus?.stop();
  await stack?.close();
});

async function lagInPrometheus(server: RunningPrometheus): Promise<number | undefined> {
  return (await server.query(lagSelector))[0]?.value;
}

describe('the reconciliation lag alert against a real Stockline', () => {
  it('fires while Shopify is unreachable with a push pending, and resolves once it is reachable again', async () => {
    stack = await startChannelStack({ tenant: 'lag', skus: ['LAG-1'] });
    const target = stack;
    const stocked = await target.api('POST', '/v1/tenants/lag/adjustments', { sku: 'LAG-1', set: 10 });
    expect(stocked.status).toBe(200);
    expect(await target.converge(['LAG-1'])).toEqual([]);

    prometheus = await startPrometheus({ targets: [new URL(target.url()).host], rulesFile, rulesTransform: shortenForDurations(alertForDuration) });
    const server = prometheus;
    await pollUntil('Prometheus to scrape a lag of 0', async () => ((await lagInPrometheus(server)) === 0 ? true : undefined), 20_000);
    expect((await server.alerts()).filter((alert) => alert.name === lagAlert)).toEqual([]);

    target.fake.setReachable(false);
    const sold = await target.api('POST', '/v1/tenants/lag/adjustments', { sku: 'LAG-1', delta: -1 });
    expect(sold.status).toBe(200);

    await pollUntil('the lag to pass 5 s in Prometheus', async () => (((await lagInPrometheus(server)) ?? 0) > 5 ? true : undefined), firingTimeoutMs);
    const firing = await pollUntil('the lag alert to fire', async () => (await server.alerts()).find((alert) => alert.name === lagAlert && alert.state === 'firing'), firingTimeoutMs);
    expect(firing.labels).toMatchObject({ tenant: 'lag', channel: 'shop', severity: 'page' });
    // It went through pending first: `for:` was honoured.
    const pending = await server.query(`count_over_time(ALERTS{alertname="${lagAlert}",alertstate="pending",tenant="lag"}[5m])`);
    expect(pending[0]?.value ?? 0).toBeGreaterThan(0);
    expect(target.shown('shop', 'LAG-1'), 'nothing reached Shopify while it was unreachable').toBe(10);

    target.fake.setReachable(true);
    await pollUntil('the lag to drop back to 0 in Prometheus', async () => ((await lagInPrometheus(server)) === 0 ? true : undefined), recoveryTimeoutMs);
    await pollUntil('the lag alert to resolve', async () => ((await server.alerts()).some((alert) => alert.name === lagAlert) ? undefined : true), 15_000);
    expect(target.shown('shop', 'LAG-1')).toBe(9);
    expect(await target.drift(['LAG-1'])).toEqual([]);
  }, 120_000);
});
