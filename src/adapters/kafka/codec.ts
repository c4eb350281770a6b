// Record formats of the Kafka engine: command records, replies, dead-letter headers, and the checks a command record must pass.

import {
  limits, namePattern, reservationIdPattern, skuPattern, sourceSeqPattern, tenantIdPattern, tokenPattern,
} from '../../core/index.js';
import type { Outcome } from '../../core/index.js';
import type { CommandInput } from '../../app/ports.js';

export const kafkaRecordLimits = {
  /** A command record (one command, or an all-or-nothing group) encoded as JSON; Kafka's own default limit is 1 MiB. */
  commandRecordBytesMax: 256 * 1024,
  /** Commands in one all-or-nothing group (the HTTP import takes up to 10,000 events). */
  atomicCommandsMax: 10_000,
  /** A reply bigger than this is replaced by REPLY_TOO_LARGE: the decision stands, its answer is read from the events. */
  replyBytesMax: 768 * 1024,
  /** A dead letter keeps at most this much of the offending record's value. */
  deadLetterValueBytesMax: 64 * 1024,
  latencyMsMax: 86_400_000,
  timeMsMax: 8_640_000_000_000_000,
} as const;

/** Where a processor sends the answer to a command: a node and the partition of the replies topic it reads. */
export interface ReplyAddress {
  replyTo: string;
  replyPartition: number;
  correlationId: string;
}

/**
 * The value of a record on the commands topic (key: the tenant). `input` is one command; `atomic` is a
 * group of commands of one tenant decided all or nothing. The reply fields are optional: a record
 * written by another tool (Kafka's console producer, a connector) is decided and answered to no one.
 */
export interface CommandRecord extends Partial<ReplyAddress> {
  input?: CommandInput;
  atomic?: CommandInput[];
}

/** One decided command in a reply: its stamped id and time, and its outcome. */
export interface DecidedCommand {
  id: string;
  timeMs: number;
  outcome: Outcome;
}

/** The value of a record on the replies topic (key: the node it is for). */
export interface CommandReply {
  correlationId: string;
  /** Where the command record was decided: its partition and offset on the commands topic. */
  partition: number;
  offset: string;
  /** One per command of the record, in order. */
  results?: DecidedCommand[];
  /** The record was refused before any decision (dead-lettered), or the answer was too large to send. */
  error?: { code: string; message: string };
}

/** Why a record of the commands topic went to the dead-letter topic instead of the ledger. */
export type DeadLetterCode = 'MALFORMED_RECORD' | 'INVALID_COMMAND' | 'WRONG_KEY' | 'WRONG_PARTITION' | 'RECORD_TOO_LARGE' | 'OUTPUT_TOO_LARGE' | 'DECIDE_FAILED' | 'UNPROCESSABLE_INPUT';

export const deadLetterHeaders = {
  code: 'stockline-error-code',
  reason: 'stockline-error-reason',
  sourceTopic: 'stockline-source-topic',
  sourcePartition: 'stockline-source-partition',
  sourceOffset: 'stockline-source-offset',
  source: 'stockline-source',
} as const;

export type ParsedCommandRecord =
  | { ok: true; tenant: string; inputs: CommandInput[]; atomic: boolean; reply?: ReplyAddress }
  | { ok: false; code: DeadLetterCode; reason: string; reply?: ReplyAddress };

/** Reads a record of the commands topic; `partitionOf` says which partition the tenant belongs on. */
export function parseCommandRecord(key: string | undefined, value: Buffer | undefined, partition: number, partitionOf: (tenant: string) => number): ParsedCommandRecord {
  if (value === undefined || value.length === 0) return { ok: false, code: 'MALFORMED_RECORD', reason: 'the record has no value' };
  if (value.length > kafkaRecordLimits.commandRecordBytesMax) {
    return { ok: false, code: 'RECORD_TOO_LARGE', reason: `the record is ${value.length} bytes, more than the ${kafkaRecordLimits.commandRecordBytesMax} allowed` };
  }
  let document: unknown;
  try {
    document = JSON.parse(value.toString('utf8'));
  } catch (error) {
    return { ok: false, code: 'MALFORMED_RECORD', reason: `the value is not JSON: ${(error as Error).message}` };
  }
  if (!isObject(document)) return { ok: false, code: 'MALFORMED_RECORD', reason: 'the value must be a JSON object with `input` or `atomic`' };
  const reply = replyAddressOf(document);
  const refuse = (code: DeadLetterCode, reason: string): ParsedCommandRecord => (reply === undefined ? { ok: false, code, reason } : { ok: false, code, reason, reply });
  const shapeProblem = recordShapeProblem(document);
  if (shapeProblem !== undefined) return refuse('MALFORMED_RECORD', shapeProblem);
  const atomic = document.atomic !== undefined;
  const inputs = (atomic ? document.atomic : [document.input]) as unknown[];
  for (const [index, input] of inputs.entries()) {
    const problem = commandInputProblem(input);
    if (problem !== undefined) return refuse('INVALID_COMMAND', atomic ? `atomic[${index}]${problem}` : `input${problem}`);
  }
  const tenant = (inputs[0] as { tenant: string }).tenant;
  if (inputs.some((input) => (input as { tenant: string }).tenant !== tenant)) return refuse('INVALID_COMMAND', 'every command of an atomic group must be for the same tenant');
  if (key !== tenant) return refuse('WRONG_KEY', `the record key must be the tenant (${JSON.stringify(tenant)}), not ${key === undefined ? 'absent' : JSON.stringify(key)}`);
  const expected = partitionOf(tenant);
  if (expected !== partition) {
    return refuse('WRONG_PARTITION', `tenant ${tenant} belongs on partition ${expected}, not ${partition}: produce with the tenant as key and Kafka's default partitioner`);
  }
  const parsed: ParsedCommandRecord = { ok: true, tenant, inputs: inputs as CommandInput[], atomic };
  if (reply !== undefined) parsed.reply = reply;
  return parsed;
}

function recordShapeProblem(document: Record<string, unknown>): string | undefined {
  const known = new Set(['input', 'atomic', 'replyTo', 'replyPartition', 'correlationId']);
  const unknown = Object.keys(document).find((name) => !known.has(name));
  if (unknown !== undefined) return `unknown property ${JSON.stringify(unknown)}: the value must be {"input": {...}} or {"atomic": [...]}`;
  if ((document.input === undefined) === (document.atomic === undefined)) return 'the value must have exactly one of `input` and `atomic`';
  if (document.atomic !== undefined) {
    if (!Array.isArray(document.atomic) || document.atomic.length === 0) return '`atomic` must be a non-empty array of commands';
    if (document.atomic.length > kafkaRecordLimits.atomicCommandsMax) return `\`atomic\` has more than ${kafkaRecordLimits.atomicCommandsMax} commands`;
  }
  return undefined;
}

function replyAddressOf(document: Record<string, unknown>): ReplyAddress | undefined {
  const { replyTo, replyPartition, correlationId } = document;
  if (typeof replyTo !== 'string' || !nodeIdRegExp.test(replyTo)) return undefined;
  if (typeof replyPartition !== 'number' || !Number.isInteger(replyPartition) || replyPartition < 0 || replyPartition > 100_000) return undefined;
  if (typeof correlationId !== 'string' || correlationId.length === 0 || correlationId.length > 200) return undefined;
  return { replyTo, replyPartition, correlationId };
}

export const nodeIdPattern = '^[A-Za-z0-9._-]{1,64}$';
const nodeIdRegExp = new RegExp(nodeIdPattern);

// --- command validation -------------------------------------------------------------------------

/** A check returns what is wrong with a value, or undefined when it is fine. */
type Check = (value: unknown) => string | undefined;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const text = (pattern: string, lengthMax: number): Check => {
  const regExp = new RegExp(pattern);
  return (value) => (typeof value === 'string' && value.length >= 1 && value.length <= lengthMax && regExp.test(value)
    ? undefined : `: must be a string of 1 to ${lengthMax} characters matching ${pattern}`);
};
const freeText = (lengthMax: number): Check => (value) => (typeof value === 'string' && value.length >= 1 && value.length <= lengthMax
  ? undefined : `: must be a string of 1 to ${lengthMax} characters`);
const integer = (min: number, max: number): Check => (value) => (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
  ? undefined : `: must be an integer from ${min} to ${max}`);
const oneOf = (...allowed: unknown[]): Check => (value) => (allowed.includes(value) ? undefined : `: must be one of ${allowed.map((item) => JSON.stringify(item)).join(', ')}`);
const orNull = (check: Check): Check => (value) => (value === null ? undefined : check(value));
const boolean: Check = (value) => (typeof value === 'boolean' ? undefined : ': must be true or false');

const arrayOf = (item: Check, min: number, max: number): Check => (value) => {
  if (!Array.isArray(value) || value.length < min || value.length > max) return `: must be an array of ${min} to ${max} items`;
  for (const [index, element] of value.entries()) {
    const problem = item(element);
    if (problem !== undefined) return `[${index}]${problem}`;
  }
  return undefined;
};

const objectOf = (required: Record<string, Check>, optional: Record<string, Check> = {}): Check => (value) => {
  if (!isObject(value)) return ': must be an object';
  for (const [name, check] of Object.entries(required)) {
    if (value[name] === undefined) return `.${name}: is required`;
    const problem = check(value[name]);
    if (problem !== undefined) return `.${name}${problem}`;
  }
  for (const [name, item] of Object.entries(value)) {
    if (name in required) continue;
    const check = optional[name];
    if (check === undefined) return `.${name}: is not a known property of this command`;
    if (item === undefined) continue;
    const problem = check(item);
    if (problem !== undefined) return `.${name}${problem}`;
  }
  return undefined;
};

const field = {
  tenant: text(tenantIdPattern, limits.tenantIdLengthMax),
  sku: text(skuPattern, limits.skuLengthMax),
  location: text(namePattern, limits.locationIdLengthMax),
  channel: text(namePattern, limits.channelIdLengthMax),
  reservationId: text(reservationIdPattern, limits.reservationIdLengthMax),
  orderRef: text(tokenPattern, limits.orderRefLengthMax),
  idempotencyKey: text(tokenPattern, limits.idempotencyKeyLengthMax),
  source: text(tokenPattern, limits.sourceLengthMax),
  sourceSeq: text(sourceSeqPattern, limits.sourceSeqDigitsMax),
  reason: freeText(limits.reasonLengthMax),
  quantity: integer(1, limits.quantityMax),
  units: integer(0, limits.quantityMax),
  delta: integer(-limits.quantityMax, limits.quantityMax),
  timeMs: integer(0, kafkaRecordLimits.timeMsMax),
};

const lines = arrayOf(objectOf({ sku: field.sku, quantity: field.quantity }, { location: field.location }), 1, limits.cartLinesMax);
/** `type` picked the check already. */
const common: Record<string, Check> = { type: () => undefined, tenant: field.tenant };
const commonOptional = { idempotencyKey: field.idempotencyKey, source: field.source, timeMs: field.timeMs };

const commandChecks: Record<string, Check> = {
  adjust_stock: objectOf({ ...common, sku: field.sku, location: field.location }, { ...commonOptional, delta: field.delta, set: field.units, reason: field.reason, sourceSeq: field.sourceSeq }),
  reserve: objectOf({ ...common, reservationId: field.reservationId, channel: field.channel, lines, ttlMs: integer(limits.ttlMsMin, limits.ttlMsMax) }, { ...commonOptional, orderRef: field.orderRef }),
  record_sale: objectOf({ ...common, reservationId: field.reservationId, channel: field.channel, lines }, { ...commonOptional, orderRef: field.orderRef }),
  commit: objectOf({ ...common, reservationId: field.reservationId }, { ...commonOptional, orderRef: field.orderRef }),
  release: objectOf({ ...common, reservationId: field.reservationId, reason: oneOf('released', 'cancelled', 'expired') }, commonOptional),
  fulfil: objectOf({ ...common, reservationId: field.reservationId }, commonOptional),
  expire_due: objectOf({ ...common, nowMs: field.timeMs }, commonOptional),
  delete_sku: objectOf({ ...common, sku: field.sku }, commonOptional),
  restore_sku: objectOf({ ...common, sku: field.sku }, commonOptional),
  set_channel_policy: objectOf({
    ...common, channel: field.channel, locations: orNull(arrayOf(field.location, 0, limits.channelLocationsMax)),
    bufferUnits: field.units, maxUnits: orNull(field.units), backorder: boolean,
  }, commonOptional),
  record_sync: objectOf({ ...common, channel: field.channel, sku: field.sku, quantity: field.units, latencyMs: integer(0, kafkaRecordLimits.latencyMsMax) }, commonOptional),
};

/**
 * What is wrong with a command as a client sends it (before the engine stamps its id and time), as
 * `.path: problem`; undefined when the ledger can take it. Unknown properties are refused: they would
 * otherwise be kept in idempotency records and change fingerprints.
 */
export function commandInputProblem(input: unknown): string | undefined {
  if (!isObject(input)) return ': must be an object';
  const check = typeof input.type === 'string' && Object.hasOwn(commandChecks, input.type) ? commandChecks[input.type] : undefined;
  if (check === undefined) return `.type: must be one of ${Object.keys(commandChecks).join(', ')}`;
  const problem = check(input);
  if (problem !== undefined) return problem;
  if (input.type === 'adjust_stock' && (input.delta === undefined) === (input.set === undefined)) return ': needs exactly one of delta and set';
  return undefined;
}

export function encodeJson(value: unknown): string {
  return JSON.stringify(value);
}

/** Reads a reply; undefined for a record that is not one (it is skipped). */
export function parseReply(value: Buffer | undefined): CommandReply | undefined {
  if (value === undefined) return undefined;
  try {
    const reply = JSON.parse(value.toString('utf8')) as unknown;
    if (!isObject(reply) || typeof reply.correlationId !== 'string') return undefined;
    return reply as unknown as CommandReply;
  } catch {
    return undefined;
  }
}
