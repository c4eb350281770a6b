// The error catalogue: every stable error code Stockline answers with, its HTTP status, title and whether a retry can help.

import type { RejectionCode } from './core/index.js';

export interface ErrorSpec {
  status: number;
  /** Short and the same for every occurrence of the code (RFC 9457 `title`). */
  title: string;
  /** True when sending the same request again later can succeed. */
  retryable: boolean;
}

/** Refusals made at the HTTP edge, before anything reaches the engine. */
const edgeErrors = {
  VALIDATION_FAILED: { status: 400, title: 'The request does not match its schema', retryable: false },
  MALFORMED_REQUEST: { status: 400, title: 'The request could not be read', retryable: false },
  UNAUTHENTICATED: { status: 401, title: 'A valid API key is required', retryable: false },
  FORBIDDEN_TENANT: { status: 403, title: 'The API key does not belong to this tenant', retryable: false },
  INSUFFICIENT_SCOPE: { status: 403, title: 'The API key lacks the scope this route needs', retryable: false },
  NOT_FOUND: { status: 404, title: 'No such resource', retryable: false },
  REQUEST_TIMEOUT: { status: 408, title: 'The request was not received in time', retryable: false },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request body is too large', retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The request body must be application/json', retryable: false },
  HEADERS_TOO_LARGE: { status: 431, title: 'The request headers are too large', retryable: false },
  IMPORT_REFUSED: { status: 409, title: 'The ledger refused an imported event; nothing was imported', retryable: false },
  INTERNAL_ERROR: { status: 500, title: 'An unexpected error occurred', retryable: false },
  NOT_READY: { status: 503, title: 'The engine is not ready', retryable: true },
  TOO_MANY_STREAMS: { status: 503, title: 'Too many event streams are open', retryable: true },
} as const satisfies Record<string, ErrorSpec>;

/** Refusals of the signed channel webhooks (Shopify); they authenticate by signature, not by API key. */
const webhookErrors = {
  WEBHOOK_CHANNEL_UNKNOWN: { status: 404, title: 'No Shopify channel has this id', retryable: false },
  WEBHOOK_SIGNATURE_INVALID: { status: 401, title: 'The webhook signature is missing or wrong', retryable: false },
  WEBHOOK_SHOP_MISMATCH: { status: 403, title: 'The webhook was signed for another shop', retryable: false },
  WEBHOOK_TOPIC_MISSING: { status: 400, title: 'The webhook has no topic header', retryable: false },
  WEBHOOK_EVENT_ID_MISSING: { status: 400, title: 'The webhook has no event id header', retryable: false },
  WEBHOOK_PAYLOAD_INVALID: { status: 400, title: 'The webhook body is not JSON', retryable: false },
  WEBHOOK_PAYLOAD_UNUSABLE: { status: 422, title: 'No ledger command can be made of the webhook', retryable: false },
  WEBHOOK_ITEMS_UNAVAILABLE: { status: 503, title: 'Shopify could not be asked which inventory items the order lines are', retryable: true },
  WEBHOOK_ITEMS_REFUSED: { status: 502, title: 'Shopify refused to say which inventory items the order lines are', retryable: false },
} as const satisfies Record<string, ErrorSpec>;

/** Business refusals decided by the ledger (src/core/rejections.ts): data, until this catalogue gives them a status. */
const ledgerErrors = {
  INSUFFICIENT_STOCK: { status: 409, title: 'Not enough stock', retryable: false },
  STALE_SEQUENCE: { status: 409, title: 'The source sequence is not newer than the one applied', retryable: false },
  SKU_DELETED: { status: 409, title: 'The SKU is deleted', retryable: false },
  UNKNOWN_SKU: { status: 404, title: 'No such SKU', retryable: false },
  UNKNOWN_RESERVATION: { status: 404, title: 'No such reservation', retryable: false },
  RESERVATION_NOT_HELD: { status: 409, title: 'The reservation is not held', retryable: false },
  RESERVATION_NOT_COMMITTED: { status: 409, title: 'The reservation is not committed', retryable: false },
  RESERVATION_EXPIRED: { status: 409, title: 'The reservation has expired', retryable: false },
  RESERVATION_NOT_DUE: { status: 409, title: 'The reservation is not due to expire yet', retryable: false },
  RESERVATION_EXISTS: { status: 409, title: 'A reservation or order with this id exists', retryable: false },
  DUPLICATE: { status: 409, title: 'The request was already handled', retryable: false },
  IDEMPOTENCY_KEY_REUSED: { status: 422, title: 'The idempotency key was used for a different request', retryable: false },
  INVALID_QUANTITY: { status: 409, title: 'The quantity would leave its bounds', retryable: false },
  UNKNOWN_LOCATION: { status: 409, title: 'The channel does not sell from this location', retryable: false },
  NOT_APPLIED: { status: 409, title: 'Not applied: another command of the same all-or-nothing batch was refused', retryable: false },
} as const satisfies Record<RejectionCode, ErrorSpec>;

/** Operating errors of the engines (`AppError` codes). */
const engineErrors = {
  ENGINE_CLOSED: { status: 503, title: 'The engine is shutting down', retryable: true },
  OVERLOADED: { status: 503, title: 'Too many commands are waiting', retryable: true },
  MEMORY_FULL: { status: 503, title: 'The heap is nearly full: new holds and imports are refused', retryable: true },
  STORAGE_FAILED: { status: 503, title: 'The change could not be made durable', retryable: true },
  STORAGE_UNCERTAIN: { status: 503, title: 'The change was written but may not be durable', retryable: true },
  DATA_LOCKED: { status: 500, title: 'The data folder is in use by another process', retryable: false },
  KAFKA_TIMEOUT: { status: 503, title: 'The processors did not answer in time', retryable: true },
  KAFKA_UNAVAILABLE: { status: 503, title: 'Kafka did not take the command', retryable: true },
  KAFKA_PROTOCOL: { status: 500, title: 'A processor answered outside the protocol', retryable: false },
  OUTPUT_TOO_LARGE: { status: 413, title: 'The command would write more than one Kafka transaction holds', retryable: false },
  INVALID_COMMAND: { status: 400, title: 'The engine refused a malformed command', retryable: false },
  ATOMIC_TENANTS_DIFFER: { status: 400, title: 'An all-or-nothing batch must be for one tenant', retryable: false },
} as const satisfies Record<string, ErrorSpec>;

export const errorCatalogue = { ...edgeErrors, ...webhookErrors, ...ledgerErrors, ...engineErrors } as const;

export type ErrorCode = keyof typeof errorCatalogue;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCatalogue, code);
}

/**
 * The RFC 9457 `type` of a code: `https://stockline.dev/problems/<code in kebab case>`. The URI names the
 * problem; it need not resolve, and docs/errors.md documents each one.
 */
export function problemTypeOf(code: string): string {
  return `https://stockline.dev/problems/${code.toLowerCase().replaceAll('_', '-')}`;
}
