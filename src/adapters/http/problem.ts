// RFC 9457 problem details: the one shape of every error answer, and how errors and rejections become one.

import { STATUS_CODES } from 'node:http';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorObject } from 'ajv';
import { firstOutcome, formatTime } from '../../core/index.js';
import type { Outcome, Rejection } from '../../core/index.js';
import { AppError } from '../../app/engine.js';
import type { Submitted } from '../../app/ports.js';
import { errorCatalogue, isErrorCode, problemTypeOf } from '../../errors.js';
import type { ErrorCode, ErrorSpec } from '../../errors.js';
import { httpLimits } from './schemas.js';

export const problemContentType = 'application/problem+json; charset=utf-8';

/** One violation of a request schema; `in` says which part of the request, `pointer` where in it (RFC 6901). */
export interface FieldError {
  in: 'body' | 'query' | 'path' | 'header';
  pointer: string;
  message: string;
  /** For batch bodies: the index of the item. */
  index?: number;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: string;
  [extension: string]: unknown;
}

/**
 * An error answer about to be sent: thrown by routes and hooks, rendered by the error handler. It is an
 * expected answer, not a bug, so it carries no stack: in a flash sale most requests end in a 409, and
 * capturing a stack trace for each was a visible share of the server's time.
 */
export class HttpProblem extends Error {
  readonly code: string;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;
  readonly spec: ErrorSpec;

  constructor(code: string, detail: string, extensions: Record<string, unknown> = {}, headers: Record<string, string> = {}, spec?: ErrorSpec) {
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'HttpProblem';
    this.code = code;
    this.extensions = extensions;
    this.headers = headers;
    this.spec = spec ?? (isErrorCode(code) ? errorCatalogue[code] : errorCatalogue.INTERNAL_ERROR);
  }
}

export function problem(code: ErrorCode, detail: string, extensions: Record<string, unknown> = {}, headers: Record<string, string> = {}): HttpProblem {
  return new HttpProblem(code, detail, extensions, headers);
}

/** Why the heap is too full to take new holds and imports now, or undefined when it has room (HeapWatch). */
export type HeapFullReason = () => string | undefined;

/** Refuses a request that would grow the state while the heap is nearly full: 503 MEMORY_FULL, retryable. */
export function refuseWhenHeapFull(heapFullReason: HeapFullReason, isReplay?: () => boolean): void {
  const reason = heapFullReason();
  if (reason !== undefined && isReplay?.() !== true) throw problem('MEMORY_FULL', reason);
}

/** The JSON body of a problem; extension members never override the standard ones. */
export function problemBody(error: HttpProblem, instance?: string, detail = error.message): Problem {
  const body: Problem = {
    type: problemTypeOf(error.code),
    title: error.spec.title,
    status: error.spec.status,
    detail,
    ...(instance === undefined ? {} : { instance }),
    code: error.code,
  };
  for (const [name, value] of Object.entries(error.extensions)) if (!(name in body)) body[name] = value;
  return body;
}

/** A ledger refusal as a problem: its fields become extension members (`lines` for INSUFFICIENT_STOCK, ...). */
export function rejectionProblem(rejection: Rejection): HttpProblem {
  if (rejection.code === 'DUPLICATE') return problem('DUPLICATE', rejection.message);
  if (rejection.code === 'RESERVATION_EXPIRED') {
    const { code, message, expiredAtMs, ...rest } = rejection;
    return problem(code, message, { ...rest, expiredAt: formatTime(expiredAtMs) });
  }
  const { code, message, ...rest } = rejection;
  if ('status' in rest) {
    // `status` is the problem's HTTP status; the reservation's own status goes by another name.
    const { status, ...others } = rest;
    return problem(code, message, { ...others, reservationStatus: status });
  }
  return problem(code, message, rest);
}

/**
 * The outcome to answer with. A retry under a known Idempotency-Key answers with the first outcome and
 * says so in `Idempotent-Replayed`; a refusal is thrown as its problem.
 */
export function settle(reply: FastifyReply, submitted: Submitted): Outcome {
  const outcome = firstOutcome(submitted.outcome);
  const replayed = outcome !== submitted.outcome;
  if (replayed) reply.header('idempotent-replayed', 'true');
  if (outcome.rejection !== undefined) {
    const refusal = rejectionProblem(outcome.rejection);
    throw replayed ? new HttpProblem(refusal.code, refusal.message, refusal.extensions, { 'idempotent-replayed': 'true' }) : refusal;
  }
  return outcome;
}

const partNames: Record<string, FieldError['in']> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' };

const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** A batch body's item (`/adjustments/3/sku`, `/events/0`): the index of the item the pointer is in. */
const batchItemPointer = /^\/(?:adjustments|events)\/(\d+)(?:\/|$)/;

export function fieldErrorOf(where: FieldError['in'], error: ErrorObject): FieldError {
  const found = fieldErrorFound(where, error);
  return where === 'body' ? withBatchItem(found) : found;
}

function withBatchItem(found: FieldError): FieldError {
  const item = batchItemPointer.exec(found.pointer)?.[1];
  return item === undefined ? found : { in: found.in, index: Number(item), pointer: found.pointer, message: found.message };
}

function fieldErrorFound(where: FieldError['in'], error: ErrorObject): FieldError {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'additionalProperties') {
    return { in: where, pointer: `${error.instancePath}/${escapePointer(String(params.additionalProperty))}`, message: 'is not allowed (unknown field)' };
  }
  if (error.keyword === 'required') {
    return { in: where, pointer: `${error.instancePath}/${escapePointer(String(params.missingProperty))}`, message: 'is required' };
  }
  if (error.keyword === 'enum') {
    return { in: where, pointer: error.instancePath, message: `must be one of ${(params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')}` };
  }
  return { in: where, pointer: error.instancePath, message: error.message ?? error.keyword };
}

export function describeField(error: FieldError): string {
  const index = error.index === undefined ? '' : `item ${error.index} `;
  return `${error.in} ${index}${error.pointer === '' ? '(root)' : error.pointer} ${error.message}`;
}

export function validationProblem(errors: FieldError[]): HttpProblem {
  const first = errors[0];
  const detail = first === undefined ? 'the request is not valid' : describeField(first) + (errors.length > 1 ? ` (and ${errors.length - 1} more)` : '');
  return problem('VALIDATION_FAILED', detail, { errors });
}

/** Past this depth a reserved key is named by the object it is under, so that the answer stays small. */
const reservedKeyDepthMax = 32;

interface Found {
  value: unknown;
  key: string;
  parent: Found | undefined;
  depth: number;
}

function pointerOf(found: Found | undefined): string {
  let pointer = '';
  for (let at = found; at?.parent !== undefined; at = at.parent) pointer = `/${escapePointer(at.key)}${pointer}`;
  return pointer;
}

/** The first `__proto__` key, or `constructor` holding `prototype`, breadth first: where a prototype could be set. */
function reservedKeyOf(root: unknown): { at: Found; key: string } | undefined {
  let level: Found[] = [{ value: root, key: '', parent: undefined, depth: 0 }];
  while (level.length > 0) {
    const next: Found[] = [];
    for (const at of level) {
      const value = at.value as Record<string, unknown>;
      if (Object.hasOwn(value, '__proto__')) return { at, key: '__proto__' };
      const constructor = Object.hasOwn(value, 'constructor') ? value.constructor : undefined;
      if (typeof constructor === 'object' && constructor !== null && Object.hasOwn(constructor, 'prototype')) {
        return { at: { value: constructor, key: 'constructor', parent: at, depth: at.depth + 1 }, key: 'prototype' };
      }
      for (const key of Object.keys(value)) {
        const child = value[key];
        if (typeof child === 'object' && child !== null) next.push({ value: child, key, parent: at, depth: at.depth + 1 });
      }
    }
    level = next;
  }
  return undefined;
}

/**
 * Why a JSON body the parser refused was refused, when the reason is a key that could set an object's prototype:
 * a VALIDATION_FAILED naming where it is, instead of "invalid JSON". The body is parsed again here, on the
 * refusal only, and that parse is dropped: the key never reaches the application.
 */
export function reservedKeyProblem(text: string): HttpProblem | undefined {
  let root: unknown;
  try {
    root = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    return undefined;
  }
  const found = typeof root === 'object' && root !== null ? reservedKeyOf(root) : undefined;
  if (found === undefined) return undefined;
  let named: Found = found.at;
  while (named.depth > reservedKeyDepthMax && named.parent !== undefined) named = named.parent;
  const message = named === found.at
    ? 'is not allowed (a key that could set an object\'s prototype)'
    : `holds ${found.key === '__proto__' ? '__proto__' : 'constructor.prototype'} further down, which is not allowed (it could set an object's prototype)`;
  const pointer = named === found.at ? `${pointerOf(named)}/${found.key}` : pointerOf(named);
  return validationProblem([withBatchItem({ in: 'body', pointer, message })]);
}

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
  validation?: ErrorObject[];
  validationContext?: string;
}

function fromFastify(error: FastifyLikeError, request: FastifyRequest): HttpProblem | undefined {
  if (error.validation !== undefined) {
    const where = partNames[error.validationContext ?? 'body'] ?? 'body';
    return validationProblem(error.validation.filter((item) => item.keyword !== 'if').map((item) => fieldErrorOf(where, item)));
  }
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const limitBytes = request.routeOptions.bodyLimit;
    return problem('PAYLOAD_TOO_LARGE', `the request body exceeds ${limitBytes} bytes`, { limitBytes });
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return unsupportedMediaType(request.headers['content-type']);
  // Both errors quote the whole URL, query string and all (it may hold an access token): say what is wrong instead.
  if (error.code === 'FST_ERR_BAD_URL') return problem('MALFORMED_REQUEST', 'the URL path holds a malformed percent-encoding: % must begin two hex digits, and the bytes must be UTF-8');
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return problem('MALFORMED_REQUEST', `a path segment of the URL is longer than ${httpLimits.pathParamLengthMax} characters`);
  }
  if (error.statusCode === 404) return problem('NOT_FOUND', 'no such resource');
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return problem('MALFORMED_REQUEST', error.message ?? 'the request could not be read');
  }
  return undefined;
}

function unsupportedMediaType(contentType: string | undefined): HttpProblem {
  if (contentType === undefined || contentType.trim() === '') {
    return problem('UNSUPPORTED_MEDIA_TYPE', 'no Content-Type was sent with the body; send Content-Type: application/json');
  }
  return problem('UNSUPPORTED_MEDIA_TYPE', `content type ${contentType} is not accepted; send application/json`);
}

function fromAppError(error: AppError): HttpProblem {
  const known = isErrorCode(error.code) ? errorCatalogue[error.code] : undefined;
  const status = known?.status ?? error.statusHint ?? (error.retryable ? 503 : 500);
  const spec: ErrorSpec = known ?? { status, title: 'The engine could not handle the request', retryable: error.retryable };
  const headers: Record<string, string> = spec.retryable && spec.status === 503 ? { 'retry-after': '1' } : {};
  return new HttpProblem(error.code, error.message, {}, headers, spec);
}

/** Any error thrown while handling a request, as the problem to answer with. */
export function problemOf(error: unknown, request: FastifyRequest, log: FastifyBaseLogger): HttpProblem {
  if (error instanceof HttpProblem) return error;
  if (error instanceof AppError) return fromAppError(error);
  if (error !== null && typeof error === 'object') {
    const known = fromFastify(error as FastifyLikeError, request);
    if (known !== undefined) return known;
  }
  log.error({ err: error }, 'unexpected error while handling a request');
  return problem('INTERNAL_ERROR', 'an unexpected error occurred; the request id identifies it in the logs');
}

/** The parser's reason for a refusal is one of its own fixed phrases; anything else is not shown. */
const parserReasonShape = /^[A-Za-z][A-Za-z0-9 ,.'-]{0,79}$/;

/**
 * The problem for a request Node could not read (its `clientError`): headers over `headerBytesMax`, a request
 * not received in time, or anything that is not HTTP/1.1. Nothing of the request is echoed.
 */
export function clientErrorProblem(error: { code?: string; reason?: unknown }, headerBytesMax: number): HttpProblem {
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return problem('HEADERS_TOO_LARGE', `the request line and headers exceed ${headerBytesMax} bytes`, { limitBytes: headerBytesMax });
  }
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return problem('REQUEST_TIMEOUT', 'the request was not received in time');
  }
  const reason = typeof error.reason === 'string' && parserReasonShape.test(error.reason) ? `: ${error.reason.toLowerCase()}` : '';
  return problem('MALFORMED_REQUEST', `the request is not valid HTTP/1.1${reason}`);
}

/** A whole HTTP/1.1 response for a problem, to write on a connection that has no request to answer; it closes the connection. */
export function problemResponse(error: HttpProblem, requestId: string, date: Date): string {
  const body = JSON.stringify(problemBody(error));
  const status = error.spec.status;
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? error.spec.title}\r\nContent-Type: ${problemContentType}\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nDate: ${date.toUTCString()}\r\nConnection: close\r\n\r\n${body}`;
}

/** The request's path without its query string (which may hold an access token). */
export function instanceOf(request: FastifyRequest): string {
  const url = request.raw.url ?? request.url;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The detail without the request's query string, should it quote it (an error of Fastify's or of a plugin that
 * echoes the URL): the query may hold an access token, and problems are shown and logged by clients.
 */
function detailOf(error: HttpProblem, request: FastifyRequest): string {
  const url = request.raw.url ?? request.url;
  const query = url.indexOf('?');
  return query === -1 ? error.message : error.message.replaceAll(url.slice(query), '');
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: HttpProblem): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  // Set by the auth hook, which a request refused before routing (a malformed URL) never reaches.
  if (!reply.hasHeader('x-request-id')) reply.header('x-request-id', request.id);
  if (error.spec.retryable && error.spec.status === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', '1');
  return reply.code(error.spec.status).type(problemContentType).send(JSON.stringify(problemBody(error, instanceOf(request), detailOf(error, request))));
}
