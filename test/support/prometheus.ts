// Starts a real Prometheus server for integration tests: a temporary config and rules copy, a free
// loopback port, and bounded waits for readiness, alerts and shutdown.
//
// The shipped rules hold alerts for a minute or more (`for: 1m`). To watch an alert go
// pending -> firing -> resolved within seconds, pass a transform that rewrites the temporary copy
// (the file under deploy/ is never touched):
//
//   const prometheus = await startPrometheus({
//     targets: [`127.0.0.1:${port}`],
//     rulesFile: 'deploy/prometheus/alerts.yaml',
//     rulesTransform: shortenForDurations('3s'),
//   });
//   await pollUntil('lag alert firing', async () =>
//     (await prometheus.alerts()).find((alert) => alert.state === 'firing'));
//   await prometheus.stop();
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';

export const prometheusLimits = {
  readyTimeoutMs: 30_000,
  stopTimeoutMs: 10_000,
  requestTimeoutMs: 5_000,
  pollIntervalMs: 100,
  logTailCharsMax: 8_000,
  portAttemptsMax: 3,
} as const;

/** The job name the shipped rules expect (`up{job="stockline"}`). */
export const stocklineJobName = 'stockline';

export interface PrometheusRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface PrometheusRuleGroup {
  name: string;
  interval?: string;
  rules: PrometheusRule[];
}

export interface PrometheusRuleFile {
  groups: PrometheusRuleGroup[];
}

/** Rewrites the parsed rules before they are written to the server's temporary copy. */
export type RulesTransform = (rules: PrometheusRuleFile) => PrometheusRuleFile;

export interface StartPrometheusOptions {
  /** Scrape targets as host:port; they are scraped on /metrics under the job `stockline`. */
  targets: string[];
  rulesFile: string;
  scrapeIntervalSeconds?: number;
  evaluationIntervalSeconds?: number;
  rulesTransform?: RulesTransform;
  /** A file holding the key the scrape sends as `Authorization: Bearer` (a /metrics under server.metricsKeyEnv). */
  credentialsFile?: string;
}

export interface PrometheusAlert {
  name: string;
  state: 'pending' | 'firing';
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface PrometheusSample {
  labels: Record<string, string>;
  value: number;
}

export interface PrometheusRuleGroupStatus {
  name: string;
  lastEvaluation: Date;
}

export interface RunningPrometheus {
  url: string;
  /** Pending and firing alerts; a resolved alert is no longer listed. */
  alerts(): Promise<PrometheusAlert[]>;
  /** An instant query at the server's current time. */
  query(expression: string): Promise<PrometheusSample[]>;
  ruleGroups(): Promise<PrometheusRuleGroupStatus[]>;
  stop(): Promise<void>;
}

/** Replaces every non-empty `for:` with `forDuration`, so alerts fire within seconds. */
export function shortenForDurations(forDuration: string): RulesTransform {
  return (rules) => ({
    groups: rules.groups.map((group) => ({
      ...group,
      rules: group.rules.map((rule) => (rule.for === undefined ? rule : { ...rule, for: forDuration })),
    })),
  });
}

/**
 * Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`.
 * Errors thrown by `probe` count as "not yet"; the last one is reported on timeout.
 */
export async function pollUntil<T>(
  description: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number = prometheusLimits.readyTimeoutMs,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline && signal?.aborted !== true) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(prometheusLimits.pollIntervalMs);
  }
  const cause = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
  const ending = signal?.aborted === true ? 'gave up' : `timed out after ${timeoutMs} ms`;
  throw new Error(`${ending} waiting for ${description}${cause}`);
}

export async function startPrometheus(options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const directory = await mkdtemp(join(tmpdir(), 'stockline-prometheus-'));
  try {
    const configFile = await writeConfig(directory, options);
    for (let attempt = 1; ; attempt += 1) {
      const port = await freeLoopbackPort();
      const server = await launch(configFile, join(directory, 'data'), port, directory);
      if (server !== 'port-taken') return server;
      if (attempt >= prometheusLimits.portAttemptsMax) {
        throw new Error(`prometheus could not bind a loopback port in ${attempt} attempts`);
      }
    }
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

async function writeConfig(directory: string, options: StartPrometheusOptions): Promise<string> {
  const rules = parse(await readFile(resolve(options.rulesFile), 'utf8')) as PrometheusRuleFile;
  const rulesFile = join(directory, 'rules.yaml');
  await writeFile(rulesFile, stringify(options.rulesTransform ? options.rulesTransform(rules) : rules));
  const scrapeInterval = `${options.scrapeIntervalSeconds ?? 1}s`;
  const config = {
    global: {
      scrape_interval: scrapeInterval,
      scrape_timeout: scrapeInterval,
      evaluation_interval: `${options.evaluationIntervalSeconds ?? 1}s`,
    },
    rule_files: [rulesFile],
    scrape_configs: [{
      job_name: stocklineJobName, static_configs: [{ targets: options.targets }],
      ...(options.credentialsFile === undefined ? {} : { authorization: { credentials_file: options.credentialsFile } }),
    }],
  };
  const configFile = join(directory, 'prometheus.yml');
  await writeFile(configFile, stringify(config));
  return configFile;
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(0, '127.0.0.1', resolveListen);
  });
  const address = server.address();
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  if (address === null || typeof address === 'string') throw new Error('no TCP address for a free port');
  return address.port;
}

const runningChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of runningChildren) child.kill('SIGKILL');
});

async function launch(
  configFile: string,
  storageDirectory: string,
  port: number,
  directory: string,
): Promise<RunningPrometheus | 'port-taken'> {
  const child = spawn('prometheus', [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${storageDirectory}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  runningChildren.add(child);
  let logTail = '';
  const appendLog = (chunk: Buffer): void => {
    logTail = (logTail + chunk.toString('utf8')).slice(-prometheusLimits.logTailCharsMax);
  };
  child.stdout?.on('data', appendLog);
  child.stderr?.on('data', appendLog);
  const exited = new Promise<string>((resolveExit) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolveExit(error.code === 'ENOENT'
      ? 'prometheus is not on PATH. Install it (Debian: apt-get install -y --no-install-recommends prometheus)'
      : `prometheus could not start: ${error.message}`));
    child.once('exit', (code, signal) => resolveExit(`prometheus exited (code ${code}, signal ${signal})`));
  });
  const url = `http://127.0.0.1:${port}`;
  const gaveUp = new AbortController();
  void exited.then(() => gaveUp.abort());
  let outcome: string;
  try {
    outcome = await Promise.race([exited, waitReady(url, gaveUp.signal)]);
  } catch (error) {
    outcome = String(error);
  }
  if (outcome === 'ready') return handle(url, child, exited, directory);
  child.kill('SIGKILL');
  runningChildren.delete(child);
  if (logTail.includes('address already in use')) return 'port-taken';
  throw new Error(logTail === '' ? outcome : `${outcome}\nprometheus log (tail):\n${logTail}`);
}

async function waitReady(url: string, signal: AbortSignal): Promise<'ready'> {
  await pollUntil(`prometheus at ${url} to be ready`, async () => {
    const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(prometheusLimits.requestTimeoutMs) });
    return response.ok ? true : undefined;
  }, prometheusLimits.readyTimeoutMs, signal);
  return 'ready';
}

function handle(url: string, child: ChildProcess, exited: Promise<string>, directory: string): RunningPrometheus {
  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    const timedOut = sleep(prometheusLimits.stopTimeoutMs, false, { ref: false });
    const stopped = await Promise.race([exited.then(() => true), timedOut]);
    if (!stopped) {
      child.kill('SIGKILL');
      await exited;
    }
    runningChildren.delete(child);
    await rm(directory, { recursive: true, force: true });
  };
  return {
    url,
    alerts: async () => (await apiGet<{ alerts: ApiAlert[] }>(url, '/api/v1/alerts')).alerts.map(toAlert),
    query: async (expression) => {
      const data = await apiGet<{ result: ApiSample[] }>(url, `/api/v1/query?query=${encodeURIComponent(expression)}`);
      return data.result.map((sample) => ({ labels: sample.metric, value: Number(sample.value[1]) }));
    },
    ruleGroups: async () => {
      const data = await apiGet<{ groups: ApiRuleGroup[] }>(url, '/api/v1/rules');
      return data.groups.map((group) => ({ name: group.name, lastEvaluation: new Date(group.lastEvaluation) }));
    },
    stop: () => (stopping ??= stop()),
  };
}

interface ApiAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
}

interface ApiSample {
  metric: Record<string, string>;
  value: [number, string];
}

interface ApiRuleGroup {
  name: string;
  lastEvaluation: string;
}

function toAlert(alert: ApiAlert): PrometheusAlert {
  const { labels, annotations, state } = alert;
  return { name: labels.alertname ?? '', state, labels, annotations };
}

async function apiGet<T>(url: string, path: string): Promise<T> {
  const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(prometheusLimits.requestTimeoutMs) });
  const body = (await response.json()) as { status: string; data: T; error?: string };
  if (!response.ok || body.status !== 'success') {
    throw new Error(`prometheus ${path} answered ${response.status}: ${body.error ?? 'no error message'}`);
  }
  return body.data;
}
