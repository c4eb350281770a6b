// Throughput of the pure ledger (decide + evolve) in memory on one core: `npx tsx bench/core.ts [--seconds=3] [--json]`.

import type { Command } from '../src/core/commands.js';
import { decide } from '../src/core/decide.js';
import { evolve } from '../src/core/evolve.js';
import { execute } from '../src/core/ledger.js';
import { limits } from '../src/core/limits.js';
import { initialState } from '../src/core/state.js';
import type { LedgerState } from '../src/core/state.js';

const tenant = 'bench';
const skuCount = 1_000;
const locations = ['wh-a', 'wh-b'];
/** Far more than a round can hold, so no reservation is refused for want of stock. */
const onHandPerLocation = 100_000_000;
/** Operations per round; every round starts from a fresh state so the maps stay the size of a busy tenant. */
const roundOps = 50_000;
const startMs = Date.UTC(2025, 0, 1);

interface Options {
  seconds: number;
  warmupSeconds: number;
  jsonOnly: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { seconds: 3, warmupSeconds: 1, jsonOnly: false };
  for (const arg of argv) {
    const [name, value] = arg.split('=');
    if (name === '--seconds' && value !== undefined) options.seconds = Number(value);
    else if (name === '--warmup' && value !== undefined) options.warmupSeconds = Number(value);
    else if (name === '--json') options.jsonOnly = true;
  }
  return options;
}

function skuName(index: number): string {
  return `sku-${String(index % skuCount).padStart(4, '0')}`;
}

function stockedState(): LedgerState {
  const state = initialState();
  let id = 0;
  for (let sku = 0; sku < skuCount; sku += 1) {
    for (const location of locations) {
      apply(state, { type: 'adjust_stock', id: `seed-${id++}`, tenant, timeMs: startMs, sku: skuName(sku), location, delta: onHandPerLocation });
    }
  }
  return state;
}

/** decide, then evolve every event: what an engine does per command, minus I/O. */
function apply(state: LedgerState, command: Command): number {
  const outcome = decide(state.tenants.get(command.tenant), command);
  if (outcome.rejection !== undefined) throw new Error(`bench command ${command.id} was refused: ${outcome.rejection.code}`);
  for (const event of outcome.events) evolve(state, event);
  return outcome.events.length;
}

interface Case {
  name: string;
  /** What one op is, for the table. */
  unit: string;
  /** Builds the state and the commands of one round (untimed). */
  prepare: (round: number) => { state: LedgerState; commands: Command[] };
  /** Runs them (timed); the default is decide + evolve per command. */
  run?: (state: LedgerState, commands: readonly Command[]) => void;
  /** Work per op, e.g. lines per cart, for a second rate in the table. */
  perOp?: { count: number; unit: string };
}

function runAll(state: LedgerState, commands: readonly Command[]): void {
  for (const command of commands) apply(state, command);
}

function fresh(commands: Command[]): { state: LedgerState; commands: Command[] } {
  return { state: stockedState(), commands };
}

function reserveCommands(round: number, lines: (index: number) => Array<{ sku: string; quantity: number; location?: string }>, ttlMs: (index: number) => number = () => 900_000): Command[] {
  const commands: Command[] = [];
  for (let index = 0; index < roundOps; index += 1) {
    commands.push({ type: 'reserve', id: `c-${round}-${index}`, tenant, timeMs: startMs + index, reservationId: `r-${round}-${index}`, channel: 'web', lines: lines(index), ttlMs: ttlMs(index) });
  }
  return commands;
}

/** A tick releases at most this many due holds; each tick of the expiry case has exactly this many due. */
const holdsPerTick = limits.expirationsPerTickMax;

const cases: Case[] = [
  {
    name: 'reserve, 1 line',
    unit: 'reservation',
    prepare: (round) => fresh(reserveCommands(round, (index) => [{ sku: skuName(index * 7), quantity: 1 }])),
  },
  {
    name: 'reserve, 1 line at a location',
    unit: 'reservation',
    prepare: (round) => fresh(reserveCommands(round, (index) => [{ sku: skuName(index * 7), quantity: 1, location: 'wh-b' }])),
  },
  {
    name: 'reserve + commit | release',
    unit: 'command',
    prepare: (round) => {
      const commands: Command[] = [];
      for (let index = 0; commands.length < roundOps; index += 1) {
        const reservationId = `r-${round}-${index}`;
        const timeMs = startMs + index;
        commands.push({ type: 'reserve', id: `c-${round}-${index}`, tenant, timeMs, reservationId, channel: 'web', lines: [{ sku: skuName(index * 7), quantity: 2 }], ttlMs: 900_000 });
        commands.push(index % 2 === 0
          ? { type: 'commit', id: `k-${round}-${index}`, tenant, timeMs, reservationId }
          : { type: 'release', id: `k-${round}-${index}`, tenant, timeMs, reservationId, reason: 'released' });
      }
      return fresh(commands);
    },
  },
  {
    name: 'reserve, 10-line cart',
    unit: 'cart',
    perOp: { count: 10, unit: 'lines' },
    prepare: (round) => fresh(reserveCommands(round, (index) => Array.from({ length: 10 }, (_, line) => ({ sku: skuName(index * 13 + line * 97), quantity: 1 })))),
  },
  {
    name: 'adjust, delta',
    unit: 'adjustment',
    prepare: (round) => fresh(Array.from({ length: roundOps }, (_, index): Command => ({
      type: 'adjust_stock', id: `a-${round}-${index}`, tenant, timeMs: startMs + index, sku: skuName(index * 7), location: locations[index % 2] as string, delta: index % 2 === 0 ? 3 : -3,
    }))),
  },
  {
    name: 'adjust, set with sourceSeq',
    unit: 'adjustment',
    prepare: (round) => fresh(Array.from({ length: roundOps }, (_, index): Command => ({
      type: 'adjust_stock', id: `s-${round}-${index}`, tenant, timeMs: startMs + index, sku: skuName(index * 7), location: 'wh-a', set: onHandPerLocation - (index % 5), sourceSeq: String(1_000_000_000 + index), source: 'pg:main',
    }))),
  },
  {
    name: 'execute: reserve with idempotency key',
    unit: 'reservation',
    prepare: (round) => fresh(reserveCommands(round, (index) => [{ sku: skuName(index * 7), quantity: 1 }]).map((command, index) => ({ ...command, idempotencyKey: `key-${round}-${index}` }))),
    run: (state, commands) => {
      for (const command of commands) execute(state, command);
    },
  },
  {
    name: `expire_due, ${holdsPerTick} holds per tick`,
    unit: 'tick',
    perOp: { count: holdsPerTick, unit: 'expirations' },
    prepare: (round) => {
      // Holds expiring one per millisecond, in shuffled order; each tick then releases the next holdsPerTick.
      const state = stockedState();
      runAll(state, reserveCommands(round, (index) => [{ sku: skuName(index * 7), quantity: 1 }], (index) => 1_000 + ((index * 7_919) % roundOps) - index));
      const ticks: Command[] = [];
      for (let tick = 1; tick <= roundOps / holdsPerTick; tick += 1) {
        ticks.push({ type: 'expire_due', id: `t-${round}-${tick}`, tenant, timeMs: startMs + 1_000_000, nowMs: startMs + 1_000 + tick * holdsPerTick - 1 });
      }
      return { state, commands: ticks };
    },
    run: (state, commands) => {
      let released = 0;
      for (const command of commands) released += execute(state, command).outcome.events.length;
      // The figure per expiration holds only if every tick released as many as it is counted for.
      if (released !== commands.length * holdsPerTick) throw new Error(`${commands.length} ticks released ${released} holds, not ${holdsPerTick} each`);
    },
  },
];

interface Result {
  name: string;
  unit: string;
  opsPerSecond: number;
  nsPerOp: number;
  perOp?: { unit: string; perSecond: number };
  ops: number;
  seconds: number;
}

function now(): bigint {
  return process.hrtime.bigint();
}

/** Runs rounds of a case until `seconds` of timed work have passed; returns ops and timed nanoseconds. */
function measure(benchCase: Case, seconds: number): { ops: number; ns: bigint } {
  const budgetNs = BigInt(Math.round(seconds * 1e9));
  let ops = 0;
  let ns = 0n;
  for (let round = 0; ns < budgetNs; round += 1) {
    const { state, commands } = benchCase.prepare(round);
    const begin = now();
    (benchCase.run ?? runAll)(state, commands);
    ns += now() - begin;
    ops += commands.length;
  }
  return { ops, ns };
}

function main(): void {
  const options = parseOptions(process.argv.slice(2));
  const results: Result[] = [];
  for (const benchCase of cases) {
    measure(benchCase, options.warmupSeconds);
    const { ops, ns } = measure(benchCase, options.seconds);
    const seconds = Number(ns) / 1e9;
    const result: Result = { name: benchCase.name, unit: benchCase.unit, opsPerSecond: Math.round(ops / seconds), nsPerOp: Math.round(Number(ns) / ops), ops, seconds: Number(seconds.toFixed(3)) };
    if (benchCase.perOp !== undefined) result.perOp = { unit: benchCase.perOp.unit, perSecond: Math.round((ops * benchCase.perOp.count) / seconds) };
    results.push(result);
    if (!options.jsonOnly) process.stderr.write(`  ${benchCase.name}: done\n`);
  }
  if (!options.jsonOnly) printTable(results);
  console.log(JSON.stringify({ bench: 'core', node: process.version, results }));
}

function printTable(results: readonly Result[]): void {
  const rows = results.map((result) => [
    result.name, result.unit, result.opsPerSecond.toLocaleString('en-US'), result.nsPerOp.toLocaleString('en-US'),
    result.perOp === undefined ? '' : `${result.perOp.perSecond.toLocaleString('en-US')} ${result.perOp.unit}/s`,
  ]);
  const header = ['case', 'op', 'ops/s', 'ns/op', ''];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => (column >= 2 && column <= 3 ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const row of rows) console.log(line(row));
}

main();
