// Property: whatever the channels answer meanwhile, once they recover each shows the newest desired quantity,
// and no channel is ever sent a version older than one it already applied.

import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';
import type { ChannelConnector, ChannelPush, PushResult } from '../../src/adapters/channels/connector.js';
import { ChannelSync, syncLimits } from '../../src/app/channel-sync.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';
import { seededRandom } from '../../src/app/demo/random.js';
import { ManualClock } from '../support/channel-sync.js';

const tenants = ['acme', 'beta'];
const channels = ['shop', 'b2b'];
const skus = ['a', 'b'];
const keyCount = tenants.length * channels.length * skus.length;
const settleRoundsMax = 200;
/** setImmediate rounds the clock lets pass after each timer (the unit tests use 30). */
const clockSettleTurns = 10;

type Answer =
  | { kind: 'ok'; latencyMs: number }
  | { kind: 'retry'; latencyMs: number }
  /** Applied, but the answer was lost (a timeout after success). */
  | { kind: 'lostOk'; latencyMs: number }
  | { kind: 'throttled'; latencyMs: number; retryAfterMs: number }
  /** Someone edits the quantity in the channel just before this push arrives. */
  | { kind: 'edit'; latencyMs: number; editTo: number };

type Action = { type: 'set'; key: number; quantity: number } | { type: 'advance'; ms: number };

const latency = fc.integer({ min: 0, max: 50 });
const answerArb: fc.Arbitrary<Answer> = fc.oneof(
  fc.record({ kind: fc.constant('ok' as const), latencyMs: latency }),
  fc.record({ kind: fc.constant('retry' as const), latencyMs: latency }),
  fc.record({ kind: fc.constant('lostOk' as const), latencyMs: latency }),
  fc.record({ kind: fc.constant('throttled' as const), latencyMs: latency, retryAfterMs: fc.integer({ min: 0, max: 3_000 }) }),
  fc.record({ kind: fc.constant('edit' as const), latencyMs: latency, editTo: fc.integer({ min: 0, max: 20 }) }),
);
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.constant('set' as const), key: fc.integer({ min: 0, max: keyCount - 1 }), quantity: fc.integer({ min: 0, max: 20 }) }) },
  // Mostly short steps, so changes often land while a push is in flight; sometimes long ones, past backoffs.
  { weight: 2, arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60 }) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 2_000 }) }) },
);

/** A compare-and-set channel that answers from a shared script until the script runs out, then recovers. */
class ScriptedChannel implements ChannelConnector {
  readonly shown = new Map<string, number>();
  readonly appliedVersion = new Map<string, number>();
  readonly violations: string[] = [];
  private readonly inFlight = new Set<string>();
  constructor(readonly channel: string, readonly maxConcurrency: number, readonly ratePerSecond: number, private readonly clock: ManualClock, private readonly script: Answer[]) {}

  push(push: ChannelPush): Promise<PushResult> {
    const key = `${push.tenant}/${push.sku}`;
    if (this.inFlight.has(key)) this.violations.push(`two pushes in flight for ${key}`);
    this.inFlight.add(key);
    const answer = this.script.shift() ?? { kind: 'ok', latencyMs: 5 };
    return new Promise((resolve) => {
      this.clock.set(() => {
        this.inFlight.delete(key);
        resolve(this.answer(push, key, answer));
      }, answer.latencyMs);
    });
  }

  private answer(push: ChannelPush, key: string, answer: Answer): PushResult {
    if (answer.kind === 'edit') this.shown.set(key, answer.editTo);
    if (answer.kind === 'retry') return { kind: 'retry', reason: 'HTTP 503' };
    if (answer.kind === 'throttled') return { kind: 'retry', reason: 'HTTP 429', retryAfterMs: answer.retryAfterMs };
    const current = this.shown.get(key);
    if (push.previousQuantity !== null && current !== undefined && current !== push.previousQuantity) return { kind: 'mismatch', actual: current };
    const applied = this.appliedVersion.get(key) ?? 0;
    if (push.version < applied) this.violations.push(`${key}: version ${push.version} applied after ${applied}`);
    this.appliedVersion.set(key, push.version);
    this.shown.set(key, push.quantity);
    return answer.kind === 'lostOk' ? { kind: 'retry', reason: 'timeout' } : { kind: 'ok' };
  }

  async read(): Promise<Map<string, number>> { return new Map(); }
  async close(): Promise<void> {}
}

class CountingBus implements CommandBus {
  readonly commands: CommandInput[] = [];
  async submit(command: CommandInput): Promise<Submitted> { return (await this.submitMany([command]))[0] as Submitted; }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    this.commands.push(...commands);
    return commands.map(() => ({ outcome: { events: [] } }));
  }
}

function keyOf(index: number): { tenant: string; channel: string; sku: string } {
  return {
    tenant: tenants[index % tenants.length] as string,
    channel: channels[Math.floor(index / tenants.length) % channels.length] as string,
    sku: skus[Math.floor(index / (tenants.length * channels.length)) % skus.length] as string,
  };
}

async function run(actions: Action[], script: Answer[], seed: number): Promise<void> {
  const clock = new ManualClock(clockSettleTurns);
  const db = new Database(':memory:');
  const outbox = new ChannelOutbox(db);
  outbox.migrate();
  const fakes = [new ScriptedChannel('shop', 2, 20, clock, script), new ScriptedChannel('b2b', 1, Number.POSITIVE_INFINITY, clock, script)];
  const bus = new CountingBus();
  const sync = new ChannelSync({
    outbox, connectors: new Map(fakes.map((fake) => [fake.channel, fake as ChannelConnector])), bus, clock, random: seededRandom(seed), timer: clock,
  });
  try {
    sync.start();
    let position = 0;
    for (const action of actions) {
      if (action.type === 'advance') {
        await clock.advance(action.ms);
        continue;
      }
      position += 1;
      outbox.upsertDesired([{ ...keyOf(action.key), quantity: action.quantity, changedAtMs: clock.now, position }]);
      sync.kick();
    }
    // The script is finite: from here on every channel answers normally. Give it until every row settles.
    for (let round = 0; round < settleRoundsMax && outbox.depth().length > 0; round += 1) {
      await clock.advance(syncLimits.backoffCapMs + 3_000);
    }
    expect(outbox.depth()).toEqual([]);
    for (const fake of fakes) {
      expect(fake.violations).toEqual([]);
      for (const tenant of tenants) {
        for (const row of outbox.list(tenant, fake.channel)) {
          expect(fake.shown.get(`${tenant}/${row.sku}`), `${tenant}/${fake.channel}/${row.sku}`).toBe(row.quantity);
          expect(row.ackedQuantity).toBe(row.quantity);
        }
      }
    }
    expect(bus.commands.length).toBeGreaterThanOrEqual(new Set(actions.filter((action) => action.type === 'set').map((action) => action.key)).size);
  } finally {
    await sync.stop();
    db.close();
  }
}

describe('channel sync, property', () => {
  it('ends with every channel showing the newest desired quantity, never going back a version', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: 60, size: 'max' }), fc.array(answerArb, { maxLength: 60, size: 'max' }), fc.integer(), (actions, script, seed) =>
        run(actions, [...script], seed)),
      { numRuns: 100 },
    );
  });
});
