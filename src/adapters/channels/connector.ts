// What every channel connector does: push a SKU's available-to-sell, and read back what the channel shows.

export interface ChannelPush {
  tenant: string;
  channel: string;
  sku: string;
  quantity: number;
  /** The last quantity the channel acknowledged; null if it never did. */
  previousQuantity: number | null;
  version: number;
  idempotencyKey: string;
}

export type PushResult =
  | { kind: 'ok' }
  /** Compare-and-set failed: the channel currently shows `actual`. */
  | { kind: 'mismatch'; actual: number }
  /** Throttled, 5xx, timeout, network: the same push may succeed later. */
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  /** Will not succeed by retrying (bad mapping, a 4xx user error). */
  | { kind: 'failed'; reason: string };

export interface ChannelConnector {
  readonly channel: string;
  readonly maxConcurrency: number;
  readonly ratePerSecond: number;
  push(push: ChannelPush): Promise<PushResult>;
  read(tenant: string, skus: string[]): Promise<Map<string, number>>;
  close(): Promise<void>;
}
