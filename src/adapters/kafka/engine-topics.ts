// Creates the Kafka engine's missing topics at start (development), and checks the partition counts it relies on.

import { setTimeout as sleep } from 'node:timers/promises';
import { brokerErrorText, isBrokerError, isUnavailable, openKafkaAdmin, withDeadline } from './admin.js';
import type { KafkaConfig } from './config.js';
import { planTopics } from './scaffold.js';
import type { EngineTopicNames, KafkaEngineLog } from './clients.js';

const visibilityPollMs = 100;

/**
 * Creates the topics that do not exist yet (when `create`), with the scaffolding's settings (existing topics are left
 * as they are: `stockline topics scaffold` owns their settings), then waits until every partition has
 * a leader. Refuses to go on when the events or changelog topic has fewer partitions than the commands
 * topic: a processor writes a command's events and state to the partition of the same number.
 */
export async function ensureEngineTopics(config: KafkaConfig, topics: EngineTopicNames, log: KafkaEngineLog, create: boolean): Promise<void> {
  const admin = openKafkaAdmin(config);
  const timeoutMs = config.timeouts.adminTimeoutMs;
  try {
    const plans = planTopics(config);
    const existing = new Set(await withDeadline('list topics', timeoutMs, admin.listTopics()));
    const missing = plans.filter((item) => !existing.has(item.name));
    if (!create && missing.length > 0) {
      throw new Error(`missing topics ${missing.map((plan) => plan.name).join(', ')}: run \`stockline topics scaffold\` (the replies topic too), or start with createTopics`);
    }
    for (const plan of missing) {
      try {
        await withDeadline(`create topic ${plan.name}`, timeoutMs, admin.createTopics({
          topics: [plan.name], partitions: plan.partitions, replicas: plan.replicationFactor,
          configs: Object.entries(plan.configs).map(([name, value]) => ({ name, value })),
        }));
        log.info(`kafka engine: created topic ${plan.name} (${plan.partitions} partitions)`);
      } catch (error) {
        if (isUnavailable(error) || !isBrokerError(error, 'TOPIC_ALREADY_EXISTS')) throw new Error(`cannot create topic ${plan.name}: ${brokerErrorText(error)}`, { cause: error });
      }
    }
    const names = plans.map((plan) => plan.name);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const metadata = await withDeadline('read topic metadata', timeoutMs, admin.metadata({ topics: names, forceUpdate: true }));
      const counts = new Map(names.map((name) => [name, metadata.topics.get(name)]));
      const led = [...counts.values()].every((topic) => topic !== undefined && topic.partitionsCount > 0 && topic.partitions.every((partition) => partition.leader >= 0));
      if (led) {
        checkPartitionCounts(topics, (name) => counts.get(name)?.partitionsCount ?? 0);
        return;
      }
      if (Date.now() > deadline) throw new Error(`the topics ${names.join(', ')} did not all have leaders within ${timeoutMs} ms`);
      await sleep(visibilityPollMs);
    }
  } finally {
    await withDeadline('close the admin client', config.timeouts.shutdownTimeoutMs, admin.close()).catch(() => undefined);
  }
}

function checkPartitionCounts(topics: EngineTopicNames, countOf: (name: string) => number): void {
  const commands = countOf(topics.commands);
  for (const name of [topics.events, topics.changelog, topics.deadLetter]) {
    if (countOf(name) < commands) {
      throw new Error(`${name} has ${countOf(name)} partitions, fewer than the ${commands} of ${topics.commands}: `
        + 'the events, state and dead letters of commands partition N go to partition N; add partitions with `stockline topics scaffold`');
    }
  }
}
