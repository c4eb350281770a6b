// PostgreSQL COMMIT -> durable in the ledger through logical replication: p50/p99 at 100 and 1,000 changes/s.
// Run: npx tsx bench/cdc-latency.ts [--seconds 10] [--bus embedded|memory]   (needs wal_level=logical: scripts/pg-enable-logical.sh)
// `embedded` (default) is the real SQLite engine with a full fsync per group commit; `memory` is the bare ledger.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { CommandBus, CommandInput, DeadLetterSink, SourceOffsets, Submitted } from '../src/app/ports.js';
import { execute, initialState } from '../src/core/index.js';
import type { Command } from '../src/core/index.js';
import { EmbeddedEngine } from '../src/adapters/sqlite/embedded-engine.js';
import { PostgresCdcSource } from '../src/adapters/postgres-cdc/source.js';
import { createThrowawayDatabase } from '../test/support/pg.js';

const argument = (name: string, fallback: string): string => {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] ?? fallback : fallback;
};
const seconds = Number(argument('seconds', '10'));
const busKind = argument('bus', 'embedded');
const rates = [100, 1_000];
const skuCount = 1_000;
const writerConnections = 32;
const tickMs = 5;
const drainDeadlineMs = 60_000;

/** Times when each (sku, quantity) became durable; quantities are unique per run, so the pair names one change. */
class TimedBus implements CommandBus {
  readonly appliedAt = new Map<string, number>();
  constructor(private readonly inner: CommandBus) {}
  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    const results = await this.inner.submitMany(commands);
    const now = performance.now();
    for (const command of commands) if (command.type === 'adjust_stock') this.appliedAt.set(`${command.sku}=${command.set}`, now);
    return results;
  }
}

class MemoryBus implements CommandBus {
  private readonly state = initialState();
  private counter = 0;
  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    return commands.map((input) => ({ outcome: execute(this.state, { ...input, id: `b${++this.counter}`, timeMs: Date.now() } as Command).outcome }));
  }
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

async function waitFor(check: () => boolean, deadlineMs: number): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

/** One connection with its own queue, so each UPDATE's send time is when it really goes out. */
class Writer {
  private tail: Promise<unknown> = Promise.resolve();
  constructor(readonly client: pg.Client) {}
  update(sku: string, quantity: number, sent: Map<string, number>, acked: Map<string, number>): Promise<unknown> {
    const key = `${sku}=${quantity}`;
    this.tail = this.tail.then(async () => {
      sent.set(key, performance.now());
      await this.client.query('UPDATE stock SET qty = $1 WHERE sku = $2', [quantity, sku]);
      acked.set(key, performance.now());
    });
    return this.tail;
  }
}

function summary(latencies: number[]): { p50Ms: number; p99Ms: number; maxMs: number } {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { p50Ms: round(percentile(sorted, 0.5)), p99Ms: round(percentile(sorted, 0.99)), maxMs: round(sorted[sorted.length - 1] ?? Number.NaN) };
}

/**
 * Commits `rate` single-row UPDATEs (autocommit) per second for `seconds`, spread over the writers. Each
 * change is timed from its statement going out (so PostgreSQL's own commit and fsync are included) and
 * from the client seeing the commit, to its being durable in the ledger.
 */
async function runRate(rate: number, writers: Writer[], bus: TimedBus, firstQuantity: number): Promise<Record<string, number>> {
  const total = rate * seconds;
  const sentAt = new Map<string, number>();
  const ackedAt = new Map<string, number>();
  const pending: Array<Promise<unknown>> = [];
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
    for (; sent < due; sent += 1) {
      const writer = writers[sent % writers.length] as Writer;
      pending.push(writer.update(`SKU-${sent % skuCount}`, firstQuantity + sent, sentAt, ackedAt));
    }
    await new Promise((resolve) => setTimeout(resolve, tickMs));
  }
  await Promise.all(pending);
  const elapsedS = (performance.now() - start) / 1000;
  const drained = await waitFor(() => [...sentAt.keys()].every((key) => bus.appliedAt.has(key)), drainDeadlineMs);
  if (!drained) throw new Error(`not every change of the ${rate}/s run was applied within ${drainDeadlineMs} ms`);
  const fromSent = summary([...sentAt].map(([key, at]) => (bus.appliedAt.get(key) as number) - at));
  const fromAcked = summary([...ackedAt].map(([key, at]) => (bus.appliedAt.get(key) as number) - at));
  return {
    rate, changes: total, achievedPerS: Math.round(total / elapsedS),
    p50Ms: fromSent.p50Ms, p99Ms: fromSent.p99Ms, maxMs: fromSent.maxMs,
    p50AfterAckMs: fromAcked.p50Ms, p99AfterAckMs: fromAcked.p99Ms,
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

async function main(): Promise<void> {
  const database = await createThrowawayDatabase('stockline_cdc_bench');
  const dataDir = mkdtempSync(join(tmpdir(), 'stockline-cdc-bench-'));
  const engine = busKind === 'embedded' ? new EmbeddedEngine({ path: join(dataDir, 'ledger.db'), expiryIntervalMs: 0 }) : undefined;
  const memoryOffsets = new Map<string, string>();
  const offsets: SourceOffsets = engine?.offsets() ?? { get: (key) => memoryOffsets.get(key), set: (key, value) => { memoryOffsets.set(key, value); } };
  const deadLetters: DeadLetterSink = engine ?? { deadLetter: (letter) => { throw new Error(`unexpected dead letter: ${letter.reason}`); } };
  const bus = new TimedBus(engine ?? new MemoryBus());
  const writers: Writer[] = [];
  let source: PostgresCdcSource | undefined;
  try {
    await database.client.query('CREATE TABLE stock (sku text PRIMARY KEY, qty integer NOT NULL)');
    await database.client.query(`INSERT INTO stock SELECT 'SKU-' || n, 0 FROM generate_series(0, ${skuCount - 1}) AS n`);
    source = new PostgresCdcSource({
      config: {
        type: 'postgres', name: 'bench', connectionString: database.connectionString, table: 'stock',
        columns: { sku: 'sku', onHand: 'qty', tenantConstant: 'bench', locationConstant: 'main' }, slot: 'stockline_bench', publication: 'stockline_bench',
      },
      bus, deadLetters, offsets,
    });
    await source.start();
    for (let index = 0; index < writerConnections; index += 1) {
      const client = new pg.Client({ connectionString: database.connectionString });
      await client.connect();
      writers.push(new Writer(client));
    }
    const results: Array<Record<string, number>> = [];
    let firstQuantity = 1;
    for (const rate of rates) {
      results.push(await runRate(rate, writers, bus, firstQuantity));
      firstQuantity += rate * seconds;
    }
    console.log(`PostgreSQL COMMIT -> durable in the ledger (${busKind} bus, ${seconds} s per rate, ${writerConnections} writers, ${skuCount} SKUs);`);
    console.log('p50/p99/max from the statement going out; *AfterAck from the client seeing the commit (can be below 0 when the client is slow to hear it)');
    console.table(results);
    console.log(JSON.stringify({ bench: 'cdc-latency', bus: busKind, seconds, results }));
  } finally {
    await source?.stop();
    await Promise.all(writers.map((writer) => writer.client.end()));
    await engine?.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
