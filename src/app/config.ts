// The configuration file (YAML), checked against schema/config.schema.json with errors that name the key.

import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv } from './ajv.js';
import { packagePath } from './paths.js';

export interface StocklineConfig {
  engine: 'embedded' | 'kafka';
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * `bodyLimitBytes`: the largest request body taken, but on the routes with bounds of their own (event imports, channel
   * webhooks). `metricsKeyEnv`: the environment variable holding the key `/metrics` then requires.
   */
  server: { host: string; port: number; bodyLimitBytes: number; metricsKeyEnv?: string };
  ledger: {
    /** How often holds past their expiry are released (and old idempotency records forgotten): at least `expiryIntervalMsMin`. */
    expiryIntervalMs: number; snapshotEveryEvents: number; batchCommandsMax: number;
    /** `fsync`: answers wait for the disk. `none`: for throwaway environments and for measuring what the disk costs. */
    durability: 'fsync' | 'none';
  };
  sync: { reconcileIntervalMs: number };
  kafka?: Record<string, unknown>;
  sources: Array<Record<string, unknown>>;
  channels: Array<Record<string, unknown>>;
  /** The file the configuration came from, if any. */
  file?: string;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

/**
 * The shortest expiry interval taken. The same ticks release expired holds and forget idempotency records past
 * their day, so 0 (which would stop both, silently) is refused; `stockline demo` ticks every 100 ms.
 */
export const expiryIntervalMsMin = 100;

export const defaultConfig: StocklineConfig = {
  engine: 'embedded',
  dataDir: './data',
  logLevel: 'info',
  server: { host: '0.0.0.0', port: 8080, bodyLimitBytes: 1_048_576 },
  ledger: { expiryIntervalMs: 1000, snapshotEveryEvents: 200_000, batchCommandsMax: 4096, durability: 'fsync' },
  sync: { reconcileIntervalMs: 300_000 },
  sources: [],
  channels: [],
};

const validators = new Map<string, ValidateFunction>();

function schemaValidator(file: string): ValidateFunction | undefined {
  const path = packagePath('schema', file);
  if (!existsSync(path)) return undefined;
  let validate = validators.get(file);
  if (validate === undefined) {
    validate = createAjv({ allErrors: false }).compile(JSON.parse(readFileSync(path, 'utf8')) as object);
    validators.set(file, validate);
  }
  return validate;
}

/** `/channels/0/shopify` -> `channels[0].shopify`: the way a YAML user names a key. */
function keyPath(prefix: string, pointer: string): string {
  const parts = pointer.split('/').filter((part) => part !== '').map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
  let path = prefix;
  for (const part of parts) path += /^\d+$/.test(part) ? `[${part}]` : path === '' ? part : `.${part}`;
  return path;
}

function describe(prefix: string, error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'additionalProperties') return `${keyPath(prefix, `${error.instancePath}/${String(params.additionalProperty)}`)}: is not a known setting`;
  if (error.keyword === 'required') return `${keyPath(prefix, `${error.instancePath}/${String(params.missingProperty)}`)}: is required`;
  const where = keyPath(prefix, error.instancePath) || '(top level)';
  if (error.keyword === 'enum') return `${where}: must be one of ${(params.allowedValues as unknown[]).join(', ')}`;
  return `${where}: ${error.message ?? error.keyword}`;
}

function check(file: string, value: unknown, prefix: string): void {
  const validate = schemaValidator(file);
  if (validate === undefined || validate(value)) return;
  const error = (validate.errors ?? []).find((candidate) => candidate.keyword !== 'if') as ErrorObject;
  throw new ConfigError(describe(prefix, error));
}

/**
 * Settings that were accepted once and never did anything: refused with what to do instead, not taken in
 * silence. The reconciliation lag's threshold is the alert rule's (deploy/prometheus/alerts.yaml).
 */
function refuseRetired(document: unknown): void {
  if (typeof document !== 'object' || document === null || !('alerts' in document)) return;
  const alerts = (document as { alerts?: unknown }).alerts;
  const key = typeof alerts === 'object' && alerts !== null && 'reconciliationLagSeconds' in alerts ? 'alerts.reconciliationLagSeconds' : 'alerts';
  throw new ConfigError(`${key}: is not a setting (it never changed anything): the reconciliation lag alert's threshold is in deploy/prometheus/alerts.yaml (StocklineReconciliationLagHigh); remove it from this file`);
}

/** Said before the schema's bounds, so the line says why: a tick interval of 0 reads as "off", and would be. */
function refuseExpiryOff(document: unknown): void {
  const intervalMs = (document as { ledger?: { expiryIntervalMs?: unknown } } | null)?.ledger?.expiryIntervalMs;
  if (typeof intervalMs !== 'number' || intervalMs >= expiryIntervalMsMin) return;
  throw new ConfigError(`ledger.expiryIntervalMs: must be at least ${expiryIntervalMsMin} (ms), got ${intervalMs}; the expiry ticks release expired holds and forget old idempotency records, so they cannot be turned off`);
}

/** Validates a parsed document and fills in defaults. */
export function resolveConfig(document: unknown, file?: string): StocklineConfig {
  const value = document ?? {};
  refuseRetired(value);
  refuseExpiryOff(value);
  check('config.schema.json', value, '');
  const raw = value as Partial<StocklineConfig>;
  (raw.sources ?? []).forEach((source, index) => check('source-config.schema.json', source, `sources[${index}]`));
  (raw.channels ?? []).forEach((channel, index) => check('channel-config.schema.json', channel, `channels[${index}]`));
  if (raw.kafka !== undefined) check('kafka-config.schema.json', raw.kafka, 'kafka');
  if (raw.engine === 'kafka' && raw.kafka === undefined) throw new ConfigError('kafka: is required when engine is kafka');
  // A channel's id names it everywhere: its pushes, its webhook URL, its metrics. Two with one id, even of two
  // tenants, would leave one of them never pushed.
  const firstWithId = new Map<string, number>();
  (raw.channels ?? []).forEach((channel, index) => {
    const { id } = channel as { id: string };
    const first = firstWithId.get(id);
    if (first !== undefined) throw new ConfigError(`channels[${index}].id: ${id} is the id of channels[${first}] too; every channel needs an id of its own`);
    firstWithId.set(id, index);
  });
  // A source is known to the ledger by its slot (PostgreSQL) or name (Debezium): its offsets and the sequences
  // its changes carry are kept under it. Two sources under one would refuse each other's changes as stale.
  const firstOfSource = new Map<string, number>();
  (raw.sources ?? []).forEach((source, index) => {
    const { type, slot, name } = source as { type: string; slot?: string; name: string };
    const identity = type === 'postgres' ? `slot ${String(slot)}` : `name ${name}`;
    const first = firstOfSource.get(identity);
    if (first !== undefined) throw new ConfigError(`sources[${index}]: its ${identity} is that of sources[${first}] too; every ${type} source needs a ${type === 'postgres' ? 'slot' : 'name'} of its own`);
    firstOfSource.set(identity, index);
  });
  const config: StocklineConfig = {
    ...defaultConfig,
    ...raw,
    server: { ...defaultConfig.server, ...raw.server },
    ledger: { ...defaultConfig.ledger, ...raw.ledger },
    sync: { ...defaultConfig.sync, ...raw.sync },
    sources: raw.sources ?? [],
    channels: raw.channels ?? [],
  };
  if (file !== undefined) config.file = file;
  return config;
}

export function loadConfig(file: string | undefined): StocklineConfig {
  if (file === undefined) return resolveConfig({});
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message}`);
  }
  try {
    return resolveConfig(document, file);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${file}: ${error.message}`);
    throw error;
  }
}
