// An admin client for the Kafka engine whose every call is bounded in time, and readable broker errors.

import { Admin, MultipleErrors } from '@platformatic/kafka';
import type { KafkaConfig } from './config.js';

export const kafkaAdminLimits = {
  retries: 3,
  retryDelayMs: 500,
  /** The client's own request timeout sits above the broker-side one, so the broker's answer wins. */
  requestTimeoutSlackMs: 5_000,
} as const;

/** A broker that cannot be reached or did not answer in time; trying again later may help. */
export class KafkaUnavailableError extends Error {
  readonly code = 'KAFKA_UNAVAILABLE';
  readonly retryable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KafkaUnavailableError';
  }
}

export function openKafkaAdmin(config: Pick<KafkaConfig, 'brokers' | 'clientId' | 'timeouts'>): Admin {
  return new Admin({
    clientId: `${config.clientId}-admin`,
    bootstrapBrokers: config.brokers,
    connectTimeout: config.timeouts.connectTimeoutMs,
    timeout: config.timeouts.adminTimeoutMs,
    requestTimeout: config.timeouts.adminTimeoutMs + kafkaAdminLimits.requestTimeoutSlackMs,
    retries: kafkaAdminLimits.retries,
    retryDelay: kafkaAdminLimits.retryDelayMs,
  });
}

/** Resolves as `work` does, or rejects with KafkaUnavailableError once `timeoutMs` has passed. */
export async function withDeadline<T>(label: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KafkaUnavailableError(`${label}: no answer from Kafka within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

interface BrokerError { apiId?: unknown; serverErrorMessage?: unknown; message: string }

function brokerErrors(error: unknown): BrokerError[] {
  if (error instanceof MultipleErrors) return error.errors.flatMap(brokerErrors);
  if (error instanceof Error) return [error as BrokerError];
  return [{ message: String(error) }];
}

/** True when the broker answered with this error id (e.g. TOPIC_ALREADY_EXISTS). */
export function isBrokerError(error: unknown, apiId: string): boolean {
  return brokerErrors(error).some((inner) => inner.apiId === apiId);
}

/** `INVALID_REPLICATION_FACTOR: Replication factor: 3 larger than available brokers: 1.` */
export function brokerErrorText(error: unknown): string {
  const texts = brokerErrors(error).map((inner) => {
    const detail = typeof inner.serverErrorMessage === 'string' && inner.serverErrorMessage !== '' ? inner.serverErrorMessage : inner.message;
    return typeof inner.apiId === 'string' ? `${inner.apiId}: ${detail}` : detail;
  });
  // Retries repeat the same failure once per attempt and broker: say each once.
  return [...new Set(texts)].join('; ');
}

/** A network failure or time-out, as opposed to the broker saying no. */
export function isUnavailable(error: unknown): boolean {
  if (error instanceof KafkaUnavailableError) return true;
  return brokerErrors(error).some((inner) => {
    const code = (inner as { code?: unknown }).code;
    return code === 'PLT_KFK_NETWORK' || code === 'PLT_KFK_TIMEOUT';
  });
}
