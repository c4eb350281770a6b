// A real Prometheus scrapes a tiny metrics endpoint and runs the shipped alert rules (with `for:`
// shortened): the reconciliation lag alert goes pending, then firing, then resolves.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, shortenForDurations, startPrometheus } from '../support/prometheus.js';
import type { PrometheusAlert, RunningPrometheus } from '../support/prometheus.js';

const rulesFile = fileURLToPath(new URL('../../deploy/prometheus/alerts.yaml', import.meta.url));
const lagAlert = 'StocklineReconciliationLagHigh';
const alertForDuration = '3s';
const waitTimeoutMs = 20_000;

let lagSeconds = 4;
const metricsServer = createServer((request, response) => {
  if (request.url !== '/metrics') {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
  response.end([
    '# HELP stockline_reconciliation_lag_seconds Age of the oldest change not yet on every channel.',
    '# TYPE stockline_reconciliation_lag_seconds gauge',
    `stockline_reconciliation_lag_seconds{tenant="t",channel="c"} ${lagSeconds}`,
    '',
  ].join('\n'));
});

let prometheus: RunningPrometheus | undefined;
let startError: unknown;

/** The server, or the reason it did not start, so that every test fails with it instead of skipping. */
function running(): RunningPrometheus {
  if (prometheus === undefined) throw startError ?? new Error('prometheus did not start');
  return prometheus;
}

async function lagAlertNow(server: RunningPrometheus): Promise<PrometheusAlert | undefined> {
  return (await server.alerts()).find((alert) => alert.name === lagAlert);
}

beforeAll(async () => {
  await new Promise<void>((resolveListen) => metricsServer.listen(0, '127.0.0.1', resolveListen));
  const { port } = metricsServer.address() as AddressInfo;
  try {
    prometheus = await startPrometheus({
      targets: [`127.0.0.1:${port}`],
      rulesFile,
      rulesTransform: shortenForDurations(alertForDuration),
    });
  } catch (error) {
    startError = error;
  }
});

afterAll(async () => {
  await prometheus?.stop();
  await new Promise<void>((resolveClose) => metricsServer.close(() => resolveClose()));
});

describe('a real Prometheus running the Stockline alert rules', () => {
  it('scrapes the target and stays quiet while the lag is below 5 s', async () => {
    const server = running();
    await pollUntil('the target to be scraped with lag 4', async () => {
      const samples = await server.query('stockline_reconciliation_lag_seconds{job="stockline",channel="c"}');
      return samples[0]?.value === 4 ? true : undefined;
    }, waitTimeoutMs);
    const scrapedAt = new Date();
    await pollUntil('the rules to be evaluated after the scrape', async () => {
      const groups = await server.ruleGroups();
      return groups.find((group) => group.name === 'stockline.sync' && group.lastEvaluation > scrapedAt);
    }, waitTimeoutMs);
    expect(await server.alerts()).toEqual([]);
  });

  it('fires the lag alert when the lag stays above 5 s, and resolves it when the lag drops', async () => {
    const server = running();
    lagSeconds = 10;
    const statesSeen = new Set<string>();
    const firing = await pollUntil(`${lagAlert} to fire`, async () => {
      const alert = await lagAlertNow(server);
      if (alert !== undefined) statesSeen.add(alert.state);
      return alert?.state === 'firing' ? alert : undefined;
    }, waitTimeoutMs);
    expect(statesSeen).toContain('pending');
    expect(firing.labels).toMatchObject({ tenant: 't', channel: 'c', severity: 'page' });
    expect(firing.annotations.runbook).toBe('docs/operations.md#stocklinereconciliationlaghigh');

    lagSeconds = 0;
    await pollUntil(`${lagAlert} to resolve`, async () => {
      const alert = await lagAlertNow(server);
      return alert === undefined ? true : undefined;
    }, waitTimeoutMs);
  }, 2 * waitTimeoutMs + 5_000);
});
