// A local estimate of Shopify's leaky bucket, fed by each response's throttleStatus, so we wait before being throttled.

import { channelLimits } from '../limits.js';

/** `extensions.cost.throttleStatus` of a GraphQL Admin API response. */
export interface ThrottleStatus {
  maximumAvailable: number;
  currentlyAvailable: number;
  restoreRate: number;
}

export class CostBucket {
  #status: ThrottleStatus | undefined;
  #observedAtMs = 0;

  /** Replaces the estimate with what Shopify just reported. */
  observe(status: ThrottleStatus, nowMs: number): void {
    this.#status = { ...status };
    this.#observedAtMs = nowMs;
  }

  /** Points available now by the estimate; undefined before Shopify reported anything. */
  availableAt(nowMs: number): number | undefined {
    const status = this.#status;
    if (status === undefined) return undefined;
    const restored = (status.restoreRate * Math.max(nowMs - this.#observedAtMs, 0)) / 1000;
    return Math.min(status.maximumAvailable, status.currentlyAvailable + restored);
  }

  /** How long to wait before a request of `cost` points fits; 0 when it fits or nothing is known yet. */
  delayMs(cost: number, nowMs: number): number {
    const status = this.#status;
    const available = this.availableAt(nowMs);
    if (status === undefined || available === undefined) return 0;
    const needed = Math.min(cost, status.maximumAvailable) - available;
    if (needed <= 0) return 0;
    return status.restoreRate > 0 ? Math.ceil((needed / status.restoreRate) * 1000) : channelLimits.retryAfterMsDefault;
  }

  /** Counts a request as sent, so requests in flight together do not all believe the bucket is full. */
  take(cost: number, nowMs: number): void {
    const status = this.#status;
    const available = this.availableAt(nowMs);
    if (status === undefined || available === undefined) return;
    this.#status = { ...status, currentlyAvailable: available - cost };
    this.#observedAtMs = nowMs;
  }
}

/** The wait Shopify implies when it throttles: the missing points over the restore rate. */
export function throttledDelayMs(requestedCost: number | undefined, status: ThrottleStatus | undefined): number {
  if (requestedCost === undefined || status === undefined || status.restoreRate <= 0) return channelLimits.retryAfterMsDefault;
  const needed = Math.min(requestedCost, status.maximumAvailable) - status.currentlyAvailable;
  if (needed <= 0) return channelLimits.retryAfterMsDefault;
  return Math.min(Math.ceil((needed / status.restoreRate) * 1000), channelLimits.retryAfterMsMax);
}
