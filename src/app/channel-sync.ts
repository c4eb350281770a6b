// The push worker: sends each channel the newest desired quantity per SKU, within its rate, durably and coalesced.

import { createHash } from 'node:crypto';
import { availableToSell, channelPolicyOf } from '../core/index.js';
import type { ChannelPolicy, LedgerState, SkuState } from '../core/index.js';
import type { ChannelConnector, ChannelPush, PushApplied, PushResult } from '../adapters/channels/connector.js';
import { ChannelError } from '../adapters/channels/errors.js';
import { allSkus } from './engine.js';
import type { CommittedBatch } from './engine.js';
import type { CommandBus, CommandInput } from './ports.js';

/** Identifies one quantity shown on one channel. */
export interface ChannelKey {
  tenant: string;
  channel: string;
  sku: string;
}

/** A new desired quantity, written by the engine in the same transaction as the events that caused it. */
export interface DesiredChange extends ChannelKey {
  quantity: number;
  /**
   * When the change was committed (projected), by the node's clock: lag and propagation latency count from it.
   * Never the event's own time, which an import or a source keeps from the past.
   */
  changedAtMs: number;
  /** Log position of the event that caused the change. */
  position: number;
  /**
   * What orders this quantity among the SKU's on the channel, the same on every node: the SKU's version plus
   * the channel policy's (desiredVersion). Absent: the row counts its own changes.
   */
  version?: number;
  /**
   * Units this batch recorded as sold on this very channel (its orders, reported to the ledger): the channel took
   * them off its own level, so the level last acknowledged is that much lower now, and the row is pushed even
   * when its quantity is unchanged (held at `maxUnits`, say), lest the channel go on showing fewer.
   */
  soldOnChannel?: number;
}

export interface DesiredRow extends ChannelKey {
  quantity: number;
  /** Bumped on every change of the desired quantity; a push carries the version it was made from. */
  version: number;
  /** Time of the oldest change the channel has not acknowledged yet; null once the channel shows the newest. */
  changedAtMs: number | null;
  causePosition: number;
  pushedQuantity: number | null;
  pushedVersion: number | null;
  /** What the channel last confirmed it shows: the `previousQuantity` of the next compare-and-set. */
  ackedQuantity: number | null;
  ackedVersion: number | null;
  ackedAtMs: number | null;
  attempts: number;
  /** When the row should be pushed; null while the channel is known to show the newest quantity. */
  nextAttemptMs: number | null;
  lastError: string | null;
  /** Set when the last push failed for good (not by retrying); cleared by the next acknowledgement. */
  failedAtMs: number | null;
  /**
   * A push of a compare-and-set channel whose answer is in doubt (it may still land): it is sent again, exactly,
   * before any newer quantity, until the channel answers it for good. Null when no answer is in doubt.
   */
  inDoubt: InDoubtPush | null;
}

/**
 * What a push in doubt asked, so it can be sent again as it was: the same fields make the same idempotency key
 * (idempotencyKeyOf). Kept in the outbox, not in memory: a restart (a deploy, a crash) is when pushes are most
 * often left unanswered, and a request sent before it can still be applied after it; pushing the newer quantity
 * under a new key against the same compare base would let that late request overwrite it (A-B-A).
 */
export interface InDoubtPush {
  version: number;
  quantity: number;
  previousQuantity: number | null;
}

/** What the worker needs from the desired-state store (the SQLite channel outbox implements it). */
export interface DesiredStore {
  due(nowMs: number, limit: number, channel?: string): DesiredRow[];
  nextDueAfter(afterMs: number): number | null;
  /** `inDoubt`: the push, in doubt from now until it is answered; undefined leaves the row's as it is. */
  markPushed(key: ChannelKey, version: number, quantity: number, inDoubt?: InDoubtPush | null): void;
  markAcked(key: ChannelKey, version: number, quantity: number, ackedAtMs: number): boolean;
  /** `inDoubt`: the push to send again (or null: none) from now on; undefined leaves the row's as it is. */
  markRetry(key: ChannelKey, nextAttemptMs: number, error: string, inDoubt?: InDoubtPush | null): void;
  markFailed(key: ChannelKey, nextAttemptMs: number, error: string, failedAtMs: number, inDoubt?: InDoubtPush | null): void;
  markMismatch(key: ChannelKey, actual: number, nextAttemptMs: number, error: string): void;
  defer(tenant: string, channel: string, untilMs: number): number;
  /** Runs `work` in one transaction: the worker's bookkeeping costs one commit per round, not one per push. */
  batch(work: () => void): void;
}

export type PushOutcome = 'ok' | 'retry' | 'failed';

export interface SyncMetrics {
  /** One push answered; `latencyMs` (for ok) is the propagation latency: acknowledged minus changed. */
  pushed(channel: string, outcome: PushOutcome, latencyMs?: number): void;
}

/** The subset of a pino logger the worker uses. */
export interface SyncLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  /** When a channel that was refusing pushes acknowledges one again; not logged when absent. */
  info?(fields: object, message: string): void;
}

export interface SyncTimer {
  set(callback: () => void, delayMs: number): unknown;
  clear(handle: unknown): void;
}

export interface ChannelSyncOptions {
  outbox: DesiredStore;
  connectors: ReadonlyMap<string, ChannelConnector>;
  bus: CommandBus;
  clock: { nowMs(): number };
  /** Uniform in [0, 1): the jitter of retries. */
  random: () => number;
  /** Defaults to unref'd setTimeout: the worker never keeps a process alive on its own. */
  timer?: SyncTimer;
  log?: SyncLogger;
  metrics?: SyncMetrics;
  /**
   * Whether this node pushes a tenant's channel now (Kafka: it owns the tenant's partition, or the channel is
   * `versionOrdered`). Absent: every one. The rows of the others stay in the outbox, untouched, for when the
   * node takes them over.
   */
  owns?: (tenant: string, channel: string) => boolean;
}

export const syncLimits = {
  backoffBaseMs: 100,
  backoffCapMs: 30_000,
  /** A channel asking to wait longer than this is waited on for this long, then asked again. */
  retryAfterMsMax: 10 * 60_000,
  /** A push that failed for good is tried again after this long: a fixed mapping or token may fix it. */
  failedRetryDelayMs: 15 * 60_000,
  /** Compare-and-set refusals retried at once before backing off: a channel selling fast may refuse a few. */
  mismatchImmediateRetriesMax: 3,
  /**
   * After those, a refused compare-and-set waits at most this long: a refusal means the channel is selling,
   * which is when a stale quantity there oversells, so it is never treated like an outage.
   */
  mismatchBackoffCapMs: 200,
  /**
   * How often a channel of a tenant another node pushes is looked at again. A takeover also kicks the worker,
   * so this bounds the wait only if that kick is missed.
   */
  notOwnedRecheckMs: 1_000,
  /** Due rows read per channel per round. */
  dueBatchMax: 256,
  /** The worker looks at the outbox at least this often, even when nothing kicked it. */
  fallbackPollMs: 1_000,
  /** A token bucket holds this many seconds of a channel's rate: the largest burst it sends. */
  burstSeconds: 1,
  stopWaitMsMax: 10_000,
  recordQueueMax: 10_000,
  recordBatchMax: 512,
  /** The schema's bound on `sync_complete.latencyMs`. */
  latencyMsMax: 2_678_400_000,
  /**
   * A channel's retried pushes, and its failed ones, are each logged at most once in this long (the first at
   * once): a channel that is down logs a line a minute with the count since the last, not a line a push.
   */
  refusalLogIntervalMs: 60_000,
} as const;

/** What a lane has logged of its refused pushes of one kind, and what it has counted since. */
interface RefusalLog {
  loggedAtMs: number;
  /** Pushes of this kind refused since the last line about them. */
  unlogged: number;
}

interface Lane {
  channel: string;
  connector: ChannelConnector;
  refusals: { retry: RefusalLog; failed: RefusalLog };
  /** A refusal was logged since the last acknowledgement: the next one is logged too, as the channel's recovery. */
  troubled: boolean;
  inflight: Map<string, Promise<void>>;
  /** The token bucket of the channel's rate limit; unlimited when the rate is not finite. */
  tokens: number;
  tokensMax: number;
  refilledAtMs: number;
}

const defaultTimer: SyncTimer = {
  set: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A row's key as one string, for maps keyed by tenant, channel and SKU. */
export function keyText(key: ChannelKey): string {
  return `${key.tenant}\u0000${key.channel}\u0000${key.sku}`;
}

/** Same push, same key: a channel that already applied it answers from its idempotency store. */
export function idempotencyKeyOf(push: Omit<ChannelPush, 'idempotencyKey'>): string {
  const text = [push.tenant, push.channel, push.sku, push.version, push.quantity, push.previousQuantity ?? '-'].join('\u0000');
  return `sl-${createHash('sha256').update(text).digest('base64url').slice(0, 32)}`;
}

/**
 * The row as it is pushed now. A compare-and-set channel gets the push in doubt again, exactly (same quantity,
 * compare base and version, so the same idempotency key), until it answers it for good: a request that timed out
 * may still be applied later, and a newer push compared against the same base would be overwritten by it. Only
 * then is the newest quantity pushed. A version-ordered channel ignores a late older push by itself.
 */
export function pushedRowOf(connector: ChannelConnector, row: DesiredRow): DesiredRow {
  const doubt = row.inDoubt;
  if (doubt === null || connector.versionOrdered === true) return row;
  return { ...row, version: doubt.version, quantity: doubt.quantity, ackedQuantity: doubt.previousQuantity };
}

/**
 * What the row keeps in doubt after a refused push: that push when it may have been applied, nothing when the
 * channel said it was not, and what it had when the answer says neither (throttled, never sent).
 */
function inDoubtAfter(connector: ChannelConnector, pushed: DesiredRow, applied: PushApplied | undefined): InDoubtPush | null | undefined {
  if (connector.versionOrdered === true) return null;
  if (applied === 'unknown') return { version: pushed.version, quantity: pushed.quantity, previousQuantity: pushed.ackedQuantity };
  return applied === 'no' ? null : undefined;
}

/** Full jitter: uniform in [0, min(cap, base * 2^(attempts-1))), so retries of many rows spread out. */
export function backoffMs(attempts: number, random: () => number): number {
  const ceilingMs = Math.min(syncLimits.backoffCapMs, syncLimits.backoffBaseMs * 2 ** Math.max(0, attempts - 1));
  return Math.floor(random() * ceilingMs);
}

function isPowerOfTwo(count: number): boolean {
  return count > 0 && (count & (count - 1)) === 0;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class ChannelSync {
  private readonly lanes = new Map<string, Lane>();
  private readonly writes: Array<() => void> = [];
  private readonly pausedUntilMs = new Map<string, number>();
  private records: CommandInput[] = [];
  private recording: Promise<void> | undefined;
  private draining = false;
  private running = false;
  private pumpScheduled = false;
  private wakeHandle: unknown;
  private readonly timer: SyncTimer;
  private readonly counters = { recordsDropped: 0, recordErrors: 0, writeErrors: 0 };

  constructor(private readonly options: ChannelSyncOptions) {
    this.timer = options.timer ?? defaultTimer;
    for (const [channel, connector] of options.connectors) {
      if (!Number.isInteger(connector.maxConcurrency) || connector.maxConcurrency < 1) {
        throw new ChannelError('CHANNEL_CONFIG_INVALID', `channel ${channel}: maxConcurrency must be a positive integer`);
      }
      if (!(connector.ratePerSecond > 0)) throw new ChannelError('CHANNEL_CONFIG_INVALID', `channel ${channel}: ratePerSecond must be positive`);
      const tokensMax = Math.max(1, connector.ratePerSecond * syncLimits.burstSeconds);
      const refusals = { retry: { loggedAtMs: Number.NEGATIVE_INFINITY, unlogged: 0 }, failed: { loggedAtMs: Number.NEGATIVE_INFINITY, unlogged: 0 } };
      this.lanes.set(channel, { channel, connector, refusals, troubled: false, inflight: new Map(), tokens: tokensMax, tokensMax, refilledAtMs: options.clock.nowMs() });
    }
  }

  /** Starts pushing; rows left due by an earlier process (pushed, never acknowledged) go first. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.kick();
  }

  /** Call after each commit: the worker looks for due rows right after the current turn, not on a timer. */
  kick(): void {
    // With no channel to push to there is nothing to look for: a commit costs the worker nothing.
    if (!this.running || this.pumpScheduled || this.lanes.size === 0) return;
    this.pumpScheduled = true;
    // After the current turn, so every commit of this turn is seen by one round.
    setImmediate(() => this.pump());
  }

  /** Stops taking new pushes and waits, at most `stopWaitMsMax`, for those in flight and their records. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.disarm();
    const pending: Array<Promise<void>> = [];
    for (const lane of this.lanes.values()) pending.push(...lane.inflight.values());
    let expired: unknown;
    const deadline = new Promise<void>((resolve) => { expired = this.timer.set(resolve, syncLimits.stopWaitMsMax); });
    await Promise.race([Promise.allSettled(pending).then(() => this.recording), deadline]);
    this.timer.clear(expired);
    this.applyWrites();
    if (this.records.length > 0) {
      this.options.log?.warn({ records: this.records.length }, 'channel sync stopped before recording every acknowledged push');
    }
  }

  /** Numbers for tests and health pages. */
  stats(): { inFlight: number; recordsQueued: number; recordsDropped: number; recordErrors: number; writeErrors: number } {
    let inFlight = 0;
    for (const lane of this.lanes.values()) inFlight += lane.inflight.size;
    return { inFlight, recordsQueued: this.records.length, ...this.counters };
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (!this.running) return;
    this.applyWrites();
    const nowMs = this.options.clock.nowMs();
    let wakeMs = nowMs + syncLimits.fallbackPollMs;
    for (const lane of this.lanes.values()) wakeMs = Math.min(wakeMs, this.pumpLane(lane, nowMs));
    // A round that could not write its set-asides would find the same rows again: no looking again at once.
    if (!this.applyWrites()) wakeMs = Math.max(wakeMs, nowMs + syncLimits.backoffBaseMs);
    const nextDueMs = this.options.outbox.nextDueAfter(nowMs);
    if (nextDueMs !== null) wakeMs = Math.min(wakeMs, nextDueMs);
    this.arm(Math.max(0, wakeMs - nowMs));
  }

  /** Starts what the lane's limits allow; returns when the lane wants to be looked at again. */
  private pumpLane(lane: Lane, nowMs: number): number {
    const free = lane.connector.maxConcurrency - lane.inflight.size;
    if (free <= 0) return Number.POSITIVE_INFINITY;
    // Rows in flight stay due until acknowledged (so a crash leaves them due); read past them.
    const rows = this.options.outbox.due(nowMs, Math.min(syncLimits.dueBatchMax, lane.inflight.size + free), lane.channel);
    let wakeMs = Number.POSITIVE_INFINITY;
    const deferred = new Set<string>();
    const starting: DesiredRow[] = [];
    for (const row of rows) {
      if (lane.inflight.size + starting.length >= lane.connector.maxConcurrency) break;
      // A channel is one tenant's (the configuration refuses two with one id). While another node owns that
      // tenant the lane waits, writing nothing: its rows stay as they are, due, for when this node takes over.
      if (this.options.owns?.(row.tenant, row.channel) === false) {
        wakeMs = Math.min(wakeMs, nowMs + syncLimits.notOwnedRecheckMs);
        break;
      }
      if (lane.inflight.has(keyText(row))) continue;
      const pausedUntilMs = this.pausedUntil(row.tenant, row.channel, nowMs);
      if (pausedUntilMs !== undefined) {
        // Out of the due set durably, so a throttled tenant's rows cannot crowd out other tenants'.
        if (!deferred.has(row.tenant)) this.writes.push(() => { this.options.outbox.defer(row.tenant, row.channel, pausedUntilMs); });
        deferred.add(row.tenant);
        wakeMs = Math.min(wakeMs, pausedUntilMs);
        continue;
      }
      const waitMs = this.takeToken(lane, nowMs);
      if (waitMs > 0) {
        wakeMs = Math.min(wakeMs, nowMs + waitMs);
        break;
      }
      starting.push(row);
    }
    // The outbox cannot be written: looked at again after a pause, not at once.
    if (!this.startPushes(lane, starting)) return Math.min(wakeMs, nowMs + syncLimits.backoffBaseMs);
    return wakeMs;
  }

  /** Takes a token, or says how long until one is there. */
  private takeToken(lane: Lane, nowMs: number): number {
    const rate = lane.connector.ratePerSecond;
    if (!Number.isFinite(rate)) return 0;
    const elapsedMs = Math.max(0, nowMs - lane.refilledAtMs);
    lane.tokens = Math.min(lane.tokensMax, lane.tokens + (elapsedMs * rate) / 1000);
    lane.refilledAtMs = nowMs;
    if (lane.tokens >= 1) {
      lane.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - lane.tokens) * 1000) / rate));
  }

  private pausedUntil(tenant: string, channel: string, nowMs: number): number | undefined {
    const name = `${tenant}\u0000${channel}`;
    const untilMs = this.pausedUntilMs.get(name);
    if (untilMs === undefined) return undefined;
    if (untilMs > nowMs) return untilMs;
    this.pausedUntilMs.delete(name);
    return undefined;
  }

  /**
   * Starts the round's pushes. To a compare-and-set channel they are marked in doubt first, together, in one
   * write: after a crash while one is out, the first push is that one again (same key), never a newer one it could
   * land after. False when that write failed: nothing is sent.
   */
  private startPushes(lane: Lane, due: readonly DesiredRow[]): boolean {
    const rows = due.map((row) => pushedRowOf(lane.connector, row));
    if (lane.connector.versionOrdered === true) {
      for (const row of rows) this.writes.push(() => this.options.outbox.markPushed(row, row.version, row.quantity));
    } else if (rows.length > 0) {
      try {
        this.options.outbox.batch(() => {
          for (const row of rows) this.options.outbox.markPushed(row, row.version, row.quantity, { version: row.version, quantity: row.quantity, previousQuantity: row.ackedQuantity });
        });
      } catch (error) {
        this.counters.writeErrors += 1;
        this.options.log?.error({ error: errorText(error), channel: lane.channel, pushes: rows.length }, 'channel pushes not sent: they could not be marked in doubt first');
        return false;
      }
    }
    for (const row of rows) {
      const key = keyText(row);
      const task = this.push(lane, row).finally(() => {
        lane.inflight.delete(key);
        // Stopped: no round will come to write the answer down, so write it now.
        if (this.running) this.kick();
        else this.applyWrites();
      });
      lane.inflight.set(key, task);
    }
    return true;
  }

  /** Sends the row as `pushedRowOf` made it; every answer below is about that push, not the row's newest quantity. */
  private async push(lane: Lane, row: DesiredRow): Promise<void> {
    const request = {
      tenant: row.tenant, channel: row.channel, sku: row.sku, quantity: row.quantity,
      previousQuantity: row.ackedQuantity, version: row.version,
    };
    let result: PushResult;
    try {
      result = await lane.connector.push({ ...request, idempotencyKey: idempotencyKeyOf(request) });
    } catch (error) {
      // A connector should answer `retry` itself; a throw is treated the same, so no row is ever stuck. It may
      // have thrown after sending, so the push is in doubt.
      result = { kind: 'retry', reason: `connector threw: ${errorText(error)}`, applied: 'unknown' };
    }
    this.settle(lane, row, result);
  }

  private settle(lane: Lane, row: DesiredRow, result: PushResult): void {
    switch (result.kind) {
      case 'ok': return this.onAcknowledged(lane, row);
      // The channel already shows what we want: as good as an acknowledgement.
      case 'mismatch': return result.actual === row.quantity ? this.onAcknowledged(lane, row) : this.onMismatch(row, result.actual);
      case 'retry': return this.onRetry(lane, row, result.reason, result.retryAfterMs, result.applied);
      case 'failed': return this.onFailed(lane, row, result.reason, result.applied);
    }
  }

  private onAcknowledged(lane: Lane, row: DesiredRow): void {
    const ackedAtMs = this.options.clock.nowMs();
    if (lane.troubled) this.logRecovery(lane, row);
    this.writes.push(() => { this.options.outbox.markAcked(row, row.version, row.quantity, ackedAtMs); });
    const latencyMs = Math.min(syncLimits.latencyMsMax, Math.max(0, Math.round(ackedAtMs - (row.changedAtMs ?? ackedAtMs))));
    this.options.metrics?.pushed(row.channel, 'ok', latencyMs);
    this.record({ type: 'record_sync', tenant: row.tenant, channel: row.channel, sku: row.sku, quantity: row.quantity, latencyMs, source: 'sync' });
  }

  private onMismatch(row: DesiredRow, actual: number): void {
    const nowMs = this.options.clock.nowMs();
    const attempts = row.attempts + 1;
    const nextAttemptMs = attempts <= syncLimits.mismatchImmediateRetriesMax
      ? nowMs
      : nowMs + Math.min(syncLimits.mismatchBackoffCapMs, backoffMs(attempts, this.options.random));
    const error = `compare-and-set refused: the channel shows ${actual}, not ${row.ackedQuantity ?? 'nothing'}`;
    this.writes.push(() => this.options.outbox.markMismatch(row, actual, nextAttemptMs, error));
    this.options.metrics?.pushed(row.channel, 'retry');
  }

  private onRetry(lane: Lane, row: DesiredRow, reason: string, retryAfterMs: number | undefined, applied?: PushApplied): void {
    const nowMs = this.options.clock.nowMs();
    const attempts = row.attempts + 1;
    let delayMs = backoffMs(attempts, this.options.random);
    // An answer in doubt (the same request still running, a 5xx after the work) is about this push alone: it waits,
    // the channel's other SKUs do not.
    if (retryAfterMs !== undefined) delayMs = Math.min(syncLimits.retryAfterMsMax, Math.max(0, retryAfterMs));
    if (retryAfterMs !== undefined && applied !== 'unknown') {
      // Throttling is per shop, not per SKU: hold every push of this tenant on this channel.
      const name = `${row.tenant}\u0000${row.channel}`;
      this.pausedUntilMs.set(name, Math.max(this.pausedUntilMs.get(name) ?? 0, nowMs + delayMs));
    }
    const inDoubt = inDoubtAfter(lane.connector, row, applied);
    this.writes.push(() => this.options.outbox.markRetry(row, nowMs + delayMs, reason, inDoubt));
    this.options.metrics?.pushed(row.channel, 'retry');
    this.logRefusal(lane, 'retry', nowMs, { tenant: row.tenant, channel: row.channel, sku: row.sku, attempts, reason, delayMs }, 'channel push will be retried');
  }

  private onFailed(lane: Lane, row: DesiredRow, reason: string, applied?: PushApplied): void {
    const nowMs = this.options.clock.nowMs();
    const inDoubt = inDoubtAfter(lane.connector, row, applied);
    this.writes.push(() => this.options.outbox.markFailed(row, nowMs + syncLimits.failedRetryDelayMs, reason, nowMs, inDoubt));
    this.options.metrics?.pushed(row.channel, 'failed');
    this.logRefusal(lane, 'failed', nowMs, { tenant: row.tenant, channel: row.channel, sku: row.sku, reason }, 'channel push failed; it will be tried again later');
  }

  /**
   * Logs a refused push (with the channel's answer) if none of its kind was logged on this channel within
   * `refusalLogIntervalMs`, with how many were refused since that line (`retried` or `failed`); else counts it.
   */
  private logRefusal(lane: Lane, kind: 'retry' | 'failed', nowMs: number, fields: Record<string, unknown>, message: string): void {
    const refusals = lane.refusals[kind];
    refusals.unlogged += 1;
    if (nowMs - refusals.loggedAtMs < syncLimits.refusalLogIntervalMs) return;
    this.options.log?.warn({ ...fields, [kind === 'retry' ? 'retried' : 'failed']: refusals.unlogged }, message);
    refusals.loggedAtMs = nowMs;
    refusals.unlogged = 0;
    lane.troubled = true;
  }

  /** The first acknowledgement after a refusal was logged, with the refusals counted since the last lines. */
  private logRecovery(lane: Lane, row: DesiredRow): void {
    const { retry, failed } = lane.refusals;
    this.options.log?.info?.({ tenant: row.tenant, channel: row.channel, retried: retry.unlogged, failed: failed.unlogged }, 'channel acknowledges pushes again');
    retry.unlogged = 0;
    failed.unlogged = 0;
    lane.troubled = false;
  }

  /** Queues a `record_sync`; pushes never wait for the log, and records are sent in batches. */
  private record(command: CommandInput): void {
    if (this.records.length >= syncLimits.recordQueueMax) {
      this.records.shift();
      this.counters.recordsDropped += 1;
      if (isPowerOfTwo(this.counters.recordsDropped)) {
        this.options.log?.error({ dropped: this.counters.recordsDropped }, 'sync records dropped: the command bus is not keeping up');
      }
    }
    this.records.push(command);
    if (this.draining) return;
    this.draining = true;
    this.recording = this.drainRecords();
  }

  private async drainRecords(): Promise<void> {
    try {
      await this.drainLoop();
    } finally {
      // Cleared in the same turn the loop saw an empty queue, so no record can slip in unseen.
      this.draining = false;
    }
  }

  private async drainLoop(): Promise<void> {
    let failures = 0;
    while (this.records.length > 0) {
      const batch = this.records.splice(0, syncLimits.recordBatchMax);
      try {
        const submitted = await this.options.bus.submitMany(batch);
        failures = 0;
        for (const { outcome } of submitted) {
          if (outcome.rejection !== undefined) this.options.log?.warn({ rejection: outcome.rejection }, 'sync record refused');
        }
      } catch (error) {
        failures += 1;
        this.counters.recordErrors += 1;
        this.options.log?.error({ error: errorText(error), records: batch.length }, 'sync records could not be written; retrying');
        if (!this.running) return;
        // The batch goes back in front, within the queue's bound, so order and the limit both hold.
        this.records = [...batch, ...this.records].slice(0, syncLimits.recordQueueMax);
        await this.sleep(backoffMs(failures, this.options.random));
      }
    }
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => { this.timer.set(resolve, delayMs); });
  }

  /** Writes the round's bookkeeping in one transaction, before the outbox is read again; false when that failed. */
  private applyWrites(): boolean {
    if (this.writes.length === 0) return true;
    const writes = this.writes.splice(0);
    try {
      this.options.outbox.batch(() => { for (const write of writes) write(); });
      return true;
    } catch (error) {
      // Lost bookkeeping costs at most a repeated push, which compare-and-set and idempotency keys absorb.
      this.counters.writeErrors += 1;
      this.options.log?.error({ error: errorText(error), writes: writes.length }, 'channel outbox bookkeeping could not be written');
      return false;
    }
  }

  private arm(delayMs: number): void {
    this.disarm();
    this.wakeHandle = this.timer.set(() => {
      this.wakeHandle = undefined;
      this.kick();
    }, delayMs);
  }

  private disarm(): void {
    if (this.wakeHandle === undefined) return;
    this.timer.clear(this.wakeHandle);
    this.wakeHandle = undefined;
  }
}

/** Units each channel sold itself in the batch (direct sales, reported by the channel), by tenant, channel and SKU. */
function soldOnChannels(batch: CommittedBatch): Map<string, number> {
  const sold = new Map<string, number>();
  for (const { event } of batch.events) {
    if (event.type !== 'order_committed' || event.data.direct !== true) continue;
    for (const line of event.data.lines) {
      const key = keyText({ tenant: event.tenant, channel: event.data.channel, sku: line.sku });
      sold.set(key, (sold.get(key) ?? 0) + line.quantity);
    }
  }
  return sold;
}

function desiredRowsOf(
  state: LedgerState, tenant: string, skus: Iterable<string> | typeof allSkus, channels: readonly string[], cause: { position: number; changedAtMs: number },
): DesiredChange[] {
  const tenantState = state.tenants.get(tenant);
  if (tenantState === undefined) return [];
  const list = skus === allSkus ? [...tenantState.skus.keys()] : [...skus];
  const rows: DesiredChange[] = [];
  for (const channel of channels) {
    const policy = channelPolicyOf(tenantState, channel);
    for (const sku of list) {
      const state = tenantState.skus.get(sku);
      rows.push({ tenant, channel, sku, quantity: availableToSell(policy, state), version: desiredVersion(policy, state), ...cause });
    }
  }
  return rows;
}

/**
 * The version of a channel's quantity of a SKU, from the replicated state alone, so that every node (and a
 * node whose outbox was lost) numbers a change alike: a webhook receiver keeps the highest version, and would
 * ignore a node that counted from 1. The quantity depends on the SKU and the policy; each change of either
 * raises its version, so a new quantity always has a higher version than the one before it.
 */
export function desiredVersion(policy: ChannelPolicy, sku: SkuState | undefined): number {
  return (sku?.version ?? 0) + (policy.version ?? 0);
}

/**
 * What keeps desired quantities in step with the ledger: for each SKU a batch touched, each channel of its
 * tenant gets `availableToSell`. The embedded engine writes these rows in the batch's own transaction.
 * `clock` dates the change when the batch is projected (see `DesiredChange.changedAtMs`).
 */
export function desiredProjection(
  channelsOf: (tenant: string) => readonly string[], clock: { nowMs(): number } = { nowMs: Date.now },
): (batch: CommittedBatch, state: LedgerState) => DesiredChange[] {
  return (batch, state) => {
    const positions = new Map<string, number>();
    for (const { position, event } of batch.events) positions.set(event.tenant, position);
    const changedAtMs = clock.nowMs();
    const rows: DesiredChange[] = [];
    for (const [tenant, touched] of batch.touched) {
      const position = positions.get(tenant) ?? batch.position;
      if (position === undefined || touched.size === 0) continue;
      rows.push(...desiredRowsOf(state, tenant, touched.has(allSkus) ? allSkus : touched, channelsOf(tenant), { position, changedAtMs }));
    }
    const sold = soldOnChannels(batch);
    if (sold.size === 0) return rows;
    for (const row of rows) {
      const units = sold.get(keyText(row));
      if (units !== undefined) row.soldOnChannel = units;
    }
    return rows;
  };
}

/**
 * Every SKU's desired quantity on every channel, from a whole state: upsert it once at start, so a
 * channel added to the configuration gets its rows before any SKU changes (unchanged rows are no-ops).
 */
export function desiredOfState(
  state: LedgerState, channelsOf: (tenant: string) => readonly string[], changedAtMs: number, position: number,
): DesiredChange[] {
  const rows: DesiredChange[] = [];
  for (const tenant of state.tenants.keys()) rows.push(...desiredRowsOf(state, tenant, allSkus, channelsOf(tenant), { position, changedAtMs }));
  return rows;
}
