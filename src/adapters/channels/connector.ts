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

/**
 * What the channel did with a push that did not succeed, as far as the connector can tell: `unknown` when the
 * request was sent and its answer was lost or says nothing (a timeout, a connection dropped after sending, a 5xx,
 * the same request still being processed), `no` when the channel processed it and did not apply it. Absent: the
 * request was not sent or not processed (throttled, refused before it ran), which says nothing about an earlier one.
 */
export type PushApplied = 'unknown' | 'no';

export type PushResult =
  | { kind: 'ok' }
  /** Compare-and-set failed: the channel currently shows `actual`. */
  | { kind: 'mismatch'; actual: number }
  /** Throttled, 5xx, timeout, network: the same push may succeed later. */
  | { kind: 'retry'; reason: string; retryAfterMs?: number; applied?: PushApplied }
  /** Will not succeed by retrying (bad mapping, a 4xx user error). */
  | { kind: 'failed'; reason: string; applied?: PushApplied };

export interface ChannelConnector {
  readonly channel: string;
  readonly maxConcurrency: number;
  readonly ratePerSecond: number;
  /**
   * The channel orders pushes by their `version` (webhook receivers keep the highest), so a copy of a push is
   * ignored by it. In a cluster every node pushes such a channel: the receiver keeps the highest version any
   * node sent, which an outbox that numbered its own changes (before versions came from the ledger) may have
   * set above what another node would send. A channel that checks the quantity it replaces (compare-and-set)
   * leaves this unset and is pushed only by the node that owns its tenant.
   */
  readonly versionOrdered?: boolean;
  /**
   * Answers the push. A channel that is not `versionOrdered` must give the same push (same fields, same
   * `idempotencyKey`) the same effect however often it is sent: after an answer in doubt (`applied: 'unknown'`)
   * the sync worker sends that push again, unchanged, until the channel gives a definite answer.
   */
  push(push: ChannelPush): Promise<PushResult>;
  read(tenant: string, skus: string[]): Promise<Map<string, number>>;
  close(): Promise<void>;
}
