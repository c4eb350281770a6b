// The shipped Prometheus alert rules: promtool accepts them, their unit tests pass, every alert
// carries what on-call needs, and every metric they read is one Stockline exports.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Metrics } from '../../src/app/metrics.js';
import type { PrometheusRuleFile } from '../support/prometheus.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rulesPath = 'deploy/prometheus/alerts.yaml';
const rulesTestPath = 'deploy/prometheus/alerts.test.yaml';
const configPath = 'deploy/prometheus/prometheus.yml';
const operationsPath = 'docs/operations.md';
const promtoolTimeoutMs = 20_000;

/** What Stockline exports, with each metric's labels. A renamed metric must be renamed here too. */
const exportedMetrics: Record<string, { kind: 'gauge' | 'counter' | 'histogram'; labels: string[] }> = {
  stockline_reconciliation_lag_seconds: { kind: 'gauge', labels: ['tenant', 'channel'] },
  stockline_propagation_latency_seconds: { kind: 'histogram', labels: ['channel'] },
  stockline_reservation_latency_seconds: { kind: 'histogram', labels: ['outcome'] },
  stockline_commands_total: { kind: 'counter', labels: ['type', 'outcome'] },
  stockline_events_total: { kind: 'counter', labels: ['type'] },
  stockline_conflicts_total: { kind: 'counter', labels: ['kind'] },
  stockline_oversell_incidents_total: { kind: 'counter', labels: ['channel'] },
  stockline_dead_letters_total: { kind: 'counter', labels: ['source'] },
  stockline_cdc_lag_seconds: { kind: 'gauge', labels: ['source'] },
  stockline_cdc_source_up: { kind: 'gauge', labels: ['source'] },
  stockline_channel_pushes_total: { kind: 'counter', labels: ['channel', 'outcome'] },
  stockline_outbox_depth: { kind: 'gauge', labels: ['channel'] },
  stockline_kafka_consumer_lag_records: { kind: 'gauge', labels: ['topic'] },
  stockline_kafka_commands_lost_total: { kind: 'counter', labels: ['partition'] },
  stockline_snapshot_failures_total: { kind: 'counter', labels: [] },
  stockline_commands_unwritten_total: { kind: 'counter', labels: ['code'] },
  stockline_engine_ready: { kind: 'gauge', labels: [] },
  stockline_expiry_lag_seconds: { kind: 'gauge', labels: ['tenant'] },
  stockline_idempotency_records: { kind: 'gauge', labels: ['tenant'] },
  stockline_idempotency_records_max: { kind: 'gauge', labels: [] },
  stockline_heap_old_generation_used_bytes: { kind: 'gauge', labels: [] },
  stockline_heap_old_generation_limit_bytes: { kind: 'gauge', labels: [] },
  stockline_heap_old_generation_live_bytes: { kind: 'gauge', labels: [] },
  stockline_heap_full: { kind: 'gauge', labels: [] },
  stockline_reservations: { kind: 'gauge', labels: ['tenant'] },
  stockline_process_process_start_time_seconds: { kind: 'gauge', labels: [] },
  up: { kind: 'gauge', labels: [] },
};
/** Labels Prometheus attaches to every scraped series. */
const targetLabels = ['job', 'instance'];

const expectedAlerts = [
  'StocklineReconciliationLagHigh',
  'StocklineOversellIncident',
  'StocklineDeadLettersIncreasing',
  'StocklineCdcLagHigh',
  'StocklineCdcSourceDown',
  'StocklineChannelPushFailureRate',
  'StocklineKafkaConsumerLagHigh',
  'StocklineKafkaCommandsLost',
  'StocklineWritesFailing',
  'StocklineSnapshotFailing',
  'StocklineDown',
  'StocklineEngineNotReady',
  'StocklineExpiryLagging',
  'StocklineHeapNearLimit',
  'StocklineHeapFull',
  'StocklineIdempotencyRecordsAtBound',
];

const promqlKeywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool',
  'and', 'or', 'unless', 'atan2', 'inf', 'nan']);

interface Selector {
  metric: string;
  labels: string[];
}

/**
 * The metric selectors in a PromQL expression. Function and aggregation names are followed by `(`,
 * grouping clauses list label names, and strings, durations and numbers are not identifiers.
 */
function selectorsIn(expression: string): Selector[] {
  if (expression.includes('__name__')) throw new Error(`select metrics by name, not __name__: ${expression}`);
  const withoutStrings = expression.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  const withoutGrouping = withoutStrings
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const selectors: Selector[] = [];
  const pattern = /(?<![\w:.])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?/g;
  for (const match of withoutGrouping.matchAll(pattern)) {
    const [, name = '', matchers, call] = match;
    if (call !== undefined || promqlKeywords.has(name.toLowerCase())) continue;
    const labels = [...(matchers ?? '').matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map(([, label = '']) => label);
    selectors.push({ metric: name, labels });
  }
  return selectors;
}

function exportedMetricFor(seriesName: string): string | undefined {
  if (seriesName in exportedMetrics) return seriesName;
  const histogram = /^(.*)_(bucket|sum|count)$/.exec(seriesName)?.[1];
  return histogram !== undefined && exportedMetrics[histogram]?.kind === 'histogram' ? histogram : undefined;
}

/** GitHub's anchor for a Markdown heading. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');
}

interface CommandResult {
  exitCode: number;
  output: string;
}

function promtool(args: string[]): Promise<CommandResult> {
  return new Promise((resolveRun, rejectRun) => {
    execFile('promtool', args, { cwd: root, timeout: promtoolTimeoutMs }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (error === null) return resolveRun({ exitCode: 0, output });
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return rejectRun(new Error('promtool is not on PATH, so the alert rules cannot be checked. Install it '
          + '(Debian: apt-get install -y --no-install-recommends prometheus; it ships promtool).'));
      }
      resolveRun({ exitCode: typeof error.code === 'number' ? error.code : -1, output: `${error.message}\n${output}` });
    });
  });
}

const rules = parse(readFileSync(`${root}${rulesPath}`, 'utf8')) as PrometheusRuleFile;
const allRules = rules.groups.flatMap((group) => group.rules);
const alertRules = allRules.filter((rule) => rule.alert !== undefined);

describe('the Prometheus alert rules', () => {
  it('pass promtool check rules', async () => {
    const result = await promtool(['check', 'rules', rulesPath]);
    expect(result.exitCode, result.output).toBe(0);
    expect(result.output).toContain(`SUCCESS: ${allRules.length} rules found`);
  });

  it('pass their promtool unit tests', async () => {
    const result = await promtool(['test', 'rules', rulesTestPath]);
    expect(result.exitCode, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS');
  });

  it('load from the example Prometheus configuration', async () => {
    const result = await promtool(['check', 'config', configPath]);
    expect(result.exitCode, result.output).toBe(0);
  });

  it('define every documented alert, each once', () => {
    expect(alertRules.map((rule) => rule.alert).sort()).toEqual([...expectedAlerts].sort());
  });

  it('give every alert a severity, a summary, a description and a runbook that exists', () => {
    const operations = readFileSync(`${root}${operationsPath}`, 'utf8');
    const anchors = new Set([...operations.matchAll(/^#{1,6} (.+)$/gm)].map(([, heading = '']) => anchorOf(heading)));
    for (const rule of alertRules) {
      const where = `alert ${rule.alert}`;
      expect(['page', 'ticket'], where).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, where).toMatch(/\S/);
      expect(rule.annotations?.description, where).toMatch(/\S/);
      const runbook = rule.annotations?.runbook ?? '';
      expect(runbook, where).toMatch(new RegExp(`^${operationsPath}#[a-z0-9-]+$`));
      expect(anchors, `${where}: ${runbook} has no heading in ${operationsPath}`).toContain(runbook.split('#')[1]);
    }
  });

  it('read only metrics and labels that Stockline exports', () => {
    for (const rule of allRules) {
      const selectors = selectorsIn(rule.expr);
      expect(selectors.length, `no metric found in ${rule.expr}`).toBeGreaterThan(0);
      for (const { metric, labels } of selectors) {
        const exported = exportedMetricFor(metric);
        expect(exported, `${rule.alert ?? rule.record} reads ${metric}, which Stockline does not export`).toBeDefined();
        const known = [...(exportedMetrics[exported ?? '']?.labels ?? []), ...targetLabels, 'le'];
        for (const label of labels) expect(known, `${metric} has no label ${label}`).toContain(label);
      }
    }
  });

  it('read the process start time from what a server exports, so a count after a restart is seen as new', async () => {
    const exposition = await new Metrics().registry.metrics();
    expect(exposition).toMatch(/^stockline_process_process_start_time_seconds \d+$/m);
    for (const alert of ['StocklineOversellIncident', 'StocklineDeadLettersIncreasing']) {
      expect(alertRules.find((rule) => rule.alert === alert)?.expr, alert).toContain('stockline_process_process_start_time_seconds');
    }
  });

  it('find the metrics in an expression, and only the metrics', () => {
    const expression = 'sum by (channel) (rate(stockline_channel_pushes_total{outcome="failed", channel=~"a|b"}[5m]))'
      + ' / on (channel) group_left max(up offset 5m) > bool 0.05 and histogram_quantile(0.99, '
      + 'rate(stockline_propagation_latency_seconds_bucket[1m])) > Inf';
    expect(selectorsIn(expression)).toEqual([
      { metric: 'stockline_channel_pushes_total', labels: ['outcome', 'channel'] },
      { metric: 'up', labels: [] },
      { metric: 'stockline_propagation_latency_seconds_bucket', labels: [] },
    ]);
    expect(exportedMetricFor('stockline_propagation_latency_seconds_bucket'))
      .toBe('stockline_propagation_latency_seconds');
    expect(exportedMetricFor('stockline_reconciliation_lag')).toBeUndefined();
    expect(exportedMetricFor('stockline_outbox_depth_count')).toBeUndefined();
  });
});
