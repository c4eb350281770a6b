// Operating errors of the channel connectors: a stable code, whether a retry can help, and never a secret in the text.

import { AppError } from '../../app/engine.js';

export type ChannelErrorCode =
  /** The channel configuration does not match schema/channel-config.schema.json. */
  | 'CHANNEL_CONFIG_INVALID'
  /** An environment variable named by the configuration (a token or secret) is not set. */
  | 'CHANNEL_SECRET_MISSING'
  /** Timeout, network error, 5xx or throttling: the same call may succeed later. */
  | 'CHANNEL_UNAVAILABLE'
  /** The channel refused the call and will refuse it again (4xx, user error, unknown SKU). */
  | 'CHANNEL_REJECTED'
  /** The channel cannot report what it shows (a signed webhook without a read endpoint). */
  | 'CHANNEL_READ_UNSUPPORTED'
  /** A connector was asked about a tenant it does not serve: a wiring bug. */
  | 'CHANNEL_TENANT_MISMATCH';

/** The HTTP status an API answer would carry if the error reached one: the channel is upstream of us. */
const statusHints: Record<ChannelErrorCode, number> = {
  CHANNEL_CONFIG_INVALID: 500,
  CHANNEL_SECRET_MISSING: 500,
  CHANNEL_UNAVAILABLE: 503,
  CHANNEL_REJECTED: 502,
  CHANNEL_READ_UNSUPPORTED: 501,
  CHANNEL_TENANT_MISMATCH: 500,
};

export class ChannelError extends AppError {
  declare readonly code: ChannelErrorCode;
  readonly retryAfterMs: number | undefined;

  constructor(code: ChannelErrorCode, message: string, options: { retryable?: boolean; retryAfterMs?: number } = {}) {
    super(code, message, options.retryable ?? code === 'CHANNEL_UNAVAILABLE', statusHints[code]);
    this.name = 'ChannelError';
    this.retryAfterMs = options.retryAfterMs;
  }
}
