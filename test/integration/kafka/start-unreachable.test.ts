// A Kafka node started while its brokers cannot be reached (a broker restarting during a rolling deploy): it tries
// again, saying so, until its start time runs out, and `stockline serve` then stops with one line and exit status 2.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaUnavailableError } from '../../../src/adapters/kafka/admin.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import { serveCommand } from '../../../src/cli/serve.js';
import { kafkaTestConfig } from '../../support/kafka-node.js';

const root = mkdtempSync(join(tmpdir(), 'stockline-kafka-unreachable-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A loopback address nothing listens on: a port taken and given back. */
async function closedAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

describe('a Kafka node whose brokers cannot be reached at start', { timeout: 60_000 }, () => {
  it('tries again, with a warning each time, until its start time runs out', async () => {
    const warnings: string[] = [];
    const log = { debug: (): void => undefined, info: (): void => undefined, warn: (message: string): void => { warnings.push(message); }, error: (): void => undefined };
    const started = KafkaEngine.start({ config: kafkaTestConfig({ bootstrap: await closedAddress(), prefix: 'unreachable' }), nodeId: 'unreachable-node', startTimeoutMs: 10_000, log });
    await expect(started).rejects.toBeInstanceOf(KafkaUnavailableError);
    await expect(started).rejects.toThrow(/^the Kafka engine could not start within 10000 ms: the brokers could not be reached \(.+\)$/);
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings[0]).toMatch(/^kafka engine: the brokers cannot be reached \(.+\); trying again in \d+ ms$/);
  });

  it('stops stockline serve with one line and exit status 2', async () => {
    const dir = mkdtempSync(join(root, 'node-'));
    const config = join(dir, 'stockline.yaml');
    writeFileSync(config, `engine: kafka\ndataDir: ${join(dir, 'data')}\nkafka:\n  brokers: [${await closedAddress()}]\n  topics: { prefix: unreachable-serve }\n  timeouts: { connectTimeoutMs: 1000, startTimeoutMs: 8000 }\n`);
    let stderr = '';
    const io = { stdout: (): void => undefined, stderr: (text: string): void => { stderr += text; }, stdin: new PassThrough() };
    const status = await serveCommand(['--host', '127.0.0.1', '--port', '0', '--log-level', 'silent', '--config', config], io);
    expect(stderr).toMatch(/^stockline serve: the Kafka engine could not start within 8000 ms: the brokers could not be reached \(.+\)\n$/);
    expect(status).toBe(2);
  });
});
