// The `sources:` items of the configuration file (PostgreSQL and Debezium), validated once against schema/source-config.schema.json.

import { readFileSync } from 'node:fs';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv } from '../../app/ajv.js';
import { packagePath } from '../../app/paths.js';
import { CdcError } from './errors.js';

/** Which column holds what; exactly one of each `x` / `xConstant` pair. */
export interface ColumnMapping {
  sku: string;
  location?: string;
  locationConstant?: string;
  onHand: string;
  tenant?: string;
  tenantConstant?: string;
  deletedAt?: string;
}

export interface PostgresSourceConfig {
  type: 'postgres';
  name: string;
  connectionString: string;
  /** `table` or `schema.table`. */
  table: string;
  columns: ColumnMapping;
  slot: string;
  publication: string;
}

export interface DebeziumSourceConfig {
  type: 'debezium';
  name: string;
  columns: ColumnMapping;
  /** When set, events of other tables are skipped. */
  table?: string;
  topic?: string;
  /** Brokers to read `topic` from; the kafka: section's brokers when absent. */
  brokers?: string[];
  /** Consumer group for `topic`; `stockline-debezium-<name>` when absent. */
  groupId?: string;
  /** The file `stockline ingest debezium` reads when it is given none; `-` is standard input. */
  file?: string;
}

export type SourceConfig = PostgresSourceConfig | DebeziumSourceConfig;

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    // verbose: a oneOf error then carries its branches, so the message can name the keys.
    const ajv = createAjv({ allErrors: true, verbose: true });
    const schema = JSON.parse(readFileSync(packagePath('schema', 'source-config.schema.json'), 'utf8')) as object;
    compiled = ajv.compile(schema);
  }
  return compiled;
}

/** `sources[0]` + `/columns/sku` -> `sources[0].columns.sku`. */
function keyPathOf(base: string, pointer: string): string {
  let path = base;
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path += /^\d+$/.test(segment) ? `[${segment}]` : path === '' ? segment : `.${segment}`;
  }
  return path === '' ? '(root)' : path;
}

function oneOfKeys(error: ErrorObject): string[] {
  const branches = Array.isArray(error.schema) ? error.schema as Array<{ required?: string[] }> : [];
  return branches.flatMap((branch) => branch.required ?? []);
}

function describe(error: ErrorObject, base: string): string {
  const params = error.params as Record<string, unknown>;
  const at = (pointer: string): string => keyPathOf(base, pointer);
  switch (error.keyword) {
    case 'required': return `${at(`${error.instancePath}/${String(params.missingProperty)}`)}: is required`;
    case 'additionalProperties': return `${at(`${error.instancePath}/${String(params.additionalProperty)}`)}: is not allowed here (unknown key)`;
    case 'enum': return `${at(error.instancePath)}: must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'oneOf': return `${at(error.instancePath)}: needs exactly one of ${oneOfKeys(error).join(', ')}`;
    case 'pattern': return `${at(error.instancePath)}: ${JSON.stringify(error.data)} does not match ${String(params.pattern)}`;
    default: return `${at(error.instancePath)}: ${error.message ?? error.keyword}`;
  }
}

/** Errors of a oneOf's branches and of if/then wrappers say nothing the oneOf or the inner error does not. */
function isNoise(error: ErrorObject): boolean {
  return error.keyword === 'if' || error.schemaPath.includes('/oneOf/');
}

/**
 * Validates one source item; `keyPath` names where it sits in the file (e.g. `sources[0]`), and every
 * error message starts with the key path of the offending value.
 */
export function validateSourceConfig(value: unknown, keyPath: string): SourceConfig {
  const validate = validator();
  if (validate(value)) return value as unknown as SourceConfig;
  const messages = (validate.errors ?? []).filter((error) => !isNoise(error)).map((error) => describe(error, keyPath));
  const unique = [...new Set(messages)];
  throw new CdcError('INVALID_SOURCE_CONFIG', unique.join('; '), false);
}
