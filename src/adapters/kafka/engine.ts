// The Kafka engine: commands go through a Kafka topic to the processor that owns their tenant; every node reads a replica of the state.
//
//   submit ─► commands topic (key: tenant) ─► processor of that partition: decide, then one transaction of
//             events + changelog + reply + consumed offset ─► replies topic ─► submit resolves, once this
//             node's replica has read the command's events (read your writes).
//
// See processor.ts for exactly-once and fencing, replica.ts for reads, docs/kafka.md for operating it.

import { setTimeout as sleep } from 'node:timers/promises';
import { firstOutcome, idempotencyRecordsMaxFor } from '../../core/index.js';
import type { Command, InventoryEvent, LedgerState, Outcome, TenantState } from '../../core/index.js';
import { AppError } from '../../app/engine.js';
import type { CommittedBatch, Engine, EventPage } from '../../app/engine.js';
import { oldGenerationLimitBytes } from '../../app/heap.js';
import { importEvents } from '../../app/import-events.js';
import type { ImportResult } from '../../app/import-events.js';
import type { CommandInput, DeadLetter, Submitted } from '../../app/ports.js';
import type { KafkaConfig } from './config.js';
import { isUnavailable, KafkaUnavailableError, withDeadline } from './admin.js';
import { engineTopicNames, kafkaEngineLimits, messageOf, nextDelay, silentLog } from './clients.js';
import type { EngineTopicNames, KafkaEngineLog } from './clients.js';
import { commandInputProblem, deadLetterHeaders, encodeJson, kafkaRecordLimits, nodeIdPattern } from './codec.js';
import type { CommandRecord, CommandReply } from './codec.js';
import { ensureEngineTopics } from './engine-topics.js';
import { Processor } from './processor.js';
import { Replica } from './replica.js';
import { CommandClient } from './rpc.js';

export const kafkaEngineDefaults = {
  submitTimeoutMs: 15_000,
  startTimeoutMs: 120_000,
  expiryIntervalMs: 1_000,
  /** The least time a submit waits for its events to reach this node's replica, however late the answer came. */
  readYourWritesWaitMsMin: 1_000,
} as const;

export interface KafkaEngineOptions {
  config: KafkaConfig;
  /** This node's id, unique in the cluster: its replies are addressed to it. Letters, digits and ._-, up to 64. */
  nodeId: string;
  clock?: () => number;
  /** Told of every command this node's processors decided, once durable, with the time since the command was written. */
  onDecided?: (command: Command, outcome: Outcome, latencyMs: number) => void;
  onDeadLetter?: (letter: DeadLetter) => void;
  /**
   * Told when this node's processor moved a commands partition past command records deleted (retention,
   * delete-records) before they were decided, with how many: they were never applied.
   */
  onCommandsLost?: (partition: number, count: number) => void;
  log?: KafkaEngineLog;
  /** Create missing topics at start (default true, for development); in production `stockline topics scaffold` does. */
  createTopics?: boolean;
  /** How long a submit waits for its answer before failing with KAFKA_TIMEOUT (outcome unknown). */
  submitTimeoutMs?: number;
  /** How long start() may take: topics, replica catch-up, group join and restore. */
  startTimeoutMs?: number;
  /** How often owned tenants are checked for holds past their expiry; 0 turns it off. */
  expiryIntervalMs?: number;
  /** Idempotency records a tenant keeps, at most. Default: what a quarter of the heap's old generation holds (idempotencyRecordsMaxFor). */
  idempotencyRecordsMax?: number;
}

export interface ConsumerLag {
  topic: string;
  partition: number;
  /** Records not yet handled: commands not yet decided by the group, or events not yet read by this node's replica. */
  lag: number;
}

export interface AtomicResult {
  applied: boolean;
  results: Submitted[];
}

export class KafkaEngine implements Engine {
  readonly kind = 'kafka' as const;
  readonly topics: EngineTopicNames;
  readonly nodeId: string;
  private readonly replica: Replica;
  private readonly rpc: CommandClient;
  private readonly processor: Processor;
  private readonly log: KafkaEngineLog;
  private readonly submitTimeoutMs: number;
  private readonly onDeadLetter: ((letter: DeadLetter) => void) | undefined;
  private readonly config: KafkaConfig;
  private isReady = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** While start cannot reach the brokers: the last failure, which a start that runs out of time reports. */
  private unreachable: string | undefined;

  /** Connects, creates missing topics (unless told not to), catches up and joins the processors; bounded by startTimeoutMs. */
  static async start(options: KafkaEngineOptions): Promise<KafkaEngine> {
    if (!new RegExp(nodeIdPattern).test(options.nodeId)) throw new Error(`nodeId ${JSON.stringify(options.nodeId)} must match ${nodeIdPattern}`);
    const engine = new KafkaEngine(options);
    const startTimeoutMs = options.startTimeoutMs ?? kafkaEngineDefaults.startTimeoutMs;
    try {
      await withDeadline('start the Kafka engine', startTimeoutMs, engine.open(options.createTopics ?? true));
    } catch (error) {
      await engine.close().catch(() => undefined);
      if (engine.unreachable !== undefined) {
        throw new KafkaUnavailableError(`the Kafka engine could not start within ${startTimeoutMs} ms: the brokers could not be reached (${engine.unreachable})`, { cause: error });
      }
      if (error instanceof KafkaUnavailableError) throw error;
      throw new KafkaUnavailableError(`the Kafka engine could not start: ${messageOf(error)}`, { cause: error });
    }
    return engine;
  }

  private constructor(options: KafkaEngineOptions) {
    const { config, nodeId } = options;
    this.nodeId = nodeId;
    this.log = options.log ?? silentLog;
    this.topics = engineTopicNames(config);
    this.submitTimeoutMs = options.submitTimeoutMs ?? kafkaEngineDefaults.submitTimeoutMs;
    this.replica = new Replica(config, this.topics.events, this.topics.changelog, nodeId, this.log);
    this.rpc = new CommandClient(config, this.topics, nodeId, this.log);
    this.processor = new Processor({
      config, topics: this.topics, nodeId, clock: options.clock ?? Date.now, log: this.log,
      expiryIntervalMs: options.expiryIntervalMs ?? kafkaEngineDefaults.expiryIntervalMs,
      requestExpiry: (tenant, nowMs) => this.requestExpiry(tenant, nowMs),
      idempotencyRecordsMax: options.idempotencyRecordsMax ?? idempotencyRecordsMaxFor(oldGenerationLimitBytes()),
      ...(options.onDecided === undefined ? {} : { onDecided: options.onDecided }),
      ...(options.onDeadLetter === undefined ? {} : { onDeadLetter: options.onDeadLetter }),
      ...(options.onCommandsLost === undefined ? {} : { onCommandsLost: options.onCommandsLost }),
    });
    this.onDeadLetter = options.onDeadLetter;
    this.config = config;
  }

  private async open(createTopics: boolean): Promise<void> {
    await this.untilReachable(() => ensureEngineTopics(this.config, this.topics, this.log, createTopics));
    const steps: Array<() => Promise<void>> = [() => this.replica.start(), () => this.rpc.start(), () => this.processor.start()];
    for (const step of steps) {
      if (this.closed) throw new Error('closed while starting');
      await step();
    }
    this.isReady = true;
    this.log.info(`kafka engine: node ${this.nodeId} ready (commands partitions [${this.processor.partitions().join(', ')}])`);
  }

  /**
   * The first contact with the brokers, tried again with back-off while they cannot be reached (a broker restarting
   * during a rolling deploy): start gives up only at its deadline, which closes the engine and ends these tries.
   */
  private async untilReachable(step: () => Promise<void>): Promise<void> {
    let delayMs: number = kafkaEngineLimits.retryDelayMs;
    for (;;) {
      try {
        await step();
        this.unreachable = undefined;
        return;
      } catch (error) {
        if (this.closed || !isUnavailable(error)) throw error;
        this.unreachable = messageOf(error);
        this.log.warn(`kafka engine: the brokers cannot be reached (${messageOf(error)}); trying again in ${delayMs} ms`);
        await sleep(delayMs, undefined, { ref: false });
        delayMs = nextDelay(delayMs);
      }
    }
  }

  ready(): boolean {
    return this.isReady && !this.closed && this.replica.unreachable(Date.now()) === undefined;
  }

  notReadyReason(): string | undefined {
    if (!this.isReady || this.closed) return undefined;
    return this.replica.unreachable(Date.now());
  }

  state(): LedgerState {
    return this.replica.state();
  }

  tenant(tenant: string): TenantState | undefined {
    return this.replica.tenant(tenant);
  }

  /** Positions are this node's, numbered anew above a floor at each start (see replica.ts). */
  position(): number {
    return this.replica.position();
  }

  positionFloor(): number {
    return this.replica.positionFloor;
  }

  /** The replica reads committed events only, and tells subscribers of each as soon as it counts it. */
  committedPosition(): number {
    return this.replica.position();
  }

  async eventsAfter(tenant: string, after: number, limit: number): Promise<EventPage> {
    return this.replica.eventsAfter(tenant, after, limit);
  }

  subscribe(listener: (batch: CommittedBatch) => void): () => void {
    return this.replica.subscribe(listener);
  }

  /** The commands partitions this node's processor owns now. */
  ownedPartitions(): number[] {
    return this.processor.partitions();
  }

  /** Whether this node's processor is assigned the tenant's commands partition now: it pushes the tenant's channels. */
  ownsTenant(tenant: string): boolean {
    return this.processor.ownsKey(tenant);
  }

  /** Told after each assignment of commands partitions to this node. */
  onOwnershipChange(listener: () => void): () => void {
    return this.processor.onAssignment(listener);
  }

  async submit(input: CommandInput): Promise<Submitted> {
    this.checkOpen();
    checkCommand(input, 'input');
    const deadline = Date.now() + this.submitTimeoutMs;
    const reply = await this.rpc.request(input.tenant, { input }, this.submitTimeoutMs);
    const [submitted] = await this.settle(reply, deadline);
    if (submitted === undefined) throw new AppError('KAFKA_PROTOCOL', 'the processor answered without an outcome', false, 500);
    return submitted;
  }

  /**
   * Sent together (one produce request), so commands of one tenant are decided in this order. Checked and admitted
   * whole: a refusal (a bad command, a full queue) sends none, so an error answer never hides applied commands.
   */
  async submitMany(inputs: CommandInput[]): Promise<Submitted[]> {
    this.checkOpen();
    inputs.forEach((input, index) => checkCommand(input, `inputs[${index}]`));
    if (!this.rpc.hasRoomFor(inputs.length)) throw new AppError('OVERLOADED', 'too many commands waiting to be sent to Kafka; retry shortly', true, 503);
    return Promise.all(inputs.map((input) => this.submit(input)));
  }

  /**
   * All or nothing, decided as one record by the tenant's processor (on a copy first, as the embedded
   * engine does). Kafka mode takes groups of one tenant only: two tenants may live on two partitions.
   */
  async submitAtomic(inputs: CommandInput[]): Promise<AtomicResult> {
    this.checkOpen();
    if (inputs.length === 0) return { applied: true, results: [] };
    inputs.forEach((input, index) => checkCommand(input, `atomic[${index}]`));
    const tenant = (inputs[0] as CommandInput).tenant;
    if (inputs.some((input) => input.tenant !== tenant)) {
      throw new AppError('ATOMIC_TENANTS_DIFFER', 'in Kafka mode an all-or-nothing group must be for one tenant', false, 400);
    }
    const record: CommandRecord = { atomic: inputs };
    const bytes = Buffer.byteLength(encodeJson(record));
    if (inputs.length > kafkaRecordLimits.atomicCommandsMax || bytes > kafkaRecordLimits.commandRecordBytesMax - 1024) {
      throw new AppError('PAYLOAD_TOO_LARGE', `an all-or-nothing group may hold ${kafkaRecordLimits.atomicCommandsMax} commands and `
        + `${kafkaRecordLimits.commandRecordBytesMax - 1024} bytes in Kafka mode; this one has ${inputs.length} and ${bytes}`, false, 413);
    }
    const deadline = Date.now() + this.submitTimeoutMs;
    const reply = await this.rpc.request(tenant, record, this.submitTimeoutMs);
    const applied = (reply.results ?? []).every((result) => result.outcome.rejection === undefined);
    // A refused group was not logged: its outcomes' events (trial ids) never reach the replica, so there is nothing to wait for.
    const results = await this.settle(reply, deadline, applied);
    return { applied, results };
  }

  importEvents(_tenant: string, events: InventoryEvent[], idempotencyKey?: string): Promise<ImportResult> {
    return importEvents(this, events, idempotencyKey);
  }

  /** Turns a reply into outcomes, once this node's replica has the events (bounded: a late replica only loses the positions). */
  private async settle(reply: CommandReply, deadline: number, logged = true): Promise<Submitted[]> {
    if (reply.error !== undefined) {
      const status = reply.error.code === 'REPLY_TOO_LARGE' ? 500 : reply.error.code === 'OUTPUT_TOO_LARGE' ? 413 : 400;
      throw new AppError(reply.error.code, reply.error.message, false, status);
    }
    const results = reply.results ?? [];
    if (!logged) return results.map(({ outcome }) => ({ outcome }));
    // A replay (DUPLICATE) has no events of its own, but its answer is read from the replica too (the reservation
    // it made): it waits for the first outcome's events, which another node may have logged a moment ago.
    const lastEvent = results.flatMap((result) => firstOutcome(result.outcome).events).at(-1);
    if (lastEvent !== undefined) {
      const waitMs = Math.max(kafkaEngineDefaults.readYourWritesWaitMsMin, deadline - Date.now());
      if (await this.replica.waitFor(lastEvent.id, waitMs) === undefined) {
        this.log.warn(`kafka engine: event ${lastEvent.id} was committed but this node's replica had not read it after ${waitMs} ms`);
      }
    }
    return results.map(({ outcome }) => {
      const last = outcome.events.at(-1);
      const position = last === undefined ? undefined : this.replica.positionOf(last.id);
      return position === undefined ? { outcome } : { outcome, position };
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new AppError('ENGINE_CLOSED', 'the engine is shutting down', true, 503);
    if (!this.isReady) throw new AppError('NOT_READY', 'the Kafka engine is still starting', true, 503);
  }

  private requestExpiry(tenant: string, nowMs: number): void {
    const record: CommandRecord = { input: { type: 'expire_due', tenant, nowMs, source: 'expiry' } };
    this.rpc.send({ topic: this.topics.commands, key: tenant, value: encodeJson(record) })
      .catch((error: unknown) => this.log.warn(`kafka engine: asking for the expiry of ${tenant}'s holds failed: ${messageOf(error)}`));
  }

  /** Writes the letter to the dead-letter topic (sent in the background) and tells onDeadLetter. */
  deadLetter(letter: DeadLetter): void {
    const headers: Record<string, string> = {
      [deadLetterHeaders.code]: 'UNPROCESSABLE_INPUT',
      [deadLetterHeaders.reason]: letter.reason.slice(0, 1_000),
      [deadLetterHeaders.source]: letter.source.slice(0, 200),
    };
    const value = encodeJson(letter).slice(0, kafkaRecordLimits.deadLetterValueBytesMax);
    this.rpc.send({ topic: this.topics.deadLetter, key: letter.source.slice(0, 200), value, headers })
      .catch((error: unknown) => this.log.error(`kafka engine: a dead letter from ${letter.source} could not be written: ${messageOf(error)}`));
    this.onDeadLetter?.(letter);
  }

  /** Consumer lag for metrics: the processors' group on the commands topic, and this node's replica on the events topic. */
  async consumerLag(): Promise<ConsumerLag[]> {
    const timeoutMs = this.config.timeouts.adminTimeoutMs;
    const [commands, events] = await withDeadline('read the consumer lag', timeoutMs, Promise.all([this.processor.lag(), this.replica.lag()]));
    return [
      ...commands.map((item) => ({ topic: this.topics.commands, ...item })),
      ...events.map((item) => ({ topic: this.topics.events, ...item })),
    ];
  }

  /**
   * Stops taking commands, sends what is queued and waits for the answers already asked for, then
   * finishes the transactions in flight, leaves the group and closes every client; bounded by
   * timeouts.shutdownTimeoutMs.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      const shutdownMs = this.config.timeouts.shutdownTimeoutMs;
      await this.rpc.close(shutdownMs / 2);
      await this.processor.stop(shutdownMs / 2);
      await this.replica.stop(shutdownMs / 4);
    })();
    return this.closing;
  }
}

function checkCommand(input: CommandInput, path: string): void {
  const problem = commandInputProblem(input);
  if (problem !== undefined) throw new AppError('INVALID_COMMAND', `the command is not valid: ${path}${problem}`, false, 400);
}
