// The Kafka engine passes the behaviour suite every engine must pass, against the real development broker;
// and its changelog records rebuild exactly the state the processor had (no broker needed for that part).

import { Admin } from '@platformatic/kafka';
import { afterAll, describe, expect, it } from 'vitest';
import { execute, initialState, limits, sourceSeqKey, toSnapshot } from '../../../src/core/index.js';
import type { Command, LedgerState, TenantState } from '../../../src/core/index.js';
import { ChangelogRestore, changelogRecords, entityKey, noteChangedEntities, nextOffsetKey, parseEntityKey } from '../../../src/adapters/kafka/changelog.js';
import { partitionOfKey } from '../../../src/adapters/kafka/clients.js';
import { commandInputProblem, parseCommandRecord } from '../../../src/adapters/kafka/codec.js';
import type { CommandInput } from '../../../src/app/ports.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import type { PartitionRead } from '../../../src/adapters/kafka/log-reader.js';
import { engineBehaviourSuite } from '../../support/engine-suite.js';
import { ensureKafkaBroker, kafkaTestLimits, uniqueTopicPrefix, within } from '../../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig } from '../../support/kafka-node.js';

const prefix = uniqueTopicPrefix('engine');
let bootstrap: string | undefined;

const idempotencyRecordsMax = 20;
engineBehaviourSuite('kafka', async () => {
  ({ bootstrap } = await ensureKafkaBroker());
  return KafkaEngine.start({ config: kafkaTestConfig({ bootstrap, prefix }), nodeId: 'behaviour-node', startTimeoutMs: 60_000, idempotencyRecordsMax });
}, { setupTimeoutMs: kafkaTestLimits.upTimeoutMs, idempotencyRecordsMax });

const trimmedPrefix = uniqueTopicPrefix('trimmed');
const backlogPrefix = uniqueTopicPrefix('backlog');
const replayPrefix = uniqueTopicPrefix('replay');
const restartPrefix = uniqueTopicPrefix('renumber');

afterAll(async () => {
  if (bootstrap !== undefined) await Promise.all([prefix, trimmedPrefix, backlogPrefix, replayPrefix, restartPrefix].map((name) => deleteTestTopics(bootstrap as string, name)));
});

describe('a backlog of due holds', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('is released tick after tick without waiting for the interval, while each tick releases as many as one may', async () => {
    ({ bootstrap } = await ensureKafkaBroker());
    let nowMs = Date.now();
    // The interval never fires in this test: every tick after the one sent here is one the processor asked for.
    const engine = await KafkaEngine.start({
      config: kafkaTestConfig({ bootstrap, prefix: backlogPrefix }), nodeId: 'backlog-node', startTimeoutMs: 60_000, clock: () => nowMs, expiryIntervalMs: 3_600_000,
    });
    try {
      const tenant = 'backlog';
      const holds = 2 * limits.expirationsPerTickMax + 7;
      await engine.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: holds });
      await Promise.all(Array.from({ length: holds }, (_, index) => engine.submit({
        type: 'reserve', tenant, reservationId: `r${index}`, channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000,
      })));
      nowMs += 120_000;
      const first = await engine.submit({ type: 'expire_due', tenant, nowMs });
      expect(first.outcome.events).toHaveLength(limits.expirationsPerTickMax);
      const reserved = (): number | undefined => engine.tenant(tenant)?.skus.get('A')?.locations.get('default')?.reserved;
      const deadline = Date.now() + 30_000;
      while (reserved() !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(reserved(), 'every due hold released after one tick was sent').toBe(0);
    } finally {
      await engine.close();
    }
  });
});

describe('a node whose events were partly deleted by retention', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('starts its replica from the changelog and keeps the events that are left for paging', async () => {
    ({ bootstrap } = await ensureKafkaBroker());
    const config = kafkaTestConfig({ bootstrap, prefix: trimmedPrefix });
    const tenant = 'retained';
    const partition = partitionOfKey(tenant, 3);
    const admin = new Admin({ clientId: `${trimmedPrefix}-admin`, bootstrapBrokers: [bootstrap], timeout: 10_000 });
    const first = await KafkaEngine.start({ config, nodeId: 'first-node', startTimeoutMs: 60_000 });
    let before: unknown;
    try {
      const endOfEvents = async (): Promise<bigint> => {
        const listed = await within('list offsets', admin.listOffsets({ topics: [{ name: first.topics.events, partitions: [{ partitionIndex: partition, timestamp: -1n }] }] }));
        return listed[0]?.partitions[0]?.offset as bigint;
      };
      await first.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 10 });
      await first.submit({ type: 'reserve', tenant, reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 600_000 });
      const cut = await endOfEvents();
      await first.submit({ type: 'reserve', tenant, reservationId: 'r2', channel: 'web', lines: [{ sku: 'A', quantity: 3 }], ttlMs: 600_000 });
      await first.submit({ type: 'commit', tenant, reservationId: 'r1' });
      await first.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 5 });
      before = toSnapshot({ tenants: new Map([[tenant, first.tenant(tenant) as TenantState]]) });
      // What retention does to old segments: the first two events are gone, the last three are left.
      await within('delete records', admin.deleteRecords({ topics: [{ name: first.topics.events, partitions: [{ partition, offset: cut }] }] }));
    } finally {
      await first.close();
      await admin.close();
    }
    const second = await KafkaEngine.start({ config, nodeId: 'second-node', startTimeoutMs: 60_000 });
    try {
      expect(toSnapshot({ tenants: new Map([[tenant, second.tenant(tenant) as TenantState]]) })).toEqual(before);
      const page = await second.eventsAfter(tenant, 0, 100);
      expect(page.events.map((logged) => logged.event.type)).toEqual(['order_reserved', 'order_committed', 'stock_adjustment']);
      const more = await second.submit({ type: 'reserve', tenant, reservationId: 'r3', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 600_000 });
      expect(more.outcome.rejection).toBeUndefined();
      expect(second.tenant(tenant)?.skus.get('A')?.locations.get('default')).toEqual({ onHand: 15, committed: 2, reserved: 4 });
    } finally {
      await second.close();
    }
  });
});

describe('a node started again', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('numbers the events it reads again above every position it gave before', async () => {
    ({ bootstrap } = await ensureKafkaBroker());
    const config = kafkaTestConfig({ bootstrap, prefix: restartPrefix });
    const tenant = 'renumbered';
    const before = await KafkaEngine.start({ config, nodeId: 'renumbered-node', startTimeoutMs: 60_000 });
    let given: number;
    try {
      for (const sku of ['A', 'B', 'C']) await before.submit({ type: 'adjust_stock', tenant, sku, location: 'default', delta: 1 });
      given = before.position();
    } finally {
      await before.close();
    }
    const after = await KafkaEngine.start({ config, nodeId: 'renumbered-node', startTimeoutMs: 60_000 });
    try {
      // A stream resumed from a position of the first start is then told apart: it is below the floor.
      expect(after.positionFloor()).toBeGreaterThan(given);
      const page = await after.eventsAfter(tenant, 0, 100);
      expect(page.events).toHaveLength(3);
      expect(page.events.every(({ position }) => position > after.positionFloor())).toBe(true);
    } finally {
      await after.close();
    }
  });
});

describe('a retry under the same key sent to another node', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('is answered once that node\'s replica has what the first request made, which the answer reads', async () => {
    ({ bootstrap } = await ensureKafkaBroker());
    const config = kafkaTestConfig({ bootstrap, prefix: replayPrefix });
    const first = await KafkaEngine.start({ config, nodeId: 'replay-first', startTimeoutMs: 60_000 });
    const second = await KafkaEngine.start({ config, nodeId: 'replay-second', startTimeoutMs: 60_000 });
    try {
      const tenant = 'replayed';
      await first.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 5 });
      // The second node's replica falls behind: what it fetches is held back (and fetched again) until told.
      const replica = (second as unknown as { replica: { apply(reads: PartitionRead[]): void } }).replica;
      const apply = replica.apply.bind(replica);
      let holding = true;
      let patched: () => void = () => undefined;
      const inUse = new Promise<void>((resolve) => { patched = resolve; });
      replica.apply = (reads) => {
        patched();
        if (!holding) apply(reads);
      };
      // A fetch already waiting took the method before it was replaced: the next one calls the new one.
      await inUse;
      const hold: CommandInput = { type: 'reserve', tenant, reservationId: 'cart-1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 600_000, idempotencyKey: 'cart-1-hold' };
      const made = await first.submit(hold);
      expect(made.outcome.events.map((event) => event.type)).toEqual(['order_reserved']);
      // What the HTTP answer is built from, as it is answered: the reservation, read from this node's replica.
      const replay = second.submit(hold).then((submitted) => ({ submitted, reservation: second.tenant(tenant)?.reservations.get('cart-1') }));
      // The processor's reply comes back while the replica is held back.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      holding = false;
      const { submitted, reservation } = await replay;
      expect(submitted.outcome.rejection?.code).toBe('DUPLICATE');
      expect(reservation).toMatchObject({ id: 'cart-1', status: 'held' });
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });
});

describe('the changelog', () => {
  /** Runs commands like a processor, writing the changed entities of each to a log, and restores the log into a fresh state. */
  function roundTrip(commands: CommandInput[]): { live: LedgerState; restored: LedgerState } {
    const live = initialState();
    const log: Array<{ key: string; value: string | null }> = [];
    commands.forEach((input, index) => {
      const command = { timeMs: 1_700_000_000_000 + index * 1_000, ...input, id: `k0-${index}` } as Command;
      const changed = new Set<string>();
      noteChangedEntities(changed, command.tenant, execute(live, command));
      log.push(...changelogRecords(live, changed), { key: nextOffsetKey, value: JSON.stringify({ nextOffset: String(index + 1) }) });
    });
    const restore = new ChangelogRestore();
    for (const { key, value } of log) restore.apply(key, value === null ? undefined : Buffer.from(value));
    expect(restore.nextOffset).toBe(BigInt(commands.length));
    return { live, restored: restore.state() };
  }

  it('rebuilds the state, idempotency records included, from the records of every kind of command', () => {
    const tenant = 'acme';
    const { live, restored } = roundTrip([
      { type: 'adjust_stock', tenant, sku: 'A/1', location: 'default', delta: 10 },
      { type: 'adjust_stock', tenant, sku: 'B', location: 'north', set: 4, sourceSeq: '17', source: 'pg:slot' },
      { type: 'adjust_stock', tenant, sku: 'B', location: 'north', set: 3, sourceSeq: '12', source: 'pg:slot' },
      { type: 'set_channel_policy', tenant, channel: 'web', locations: null, bufferUnits: 1, maxUnits: 50, backorder: false },
      { type: 'reserve', tenant, reservationId: 'r1', channel: 'web', lines: [{ sku: 'A/1', quantity: 2 }], ttlMs: 60_000, idempotencyKey: 'k-1' },
      { type: 'reserve', tenant, reservationId: '__proto__', channel: 'web', lines: [{ sku: 'A/1', quantity: 1 }], ttlMs: 5_000 },
      { type: 'reserve', tenant, reservationId: 'r2', channel: 'web', lines: [{ sku: 'A/1', quantity: 99 }], ttlMs: 60_000, idempotencyKey: 'k-2' },
      { type: 'commit', tenant, reservationId: 'r1', orderRef: 'O-1' },
      { type: 'fulfil', tenant, reservationId: 'r1' },
      { type: 'record_sale', tenant, reservationId: 'm1', channel: 'web', lines: [{ sku: 'B', quantity: 1, location: 'north' }] },
      { type: 'release', tenant, reservationId: 'm1', reason: 'cancelled' },
      { type: 'delete_sku', tenant, sku: 'B' },
      { type: 'restore_sku', tenant, sku: 'B' },
      { type: 'record_sync', tenant, channel: 'web', sku: 'A/1', quantity: 5, latencyMs: 12 },
      { type: 'expire_due', tenant, nowMs: 1_700_000_100_000 },
      { type: 'adjust_stock', tenant: 'globex', sku: 'A', location: 'default', delta: 1, idempotencyKey: 'k-1' },
      // Past the retention, expire_due forgets the idempotency keys: their records become tombstones.
      { type: 'expire_due', tenant, nowMs: 1_700_000_000_000 + 2 * 86_400_000 },
    ]);
    expect(live.tenants.get(tenant)?.reservations.get('__proto__')?.status).toBe('expired');
    expect(live.tenants.get(tenant)?.idempotency.size).toBe(0);
    expect(toSnapshot(restored, { withIdempotency: true })).toEqual(toSnapshot(live, { withIdempotency: true }));
    expect(restored.tenants.get(tenant)?.expiries).toEqual(live.tenants.get(tenant)?.expiries);
  });

  it('keys entities as tenant/kind/id, ids with slashes and NULs included', () => {
    const key = entityKey('acme', 'seq', sourceSeqKey('A/1', 'north', 'pg:slot'));
    expect(parseEntityKey(key)).toEqual({ tenant: 'acme', kind: 'seq', id: 'A/1\u0000north\u0000pg:slot' });
    expect(parseEntityKey('acme/unknown/x')).toBeUndefined();
    expect(parseEntityKey(nextOffsetKey)).toBeUndefined();
  });
});

describe('command records', () => {
  const partitionOf = (): number => 1;
  const record = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

  it('takes a valid command or group and refuses the rest with a reason', () => {
    const input = { type: 'adjust_stock', tenant: 'acme', sku: 'A', location: 'default', delta: 1 };
    expect(parseCommandRecord('acme', record({ input }), 1, partitionOf)).toMatchObject({ ok: true, tenant: 'acme', atomic: false });
    expect(parseCommandRecord('acme', record({ atomic: [input, input] }), 1, partitionOf)).toMatchObject({ ok: true, atomic: true });
    expect(parseCommandRecord('acme', Buffer.from('{nope'), 1, partitionOf)).toMatchObject({ ok: false, code: 'MALFORMED_RECORD' });
    expect(parseCommandRecord('acme', record({ input: { ...input, tenant: 'Not A Tenant' } }), 1, partitionOf)).toMatchObject({ ok: false, code: 'INVALID_COMMAND' });
    expect(parseCommandRecord('other', record({ input }), 1, partitionOf)).toMatchObject({ ok: false, code: 'WRONG_KEY' });
    expect(parseCommandRecord('acme', record({ input }), 2, partitionOf)).toMatchObject({ ok: false, code: 'WRONG_PARTITION' });
    expect(parseCommandRecord('acme', record({ atomic: [input, { ...input, tenant: 'globex' }] }), 1, partitionOf)).toMatchObject({ ok: false, code: 'INVALID_COMMAND' });
  });

  it('checks the fields the ledger needs', () => {
    expect(commandInputProblem({ type: 'adjust_stock', tenant: 'acme', sku: 'A', location: 'default' })).toBe(': needs exactly one of delta and set');
    expect(commandInputProblem({ type: 'reserve', tenant: 'acme', reservationId: 'r', channel: 'web', lines: [], ttlMs: 60_000 })).toMatch(/^\.lines: must be an array of 1 to/);
    expect(commandInputProblem({ type: 'reserve', tenant: 'acme', reservationId: 'r', channel: 'web', lines: [{ sku: 'A', quantity: 0 }], ttlMs: 60_000 })).toMatch(/^\.lines\[0\]\.quantity:/);
    expect(commandInputProblem({ type: 'release', tenant: 'acme', reservationId: 'r', reason: 'later' })).toMatch(/^\.reason: must be one of/);
    expect(commandInputProblem({ type: 'explode', tenant: 'acme' })).toMatch(/^\.type: must be one of/);
    expect(commandInputProblem({ type: 'fulfil', tenant: 'acme', reservationId: 'r', extra: 1 })).toBe('.extra: is not a known property of this command');
    expect(commandInputProblem({ type: 'set_channel_policy', tenant: 'acme', channel: 'web', locations: null, bufferUnits: 0, maxUnits: null, backorder: false })).toBeUndefined();
  });
});
