// Given/when/then specs for the pure ledger (Emmett style), with ids and times stamped deterministically.

import { expect } from 'vitest';
import { availableToSell, channelPolicyOf } from '../../src/core/availability.js';
import type { Command, CommandMeta } from '../../src/core/commands.js';
import { decide } from '../../src/core/decide.js';
import type { InventoryEvent } from '../../src/core/events.js';
import { evolve, replay } from '../../src/core/evolve.js';
import { execute } from '../../src/core/ledger.js';
import type { Execution } from '../../src/core/ledger.js';
import type { Outcome, Rejection, RejectionCode } from '../../src/core/rejections.js';
import { toSnapshot } from '../../src/core/snapshot.js';
import { absentTenant, availableOf, initialState, stockAt } from '../../src/core/state.js';
import type { LedgerState, LocationStock, Reservation, TenantState } from '../../src/core/state.js';
import { formatTime } from '../../src/core/time.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A command without its envelope; `id`, `tenant` and `timeMs` may still be given to pin them. */
export type CommandDraft = DistributiveOmit<Command, keyof CommandMeta> & Partial<CommandMeta>;

/** An event without its envelope; `source` and `sourceSeq` may be given. */
export type EventDraft = DistributiveOmit<InventoryEvent, 'id' | 'tenant' | 'time' | 'source'> & Partial<Pick<InventoryEvent, 'id' | 'tenant' | 'time' | 'source'>>;

/** A given command whose outcome may be a rejection (plain given commands must be accepted). */
export interface Attempt {
  attempt: CommandDraft;
}

export type GivenInput = CommandDraft | EventDraft | Attempt;

/** 2025-01-01T00:00:00.000Z: the first instant of every scenario. */
export const t0Ms = Date.UTC(2025, 0, 1);
/** Commands without a time are spaced this far apart. */
export const stepMs = 1_000;
export const defaultTenant = 'acme';

const commandTypes = new Set<string>([
  'adjust_stock', 'reserve', 'record_sale', 'commit', 'release', 'fulfil', 'expire_due', 'delete_sku',
  'restore_sku', 'set_channel_policy', 'record_sync',
]);

export function attempt(command: CommandDraft): Attempt {
  return { attempt: command };
}

function isAttempt(input: GivenInput): input is Attempt {
  return 'attempt' in input;
}

function isCommand(input: CommandDraft | EventDraft): input is CommandDraft {
  return commandTypes.has(input.type);
}

/** Stamps ids and times: command n gets id `cmd-n` and, unless pinned, the previous time + 1 s. */
class Stamper {
  private count = 0;
  private clockMs = t0Ms - stepMs;

  constructor(private readonly tenant: string) {}

  command(draft: CommandDraft): Command {
    this.count += 1;
    this.clockMs = draft.timeMs ?? this.clockMs + stepMs;
    return { ...draft, id: draft.id ?? `cmd-${this.count}`, tenant: draft.tenant ?? this.tenant, timeMs: this.clockMs } as Command;
  }

  event(draft: EventDraft): InventoryEvent {
    this.count += 1;
    this.clockMs += stepMs;
    return { ...draft, id: draft.id ?? `evt-${this.count}`, tenant: draft.tenant ?? this.tenant, time: draft.time ?? formatTime(this.clockMs), source: draft.source ?? 'api' } as InventoryEvent;
  }
}

/** What `decide` would stamp on the events of `command`, so expectations list only type, data and sourceSeq. */
export function stampExpected(command: Command, drafts: readonly EventDraft[]): InventoryEvent[] {
  return drafts.map((draft, index) => ({
    ...draft,
    id: draft.id ?? (drafts.length === 1 ? command.id : `${command.id}.${index}`),
    tenant: draft.tenant ?? command.tenant,
    time: draft.time ?? formatTime(command.timeMs),
    source: draft.source ?? command.source ?? 'api',
  }) as InventoryEvent);
}

/** The state of one scenario after `when`, with readers for the quantities the specs look at. */
export class Result {
  constructor(
    readonly state: LedgerState,
    readonly command: Command,
    readonly execution: Execution,
    readonly history: readonly InventoryEvent[],
  ) {}

  get outcome(): Outcome {
    return this.execution.outcome;
  }

  get events(): InventoryEvent[] {
    return this.execution.outcome.events;
  }

  get tenant(): TenantState {
    return this.state.tenants.get(this.command.tenant) ?? absentTenant;
  }

  stock(sku: string, location: string): LocationStock {
    const stock = stockAt(this.tenant.skus.get(sku), location);
    return { onHand: stock.onHand, committed: stock.committed, reserved: stock.reserved };
  }

  available(sku: string, location: string): number {
    return availableOf(stockAt(this.tenant.skus.get(sku), location));
  }

  availableToSell(channel: string, sku: string): number {
    return availableToSell(channelPolicyOf(this.tenant, channel), this.tenant.skus.get(sku));
  }

  reservation(id: string): Reservation | undefined {
    return this.tenant.reservations.get(id);
  }
}

export class Scenario {
  private readonly state = initialState();
  private readonly history: InventoryEvent[] = [];
  private readonly stamper: Stamper;

  constructor(inputs: readonly GivenInput[], tenant = defaultTenant) {
    this.stamper = new Stamper(tenant);
    for (const input of inputs) this.apply(input);
  }

  private apply(input: GivenInput): void {
    if (isAttempt(input)) {
      this.history.push(...execute(this.state, this.stamper.command(input.attempt)).outcome.events);
      return;
    }
    if (isCommand(input)) {
      const command = this.stamper.command(input);
      const { outcome } = execute(this.state, command);
      if (outcome.rejection !== undefined) {
        throw new Error(`given command ${command.id} (${command.type}) was rejected: ${outcome.rejection.code}; wrap it in attempt() if that is meant`);
      }
      this.history.push(...outcome.events);
      return;
    }
    const event = this.stamper.event(input);
    evolve(this.state, event);
    this.history.push(event);
  }

  /** Runs the command through `execute`, checking on the way that `decide` alone leaves the state untouched and that replay agrees. */
  when(draft: CommandDraft): Outcomes {
    const command = this.stamper.command(draft);
    const before = structuredSnapshot(this.state);
    const expiriesBefore = JSON.stringify(this.state.tenants.get(command.tenant)?.expiries ?? []);
    decide(this.state.tenants.get(command.tenant), command);
    expect(structuredSnapshot(this.state), 'decide must not mutate the state').toEqual(before);
    expect(JSON.stringify(this.state.tenants.get(command.tenant)?.expiries ?? []), 'decide must not touch the expiry index').toBe(expiriesBefore);
    const execution = execute(this.state, command);
    this.history.push(...execution.outcome.events);
    expect(toSnapshot(replay(this.history)), 'replaying every event must give the same state').toEqual(toSnapshot(this.state));
    return new Outcomes(new Result(this.state, command, execution, this.history));
  }
}

function structuredSnapshot(state: LedgerState): unknown {
  return JSON.parse(JSON.stringify(toSnapshot(state, { withIdempotency: true }))) as unknown;
}

export class Outcomes {
  constructor(readonly result: Result) {}

  /** The command was accepted and emitted exactly these events (envelopes stamped as decide does). */
  then(expected: readonly EventDraft[]): Result {
    const { result } = this;
    expect(result.outcome.rejection, 'the command should have been accepted').toBeUndefined();
    expect(result.events).toEqual(stampExpected(result.command, expected));
    return result;
  }

  /** The command was refused with `code` (and fields matching `partial`), recording `events` (none unless given). */
  thenRejects<Code extends RejectionCode>(code: Code, partial?: Partial<Extract<Rejection, { code: Code }>>, events: readonly EventDraft[] = []): Result {
    const { result } = this;
    expect(result.outcome.rejection?.code, `expected a ${code} rejection`).toBe(code);
    if (partial !== undefined) expect(result.outcome.rejection).toMatchObject(partial);
    expect(typeof result.outcome.rejection?.message).toBe('string');
    expect(result.events).toEqual(stampExpected(result.command, events));
    return result;
  }
}

/** Starts a scenario for the default tenant: `given(...).when(command).then(events)`. */
export function given(...inputs: GivenInput[]): Scenario {
  return new Scenario(inputs);
}

/** Starts a scenario in a named tenant. */
export function givenTenant(tenant: string, ...inputs: GivenInput[]): Scenario {
  return new Scenario(inputs, tenant);
}

/** The time the DSL stamps on the n-th command or event of a scenario (1-based) when none is pinned. */
export function timeOfStep(step: number): number {
  return t0Ms + (step - 1) * stepMs;
}

// Short builders for the commands the specs use most.

export function receive(sku: string, location: string, delta: number, extra: Partial<CommandDraft> = {}): CommandDraft {
  return { type: 'adjust_stock', sku, location, delta, ...extra } as CommandDraft;
}

export function setOnHand(sku: string, location: string, set: number, extra: Partial<CommandDraft> = {}): CommandDraft {
  return { type: 'adjust_stock', sku, location, set, ...extra } as CommandDraft;
}

export function reserve(reservationId: string, lines: Array<{ sku: string; quantity: number; location?: string }>, extra: Partial<CommandDraft> = {}): CommandDraft {
  return { type: 'reserve', reservationId, channel: 'web', lines, ttlMs: 60_000, ...extra } as CommandDraft;
}
