// Topic scaffolding: creates the engine's topics and ACLs, and keeps their settings as configured.
//
// Running it again changes nothing. Settings that drifted are set back; missing partitions are
// added. What Kafka cannot change in place, or what would lose data (fewer partitions, another
// replication factor), is refused with the reason, never done silently and never ignored.

import { setTimeout as sleep } from 'node:timers/promises';
import {
  AclOperations, AclPermissionTypes, ConfigResourceTypes, IncrementalAlterConfigOperationTypes,
  ResourcePatternTypes, ResourceTypes,
} from '@platformatic/kafka';
import type { Acl, Admin } from '@platformatic/kafka';
import { brokerErrorText, isBrokerError, isUnavailable, openKafkaAdmin, withDeadline } from './admin.js';
import type { KafkaConfig } from './config.js';
import { kafkaTopicNames } from './config.js';

export const scaffoldLimits = {
  visibilityPollMs: 100,
} as const;

/** The topic settings the scaffolding owns; any other topic setting is left as the operator set it. */
export const managedTopicConfigs = ['cleanup.policy', 'retention.ms', 'min.insync.replicas'] as const;

export interface TopicPlan {
  name: string;
  partitions: number;
  replicationFactor: number;
  configs: Record<(typeof managedTopicConfigs)[number], string>;
}

export interface SettingChange {
  /** `partitions` or a topic config key such as `retention.ms`. */
  name: string;
  from: string | null;
  to: string;
}

export type TopicOutcome =
  | { topic: string; status: 'created'; partitions: number; replicationFactor: number }
  | { topic: string; status: 'unchanged' }
  | { topic: string; status: 'altered'; settings: SettingChange[]; warnings: string[] }
  | { topic: string; status: 'refused'; reason: string };

export interface AclGrant {
  principal: string;
  resourceType: 'topic' | 'group' | 'transactional-id';
  resourceName: string;
  patternType: 'literal' | 'prefixed';
  operation: 'read' | 'write' | 'describe';
}

export interface ScaffoldReport {
  /** True when nothing was changed on the brokers: the outcomes say what would happen. */
  dryRun: boolean;
  topics: TopicOutcome[];
  aclsCreated: AclGrant[];
  aclsPresent: number;
  /** False when any topic was refused. */
  ok: boolean;
}

export interface ScaffoldOptions {
  dryRun?: boolean;
  log?: (line: string) => void;
}

export function planTopics(config: KafkaConfig): TopicPlan[] {
  const names = kafkaTopicNames(config);
  const plan = (name: string, cleanupPolicy: 'delete' | 'compact'): TopicPlan => ({
    name,
    partitions: config.topics.partitions,
    replicationFactor: config.topics.replicationFactor,
    configs: {
      'cleanup.policy': cleanupPolicy,
      'retention.ms': String(config.topics.retentionMs),
      'min.insync.replicas': String(config.topics.minInsyncReplicas),
    },
  });
  const replies = plan(repliesTopicName(config), 'delete');
  // Answers are useful for seconds: the replies topic keeps them an hour at most.
  replies.configs['retention.ms'] = String(Math.min(repliesRetentionMsMax, config.topics.retentionMs < 0 ? Number.MAX_SAFE_INTEGER : config.topics.retentionMs));
  return [
    plan(names.commands, 'delete'),
    plan(names.events, 'delete'),
    plan(names.changelog, 'compact'),
    plan(names.deadLetter, 'delete'),
    plan(names.channelState, 'compact'),
    replies,
  ];
}

/** Where the processors answer each node's commands (request/reply across nodes). */
export function repliesTopicName(config: Pick<KafkaConfig, 'topics'>): string {
  return `${config.topics.prefix}.replies`;
}

export const repliesRetentionMsMax = 3_600_000;

/**
 * Least privilege per service. The processor also reads the changelog (it restores its state from
 * it on assignment) and the events (every node follows them for its read replica of availability).
 * Idempotent producers need no cluster-wide grant: a WRITE on a topic implies IDEMPOTENT_WRITE.
 */
export function planAcls(config: KafkaConfig): AclGrant[] {
  const names = kafkaTopicNames(config);
  const { processor, api, connector } = config.principals;
  const topic = (principal: string, name: string, operations: AclGrant['operation'][]): AclGrant[] =>
    operations.map((operation) => ({ principal, resourceType: 'topic', resourceName: name, patternType: 'literal', operation }));
  return [
    ...topic(processor, names.commands, ['read', 'describe']),
    ...topic(processor, names.events, ['read', 'write', 'describe']),
    ...topic(processor, names.changelog, ['read', 'write', 'describe']),
    ...topic(processor, names.deadLetter, ['write', 'describe']),
    ...topic(processor, names.channelState, ['write', 'describe']),
    ...topic(processor, repliesTopicName(config), ['write', 'describe']),
    { principal: processor, resourceType: 'group', resourceName: config.consumer.groupId, patternType: 'literal', operation: 'read' },
    { principal: processor, resourceType: 'group', resourceName: config.consumer.groupId, patternType: 'literal', operation: 'describe' },
    { principal: processor, resourceType: 'transactional-id', resourceName: config.processing.transactionalIdPrefix, patternType: 'prefixed', operation: 'write' },
    { principal: processor, resourceType: 'transactional-id', resourceName: config.processing.transactionalIdPrefix, patternType: 'prefixed', operation: 'describe' },
    ...topic(api, names.commands, ['write', 'describe']),
    ...topic(api, names.events, ['read', 'describe']),
    ...topic(api, repliesTopicName(config), ['read', 'describe']),
    ...topic(connector, names.commands, ['write', 'describe']),
    ...topic(connector, names.channelState, ['read', 'describe']),
  ];
}

export interface ObservedTopic {
  partitions: number;
  /** Replica count of each partition. */
  replicaCounts: number[];
  configs: Record<string, string | null>;
}

/** What it takes to bring an existing topic to its plan, or why that must not be done. */
export function compareTopic(plan: TopicPlan, observed: ObservedTopic): { refusal?: string; changes: SettingChange[] } {
  const factors = [...new Set(observed.replicaCounts)];
  if (factors.length !== 1 || factors[0] !== plan.replicationFactor) {
    return {
      refusal: `replication factor is ${factors.join('/')} on the broker, ${plan.replicationFactor} configured: `
        + 'Kafka cannot change it in place; reassign the partitions with kafka-reassign-partitions, or set kafka.topics.replicationFactor to match',
      changes: [],
    };
  }
  if (observed.partitions > plan.partitions) {
    return {
      refusal: `has ${observed.partitions} partitions on the broker, ${plan.partitions} configured: `
        + `partitions cannot be removed; set kafka.topics.partitions to ${observed.partitions} or more`,
      changes: [],
    };
  }
  const changes: SettingChange[] = [];
  if (observed.partitions < plan.partitions) changes.push({ name: 'partitions', from: String(observed.partitions), to: String(plan.partitions) });
  for (const key of managedTopicConfigs) {
    const current = observed.configs[key] ?? null;
    if (current !== plan.configs[key]) changes.push({ name: key, from: current, to: plan.configs[key] });
  }
  return { changes };
}

const partitionWarning = 'more partitions move keys (tenants) to other partitions: records written before and after the change '
  + 'are no longer in one partition, so drain the commands topic (stop writers, let processors catch up) before relying on the new count';

interface Context {
  admin: Admin;
  timeoutMs: number;
  dryRun: boolean;
}

async function observeTopics(context: Context, names: string[]): Promise<Map<string, ObservedTopic>> {
  const { admin, timeoutMs } = context;
  const existing = new Set(await withDeadline('list topics', timeoutMs, admin.listTopics()));
  const present = names.filter((name) => existing.has(name));
  const observed = new Map<string, ObservedTopic>();
  if (present.length === 0) return observed;
  const metadata = await withDeadline('read topic metadata', timeoutMs, admin.metadata({ topics: present, forceUpdate: true }));
  const described = await withDeadline('describe topic configs', timeoutMs, admin.describeConfigs({
    resources: present.map((name) => ({ resourceType: ConfigResourceTypes.TOPIC, resourceName: name, configurationKeys: [...managedTopicConfigs] })),
  }));
  for (const name of present) {
    const topic = metadata.topics.get(name);
    if (topic === undefined) throw new Error(`the broker listed topic ${name} but returned no metadata for it`);
    const configs: Record<string, string | null> = {};
    for (const entry of described.find((resource) => resource.resourceName === name)?.configs ?? []) configs[entry.name] = entry.value ?? null;
    observed.set(name, { partitions: topic.partitionsCount, replicaCounts: topic.partitions.map((partition) => partition.replicas.length), configs });
  }
  return observed;
}

async function createTopic(context: Context, plan: TopicPlan): Promise<TopicOutcome | 'exists'> {
  const outcome: TopicOutcome = { topic: plan.name, status: 'created', partitions: plan.partitions, replicationFactor: plan.replicationFactor };
  if (context.dryRun) return outcome;
  try {
    await withDeadline(`create topic ${plan.name}`, context.timeoutMs, context.admin.createTopics({
      topics: [plan.name],
      partitions: plan.partitions,
      replicas: plan.replicationFactor,
      configs: Object.entries(plan.configs).map(([name, value]) => ({ name, value })),
    }));
    return outcome;
  } catch (error) {
    if (isUnavailable(error)) throw error;
    if (isBrokerError(error, 'TOPIC_ALREADY_EXISTS')) return 'exists';
    return { topic: plan.name, status: 'refused', reason: `the broker refused to create it: ${brokerErrorText(error)}` };
  }
}

async function alterTopic(context: Context, plan: TopicPlan, changes: SettingChange[]): Promise<TopicOutcome> {
  const partitions = changes.find((change) => change.name === 'partitions');
  const configs = changes.filter((change) => change.name !== 'partitions');
  const outcome: TopicOutcome = { topic: plan.name, status: 'altered', settings: changes, warnings: partitions === undefined ? [] : [partitionWarning] };
  if (context.dryRun) return outcome;
  try {
    if (configs.length > 0) {
      await withDeadline(`alter configs of ${plan.name}`, context.timeoutMs, context.admin.incrementalAlterConfigs({
        resources: [{
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: plan.name,
          configs: configs.map((change) => ({ name: change.name, configOperation: IncrementalAlterConfigOperationTypes.SET, value: change.to })),
        }],
      }));
    }
    if (partitions !== undefined) {
      await withDeadline(`add partitions to ${plan.name}`, context.timeoutMs, context.admin.createPartitions({ topics: [{ name: plan.name, count: plan.partitions }] }));
    }
    return outcome;
  } catch (error) {
    if (isUnavailable(error)) throw error;
    return { topic: plan.name, status: 'refused', reason: `the broker refused to change ${changes.map((change) => change.name).join(', ')}: ${brokerErrorText(error)}` };
  }
}

async function scaffoldTopic(context: Context, plan: TopicPlan, observed: ObservedTopic | undefined): Promise<TopicOutcome> {
  if (observed === undefined) {
    const created = await createTopic(context, plan);
    if (created !== 'exists') return created;
    // Someone created it between the listing and now: treat it as an existing topic.
    const again = (await observeTopics(context, [plan.name])).get(plan.name);
    if (again === undefined) return { topic: plan.name, status: 'refused', reason: 'the broker says it exists but does not list it' };
    return scaffoldTopic(context, plan, again);
  }
  const { refusal, changes } = compareTopic(plan, observed);
  if (refusal !== undefined) return { topic: plan.name, status: 'refused', reason: refusal };
  if (changes.length === 0) return { topic: plan.name, status: 'unchanged' };
  return alterTopic(context, plan, changes);
}

/**
 * Kafka applies topic and ACL changes through its metadata log, so a describe right after a change
 * may still show the old state. Waiting until the change is visible keeps the promise that a second
 * run, however soon, reports nothing to do.
 */
async function untilVisible(timeoutMs: number, isVisible: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await isVisible()) return true;
    await sleep(scaffoldLimits.visibilityPollMs);
  }
  return false;
}

async function topicsVisible(context: Context, plans: TopicPlan[]): Promise<boolean> {
  const observed = await observeTopics(context, plans.map((plan) => plan.name));
  return plans.every((plan) => {
    const topic = observed.get(plan.name);
    return topic !== undefined && compareTopic(plan, topic).changes.length === 0;
  });
}

const aclResourceTypes = { topic: ResourceTypes.TOPIC, group: ResourceTypes.GROUP, 'transactional-id': ResourceTypes.TRANSACTIONAL_ID } as const;
const aclPatternTypes = { literal: ResourcePatternTypes.LITERAL, prefixed: ResourcePatternTypes.PREFIXED } as const;
const aclOperations = { read: AclOperations.READ, write: AclOperations.WRITE, describe: AclOperations.DESCRIBE } as const;

function toAcl(grant: AclGrant): Acl {
  return {
    resourceType: aclResourceTypes[grant.resourceType],
    resourceName: grant.resourceName,
    resourcePatternType: aclPatternTypes[grant.patternType],
    principal: grant.principal,
    host: '*',
    operation: aclOperations[grant.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

function aclKey(acl: Acl): string {
  return [acl.resourceType, acl.resourceName, acl.resourcePatternType, acl.principal, acl.host, acl.operation, acl.permissionType].join('\u0000');
}

async function describedAcls(context: Context, grants: AclGrant[]): Promise<Set<string>> {
  const existing = new Set<string>();
  for (const principal of new Set(grants.map((grant) => grant.principal))) {
    const resources = await withDeadline(`describe ACLs of ${principal}`, context.timeoutMs, context.admin.describeAcls({
      filter: {
        resourceType: ResourceTypes.ANY, resourceName: null, resourcePatternType: ResourcePatternTypes.ANY,
        principal, host: null, operation: AclOperations.ANY, permissionType: AclPermissionTypes.ANY,
      },
    }));
    for (const resource of resources) {
      for (const acl of resource.acls) existing.add(aclKey({ ...resource, ...acl }));
    }
  }
  return existing;
}

async function scaffoldAcls(context: Context, grants: AclGrant[]): Promise<{ created: AclGrant[]; present: number }> {
  const existing = await describedAcls(context, grants);
  const missing = grants.filter((grant) => !existing.has(aclKey(toAcl(grant))));
  if (missing.length > 0 && !context.dryRun) {
    await withDeadline('create ACLs', context.timeoutMs, context.admin.createAcls({ creations: missing.map(toAcl) }));
    await untilVisible(context.timeoutMs, async () => {
      const now = await describedAcls(context, missing);
      return missing.every((grant) => now.has(aclKey(toAcl(grant))));
    });
  }
  return { created: missing, present: grants.length - missing.length };
}

function describeOutcome(outcome: TopicOutcome, dryRun: boolean): string {
  const verb = (done: string, planned: string): string => (dryRun ? planned : done);
  switch (outcome.status) {
    case 'created':
      return `${outcome.topic}: ${verb('created', 'would create')} (${outcome.partitions} partitions, replication factor ${outcome.replicationFactor})`;
    case 'unchanged':
      return `${outcome.topic}: unchanged`;
    case 'altered':
      return `${outcome.topic}: ${verb('altered', 'would alter')} ${outcome.settings.map((change) => `${change.name} ${change.from ?? '(unset)'} -> ${change.to}`).join(', ')}`
        + outcome.warnings.map((warning) => `\n  warning: ${warning}`).join('');
    case 'refused':
      return `${outcome.topic}: refused: ${outcome.reason}`;
  }
}

/** One line per topic and a line for the ACLs, as the CLI prints them. */
export function formatScaffoldReport(report: ScaffoldReport): string[] {
  const lines = report.topics.map((outcome) => describeOutcome(outcome, report.dryRun));
  const acls = `ACLs: ${report.aclsCreated.length} ${report.dryRun ? 'would be created' : 'created'}, ${report.aclsPresent} already present`;
  lines.push(acls);
  for (const grant of report.aclsCreated) {
    lines.push(`  ${grant.principal} ${grant.operation} ${grant.resourceType} ${grant.resourceName}${grant.patternType === 'prefixed' ? '*' : ''}`);
  }
  return lines;
}

/** Brings the brokers to the configured topics and ACLs; see the module comment for the rules. */
export async function scaffoldTopics(config: KafkaConfig, options: ScaffoldOptions = {}): Promise<ScaffoldReport> {
  const log = options.log ?? (() => undefined);
  const admin = openKafkaAdmin(config);
  const context: Context = { admin, timeoutMs: config.timeouts.adminTimeoutMs, dryRun: options.dryRun ?? false };
  try {
    const plans = planTopics(config);
    const observed = await observeTopics(context, plans.map((plan) => plan.name));
    const topics: TopicOutcome[] = [];
    for (const plan of plans) {
      const outcome = await scaffoldTopic(context, plan, observed.get(plan.name));
      log(describeOutcome(outcome, context.dryRun));
      topics.push(outcome);
    }
    const changed = plans.filter((plan) => topics.some((outcome) => outcome.topic === plan.name && (outcome.status === 'created' || outcome.status === 'altered')));
    if (!context.dryRun && changed.length > 0 && !(await untilVisible(context.timeoutMs, () => topicsVisible(context, changed)))) {
      log(`warning: the brokers did not show every change within ${context.timeoutMs} ms; run again to check`);
    }
    const acls = await scaffoldAcls(context, planAcls(config));
    const report: ScaffoldReport = {
      dryRun: context.dryRun,
      topics,
      aclsCreated: acls.created,
      aclsPresent: acls.present,
      ok: topics.every((outcome) => outcome.status !== 'refused'),
    };
    return report;
  } finally {
    await withDeadline('close the admin client', config.timeouts.shutdownTimeoutMs, admin.close()).catch(() => undefined);
  }
}
