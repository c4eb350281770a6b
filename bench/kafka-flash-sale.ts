// Flash sale through the Kafka engine: one hot SKU, two Stockline nodes, one broker, all on this machine.
//
//   1. Reservations over loopback HTTP to both nodes (1 unit each, one tenant, so one partition and one
//      processor decide them all): throughput, p50 and p99 of the answer, at a few concurrencies.
//   2. The processor alone: a backlog of reserve commands written straight to the commands topic, drained
//      by one processor: decided commands (one event each) per second, batches of processing.maxBatch.
//
// Run: scripts/kafka-dev.sh up && npx tsx bench/kafka-flash-sale.ts [--duration 10] [--backlog 20000]

import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { KafkaEngine } from '../src/adapters/kafka/engine.js';
import { ensureEngineTopics } from '../src/adapters/kafka/engine-topics.js';
import { engineTopicNames, openProducer, silentLog } from '../src/adapters/kafka/clients.js';
import { deleteTestTopics, kafkaTestConfig, spawnKafkaNode } from '../test/support/kafka-node.js';
import type { NodeProcess } from '../test/support/kafka-node.js';
import { ensureKafkaBroker } from '../test/support/kafka-broker.js';

const flag = (name: string, fallback: number): number => {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? Number(process.argv[index + 1]) : fallback;
};
const durationSeconds = flag('duration', 10);
const backlog = flag('backlog', 20_000);
const warmupSeconds = 2;
const concurrencies = [8, 32, 128];
const tenant = 'bench';
const sku = 'HOT-1';

interface Run { concurrency: number; reservationsPerSecond: number; p50Ms: number; p99Ms: number; accepted: number; errors: number }

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] as number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

/** POST over a kept-alive connection (node:http: lighter than fetch, so the load generator takes less of the two cores). */
function post(url: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const outgoing = request({
      host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, timeout: 30_000,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error('timed out')));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

async function loadNodes(nodes: NodeProcess[], concurrency: number, label: string): Promise<Run> {
  const latencies: number[] = [];
  let accepted = 0;
  let errors = 0;
  let measuring = false;
  let stop = false;
  let sequence = 0;
  const worker = async (index: number): Promise<void> => {
    const node = nodes[index % nodes.length] as NodeProcess;
    while (!stop) {
      sequence += 1;
      const body = JSON.stringify({ type: 'reserve', tenant, reservationId: `${label}-${sequence}`, channel: 'web', lines: [{ sku, quantity: 1 }], ttlMs: 3_600_000 });
      const started = performance.now();
      try {
        const response = await post(`${node.url}/submit`, body);
        const answer = JSON.parse(response.text) as { outcome?: { rejection?: unknown } };
        const ok = response.status === 200 && answer.outcome?.rejection === undefined;
        if (!measuring) continue;
        if (ok) {
          accepted += 1;
          latencies.push(performance.now() - started);
        } else {
          errors += 1;
        }
      } catch {
        if (measuring) errors += 1;
      }
    }
  };
  const running = Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)));
  await sleep(warmupSeconds * 1_000);
  measuring = true;
  const started = performance.now();
  await sleep(durationSeconds * 1_000);
  measuring = false;
  const elapsedSeconds = (performance.now() - started) / 1_000;
  stop = true;
  await running;
  latencies.sort((a, b) => a - b);
  return {
    concurrency, reservationsPerSecond: Math.round(accepted / elapsedSeconds),
    p50Ms: Number(percentile(latencies, 0.5).toFixed(1)), p99Ms: Number(percentile(latencies, 0.99).toFixed(1)), accepted, errors,
  };
}

async function httpPart(bootstrap: string): Promise<Run[]> {
  const prefix = `bench-kafka-http-${Date.now().toString(36)}`;
  const nodes: NodeProcess[] = [];
  try {
    nodes.push(await spawnKafkaNode({ bootstrap, prefix, nodeId: 'bench-a', partitions: 3, submitTimeoutMs: 30_000 }));
    nodes.push(await spawnKafkaNode({ bootstrap, prefix, nodeId: 'bench-b', partitions: 3, submitTimeoutMs: 30_000 }));
    // Both nodes in the group before the load: the second one's join moves partitions.
    await sleep(8_000);
    const seed = await post(`${(nodes[0] as NodeProcess).url}/submit`, JSON.stringify({ type: 'adjust_stock', tenant, sku, location: 'default', set: 1_000_000_000 }));
    if (seed.status !== 200) throw new Error(`could not stock ${sku}: ${seed.text}`);
    const runs: Run[] = [];
    for (const concurrency of concurrencies) {
      const run = await loadNodes(nodes, concurrency, `c${concurrency}`);
      console.log(`  http, ${concurrency} concurrent: ${run.reservationsPerSecond} reservations/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms (${run.accepted} accepted, ${run.errors} errors)`);
      runs.push(run);
    }
    return runs;
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await deleteTestTopics(bootstrap, prefix);
  }
}

/** Writes `backlog` reserve commands to the commands topic first, then times one processor deciding them all. */
async function processorPart(bootstrap: string): Promise<{ commands: number; seconds: number; eventsPerSecond: number }> {
  const prefix = `bench-kafka-proc-${Date.now().toString(36)}`;
  const config = kafkaTestConfig({ bootstrap, prefix, partitions: 3 });
  const topics = engineTopicNames(config);
  await ensureEngineTopics(config, topics, silentLog, true);
  const producer = openProducer(config, 'bench-backlog');
  try {
    const stock = JSON.stringify({ input: { type: 'adjust_stock', tenant, sku, location: 'default', set: 1_000_000_000 } });
    await producer.send({ messages: [{ topic: topics.commands, key: tenant, value: stock }] });
    for (let start = 0; start < backlog; start += 1_000) {
      const messages = Array.from({ length: Math.min(1_000, backlog - start) }, (_, offset) => ({
        topic: topics.commands, key: tenant,
        value: JSON.stringify({ input: { type: 'reserve', tenant, reservationId: `p-${start + offset}`, channel: 'web', lines: [{ sku, quantity: 1 }], ttlMs: 3_600_000 } }),
      }));
      await producer.send({ messages });
    }
  } finally {
    await producer.close();
  }
  const started = performance.now();
  const engine = await KafkaEngine.start({ config, nodeId: 'bench-processor', expiryIntervalMs: 0 });
  try {
    const deadline = Date.now() + 600_000;
    for (;;) {
      const reserved = engine.tenant(tenant)?.skus.get(sku)?.locations.get('default')?.reserved ?? 0;
      if (reserved >= backlog) break;
      if (Date.now() > deadline) throw new Error(`the processor decided ${reserved} of ${backlog} commands in 10 minutes`);
      await sleep(20);
    }
    const seconds = (performance.now() - started) / 1_000;
    return { commands: backlog, seconds: Number(seconds.toFixed(2)), eventsPerSecond: Math.round(backlog / seconds) };
  } finally {
    await engine.close();
    await deleteTestTopics(bootstrap, prefix);
  }
}

async function main(): Promise<void> {
  const { bootstrap } = await ensureKafkaBroker();
  const load = (): string => loadavg().map((value) => value.toFixed(1)).join(' ');
  console.log(`Kafka engine flash sale (node ${process.version}, ${durationSeconds} s per run, broker ${bootstrap}, load average ${load()})`);
  const http = await httpPart(bootstrap);
  const processor = await processorPart(bootstrap);
  console.log(`  processor: ${processor.commands} backlogged reservations decided in ${processor.seconds} s (start and restore included): ${processor.eventsPerSecond} events/s`);
  console.log(`  load average at the end: ${load()} (other work on the machine slows every hop)`);
  console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, durationSeconds, loadAverage: loadavg(), http, processor }, null, 2));
  agent.destroy();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
