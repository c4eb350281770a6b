// A real single-node Kafka broker for integration tests, through scripts/kafka-dev.sh (idempotent
// `up`: the first call in a run may fetch the jars and start the broker, later ones return at once).
//
//   const { bootstrap } = await ensureKafkaBroker();
//   await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--list']);
//   await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', 't'], 'one\ntwo\n');
//
// The broker is left running after the tests: `scripts/kafka-dev.sh down` stops it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin } from '@platformatic/kafka';

export const kafkaTestLimits = {
  /** A machine without a Maven cache downloads about 45 MB of jars first. */
  upTimeoutMs: 600_000,
  toolTimeoutMs: 60_000,
  /** One test case: a few tool runs and client calls. */
  caseTimeoutMs: 180_000,
  /** Bound on each Kafka client call in a test; the clients would otherwise retry for a long time. */
  clientTimeoutMs: 20_000,
  outputCharsMax: 1_000_000,
} as const;

export const kafkaDevScript = resolve(import.meta.dirname, '../../scripts/kafka-dev.sh');

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the script with a time limit; the whole process group is killed when the limit is reached. */
export function runKafkaDev(args: string[], options: { input?: string; timeoutMs: number }): Promise<ProcessResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(kafkaDevScript, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    const keep = (text: string, chunk: Buffer): string => (text + chunk.toString('utf8')).slice(-kafkaTestLimits.outputCharsMax);
    child.stdout.on('data', (chunk: Buffer) => { stdout = keep(stdout, chunk); });
    child.stderr.on('data', (chunk: Buffer) => { stderr = keep(stderr, chunk); });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      reject(new Error(`kafka-dev.sh ${args.join(' ')} timed out after ${options.timeoutMs} ms\n${stderr.slice(-4_000)}`));
    }, options.timeoutMs);
    child.on('error', (error) => { clearTimeout(timer); reject(error); });
    child.on('close', (code) => { clearTimeout(timer); resolvePromise({ code, stdout, stderr }); });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

let broker: Promise<{ bootstrap: string }> | undefined;

/** Starts the development broker unless it already answers; resolves to its bootstrap address. */
export function ensureKafkaBroker(): Promise<{ bootstrap: string }> {
  broker ??= (async () => {
    const result = await runKafkaDev(['up'], { timeoutMs: kafkaTestLimits.upTimeoutMs });
    const bootstrap = result.stdout.trim().split('\n').at(-1) ?? '';
    if (result.code !== 0 || !/^[\w.-]+:\d+$/.test(bootstrap)) {
      throw new Error(`scripts/kafka-dev.sh up failed (exit ${result.code}):\n${result.stderr.slice(-4_000)}`);
    }
    return { bootstrap };
  })();
  broker.catch(() => { broker = undefined; });
  return broker;
}

/**
 * Runs one of Kafka's own tools (`console-producer`, `console-consumer`, `topics`, `configs`,
 * `acls`, ...) with `input` on its stdin; resolves to its stdout and stderr, rejects when it exits non-zero.
 */
export async function kafkaTool(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  const result = await runKafkaDev(['tools', ...args], { input, timeoutMs: kafkaTestLimits.toolTimeoutMs });
  if (result.code !== 0) {
    throw new Error(`kafka tool ${args.join(' ')} exited ${result.code}:\n${result.stderr.slice(-4_000)}`);
  }
  return { stdout: result.stdout, stderr: result.stderr };
}

/** A topic prefix no other test run uses, so runs against the same broker never meet. */
export function uniqueTopicPrefix(name: string): string {
  return `test-${name}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Waits until `condition` holds, looking every 100 ms; fails naming `what` once `timeoutMs` has passed. */
export async function until(what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

/** Resolves as `work` does, or rejects once `timeoutMs` has passed. */
export async function within<T>(label: string, work: Promise<T>, timeoutMs: number = kafkaTestLimits.clientTimeoutMs): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${label}: timed out after ${timeoutMs} ms`)), timeoutMs); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What retention does to a partition: deletes its records before `offset`, through the broker's delete-records. */
export async function deleteRecordsBefore(bootstrap: string, topic: string, partition: number, offset: bigint): Promise<void> {
  const admin = new Admin({ clientId: `${topic.slice(0, 40)}-admin`, bootstrapBrokers: [bootstrap], timeout: 10_000 });
  try {
    await within('delete records', admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition, offset }] }] }));
  } finally {
    await admin.close();
  }
}
