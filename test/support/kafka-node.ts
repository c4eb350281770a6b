// A Stockline node for multi-process Kafka tests: a KafkaEngine and a tiny HTTP endpoint, plus the helpers tests use to start it.
//
// As a script (`node --import tsx test/support/kafka-node.ts`), configured by environment:
//   STOCKLINE_KAFKA_BOOTSTRAP, STOCKLINE_KAFKA_PREFIX, STOCKLINE_NODE_ID, STOCKLINE_KAFKA_PARTITIONS,
//   STOCKLINE_KAFKA_SESSION_MS, STOCKLINE_SUBMIT_TIMEOUT_MS
// it prints one JSON line `{"ready":true,"port":N,"partitions":[...]}` once the engine is ready, and serves
//   POST /submit    a CommandInput -> 200 {outcome, position} | 4xx/503 {error: {code, message, retryable}}
//   GET  /tenant/T  the tenant's state as plain data (or 404)
//   GET  /owned     the commands partitions this node decides
// on 127.0.0.1 only. SIGTERM closes the engine and exits.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Admin } from '@platformatic/kafka';
import { toSnapshot } from '../../src/core/index.js';
import { AppError } from '../../src/app/engine.js';
import type { CommandInput } from '../../src/app/ports.js';
import { loadKafkaConfig } from '../../src/adapters/kafka/config.js';
import type { KafkaConfig } from '../../src/adapters/kafka/config.js';
import { KafkaEngine } from '../../src/adapters/kafka/engine.js';

export interface KafkaTestConfigOptions {
  bootstrap: string;
  prefix: string;
  partitions?: number;
  sessionTimeoutMs?: number;
}

/** Settings for a test against the development broker: one replica, short time-outs, topics and group named by the prefix. */
export function kafkaTestConfig(options: KafkaTestConfigOptions): KafkaConfig {
  const { bootstrap, prefix } = options;
  return loadKafkaConfig({
    kafka: {
      brokers: [bootstrap],
      clientId: prefix.slice(0, 48),
      topics: { prefix, partitions: options.partitions ?? 3, replicationFactor: 1, minInsyncReplicas: 1, retentionMs: 3_600_000 },
      producer: { requestTimeoutMs: 5_000, deliveryTimeoutMs: 15_000, retries: 3 },
      consumer: { groupId: `${prefix}-processors`, sessionTimeoutMs: options.sessionTimeoutMs ?? 6_000, maxWaitMs: 100 },
      processing: { transactionalIdPrefix: `${prefix}-processor`, maxBatch: 500 },
      timeouts: { connectTimeoutMs: 3_000, adminTimeoutMs: 10_000, shutdownTimeoutMs: 5_000 },
    },
  });
}

/** Deletes every topic whose name starts with `<prefix>.`; errors are ignored (cleanup). */
export async function deleteTestTopics(bootstrap: string, prefix: string): Promise<void> {
  const admin = new Admin({ clientId: `${prefix.slice(0, 40)}-cleanup`, bootstrapBrokers: [bootstrap], timeout: 10_000, retries: 1 });
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(`${prefix}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } catch {
    // The broker keeps them in its data directory; nothing else depends on them.
  } finally {
    await admin.close().catch(() => undefined);
  }
}

export interface NodeProcess {
  nodeId: string;
  url: string;
  child: ChildProcess;
  /** What the node wrote to stderr (the tail), for failure messages. */
  stderr(): string;
  /** SIGTERM and wait for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

const nodeScript = resolve(import.meta.dirname, 'kafka-node.ts');

/** Spawns a node and resolves once it is ready; rejects (and kills it) after `timeoutMs`. */
export function spawnKafkaNode(env: { bootstrap: string; prefix: string; nodeId: string; partitions?: number; sessionTimeoutMs?: number; submitTimeoutMs?: number }, timeoutMs = 90_000): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', nodeScript], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      STOCKLINE_KAFKA_BOOTSTRAP: env.bootstrap,
      STOCKLINE_KAFKA_PREFIX: env.prefix,
      STOCKLINE_NODE_ID: env.nodeId,
      STOCKLINE_KAFKA_PARTITIONS: String(env.partitions ?? 3),
      STOCKLINE_KAFKA_SESSION_MS: String(env.sessionTimeoutMs ?? 6_000),
      STOCKLINE_SUBMIT_TIMEOUT_MS: String(env.submitTimeoutMs ?? 10_000),
    },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString('utf8')).slice(-20_000); });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async (graceMs = 15_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      void kill();
      reject(new Error(`node ${env.nodeId} was not ready within ${timeoutMs} ms:\n${stderr.slice(-4_000)}`));
    }, timeoutMs);
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const line = stdout.split('\n').find((candidate) => candidate.startsWith('{"ready"'));
      if (line === undefined) return;
      clearTimeout(timer);
      const { port } = JSON.parse(line) as { port: number };
      resolvePromise({ nodeId: env.nodeId, url: `http://127.0.0.1:${port}`, child, stderr: () => stderr, stop, kill });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`node ${env.nodeId} exited before it was ready (${code ?? signal}):\n${stderr.slice(-4_000)}`));
    });
  });
}

// --- the node itself ---------------------------------------------------------------------------

const requestBytesMax = 1_048_576;

async function bodyOf(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > requestBytesMax) throw new AppError('PAYLOAD_TOO_LARGE', 'request body too large', false, 413);
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

async function handle(engine: KafkaEngine, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://127.0.0.1');
  if (request.method === 'POST' && url.pathname === '/submit') {
    try {
      send(response, 200, await engine.submit(await bodyOf(request) as CommandInput));
    } catch (error) {
      const known = error instanceof AppError;
      send(response, known ? error.statusHint ?? 503 : 500, { error: { code: known ? error.code : 'INTERNAL', message: (error as Error).message, retryable: known ? error.retryable : false } });
    }
    return;
  }
  if (request.method === 'GET' && url.pathname.startsWith('/tenant/')) {
    const name = decodeURIComponent(url.pathname.slice('/tenant/'.length));
    const tenant = engine.tenant(name);
    if (tenant === undefined) return send(response, 404, { error: { code: 'NOT_FOUND' } });
    return send(response, 200, toSnapshot({ tenants: new Map([[name, tenant]]) }).tenants[name] ?? {});
  }
  if (request.method === 'GET' && url.pathname === '/owned') return send(response, 200, { partitions: engine.ownedPartitions(), position: engine.position() });
  send(response, 404, { error: { code: 'NOT_FOUND' } });
}

async function main(): Promise<void> {
  const env = process.env;
  const required = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === '') throw new Error(`${name} is required`);
    return value;
  };
  const config = kafkaTestConfig({
    bootstrap: required('STOCKLINE_KAFKA_BOOTSTRAP'), prefix: required('STOCKLINE_KAFKA_PREFIX'),
    partitions: Number(env.STOCKLINE_KAFKA_PARTITIONS ?? 3), sessionTimeoutMs: Number(env.STOCKLINE_KAFKA_SESSION_MS ?? 6_000),
  });
  const nodeId = required('STOCKLINE_NODE_ID');
  const write = (level: string) => (message: string): void => { process.stderr.write(`${new Date().toISOString()} ${nodeId} ${level} ${message}\n`); };
  const engine = await KafkaEngine.start({
    config, nodeId, submitTimeoutMs: Number(env.STOCKLINE_SUBMIT_TIMEOUT_MS ?? 10_000),
    log: { debug: () => undefined, info: write('info'), warn: write('warn'), error: write('error') },
  });
  const server = createServer((request, response) => {
    handle(engine, request, response).catch((error: unknown) => send(response, 500, { error: { code: 'INTERNAL', message: String(error) } }));
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ ready: true, port, partitions: engine.ownedPartitions() })}\n`);
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close();
    engine.close().finally(() => process.exit(0));
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`kafka-node: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
