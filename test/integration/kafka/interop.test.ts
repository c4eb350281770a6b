// The Kafka engine speaks plain Kafka: Kafka's own console tools write commands it decides, read the events it
// writes, and see why a record was dead-lettered in the record's headers.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command, Outcome } from '../../../src/core/index.js';
import type { DeadLetter } from '../../../src/app/ports.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import { ensureKafkaBroker, kafkaTestLimits, kafkaTool, uniqueTopicPrefix } from '../../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig } from '../../support/kafka-node.js';

const prefix = uniqueTopicPrefix('interop');
const tenant = 'acme';
let bootstrap: string;
let engine: KafkaEngine | undefined;
const letters: DeadLetter[] = [];
const decided: Array<{ command: Command; outcome: Outcome }> = [];

async function eventually<T>(what: string, read: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs} ms`);
    await sleep(50);
  }
}

beforeAll(async () => {
  ({ bootstrap } = await ensureKafkaBroker());
  engine = await KafkaEngine.start({
    config: kafkaTestConfig({ bootstrap, prefix }), nodeId: 'interop-node', startTimeoutMs: 60_000,
    onDeadLetter: (letter) => letters.push(letter),
    onDecided: (command, outcome) => decided.push({ command, outcome }),
  });
}, kafkaTestLimits.upTimeoutMs);

afterAll(async () => {
  await engine?.close();
  if (bootstrap !== undefined) await deleteTestTopics(bootstrap, prefix);
}, kafkaTestLimits.caseTimeoutMs);

describe('the Kafka engine with Kafka\'s own tools', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('decides a command written by the console producer (key: the tenant, default partitioner)', async () => {
    const running = engine as KafkaEngine;
    const command = { input: { type: 'adjust_stock', tenant, sku: 'CONSOLE-1', location: 'default', delta: 7, source: 'console' } };
    await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', running.topics.commands,
      '--reader-property', 'parse.key=true', '--reader-property', 'key.separator=|'], `${tenant}|${JSON.stringify(command)}\n`);
    const stock = await eventually('the console command applied', () => running.tenant(tenant)?.skus.get('CONSOLE-1')?.locations.get('default'));
    expect(stock).toEqual({ onHand: 7, committed: 0, reserved: 0 });
    const page = await running.eventsAfter(tenant, 0, 10);
    expect(page.events.map((logged) => logged.event)).toMatchObject([{ type: 'stock_adjustment', tenant, source: 'console', data: { sku: 'CONSOLE-1', onHand: 7 } }]);
    // Decided by this node's processor: the metrics hook hears of it with its stamped id.
    const seen = await eventually('the decision told to onDecided', () => decided.find(({ command }) => command.type === 'adjust_stock' && command.sku === 'CONSOLE-1'));
    expect(seen.command.id).toMatch(/^k\d+-\d+$/);
  });

  it('writes events a read_committed console consumer reads, keyed by tenant', async () => {
    const running = engine as KafkaEngine;
    const submitted = await running.submit({ type: 'adjust_stock', tenant: 'globex', sku: 'OUT-1', location: 'default', delta: 3 });
    const event = submitted.outcome.events[0];
    expect(event).toBeDefined();
    const { stdout } = await kafkaTool(['console-consumer', '--bootstrap-server', bootstrap, '--topic', running.topics.events, '--from-beginning',
      '--isolation-level', 'read_committed', '--max-messages', '2', '--timeout-ms', '30000',
      '--formatter-property', 'print.key=true', '--formatter-property', 'key.separator=|']);
    const lines = stdout.trim().split('\n');
    const written = lines.map((line) => ({ key: line.slice(0, line.indexOf('|')), event: JSON.parse(line.slice(line.indexOf('|') + 1)) as unknown }));
    expect(written).toContainEqual({ key: 'globex', event });
    expect(written).toContainEqual(expect.objectContaining({ key: tenant }));
  });

  it('dead-letters records it cannot decide, with the reason in headers, and goes on with the next', async () => {
    const running = engine as KafkaEngine;
    const valid = { input: { type: 'adjust_stock', tenant, sku: 'AFTER-DLQ', location: 'default', delta: 1 } };
    const records = [
      `${tenant}|this is not json`,
      `${tenant}|${JSON.stringify({ input: { type: 'adjust_stock', tenant, sku: 'X', location: 'default' } })}`,
      `globex|${JSON.stringify(valid)}`,
      `${tenant}|${JSON.stringify(valid)}`,
    ];
    await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', running.topics.commands,
      '--reader-property', 'parse.key=true', '--reader-property', 'key.separator=|'], `${records.join('\n')}\n`);
    await eventually('the valid record after the invalid ones applied', () => running.tenant(tenant)?.skus.get('AFTER-DLQ'));
    const { stdout } = await kafkaTool(['console-consumer', '--bootstrap-server', bootstrap, '--topic', running.topics.deadLetter, '--from-beginning',
      '--isolation-level', 'read_committed', '--max-messages', '3', '--timeout-ms', '30000',
      '--formatter-property', 'print.headers=true', '--formatter-property', 'print.key=true', '--formatter-property', 'key.separator=|']);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    // Each dead letter goes to the partition its record came from: the globex-keyed one may come first.
    const withCode = (code: string): string => lines.find((line) => line.includes(`stockline-error-code:${code},`)) ?? '';
    const [notJson, invalid, wrongKey] = [withCode('MALFORMED_RECORD'), withCode('INVALID_COMMAND'), withCode('WRONG_KEY')];
    expect(notJson).toContain('stockline-error-code:MALFORMED_RECORD');
    expect(notJson).toContain('stockline-error-reason:the value is not JSON');
    expect(notJson).toContain(`stockline-source-topic:${running.topics.commands}`);
    expect(notJson).toMatch(/stockline-source-partition:\d+/);
    expect(notJson).toMatch(/stockline-source-offset:\d+/);
    expect(notJson).toMatch(/\|this is not json$/);
    expect(invalid).toContain('stockline-error-code:INVALID_COMMAND');
    expect(invalid).toContain('needs exactly one of delta and set');
    expect(wrongKey).toContain('stockline-error-code:WRONG_KEY');
    // The hook runs once the transaction's commit is acknowledged, a moment after the records are visible.
    await eventually('three dead letters told to onDeadLetter', () => (letters.length >= 3 ? letters : undefined));
    expect(letters.map((letter) => letter.reason.split(':')[0]).sort()).toEqual(['INVALID_COMMAND', 'MALFORMED_RECORD', 'WRONG_KEY']);
    expect(letters[0]?.source).toMatch(new RegExp(`^kafka:${running.topics.commands.replaceAll('.', '\\.')}/\\d+@\\d+$`));
  });
});
