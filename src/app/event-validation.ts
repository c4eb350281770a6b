// Validates events against the shipped JSON Schema, compiled once, with readable per-violation messages.

import { readFileSync } from 'node:fs';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { InventoryEvent } from '../core/index.js';
import { parseTime } from '../core/index.js';
import { createAjv } from './ajv.js';
import { packagePath } from './paths.js';



export interface Violation {
  /** JSON pointer into the event. */
  pointer: string;
  message: string;
}

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = createAjv();
    ajv.addFormat('date-time', { type: 'string', validate: (text: string) => !Number.isNaN(parseTime(text)) });
    compiled = ajv.compile(JSON.parse(readFileSync(packagePath('schema', 'inventory-event.schema.json'), 'utf8')) as object);
  }
  return compiled;
}

function describe(error: ErrorObject): Violation {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'additionalProperties') {
    return { pointer: `${error.instancePath}/${String(params.additionalProperty)}`, message: 'is not allowed here (unknown property)' };
  }
  if (error.keyword === 'required') {
    return { pointer: `${error.instancePath}/${String(params.missingProperty)}`, message: 'is required' };
  }
  if (error.keyword === 'enum') {
    return { pointer: error.instancePath || '/', message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
  }
  return { pointer: error.instancePath || '/', message: error.message ?? error.keyword };
}

/** The schema violations of one event; empty when it is valid. */
export function validateEvent(candidate: unknown): Violation[] {
  const validate = validator();
  if (validate(candidate)) return [];
  const seen = new Set<string>();
  const violations: Violation[] = [];
  for (const error of validate.errors ?? []) {
    if (error.keyword === 'if' || error.keyword === 'oneOf') continue;
    const violation = describe(error);
    const key = `${violation.pointer} ${violation.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    violations.push(violation);
  }
  return violations;
}

export function isInventoryEvent(candidate: unknown): candidate is InventoryEvent {
  return validateEvent(candidate).length === 0;
}
