// The broker goes down under load and comes back: submits fail with retryable errors meanwhile, then succeed
// again without anyone restarting Stockline, and a retried command is applied once.
//
// The shared development broker must not go down under the other test files, so this file runs a broker of
// its own (scripts/kafka-dev.sh with KAFKA_PORT and KAFKA_DATA_DIR) and stops it at the end.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/app/engine.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import { kafkaDevScript, kafkaTestLimits, uniqueTopicPrefix } from '../../support/kafka-broker.js';
import { kafkaTestConfig } from '../../support/kafka-node.js';

const port = 19192;
const bootstrap = `127.0.0.1:${port}`;
const dataDir = mkdtempSync(join(tmpdir(), 'stockline-kafka-restart-'));
const prefix = uniqueTopicPrefix('restart');
const tenant = 'steady';
const workers = 4;
const scriptTimeoutMs = 180_000;

/** scripts/kafka-dev.sh on this file's own port and data directory. */
function ownBroker(command: 'up' | 'down'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(kafkaDevScript, [command], {
      stdio: ['ignore', 'pipe', 'pipe'], detached: true,
      env: { ...process.env, KAFKA_PORT: String(port), KAFKA_DATA_DIR: dataDir },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString('utf8')).slice(-8_000); });
    child.stdout.resume();
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      reject(new Error(`kafka-dev.sh ${command} timed out:\n${stderr}`));
    }, scriptTimeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`kafka-dev.sh ${command} exited ${code}:\n${stderr}`));
    });
  });
}

let engine: KafkaEngine | undefined;

beforeAll(async () => {
  await ownBroker('up');
  engine = await KafkaEngine.start({ config: kafkaTestConfig({ bootstrap, prefix }), nodeId: 'restart-node', submitTimeoutMs: 5_000, startTimeoutMs: 60_000 });
}, kafkaTestLimits.upTimeoutMs);

afterAll(async () => {
  await engine?.close().catch(() => undefined);
  await ownBroker('down').catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
}, scriptTimeoutMs);

describe('a broker restart under load', () => {
  it('fails submits with retryable errors while the broker is down and recovers by itself', { timeout: 300_000 }, async () => {
    const running = engine as KafkaEngine;
    const errors: string[] = [];
    let completed = 0;
    let nextOp = 0;
    let stop = false;
    /** One +1 adjustment under its own idempotency key, retried with that key until it is answered. */
    const operation = async (op: number): Promise<void> => {
      for (;;) {
        try {
          const submitted = await running.submit({ type: 'adjust_stock', tenant, sku: 'S', location: 'default', delta: 1, idempotencyKey: `op-${op}` });
          const rejection = submitted.outcome.rejection;
          expect(rejection === undefined || (rejection.code === 'DUPLICATE' && rejection.first.rejection === undefined), JSON.stringify(rejection)).toBe(true);
          completed += 1;
          return;
        } catch (error) {
          if (!(error instanceof AppError) || !error.retryable) throw error;
          errors.push(error.code);
          await sleep(200);
        }
      }
    };
    const load = Promise.all(Array.from({ length: workers }, async () => {
      while (!stop) {
        nextOp += 1;
        await operation(nextOp);
      }
    }));
    const until = async (what: string, check: () => boolean, timeoutMs: number): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (completed ${completed}, errors ${errors.length})`);
        await sleep(50);
      }
    };

    await until('commands before the outage', () => completed >= 20, 30_000);
    await ownBroker('down');
    const completedAtOutage = completed;
    await until('a retryable failure while the broker is down', () => errors.length > 0, 30_000);
    // The node says so: not ready, naming the brokers, so a probe takes it out and StocklineEngineNotReady pages.
    await until('not ready while the broker is down', () => !running.ready(), 30_000);
    expect(running.notReadyReason()).toMatch(/^the Kafka brokers have not answered this node's reads of .+ for \d+ s: /);
    await sleep(2_000);
    expect(completed - completedAtOutage).toBeLessThanOrEqual(workers);
    await ownBroker('up');
    const completedAtRestart = completed;
    await until('commands after the restart', () => completed >= completedAtRestart + 20, 120_000);
    await until('ready again after the restart', () => running.ready(), 30_000);
    stop = true;
    await load;

    expect(new Set(errors).size).toBeGreaterThan(0);
    expect(errors.every((code) => ['KAFKA_TIMEOUT', 'KAFKA_UNAVAILABLE'].includes(code)), errors.join(',')).toBe(true);
    // Every operation was answered once it was applied, and applied once, however often it was retried.
    expect(running.tenant(tenant)?.skus.get('S')?.locations.get('default')?.onHand).toBe(completed);
    expect(running.ready()).toBe(true);
  });
});
