// Two Stockline nodes share the processing; one is SIGKILLed in the middle of a flash sale. Its partitions move
// to the other, and every reservation answered as accepted survives, once, without overselling.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TenantSnapshot } from '../../../src/core/index.js';
import { partitionOfKey } from '../../../src/adapters/kafka/clients.js';
import { ensureKafkaBroker, kafkaTestLimits, uniqueTopicPrefix } from '../../support/kafka-broker.js';
import { deleteTestTopics, spawnKafkaNode } from '../../support/kafka-node.js';
import type { NodeProcess } from '../../support/kafka-node.js';

const prefix = uniqueTopicPrefix('failover');
const partitions = 3;
const tenant = 'flash';
const sku = 'HOT-1';
const stock = 60;
const attempts = 150;
const workers = 12;
const killAfterAnswers = 40;
const saleDeadlineMs = 150_000;
const requestTimeoutMs = 20_000;

let bootstrap: string;
const nodes: NodeProcess[] = [];

interface Answer {
  status: number;
  body: { outcome?: { events: unknown[]; rejection?: { code: string; first?: { rejection?: { code: string } } } }; error?: { code: string; retryable: boolean } };
}

async function call(node: NodeProcess, path: string, body?: unknown): Promise<Answer> {
  const response = await fetch(`${node.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  return { status: response.status, body: await response.json() as Answer['body'] };
}

async function owned(node: NodeProcess): Promise<number[]> {
  return ((await call(node, '/owned')).body as unknown as { partitions: number[] }).partitions;
}

/** Waits until the two nodes own disjoint, non-empty sets of partitions that together cover all of them. */
async function untilShared(timeoutMs: number): Promise<Array<number[]>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sets = await Promise.all(nodes.map(owned));
    const all = sets.flat().sort((a, b) => a - b);
    if (sets.every((set) => set.length > 0) && all.length === partitions && new Set(all).size === partitions) return sets;
    if (Date.now() > deadline) throw new Error(`partitions not shared within ${timeoutMs} ms: ${JSON.stringify(sets)}`);
    await sleep(200);
  }
}

/**
 * Reserves one unit under an idempotency key until the answer is definite: accepted, or refused for stock.
 * Retryable errors and dead nodes are retried (on the other node) with the same key, so a command whose
 * first answer was lost is answered from its idempotency record, never decided twice.
 */
async function reserveUntilAnswered(index: number, alive: () => NodeProcess[]): Promise<'accepted' | 'refused'> {
  const command = { type: 'reserve', tenant, reservationId: `r-${index}`, channel: 'web', lines: [{ sku, quantity: 1 }], ttlMs: 3_600_000, idempotencyKey: `key-${index}` };
  const deadline = Date.now() + saleDeadlineMs;
  let turn = index;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`reservation ${index} got no definite answer within ${saleDeadlineMs} ms`);
    const candidates = alive();
    const node = candidates[turn % candidates.length] as NodeProcess;
    turn += 1;
    let answer: Answer;
    try {
      answer = await call(node, '/submit', command);
    } catch {
      await sleep(100);
      continue;
    }
    const rejection = answer.body.outcome?.rejection;
    if (answer.status === 200 && rejection === undefined) return 'accepted';
    if (answer.status === 200 && rejection?.code === 'INSUFFICIENT_STOCK') return 'refused';
    if (answer.status === 200 && rejection?.code === 'DUPLICATE') return rejection.first?.rejection === undefined ? 'accepted' : 'refused';
    if (answer.body.error?.retryable === true) {
      await sleep(100);
      continue;
    }
    throw new Error(`reservation ${index}: unexpected answer ${answer.status} ${JSON.stringify(answer.body)}`);
  }
}

beforeAll(async () => {
  ({ bootstrap } = await ensureKafkaBroker());
  nodes.push(await spawnKafkaNode({ bootstrap, prefix, nodeId: 'node-a', partitions }));
  nodes.push(await spawnKafkaNode({ bootstrap, prefix, nodeId: 'node-b', partitions }));
}, kafkaTestLimits.upTimeoutMs);

afterAll(async () => {
  await Promise.all(nodes.map((node) => node.stop()));
  if (bootstrap !== undefined) await deleteTestTopics(bootstrap, prefix);
}, 60_000);

describe('failover of a Kafka engine node', () => {
  it('keeps every accepted reservation, once, and never oversells when the owner of the hot tenant is killed', { timeout: 240_000 }, async () => {
    const sets = await untilShared(60_000);
    const hotPartition = partitionOfKey(tenant, partitions);
    const victim = nodes[sets.findIndex((set) => set.includes(hotPartition))] as NodeProcess;
    const survivor = nodes.find((node) => node !== victim) as NodeProcess;
    const seeded = await call(survivor, '/submit', { type: 'adjust_stock', tenant, sku, location: 'default', set: stock });
    expect(seeded.body.outcome?.rejection).toBeUndefined();

    let killed = false;
    const alive = (): NodeProcess[] => (killed ? [survivor] : nodes);
    const answers = new Map<number, 'accepted' | 'refused'>();
    let next = 0;
    let killing: Promise<void> | undefined;
    const worker = async (): Promise<void> => {
      while (next < attempts) {
        const index = next;
        next += 1;
        answers.set(index, await reserveUntilAnswered(index, alive));
        if (answers.size === killAfterAnswers && killing === undefined) {
          // SIGKILL: no leaving the group, no closing of its transaction; the group and the transaction coordinator must find out.
          killing = victim.kill().then(() => { killed = true; });
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
    await killing;
    expect(killed).toBe(true);

    const acceptedIds = [...answers].filter(([, answer]) => answer === 'accepted').map(([index]) => `r-${index}`).sort();
    expect(answers.size).toBe(attempts);
    // Demand is above stock, so the sale sells out: exactly `stock` reservations were accepted.
    expect(acceptedIds).toHaveLength(stock);
    expect((await owned(survivor)).sort()).toEqual([0, 1, 2]);

    const state = (await call(survivor, `/tenant/${tenant}`)).body as unknown as TenantSnapshot;
    const held = Object.entries(state.reservations).filter(([, reservation]) => reservation.status === 'held').map(([id]) => id).sort();
    expect(held).toEqual(acceptedIds);
    expect(Object.keys(state.reservations)).toHaveLength(stock);
    const location = state.skus[sku]?.locations.default;
    expect(location).toEqual({ onHand: stock, committed: 0, reserved: stock });
  });
});
