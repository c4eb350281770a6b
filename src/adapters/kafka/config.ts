// Loads and checks the `kafka:` section of Stockline's YAML configuration against its JSON Schema.

import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { Ajv2020 as Ajv2020Class } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { packagePath } from '../../app/paths.js';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020.js') as typeof Ajv2020Class;

export const kafkaConfigLimits = {
  fileBytesMax: 1024 * 1024,
  minInsyncReplicasDefault: 2,
} as const;

export type Compression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

export interface KafkaConfig {
  brokers: string[];
  clientId: string;
  topics: { prefix: string; partitions: number; replicationFactor: number; retentionMs: number; minInsyncReplicas: number };
  producer: { acks: 'all'; idempotent: true; compression: Compression; requestTimeoutMs: number; deliveryTimeoutMs: number; retries: number };
  consumer: { groupId: string; isolationLevel: 'read_committed'; sessionTimeoutMs: number; maxWaitMs: number };
  processing: { commitIntervalMs: number; maxBatch: number; transactionalIdPrefix: string };
  stateStore: { dir: string };
  principals: { processor: string; api: string; connector: string };
  timeouts: { connectTimeoutMs: number; adminTimeoutMs: number; shutdownTimeoutMs: number; startTimeoutMs: number };
}

/** The engine's topics, by role. */
export interface KafkaTopicNames {
  commands: string;
  events: string;
  changelog: string;
  deadLetter: string;
  channelState: string;
}

export function kafkaTopicNames(config: Pick<KafkaConfig, 'topics'>): KafkaTopicNames {
  const prefix = config.topics.prefix;
  return {
    commands: `${prefix}.commands`,
    events: `${prefix}.events`,
    changelog: `${prefix}.changelog`,
    deadLetter: `${prefix}.dead-letter`,
    channelState: `${prefix}.channel-state`,
  };
}

export interface ConfigIssue {
  /** Dotted path of the offending key, from the top of the file: `kafka.topics.partitions`, `kafka.brokers[1]`. */
  path: string;
  message: string;
}

/** A configuration that cannot be used; the message has one `path: problem` line per issue. */
export class KafkaConfigError extends Error {
  readonly code = 'KAFKA_CONFIG_INVALID';
  readonly retryable = false;
  constructor(readonly issues: ConfigIssue[], readonly file?: string) {
    super((file === undefined ? '' : `${file}: `) + issues.map((issue) => `${issue.path}: ${issue.message}`).join('\n'));
    this.name = 'KafkaConfigError';
  }
}

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    // verbose: errors carry their schema, whose `title` turns a pattern failure into words.
    const ajv = new Ajv2020({ allErrors: true, strict: true, useDefaults: true, verbose: true });
    compiled = ajv.compile(JSON.parse(readFileSync(packagePath('schema', 'kafka-config.schema.json'), 'utf8')) as object);
  }
  return compiled;
}

/** `/topics/partitions` -> `kafka.topics.partitions`; `/brokers/1` -> `kafka.brokers[1]`. */
function keyPath(pointer: string, child?: string): string {
  const parts = pointer.split('/').slice(1).map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  return parts.reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : `${path}.${part}`), 'kafka');
}

function describe(error: ErrorObject): ConfigIssue {
  const params = error.params as Record<string, unknown>;
  const parentSchema = error.parentSchema as { title?: string } | undefined;
  switch (error.keyword) {
    case 'additionalProperties':
      return { path: keyPath(error.instancePath, String(params.additionalProperty)), message: 'is not a known key' };
    case 'required':
      return { path: keyPath(error.instancePath, String(params.missingProperty)), message: 'is required' };
    case 'enum':
      return { path: keyPath(error.instancePath), message: `must be one of ${(params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')}` };
    case 'const':
      return { path: keyPath(error.instancePath), message: `must be ${JSON.stringify(params.allowedValue)}` };
    case 'pattern':
      return { path: keyPath(error.instancePath), message: parentSchema?.title === undefined ? `must match ${String(params.pattern)}` : `must be ${parentSchema.title}` };
    default:
      return { path: keyPath(error.instancePath), message: error.message ?? error.keyword };
  }
}

/** Checks that span several keys, which the schema cannot express. */
function crossFieldIssues(config: KafkaConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (config.topics.minInsyncReplicas > config.topics.replicationFactor) {
    issues.push({ path: 'kafka.topics.minInsyncReplicas', message: `must be <= kafka.topics.replicationFactor (${config.topics.replicationFactor})` });
  }
  if (config.producer.deliveryTimeoutMs < config.producer.requestTimeoutMs) {
    issues.push({ path: 'kafka.producer.deliveryTimeoutMs', message: `must be >= kafka.producer.requestTimeoutMs (${config.producer.requestTimeoutMs})` });
  }
  return issues;
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > kafkaConfigLimits.fileBytesMax) {
      throw new KafkaConfigError([{ path: '(file)', message: `is ${size} bytes, more than the ${kafkaConfigLimits.fileBytesMax} allowed` }], file);
    }
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof KafkaConfigError) throw error;
    throw new KafkaConfigError([{ path: '(file)', message: `cannot be read: ${(error as Error).message}` }], file);
  }
  try {
    return parse(text, { uniqueKeys: true, prettyErrors: true });
  } catch (error) {
    throw new KafkaConfigError([{ path: '(file)', message: `is not valid YAML: ${(error as Error).message}` }], file);
  }
}

/**
 * Reads the `kafka:` section of a configuration file (a path to YAML, or the file's content already
 * parsed), checks it against schema/kafka-config.schema.json and returns it with every default
 * filled in. Other top-level keys belong to the rest of Stockline and are ignored here.
 * Throws KafkaConfigError naming each offending key.
 */
export function loadKafkaConfig(fileOrDocument: string | Record<string, unknown>): KafkaConfig {
  const file = typeof fileOrDocument === 'string' ? fileOrDocument : undefined;
  const document = file === undefined ? fileOrDocument : readYaml(file);
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new KafkaConfigError([{ path: '(file)', message: 'must be a YAML mapping with a kafka: key' }], file);
  }
  const section = (document as Record<string, unknown>).kafka;
  if (section === undefined || section === null) throw new KafkaConfigError([{ path: 'kafka', message: 'is required' }], file);
  // Accepted once and never used: refused with where the threshold is, not taken in silence.
  if (typeof section === 'object' && 'alerts' in section) {
    throw new KafkaConfigError([{
      path: 'kafka.alerts',
      message: "is not a setting (it never changed anything): the reconciliation lag alert's threshold is in deploy/prometheus/alerts.yaml (StocklineReconciliationLagHigh); remove it from this file",
    }], file);
  }
  // Defaults are filled into a copy, so the caller's document is never changed.
  const candidate: unknown = structuredClone(section);
  const validate = validator();
  if (!validate(candidate)) {
    const issues = (validate.errors ?? []).map(describe);
    const unique = issues.filter((issue, index) => issues.findIndex((other) => other.path === issue.path && other.message === issue.message) === index);
    throw new KafkaConfigError(unique, file);
  }
  const config = candidate as KafkaConfig;
  const given = (section as { topics?: { minInsyncReplicas?: unknown } }).topics?.minInsyncReplicas;
  if (given === undefined) config.topics.minInsyncReplicas = Math.min(kafkaConfigLimits.minInsyncReplicasDefault, config.topics.replicationFactor);
  const issues = crossFieldIssues(config);
  if (issues.length > 0) throw new KafkaConfigError(issues, file);
  return config;
}
